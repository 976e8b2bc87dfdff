//! OCI hooks from the `hooks.d` directories (`crust.runtime.hooks_dir`) injected into a
//! container's generated spec, as CRI-O does in `CreateContainer`.
//!
//! The hook files, their `when` conditions and reloading live in the `crust-hooks` crate;
//! this file only decides what a container offers to the conditions and writes the
//! result into `config.json`:
//! - annotations: the spec's annotations (crust's `io.kubernetes.cri.*` ones) plus the
//!   CRI container config's annotations (CRI-O matches the container's annotations);
//! - command: `process.args[0]` of the generated spec;
//! - `hasBindMounts`: the CRI config asks for at least one mount. The pod files and
//!   default mounts crust adds itself do not count, as in CRI-O and Podman, where only
//!   caller-requested volumes do (otherwise every container would "have bind mounts").
//!
//! Matched hooks are *appended* per stage after any hooks already in the spec, in
//! hook-file name order. Call it on the blocking pool: it lists the hook directories.

use std::collections::HashMap;

use crust_hooks::{HookManager, MatchInput, Stage, manager::merged_annotations};
use oci_spec::runtime::{Hook, Hooks, Spec};

/// Convert a hook-file hook into an OCI spec hook.
fn oci_hook(h: &crust_hooks::Hook) -> Hook {
    let mut out = Hook::default();
    out.set_path(h.path.clone())
        .set_args((!h.args.is_empty()).then(|| h.args.clone()))
        .set_env((!h.env.is_empty()).then(|| h.env.clone()))
        .set_timeout(h.timeout);
    out
}

/// The list of `stage` in `hooks`.
// `prestart` is deprecated in the runtime spec but still run by runc, crun and youki, and
// hook files still ask for it (oci-hooks(5) examples, CRI-O and Podman inject it).
#[allow(deprecated)]
fn stage_list(hooks: &mut Hooks, stage: Stage) -> &mut Option<Vec<Hook>> {
    match stage {
        Stage::Prestart => hooks.prestart_mut(),
        Stage::CreateRuntime => hooks.create_runtime_mut(),
        Stage::CreateContainer => hooks.create_container_mut(),
        Stage::StartContainer => hooks.start_container_mut(),
        Stage::Poststart => hooks.poststart_mut(),
        Stage::Poststop => hooks.poststop_mut(),
    }
}

/// Add the hooks matching this container to `spec`. `cri_annotations` are the CRI
/// container config's annotations, `has_bind_mounts` whether its `mounts` is non-empty.
/// Returns the names of the hook files applied (for the log).
pub fn apply(
    manager: &HookManager,
    spec: &mut Spec,
    cri_annotations: &HashMap<String, String>,
    has_bind_mounts: bool,
) -> Vec<String> {
    let annotations = merged_annotations(spec.annotations().as_ref(), cri_annotations);
    let command = spec
        .process()
        .as_ref()
        .and_then(|p| p.args().as_ref())
        .and_then(|a| a.first().cloned());
    let matched = manager.matching(&MatchInput {
        annotations: &annotations,
        command: command.as_deref(),
        has_bind_mounts,
    });
    if matched.is_empty() {
        return Vec::new();
    }
    let mut hooks = spec.hooks().clone().unwrap_or_default();
    for stage in Stage::ALL {
        let add = matched.stage(stage);
        if add.is_empty() {
            continue;
        }
        stage_list(&mut hooks, stage)
            .get_or_insert_with(Vec::new)
            .extend(add.iter().map(oci_hook));
    }
    spec.set_hooks(Some(hooks));
    matched.names().to_vec()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::path::Path;

    use oci_spec::runtime::Process;

    use super::*;

    fn write(dir: &Path, name: &str, when: &str, stages: &str) {
        std::fs::write(
            dir.join(name),
            format!(
                r#"{{"version":"1.0.0","hook":{{"path":"/bin/sh","args":["sh","{name}"],"timeout":3}},"when":{when},"stages":{stages}}}"#
            ),
        )
        .unwrap();
    }

    fn spec(args0: &str, annotations: &[(&str, &str)]) -> Spec {
        let mut s = Spec::default();
        let mut p = Process::default();
        p.set_args(Some(vec![args0.to_string(), "x".into()]));
        s.set_process(Some(p)).set_hooks(None).set_annotations(Some(
            annotations
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ));
        s
    }

    fn args(h: &Option<Vec<Hook>>) -> Vec<String> {
        h.as_ref()
            .map(|v| {
                v.iter()
                    .map(|h| h.args().as_ref().unwrap()[1].clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    #[allow(deprecated)]
    fn matching_hooks_are_appended_per_stage() {
        let t = tempfile::tempdir().unwrap();
        write(
            t.path(),
            "a.json",
            r#"{"always":true}"#,
            r#"["prestart","poststop"]"#,
        );
        write(
            t.path(),
            "b.json",
            r#"{"annotations":{"^io\\.kubernetes\\.cri\\.container-name$":"^web$"}}"#,
            r#"["poststop"]"#,
        );
        write(
            t.path(),
            "c.json",
            r#"{"commands":["^/bin/sh$"]}"#,
            r#"["createRuntime"]"#,
        );
        write(
            t.path(),
            "d.json",
            r#"{"hasBindMounts":true,"annotations":{"^gpu$":"."}}"#,
            r#"["startContainer"]"#,
        );
        let m = HookManager::new(vec![t.path().to_path_buf()]);

        let mut s = spec("/bin/sh", &[("io.kubernetes.cri.container-name", "web")]);
        // A hook already in the spec stays first.
        let mut existing = Hooks::default();
        let mut pre = Hook::default();
        pre.set_path("/usr/bin/own".into())
            .set_args(Some(vec!["own".into(), "own".into()]));
        existing.set_poststop(Some(vec![pre]));
        s.set_hooks(Some(existing));
        let cri: HashMap<String, String> = [("gpu".to_string(), "1".to_string())].into();
        let names = apply(&m, &mut s, &cri, true);
        assert_eq!(names, ["a.json", "b.json", "c.json", "d.json"]);
        let h = s.hooks().as_ref().unwrap();
        assert_eq!(args(h.prestart()), ["a.json"]);
        assert_eq!(args(h.poststop()), ["own", "a.json", "b.json"]);
        assert_eq!(args(h.create_runtime()), ["c.json"]);
        assert_eq!(args(h.start_container()), ["d.json"]);
        assert!(h.create_container().is_none() && h.poststart().is_none());
        let p = &h.prestart().as_ref().unwrap()[0];
        assert_eq!(p.path(), Path::new("/bin/sh"));
        assert_eq!(p.timeout(), Some(3));
        assert!(p.env().is_none());

        // Nothing but `always` matches another container; no bind mounts, no gpu.
        let mut s = spec("/bin/ls", &[]);
        assert_eq!(apply(&m, &mut s, &HashMap::new(), false), ["a.json"]);
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["hooks"]["prestart"][0]["path"], "/bin/sh");
        assert!(json["hooks"].get("createRuntime").is_none(), "{json}");
    }

    #[test]
    fn no_match_leaves_spec_untouched() {
        let t = tempfile::tempdir().unwrap();
        let m = HookManager::new(vec![t.path().join("none")]);
        let mut s = spec("/bin/sh", &[]);
        assert!(apply(&m, &mut s, &HashMap::new(), true).is_empty());
        assert!(s.hooks().is_none());
    }
}
