//! `crust ctl stats`: container resource usage from `ListContainerStats`, in crictl's table
//! (`CONTAINER NAME CPU % MEM DISK INODES`).
//!
//! CPU % is `usage_nano_cores` when the runtime reports it; otherwise, like crictl, it is
//! derived from two samples of the cumulative `usage_core_nano_seconds` taken a second apart.

use std::collections::HashMap;
use std::time::Duration;

use crust_proto::cri;
use crust_proto::cri::runtime_service_client::RuntimeServiceClient;
use tonic::transport::Channel;

use super::images::human_size;
use super::output::{self, Kind};
use super::{CtlError, Output, call, label_selector, print_json};

type Client = RuntimeServiceClient<Channel>;

/// Interval between the two CPU samples when the runtime gives no instantaneous rate.
const SAMPLE: Duration = Duration::from_secs(1);

/// `stats` flags (crictl's).
#[derive(Debug, clap::Args)]
pub struct StatsArgs {
    /// Include stopped containers (default: running only)
    #[arg(short, long)]
    pub all: bool,
    /// Only containers of this pod (id or unique prefix)
    #[arg(short, long)]
    pub pod: Option<String>,
    /// Filter by label key=value (repeatable)
    #[arg(long = "label")]
    pub labels: Vec<String>,
    /// Output format
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: Output,
    /// Container id or unique id prefix
    pub container: Option<String>,
}

fn value(v: &Option<cri::UInt64Value>) -> Option<u64> {
    v.as_ref().map(|v| v.value)
}

/// CPU percent for one container from one or two samples.
pub fn cpu_percent(now: &cri::ContainerStats, before: Option<&cri::ContainerStats>) -> f64 {
    let Some(cpu) = &now.cpu else {
        return 0.0;
    };
    if let Some(nc) = value(&cpu.usage_nano_cores).filter(|&n| n > 0) {
        return nc as f64 / 1e7;
    }
    let Some(prev) = before.and_then(|b| b.cpu.as_ref()) else {
        return 0.0;
    };
    let (Some(u1), Some(u0)) = (
        value(&cpu.usage_core_nano_seconds),
        value(&prev.usage_core_nano_seconds),
    ) else {
        return 0.0;
    };
    let dt = cpu.timestamp.saturating_sub(prev.timestamp);
    if dt <= 0 || u1 < u0 {
        return 0.0;
    }
    (u1 - u0) as f64 / dt as f64 * 100.0
}

/// Table rows (header first).
pub fn table(
    stats: &[cri::ContainerStats],
    before: &HashMap<String, cri::ContainerStats>,
) -> Vec<Vec<String>> {
    let mut rows = vec![
        ["CONTAINER", "NAME", "CPU %", "MEM", "DISK", "INODES"]
            .map(str::to_owned)
            .to_vec(),
    ];
    for s in stats {
        let attrs = s.attributes.clone().unwrap_or_default();
        let name = attrs.metadata.map(|m| m.name).unwrap_or_default();
        let mem = s
            .memory
            .as_ref()
            .and_then(|m| value(&m.working_set_bytes))
            .unwrap_or(0);
        let disk = s.writable_layer.as_ref();
        rows.push(vec![
            output::short_id(&attrs.id).to_owned(),
            name,
            format!("{:.2}", cpu_percent(s, before.get(&attrs.id))),
            human_size(mem),
            human_size(disk.and_then(|d| value(&d.used_bytes)).unwrap_or(0)),
            disk.and_then(|d| value(&d.inodes_used))
                .unwrap_or(0)
                .to_string(),
        ]);
    }
    rows
}

async fn sample(
    c: &mut Client,
    t: Duration,
    filter: &cri::ContainerStatsFilter,
) -> Result<Vec<cri::ContainerStats>, CtlError> {
    let req = cri::ListContainerStatsRequest {
        filter: Some(filter.clone()),
    };
    Ok(call("ListContainerStats", t, c.list_container_stats(req))
        .await?
        .stats)
}

