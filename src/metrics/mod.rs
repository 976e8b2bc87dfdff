//! Prometheus metrics: one process-wide registry, recorded at a few call sites (the RPC
//! wrapper, the pull path, the exit path, the start-up storage check) and served as
//! OpenMetrics text by [`server`] when `[crust.metrics] enable = true`.
//!
//! Names follow the Prometheus naming guide and what CRI-O exports under `crio_`
//! (`crio_operations_total`, `crio_image_pulls_bytes_total`, `crio_containers_oom_total`):
//! - `crust_rpc_requests_total{rpc,code}`: finished CRI RPCs by gRPC status code;
//! - `crust_rpc_duration_seconds{rpc}`: RPC latency histogram;
//! - `crust_image_pull_bytes_total`: compressed bytes downloaded by pulls;
//! - `crust_image_pulls_total{result}`: pulls by `success` / `failure`;
//! - `crust_container_ooms_total`: containers killed by the OOM killer;
//! - `crust_storage_check_runs_total` / `crust_storage_check_problems_total`: start-up
//!   consistency checks (they run after an unclean shutdown, see `crate::ops::marker`);
//! - `crust_containers{state}` / `crust_pods{state}`: gauges computed at scrape time from
//!   the state store, so they can never drift from what `ListContainers` answers.
//!
//! The registry is global (a `OnceLock`) so each call site stays one line and costs a few
//! atomic increments whether or not the endpoint is served.

pub mod server;

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::lifecycle::Manager;
use crate::state::{ContainerState, PodState};

/// `{rpc, code}` of `crust_rpc_requests_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RpcCodeLabels {
    /// CRI method name (`RunPodSandbox`).
    pub rpc: String,
    /// gRPC status code name (`OK`, `NotFound`, ...).
    pub code: String,
}

/// `{rpc}` of `crust_rpc_duration_seconds`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RpcLabels {
    /// CRI method name.
    pub rpc: String,
}

/// `{result}` of `crust_image_pulls_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// `success` or `failure`.
    pub result: String,
}

/// `{state}` of the state gauges.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    /// CRI state name in lower case (`running`, `exited`, `ready`, ...).
    pub state: String,
}

type HistogramFn = fn() -> Histogram;

/// Every metric crust exports, in one registry.
pub struct Metrics {
    registry: Registry,
    rpc_requests: Family<RpcCodeLabels, Counter>,
    rpc_duration: Family<RpcLabels, Histogram, HistogramFn>,
    pull_bytes: Counter,
    pulls: Family<ResultLabels, Counter>,
    ooms: Counter,
    check_runs: Counter,
    check_problems: Counter,
    containers: Family<StateLabels, Gauge>,
    pods: Family<StateLabels, Gauge>,
    /// Serialises scrapes: the state gauges are set, then encoded.
    scrape: Mutex<()>,
}

/// RPC latency buckets: 1 ms .. ~65 s, doubling (pulls and stops can take long).
fn rpc_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

/// Container states as the gauge labels them (CRI `ContainerState` without the prefix).
pub const CONTAINER_STATES: [&str; 4] = ["created", "running", "exited", "unknown"];
/// Pod states as the gauge labels them (CRI `PodSandboxState` without the prefix).
pub const POD_STATES: [&str; 2] = ["ready", "notready"];

fn container_state(s: ContainerState) -> &'static str {
    match s {
        ContainerState::Created => "created",
        ContainerState::Running => "running",
        ContainerState::Exited => "exited",
        ContainerState::Unknown => "unknown",
    }
}

fn pod_state(s: PodState) -> &'static str {
    match s {
        PodState::Ready => "ready",
        PodState::NotReady => "notready",
    }
}

