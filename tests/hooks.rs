//! End-to-end tests of OCI hooks (`crust.runtime.hooks_dir`) through the real daemon and
//! real runc: hook executables are `#!/bin/sh` scripts that append their name, stage and
//! stdin (the OCI state JSON) to a log; the tests check every stage ran with the right
//! state, that each `when` condition selects exactly the matching containers, that
//! malformed hook files are skipped, and that files added or removed while the daemon
//! runs apply to the next container.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use common::*;
use crust_proto::cri::{ContainerConfig, ContainerState, Mount};

/// Appends `<hook name> <stage> <state JSON>` to `<dir>/hooks.log`. Runs on the host
/// (prestart, createRuntime, poststart, poststop), in the container's mount namespace
/// before pivot_root (createContainer) and inside the container (startContainer), which
/// is why the tests bind-mount its directory at the same path.
const RECORDER: &str = "#!/bin/sh\n\
# <name> <stage> <dir>: append the hook name, stage and OCI state (stdin) to <dir>/hooks.log\n\
state=$(cat)\n\
printf '%s %s %s\\n' \"$1\" \"$2\" \"$state\" >> \"$3/hooks.log\"\n";

/// A world whose daemon reads hooks from `<base>/hooks/{usr,etc}`, plus the recorder.
struct HookWorld {
    w: World,
    usr: PathBuf,
    etc: PathBuf,
    /// Holds the recorder script and its log; bind-mounted into containers at the same path.
    out: PathBuf,
}

impl HookWorld {
    async fn new() -> Result<Self> {
        let mut w = World::new().await?;
        let base = w.env.base().to_path_buf();
        let (usr, etc, out) = (
            base.join("hooks/usr"),
            base.join("hooks/etc"),
            base.join("hookout"),
        );
        for d in [&usr, &etc, &out] {
            std::fs::create_dir_all(d)?;
        }
        // The temp dir is 0700; the container's root may lack CAP_DAC_OVERRIDE.
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o755))?;
        std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o777))?;
        let script = out.join("record.sh");
        std::fs::write(&script, RECORDER)?;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))?;
        // hooks_dir is read at start-up: restart the daemon with a drop-in setting it.
        w.env.daemon.stop();
        std::fs::write(
            w.env.daemon.base.join("crust.conf.d/50-hooks.toml"),
            format!("[crust.runtime]\nhooks_dir = [{:?}, {:?}]\n", usr, etc),
        )?;
        w.env.daemon.spawn().await?;
        Ok(Self { w, usr, etc, out })
    }

    /// Write hook file `dir/name` recording `name` at `stage` when `when` matches (one
    /// stage per file, so the recorder knows which stage ran it).
    fn hook(&self, dir: &Path, name: &str, when: &str, stage: &str) -> Result<()> {
        let body = format!(
            r#"{{"version":"1.0.0","hook":{{"path":{script:?},"args":["record.sh",{name:?},{stage:?},{out:?}],"env":["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],"timeout":10}},"when":{when},"stages":[{stage:?}]}}"#,
            script = self.out.join("record.sh"),
            out = self.out,
        );
        std::fs::write(dir.join(name), body)?;
        Ok(())
    }

    /// Recorded `(hook name, stage, state)` entries of container `id`.
    fn recorded(&self, id: &str) -> Result<Vec<(String, String, serde_json::Value)>> {
        let text = std::fs::read_to_string(self.out.join("hooks.log")).unwrap_or_default();
        let mut out = Vec::new();
        for line in text.lines() {
            let mut it = line.splitn(3, ' ');
            let (Some(name), Some(stage), Some(state)) = (it.next(), it.next(), it.next()) else {
                bail!("bad hooks.log line {line:?}");
            };
            let state: serde_json::Value =
                serde_json::from_str(state).with_context(|| format!("state in {line:?}"))?;
            if state["id"] == id {
                out.push((name.to_string(), stage.to_string(), state));
            }
        }
        Ok(out)
    }

    /// Hook names recorded for `id` at `stage`, sorted, polling until `want` or 10 s.
    async fn wait_names(&self, id: &str, stage: &str, want: &[&str]) -> Result<Vec<String>> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut got: Vec<String> = self
                .recorded(id)?
                .into_iter()
                .filter(|(_, s, _)| s == stage)
                .map(|(n, _, _)| n)
                .collect();
            got.sort();
            if got == want || Instant::now() > deadline {
                return Ok(got);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A container config mounting the recorder's directory at the same path.
    fn with_out_mount(&self, mut cfg: ContainerConfig) -> ContainerConfig {
        cfg.mounts.push(Mount {
            container_path: self.out.display().to_string(),
            host_path: self.out.display().to_string(),
            ..Default::default()
        });
        cfg
    }
}