/// `stats [-a] [--pod P] [--label k=v] [-o json] [ID]`.
pub async fn stats(c: &mut Client, t: Duration, a: &StatsArgs) -> Result<(), CtlError> {
    let id = match &a.container {
        Some(p) => super::containers::resolve(c, t, p).await?,
        None => String::new(),
    };
    let pod = match &a.pod {
        Some(p) => super::pods::resolve(c, t, p).await?,
        None => String::new(),
    };
    let filter = cri::ContainerStatsFilter {
        id,
        pod_sandbox_id: pod,
        label_selector: label_selector(&a.labels)?,
    };
    let mut stats = sample(c, t, &filter).await?;
    // ListContainerStats has no state filter: drop non-running containers client-side.
    if !a.all && a.container.is_none() {
        let req = cri::ListContainersRequest {
            filter: Some(cri::ContainerFilter {
                state: Some(cri::ContainerStateValue {
                    state: cri::ContainerState::ContainerRunning as i32,
                }),
                ..Default::default()
            }),
        };
        let running: Vec<String> = call("ListContainers", t, c.list_containers(req))
            .await?
            .containers
            .into_iter()
            .map(|c| c.id)
            .collect();
        stats.retain(|s| {
            s.attributes
                .as_ref()
                .is_some_and(|a| running.contains(&a.id))
        });
    }
    if a.output == Output::Json {
        let stats = output::cri_json(&stats, Kind::Container)?;
        return print_json(&serde_json::json!({ "stats": stats }));
    }
    let mut before = HashMap::new();
    let needs_second = stats.iter().any(|s| {
        s.cpu
            .as_ref()
            .and_then(|c| value(&c.usage_nano_cores))
            .unwrap_or(0)
            == 0
    });
    if needs_second {
        tokio::time::sleep(SAMPLE).await;
        let ids: Vec<String> = stats
            .iter()
            .filter_map(|s| s.attributes.as_ref().map(|a| a.id.clone()))
            .collect();
        for s in std::mem::take(&mut stats) {
            if let Some(a) = &s.attributes {
                before.insert(a.id.clone(), s);
            }
        }
        stats = sample(c, t, &filter).await?;
        stats.retain(|s| s.attributes.as_ref().is_some_and(|a| ids.contains(&a.id)));
    }
    print!("{}", output::render_table(&table(&stats, &before)));
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn st(id: &str, ts: i64, cum: u64, nano_cores: Option<u64>) -> cri::ContainerStats {
        cri::ContainerStats {
            attributes: Some(cri::ContainerAttributes {
                id: id.to_owned(),
                metadata: Some(cri::ContainerMetadata {
                    name: "web".to_owned(),
                    attempt: 0,
                }),
                ..Default::default()
            }),
            cpu: Some(cri::CpuUsage {
                timestamp: ts,
                usage_core_nano_seconds: Some(cri::UInt64Value { value: cum }),
                usage_nano_cores: nano_cores.map(|value| cri::UInt64Value { value }),
            }),
            memory: Some(cri::MemoryUsage {
                working_set_bytes: Some(cri::UInt64Value { value: 4_300_000 }),
                ..Default::default()
            }),
            writable_layer: Some(cri::FilesystemUsage {
                used_bytes: Some(cri::UInt64Value { value: 12_000 }),
                inodes_used: Some(cri::UInt64Value { value: 7 }),
                ..Default::default()
            }),
            swap: None,
        }
    }

    #[test]
    fn cpu_from_rate_or_two_samples() {
        let now = st("a", 2_000_000_000, 1_500_000_000, None);
        let before = st("a", 1_000_000_000, 1_000_000_000, None);
        assert!((cpu_percent(&now, Some(&before)) - 50.0).abs() < 1e-9);
        assert_eq!(cpu_percent(&now, None), 0.0);
        let rate = st("a", 0, 0, Some(250_000_000));
        assert!((cpu_percent(&rate, None) - 25.0).abs() < 1e-9);
    }

    #[test]
    fn table_rows() {
        let id = "0123456789abcdef0123";
        let rows = table(&[st(id, 0, 0, Some(10_000_000))], &HashMap::new());
        assert_eq!(
            rows[0],
            ["CONTAINER", "NAME", "CPU %", "MEM", "DISK", "INODES"]
        );
        assert_eq!(
            rows[1],
            ["0123456789abc", "web", "1.00", "4.3MB", "12kB", "7"]
        );
    }
}