/// The gRPC code's canonical name as gRPC documents it (`OK`, `NOT_FOUND` spelled
/// `NotFound` like grpc-go's `codes.Code.String()` and CRI-O's `crio_operations_errors`).
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "Canceled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric registered (tests use their own; the daemon
    /// uses [`global`]).
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("crust");
        let rpc_requests = Family::<RpcCodeLabels, Counter>::default();
        registry.register(
            "rpc_requests",
            "CRI RPCs finished, by method and gRPC status code",
            rpc_requests.clone(),
        );
        let rpc_duration =
            Family::<RpcLabels, Histogram, HistogramFn>::new_with_constructor(rpc_histogram);
        registry.register_with_unit(
            "rpc_duration",
            "CRI RPC latency",
            Unit::Seconds,
            rpc_duration.clone(),
        );
        let pull_bytes = Counter::default();
        registry.register(
            "image_pull_bytes",
            "Compressed bytes downloaded by image pulls",
            pull_bytes.clone(),
        );
        let pulls = Family::<ResultLabels, Counter>::default();
        registry.register(
            "image_pulls",
            "Image pulls finished, by result (success or failure)",
            pulls.clone(),
        );
        let ooms = Counter::default();
        registry.register(
            "container_ooms",
            "Containers killed by the kernel OOM killer",
            ooms.clone(),
        );
        let check_runs = Counter::default();
        registry.register(
            "storage_check_runs",
            "Storage consistency checks run at start-up (after an unclean shutdown)",
            check_runs.clone(),
        );
        let check_problems = Counter::default();
        registry.register(
            "storage_check_problems",
            "Problems found (and repaired) by start-up storage checks",
            check_problems.clone(),
        );
        let containers = Family::<StateLabels, Gauge>::default();
        registry.register(
            "containers",
            "Containers known to crust, by state",
            containers.clone(),
        );
        let pods = Family::<StateLabels, Gauge>::default();
        registry.register(
            "pods",
            "Pod sandboxes known to crust, by state",
            pods.clone(),
        );
        for s in CONTAINER_STATES {
            containers.get_or_create(&state_label(s)).set(0);
        }
        for s in POD_STATES {
            pods.get_or_create(&state_label(s)).set(0);
        }
        Self {
            registry,
            rpc_requests,
            rpc_duration,
            pull_bytes,
            pulls,
            ooms,
            check_runs,
            check_problems,
            containers,
            pods,
            scrape: Mutex::new(()),
        }
    }

    /// Count one finished RPC (`code` `None` = OK) and its latency.
    pub fn rpc(&self, rpc: &str, code: Option<tonic::Code>, elapsed: Duration) {
        let code = code_name(code.unwrap_or(tonic::Code::Ok));
        self.rpc_requests
            .get_or_create(&RpcCodeLabels {
                rpc: rpc.to_owned(),
                code: code.to_owned(),
            })
            .inc();
        self.rpc_duration
            .get_or_create(&RpcLabels {
                rpc: rpc.to_owned(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// Count one finished pull: `Some(bytes downloaded)` on success, `None` on failure.
    pub fn pull(&self, downloaded: Option<u64>) {
        let result = if downloaded.is_some() {
            "success"
        } else {
            "failure"
        };
        self.pulls
            .get_or_create(&ResultLabels {
                result: result.to_owned(),
            })
            .inc();
        if let Some(b) = downloaded {
            self.pull_bytes.inc_by(b);
        }
    }

    /// Count one OOM-killed container.
    pub fn oom(&self) {
        self.ooms.inc();
    }

    /// Count one start-up storage check and the problems it found.
    pub fn storage_check(&self, problems: usize) {
        self.check_runs.inc();
        self.check_problems
            .inc_by(u64::try_from(problems).unwrap_or(u64::MAX));
    }

    /// Set the state gauges from counts by state name.
    pub fn set_states<'a>(
        &self,
        containers: impl IntoIterator<Item = &'a str>,
        pods: impl IntoIterator<Item = &'a str>,
    ) {
        for (family, names, items) in [
            (
                &self.containers,
                &CONTAINER_STATES[..],
                containers.into_iter().collect::<Vec<_>>(),
            ),
            (
                &self.pods,
                &POD_STATES[..],
                pods.into_iter().collect::<Vec<_>>(),
            ),
        ] {
            for name in names {
                let n = items.iter().filter(|s| **s == *name).count();
                family
                    .get_or_create(&state_label(name))
                    .set(i64::try_from(n).unwrap_or(i64::MAX));
            }
        }
    }

    /// The OpenMetrics text exposition, with the state gauges taken from `manager` now.
    pub fn encode(&self, manager: Option<&Manager>) -> String {
        let _guard = self.scrape.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = manager {
            let ctrs: Vec<&str> = m
                .state
                .containers()
                .iter()
                .map(|c| container_state(c.record().state))
                .collect();
            let pods: Vec<&str> = m
                .state
                .pods()
                .iter()
                .map(|p| pod_state(p.record().state))
                .collect();
            self.set_states(ctrs, pods);
        }
        let mut out = String::new();
        if let Err(e) = encode(&mut out, &self.registry) {
            tracing::warn!(error = %e, "cannot encode metrics");
        }
        out
    }
}

fn state_label(s: &str) -> StateLabels {
    StateLabels {
        state: s.to_owned(),
    }
}

static GLOBAL: OnceLock<Metrics> = OnceLock::new();

/// The daemon's metrics.
pub fn global() -> &'static Metrics {
    GLOBAL.get_or_init(Metrics::new)
}

/// Record a finished RPC in the global metrics (called by `server::traced`).
pub fn record_rpc(rpc: &str, code: Option<tonic::Code>, elapsed: Duration) {
    global().rpc(rpc, code, elapsed);
}

/// Record a finished pull in the global metrics (`None` = failed).
pub fn record_pull(downloaded: Option<u64>) {
    global().pull(downloaded);
}

/// Record an OOM kill in the global metrics.
pub fn record_oom() {
    global().oom();
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn line_value(text: &str, prefix: &str) -> Option<f64> {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    #[test]
    fn text_output_has_every_family_with_values() {
        let m = Metrics::new();
        m.rpc("Version", None, Duration::from_millis(3));
        m.rpc("Version", None, Duration::from_millis(1));
        m.rpc(
            "RemoveImage",
            Some(tonic::Code::NotFound),
            Duration::from_secs(2),
        );
        m.pull(Some(1000));
        m.pull(Some(24));
        m.pull(None);
        m.oom();
        m.storage_check(3);
        m.set_states(["running", "running", "exited"], ["ready"]);
        let t = m.encode(None);
        assert_eq!(
            line_value(&t, "crust_rpc_requests_total{rpc=\"Version\",code=\"OK\"}"),
            Some(2.0),
            "{t}"
        );
        assert_eq!(
            line_value(
                &t,
                "crust_rpc_requests_total{rpc=\"RemoveImage\",code=\"NotFound\"}"
            ),
            Some(1.0)
        );
        assert!(
            t.contains("# TYPE crust_rpc_duration_seconds histogram"),
            "{t}"
        );
        assert!(t.contains("# UNIT crust_rpc_duration_seconds seconds"));
        assert_eq!(
            line_value(&t, "crust_rpc_duration_seconds_count{rpc=\"Version\"}"),
            Some(2.0)
        );
        assert_eq!(
            line_value(
                &t,
                "crust_rpc_duration_seconds_bucket{le=\"0.002\",rpc=\"Version\"}"
            ),
            Some(1.0),
            "{t}"
        );
        assert_eq!(line_value(&t, "crust_image_pull_bytes_total"), Some(1024.0));
        assert_eq!(
            line_value(&t, "crust_image_pulls_total{result=\"success\"}"),
            Some(2.0)
        );
        assert_eq!(
            line_value(&t, "crust_image_pulls_total{result=\"failure\"}"),
            Some(1.0)
        );
        assert_eq!(line_value(&t, "crust_container_ooms_total"), Some(1.0));
        assert_eq!(line_value(&t, "crust_storage_check_runs_total"), Some(1.0));
        assert_eq!(
            line_value(&t, "crust_storage_check_problems_total"),
            Some(3.0)
        );
        assert_eq!(
            line_value(&t, "crust_containers{state=\"running\"}"),
            Some(2.0)
        );
        assert_eq!(
            line_value(&t, "crust_containers{state=\"created\"}"),
            Some(0.0)
        );
        assert_eq!(line_value(&t, "crust_pods{state=\"ready\"}"), Some(1.0));
        assert_eq!(line_value(&t, "crust_pods{state=\"notready\"}"), Some(0.0));
        assert!(t.ends_with("# EOF\n"));
        // A later scrape with fewer objects lowers the gauges again.
        m.set_states([], []);
        let t = m.encode(None);
        assert_eq!(
            line_value(&t, "crust_containers{state=\"running\"}"),
            Some(0.0)
        );
    }

    #[test]
    fn code_names_match_grpc() {
        assert_eq!(code_name(tonic::Code::Ok), "OK");
        assert_eq!(
            code_name(tonic::Code::FailedPrecondition),
            "FailedPrecondition"
        );
    }
}
