//! End-to-end tests of container stdio through the monitor: a `tty` container gets a
//! terminal on stdout and its output still lands in the CRI log (as `stdout` records,
//! the way CRI-O and containerd log tty containers).
#![allow(clippy::unwrap_used)]

mod common;

use anyhow::Result;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tty_container_logs_its_terminal_output() -> Result<()> {
    let w = World::new().await?;
    let pod_cfg = w.pod_config("tty");
    let pod = w.run_pod(&pod_cfg).await?;
    let script =
        "if [ -t 1 ]; then echo IS_TTY; else echo NOT_TTY; fi; echo to-stderr >&2; sleep 0.3";
    let mut cfg = w.ctr_config("tty", &["sh", "-c", script]);
    cfg.tty = true;
    let (st, out) = w.run_to_exit(&pod, &cfg).await?;
    assert_eq!(st.exit_code, 0, "{out}");
    assert!(out.contains("IS_TTY"), "{out}");
    let recs = w.log_records(&pod_cfg, &cfg)?;
    assert!(
        recs.iter()
            .any(|r| r.stream == "stdout" && r.content.trim_end_matches('\r') == "to-stderr"),
        "a tty merges stderr into stdout: {recs:#?}"
    );

    // Without tty, stdout is a pipe.
    let plain = w.ctr_config("notty", &["sh", "-c", script]);
    let (_, out) = w.run_to_exit(&pod, &plain).await?;
    assert!(out.contains("NOT_TTY"), "{out}");
    let left = w.cleanup().await?;
    assert!(left.is_empty(), "leftovers: {left:#?}");
    Ok(())
}
