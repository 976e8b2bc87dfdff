//! What hooks cost a `CreateContainer`: [`HookManager::matching`] when nothing changed
//! (the re-scan that replaces an inotify watcher) and after a change (re-parse), next to
//! the floor measured in the same run: a bare `read_dir` + `stat` of the same files.
//! Goal: the unchanged-directory path within 2x the floor and well under 1 ms for 20
//! hook files (runc create alone takes ~50 ms). Run: `cargo bench -p crust-hooks`.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crust_hooks::{HookManager, MatchInput};

fn write_hooks(dir: &Path, n: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..n {
        std::fs::write(
            dir.join(format!("{i:02}-hook.json")),
            format!(
                r#"{{"version":"1.0.0","hook":{{"path":"/bin/sh","args":["sh","-c","true"]}},
                "when":{{"annotations":{{"^example\\.com/h{i}$":"^yes$"}},"commands":[".*/init$"]}},
                "stages":["prestart","poststop"]}}"#
            ),
        )
        .unwrap();
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time(runs: usize, mut f: impl FnMut()) -> Duration {
    median(
        (0..runs)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed()
            })
            .collect(),
    )
}

fn floor(dirs: &[PathBuf]) {
    for d in dirs {
        if let Ok(rd) = std::fs::read_dir(d) {
            for e in rd.flatten() {
                let _ = std::fs::metadata(e.path());
            }
        }
    }
}

fn main() {
    let t = tempfile::tempdir().unwrap();
    let dirs = vec![t.path().join("usr"), t.path().join("etc")];
    write_hooks(&dirs[0], 10);
    write_hooks(&dirs[1], 20);
    let m = HookManager::new(dirs.clone());
    let ann: HashMap<String, String> = [("example.com/h3".to_string(), "yes".to_string())].into();
    let input = MatchInput {
        annotations: &ann,
        command: Some("/sbin/init"),
        has_bind_mounts: false,
    };
    assert_eq!(m.matching(&input).names().len(), 1);
    let runs = 2000;
    let floor_t = time(runs, || floor(&dirs));
    let unchanged = time(runs, || {
        m.matching(&input);
    });
    let mut flip = false;
    let changed = time(200, || {
        flip = !flip;
        let body = if flip { "{" } else { "{ }" };
        std::fs::write(dirs[1].join("99-touched.json"), body).unwrap();
        m.matching(&input);
    });
    let write_only = time(200, || {
        flip = !flip;
        let body = if flip { "{" } else { "{ }" };
        std::fs::write(dirs[1].join("99-touched.json"), body).unwrap();
    });
    println!("hooks: 30 files in 2 dirs (20 effective after masking), medians");
    println!("| measurement | result |");
    println!("|---|---|");
    println!("| floor: read_dir + stat of the files | {floor_t:?} |");
    println!(
        "| matching(), nothing changed | {unchanged:?} ({:.2}x floor) |",
        unchanged.as_secs_f64() / floor_t.as_secs_f64()
    );
    println!("| write of one hook file alone | {write_only:?} |");
    println!("| matching() after that write (write + re-scan + re-parse of it) | {changed:?} |");
}
