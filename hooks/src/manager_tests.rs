//! Unit tests of [`super::HookManager`]: masking, ordering, malformed files, reloading.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::Path;

use super::*;

fn hook_json(path: &str, when: &str, stages: &[&str]) -> String {
    let stages: Vec<String> = stages.iter().map(|s| format!("{s:?}")).collect();
    format!(
        r#"{{"version":"1.0.0","hook":{{"path":{path:?},"args":["x"]}},"when":{when},"stages":[{}]}}"#,
        stages.join(",")
    )
}

fn write(dir: &Path, name: &str, body: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(name), body).unwrap();
}

fn names(m: &HookManager) -> Vec<String> {
    m.hooks().iter().map(|h| h.name.clone()).collect()
}

fn all<'a>(a: &'a HashMap<String, String>) -> MatchInput<'a> {
    MatchInput {
        annotations: a,
        command: Some("/bin/sh"),
        has_bind_mounts: false,
    }
}

const ALWAYS: &str = r#"{"always":true}"#;

#[test]
fn later_dir_masks_earlier_and_names_order_across_dirs() {
    let t = tempfile::tempdir().unwrap();
    let (usr, etc) = (t.path().join("usr"), t.path().join("etc"));
    write(
        &usr,
        "20-b.json",
        &hook_json("/bin/true", ALWAYS, &["prestart"]),
    );
    write(
        &usr,
        "10-a.json",
        &hook_json("/bin/sh", ALWAYS, &["prestart"]),
    );
    write(
        &etc,
        "20-b.json",
        &hook_json("/bin/ls", ALWAYS, &["prestart"]),
    );
    write(
        &etc,
        "05-z.json",
        &hook_json("/bin/cat", ALWAYS, &["prestart"]),
    );
    write(&etc, "README", "not a hook");
    write(&etc, "30-c.json.bak", "not a hook either");
    let m = HookManager::new(vec![usr.clone(), etc.clone()]);
    assert_eq!(names(&m), ["05-z.json", "10-a.json", "20-b.json"]);
    let hooks = m.hooks();
    assert_eq!(hooks[2].file, etc.join("20-b.json"));
    let a = HashMap::new();
    let sh = m.matching(&all(&a));
    let paths: Vec<_> = sh
        .stage(Stage::Prestart)
        .iter()
        .map(|h| h.path.display().to_string())
        .collect();
    assert_eq!(paths, ["/bin/cat", "/bin/sh", "/bin/ls"]);
    assert_eq!(sh.names(), ["05-z.json", "10-a.json", "20-b.json"]);
    assert!(sh.stage(Stage::Poststop).is_empty());
}

#[test]
fn malformed_files_are_skipped_and_still_mask() {
    let t = tempfile::tempdir().unwrap();
    let (usr, etc) = (t.path().join("usr"), t.path().join("etc"));
    write(&usr, "a.json", &hook_json("/bin/sh", ALWAYS, &["prestart"]));
    write(&usr, "b.json", &hook_json("/bin/sh", ALWAYS, &["prestart"]));
    write(&usr, "c.json", "{ not json");
    write(&usr, "d.json", &hook_json("/bin/sh", ALWAYS, &["bogus"]));
    write(
        &etc,
        "b.json",
        &hook_json("relative", ALWAYS, &["prestart"]),
    );
    std::fs::create_dir_all(usr.join("e.json")).unwrap();
    // A "directory" that is a file cannot be listed: skipped with a warning.
    let not_dir = t.path().join("file");
    std::fs::write(&not_dir, "x").unwrap();
    let m = HookManager::new(vec![usr, etc, t.path().join("missing"), not_dir]);
    assert_eq!(names(&m), ["a.json"]);
}

