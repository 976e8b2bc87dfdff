//! What the benchmark modules share: timing summaries, and a daemon on a temp root with
//! the busybox tools image pulled from a throw-away registry.

use std::time::Duration;

use anyhow::Result;

use crate::common::*;

/// A daemon with the tools image pulled. Field order is drop order: daemon, then its
/// files, then the registry.
pub struct ToolsDaemon {
    pub d: Daemon,
    pub tmp: tempfile::TempDir,
    /// Kept alive (serves the image) until the daemon is gone.
    _reg: Registry,
    /// Pullable reference of the tools image.
    pub image: String,
    /// The image as built (layers, config).
    pub img: Image,
}

/// Start a registry and a daemon (temp dirs prefixed `crust-bench-<what>-`), push the
/// tools image and pull it through CRI.
pub async fn tools_daemon(what: &str) -> Result<ToolsDaemon> {
    let reg = Registry::start()?;
    let img = tools_image(&format!("bench-{what}"))?;
    push_image(&reg, "bench/tools", "1", &img)?;
    let tmp = tempfile::Builder::new()
        .prefix(&format!("crust-bench-{what}-"))
        .tempdir()?;
    let d = Daemon::start(&tmp.path().join("d"), &registries_conf(&reg.host, "")).await?;
    let image = format!("{}/bench/tools:1", reg.host);
    d.pull(&image).await?;
    Ok(ToolsDaemon {
        d,
        tmp,
        _reg: reg,
        image,
        img,
    })
}

/// A duration in milliseconds.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// (median, p90) in ms; NaN for an empty sample.
pub fn med_p90(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let p90 = ((v.len() * 9) / 10).min(v.len() - 1);
    (ms(v[v.len() / 2]), ms(v[p90]))
}

/// Median over runs of `a[i] / b[i]`: each pair was measured back to back, so machine
/// speed drifting over a bench run (it does, on these VMs) cancels out of each ratio.
pub fn paired(a: &[Duration], b: &[Duration]) -> f64 {
    let mut r: Vec<f64> = a
        .iter()
        .zip(b)
        .map(|(x, y)| x.as_secs_f64() / y.as_secs_f64().max(1e-9))
        .collect();
    r.sort_by(f64::total_cmp);
    r.get(r.len() / 2).copied().unwrap_or(f64::NAN)
}