const STAGES: [&str; 6] = [
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_stage_runs_with_the_oci_state() -> Result<()> {
    let h = HookWorld::new().await?;
    let when = r#"{"annotations":{"^e2e\\.hooks/stages$":"^on$"}}"#;
    for (i, stage) in STAGES.iter().enumerate() {
        h.hook(&h.usr, &format!("{i}-{stage}.json"), when, stage)?;
    }
    let pod = h.w.run_pod(&h.w.pod_config("hooks")).await?;
    let mut cfg = h.with_out_mount(h.w.ctr_config("stages", &["sleep", "3600"]));
    cfg.annotations
        .insert("e2e.hooks/stages".into(), "on".into());
    let name = cfg.metadata.as_ref().unwrap().name.clone();
    let id = h.w.run(&pod, &cfg).await?;
    h.w.wait_state(
        &id,
        ContainerState::ContainerRunning,
        Duration::from_secs(10),
    )
    .await?;
    // Untouched by the hooks: a container without the annotation.
    let other =
        h.w.run(
            &pod,
            &h.with_out_mount(h.w.ctr_config("plain", &["sleep", "3600"])),
        )
        .await?;

    for (i, stage) in STAGES[..5].iter().enumerate() {
        let want = format!("{i}-{stage}.json");
        let got = h.wait_names(&id, stage, &[&want]).await?;
        assert_eq!(
            got,
            [want],
            "stage {stage}; log:\n{}",
            h.w.env.daemon.log_text()
        );
    }
    h.w.stop(&id, 1).await?;
    h.w.remove(&id).await?;
    let got = h.wait_names(&id, "poststop", &["5-poststop.json"]).await?;
    assert_eq!(got, ["5-poststop.json"]);

    let bundle = h.w.env.daemon.runroot().join("containers").join(&id);
    let want_status = HashMap::from([
        ("prestart", "creating"),
        ("createRuntime", "creating"),
        ("createContainer", "creating"),
        ("startContainer", "created"),
        ("poststart", "running"),
        ("poststop", "stopped"),
    ]);
    let rec = h.recorded(&id)?;
    assert_eq!(rec.len(), 6, "{rec:#?}");
    for (_, stage, state) in &rec {
        assert_eq!(state["id"], id.as_str(), "{stage}: {state}");
        // runc 1.1 takes the poststart state before the user process has exec'd, so it
        // still says "created" there; the spec's "running" is accepted too.
        let status = state["status"].as_str().unwrap_or_default();
        let ok =
            status == want_status[stage.as_str()] || (stage == "poststart" && status == "created");
        assert!(ok, "{stage}: status {status:?}: {state}");
        assert_eq!(
            state["bundle"],
            bundle.display().to_string(),
            "{stage}: {state}"
        );
        assert_eq!(
            state["annotations"]["io.kubernetes.cri.container-name"],
            name.as_str(),
            "{stage}: {state}"
        );
        assert!(state["ociVersion"].is_string(), "{stage}: {state}");
        if stage != "poststop" {
            assert!(state["pid"].as_u64().unwrap_or(0) > 0, "{stage}: {state}");
        }
    }
    assert!(h.recorded(&other)?.is_empty(), "{:?}", h.recorded(&other)?);
    let left = h.w.cleanup().await?;
    assert!(left.is_empty(), "leftovers: {left:#?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_conditions_malformed_files_and_live_changes() -> Result<()> {
    let h = HookWorld::new().await?;
    let (usr, etc) = (&h.usr, &h.etc);
    h.hook(usr, "always.json", r#"{"always":true}"#, "prestart")?;
    h.hook(usr, "never.json", r#"{"always":false}"#, "prestart")?;
    h.hook(
        usr,
        "ann.json",
        r#"{"annotations":{"^example\\.com/hook$":"^yes$"}}"#,
        "prestart",
    )?;
    // Unanchored patterns search (containers/common uses regexp.MatchString).
    h.hook(
        usr,
        "ann-search.json",
        r#"{"annotations":{"hook":"ye"}}"#,
        "prestart",
    )?;
    h.hook(
        usr,
        "cmd.json",
        r#"{"commands":["^/bin/sleep$"]}"#,
        "prestart",
    )?;
    h.hook(usr, "binds.json", r#"{"hasBindMounts":true}"#, "prestart")?;
    h.hook(
        usr,
        "all.json",
        r#"{"always":true,"commands":["sleep$"],"hasBindMounts":true}"#,
        "prestart",
    )?;
    // Masked by etc/masked.json, which never matches.
    h.hook(usr, "masked.json", r#"{"always":true}"#, "prestart")?;
    h.hook(etc, "masked.json", r#"{"always":false}"#, "prestart")?;
    // Malformed: skipped with a log line, nothing else affected.
    std::fs::write(usr.join("bad.json"), r#"{"version":"1.0.0","hook":"#)?;
    h.hook(usr, "badstage.json", r#"{"always":true}"#, "precreate")?;
    std::fs::write(etc.join("not-a-hook.txt"), "ignored")?;

    let pod = h.w.run_pod(&h.w.pod_config("hooks")).await?;
    let mut yes = h.with_out_mount(h.w.ctr_config("yes", &["/bin/sleep", "3600"]));
    yes.annotations
        .insert("example.com/hook".into(), "yes".into());
    let no = h.w.ctr_config("no", &["sh", "-c", "sleep 3600"]);
    let yes_id = h.w.run(&pod, &yes).await?;
    let no_id = h.w.run(&pod, &no).await?;

    let want_yes = [
        "all.json",
        "always.json",
        "ann-search.json",
        "ann.json",
        "binds.json",
        "cmd.json",
    ];
    let got = h.wait_names(&yes_id, "prestart", &want_yes).await?;
    assert_eq!(got, want_yes, "log:\n{}", h.w.env.daemon.log_text());
    let got = h.wait_names(&no_id, "prestart", &["always.json"]).await?;
    assert_eq!(got, ["always.json"]);
    let log = h.w.env.daemon.log_text();
    for bad in ["bad.json", "badstage.json"] {
        assert!(
            log.lines()
                .any(|l| l.contains("skipping malformed hook file") && l.contains(bad)),
            "no warning for {bad}:\n{log}"
        );
    }
    assert!(
        log.contains("precreate"),
        "the error names the stage:\n{log}"
    );

    // Changes apply to the next container without a restart: a new file, a removed one.
    h.hook(etc, "late.json", r#"{"always":true}"#, "prestart")?;
    std::fs::remove_file(usr.join("always.json"))?;
    let next =
        h.w.run(&pod, &h.w.ctr_config("next", &["sleep", "3600"]))
            .await?;
    let got = h.wait_names(&next, "prestart", &["late.json"]).await?;
    assert_eq!(got, ["late.json"]);

    let left = h.w.cleanup().await?;
    assert!(left.is_empty(), "leftovers: {left:#?}");
    Ok(())
}