#[test]
fn stages_and_conditions_select_hooks() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("d");
    write(
        &d,
        "all.json",
        &hook_json(
            "/bin/sh",
            ALWAYS,
            &[
                "prestart",
                "createRuntime",
                "createContainer",
                "startContainer",
                "poststart",
                "poststop",
            ],
        ),
    );
    write(
        &d,
        "ann.json",
        &hook_json(
            "/bin/sh",
            r#"{"annotations":{"^gpu$":"^yes$"}}"#,
            &["poststop"],
        ),
    );
    write(
        &d,
        "binds.json",
        &hook_json("/bin/sh", r#"{"hasBindMounts":true}"#, &["poststart"]),
    );
    write(
        &d,
        "cmd.json",
        &hook_json(
            "/bin/sh",
            r#"{"commands":["^/bin/sh$"]}"#,
            &["createRuntime"],
        ),
    );
    let m = HookManager::new(vec![d]);
    let none = HashMap::new();
    let sh = m.matching(&MatchInput {
        annotations: &none,
        command: Some("/bin/ls"),
        has_bind_mounts: false,
    });
    assert_eq!(sh.names(), ["all.json"]);
    for s in Stage::ALL {
        assert_eq!(sh.stage(s).len(), 1, "{s}");
    }
    let gpu: HashMap<String, String> = [("gpu".to_string(), "yes".to_string())].into();
    let sh = m.matching(&MatchInput {
        annotations: &gpu,
        command: Some("/bin/sh"),
        has_bind_mounts: true,
    });
    assert_eq!(
        sh.names(),
        ["all.json", "ann.json", "binds.json", "cmd.json"]
    );
    assert_eq!(sh.stage(Stage::Poststop).len(), 2);
    assert_eq!(sh.stage(Stage::Poststart).len(), 2);
    assert_eq!(sh.stage(Stage::CreateRuntime).len(), 2);
    assert_eq!(sh.stage(Stage::Prestart).len(), 1);
}

#[test]
fn new_changed_and_removed_files_apply_to_the_next_call() {
    let t = tempfile::tempdir().unwrap();
    let (usr, etc) = (t.path().join("usr"), t.path().join("etc"));
    let m = HookManager::new(vec![usr.clone(), etc.clone()]);
    assert!(names(&m).is_empty());

    // A directory created after the manager, with a new file.
    write(&usr, "a.json", &hook_json("/bin/sh", ALWAYS, &["prestart"]));
    assert_eq!(names(&m), ["a.json"]);
    let first = m.hooks();
    assert!(
        Arc::ptr_eq(&first, &m.hooks()),
        "unchanged dirs are not re-read"
    );

    // Changed in place: same name, other content.
    write(&usr, "a.json", &hook_json("/bin/ls", ALWAYS, &["poststop"]));
    let h = m.hooks();
    assert_eq!(h[0].hook.hook.path, Path::new("/bin/ls"));
    assert_eq!(h[0].hook.stages, [Stage::Poststop]);

    // Masked by a new file in the later directory, unmasked when it goes away.
    write(
        &etc,
        "a.json",
        &hook_json("/bin/cat", ALWAYS, &["poststop"]),
    );
    assert_eq!(m.hooks()[0].hook.hook.path, Path::new("/bin/cat"));
    std::fs::remove_file(etc.join("a.json")).unwrap();
    assert_eq!(m.hooks()[0].hook.hook.path, Path::new("/bin/ls"));

    // Broken, then fixed.
    write(&usr, "a.json", "{");
    assert!(names(&m).is_empty());
    write(&usr, "a.json", &hook_json("/bin/sh", ALWAYS, &["prestart"]));
    assert_eq!(names(&m), ["a.json"]);

    // Removed.
    std::fs::remove_file(usr.join("a.json")).unwrap();
    assert!(names(&m).is_empty());
}

#[test]
fn merged_annotations_prefer_the_spec() {
    let spec: HashMap<String, String> = [("k".to_string(), "spec".to_string())].into();
    let extra: HashMap<String, String> = [
        ("k".to_string(), "cri".to_string()),
        ("o".to_string(), "cri".to_string()),
    ]
    .into();
    let m = merged_annotations(Some(&spec), &extra);
    assert_eq!(m["k"], "spec");
    assert_eq!(m["o"], "cri");
}
