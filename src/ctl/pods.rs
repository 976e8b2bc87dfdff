//! Pod sandbox subcommands of `crust ctl`: runp, stopp, rmp, pods, inspectp (crictl's names,
//! flags and output shapes).

use std::path::Path;
use std::time::{Duration, SystemTime};

use crust_proto::cri;
use crust_proto::cri::runtime_service_client::RuntimeServiceClient;
use tonic::transport::Channel;

use super::output::{self, Kind};
use super::{Batch, CtlError, Output, call, info_json, label_selector, print_json};

type Client = RuntimeServiceClient<Channel>;

const WHAT: &str = "pod sandbox";

/// `pods` flags (crictl's).
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Only show pod ids
    #[arg(short, long)]
    pub quiet: bool,
    /// Filter by label key=value (repeatable)
    #[arg(long = "label")]
    pub labels: Vec<String>,
    /// Filter by state: ready or notready
    #[arg(short, long)]
    pub state: Option<String>,
    /// Filter by pod name (substring)
    #[arg(long)]
    pub name: Option<String>,
    /// Filter by pod namespace (substring)
    #[arg(long)]
    pub namespace: Option<String>,
    /// Filter by pod id prefix
    #[arg(long)]
    pub id: Option<String>,
    /// Show full ids
    #[arg(long)]
    pub no_trunc: bool,
    /// Only the N most recently created pods
    #[arg(long, value_name = "N")]
    pub last: Option<usize>,
    /// Only the most recently created one (same as --last 1)
    #[arg(short, long, conflicts_with = "last")]
    pub latest: bool,
    /// Output format
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: Output,
}

/// Every pod sandbox id the runtime knows.
async fn all_ids(c: &mut Client, t: Duration) -> Result<Vec<String>, CtlError> {
    let r = call(
        "ListPodSandbox",
        t,
        c.list_pod_sandbox(cri::ListPodSandboxRequest { filter: None }),
    )
    .await?;
    Ok(r.items.into_iter().map(|p| p.id).collect())
}

/// Resolve an id or unique id prefix to a full pod sandbox id.
pub async fn resolve(c: &mut Client, t: Duration, prefix: &str) -> Result<String, CtlError> {
    let ids = all_ids(c, t).await?;
    output::resolve_prefix(WHAT, prefix, ids.iter().map(String::as_str))
}

/// `runp [--runtime HANDLER] POD.json`: prints the new pod id.
pub async fn run(
    c: &mut Client,
    t: Duration,
    config: &Path,
    runtime: Option<String>,
) -> Result<(), CtlError> {
    let cfg = super::load_config(config, super::pod_config).await?;
    let req = cri::RunPodSandboxRequest {
        config: Some(cfg),
        runtime_handler: runtime.unwrap_or_default(),
    };
    let r = call("RunPodSandbox", t, c.run_pod_sandbox(req)).await?;
    println!("{}", r.pod_sandbox_id);
    Ok(())
}

/// `stopp ID...`: crictl prints `Stopped sandbox <id>` per pod.
pub async fn stop(c: &mut Client, t: Duration, pods: &[String]) -> Result<(), CtlError> {
    let mut batch = Batch::new(pods.len(), "pod stops");
    for p in pods {
        let res = async {
            let id = resolve(c, t, p).await?;
            let req = cri::StopPodSandboxRequest {
                pod_sandbox_id: id.clone(),
            };
            call("StopPodSandbox", t, c.stop_pod_sandbox(req)).await?;
            println!("Stopped sandbox {id}");
            Ok::<_, CtlError>(())
        }
        .await;
        if let Err(e) = res {
            batch.fail(p, e);
        }
    }
    batch.finish()
}

/// `rmp [-f] [-a] ID...`: without `-f` a ready pod is refused (crictl's behaviour), with it
/// the pod is stopped first.
pub async fn remove(
    c: &mut Client,
    t: Duration,
    pods: &[String],
    force: bool,
    all: bool,
) -> Result<(), CtlError> {
    let list = call(
        "ListPodSandbox",
        t,
        c.list_pod_sandbox(cri::ListPodSandboxRequest { filter: None }),
    )
    .await?;
    let targets: Vec<String> = if all {
        list.items.iter().map(|p| p.id.clone()).collect()
    } else {
        pods.to_vec()
    };
    let mut batch = Batch::new(targets.len(), "pod removals");
    for p in &targets {
        let res = async {
            let id = output::resolve_prefix(WHAT, p, list.items.iter().map(|p| p.id.as_str()))?;
            let ready = list
                .items
                .iter()
                .any(|s| s.id == id && s.state == cri::PodSandboxState::SandboxReady as i32);
            if ready {
                if !force {
                    return Err(CtlError::Flag {
                        flag: "rmp",
                        value: id,
                        reason: "pod sandbox is ready: stop it first or use -f",
                    });
                }
                let req = cri::StopPodSandboxRequest {
                    pod_sandbox_id: id.clone(),
                };
                call("StopPodSandbox", t, c.stop_pod_sandbox(req)).await?;
            }
            let req = cri::RemovePodSandboxRequest {
                pod_sandbox_id: id.clone(),
            };
            call("RemovePodSandbox", t, c.remove_pod_sandbox(req)).await?;
            println!("Removed sandbox {id}");
            Ok(())
        }
        .await;
        if let Err(e) = res {
            batch.fail(p, e);
        }
    }
    batch.finish()
}

/// `--state` value -> CRI state.
pub fn parse_state(s: &str) -> Result<i32, CtlError> {
    match s.to_ascii_lowercase().as_str() {
        "ready" | "sandbox_ready" => Ok(cri::PodSandboxState::SandboxReady as i32),
        "notready" | "not_ready" | "sandbox_notready" => {
            Ok(cri::PodSandboxState::SandboxNotready as i32)
        }
        _ => Err(CtlError::Flag {
            flag: "--state",
            value: s.to_owned(),
            reason: "expected ready or notready",
        }),
    }
}

/// Client-side filters the CRI filter cannot express (name, namespace, id prefix).
pub fn matches(p: &cri::PodSandbox, a: &ListArgs) -> bool {
    let meta = p.metadata.clone().unwrap_or_default();
    a.name
        .as_ref()
        .is_none_or(|n| meta.name.contains(n.as_str()))
        && a.namespace
            .as_ref()
            .is_none_or(|n| meta.namespace.contains(n.as_str()))
        && a.id.as_ref().is_none_or(|i| p.id.starts_with(i.as_str()))
}

/// Table rows (header first) for `pods`, newest first like crictl.
pub fn table(items: &[cri::PodSandbox], no_trunc: bool, now: SystemTime) -> Vec<Vec<String>> {
    let mut rows = vec![
        [
            "POD ID",
            "CREATED",
            "STATE",
            "NAME",
            "NAMESPACE",
            "ATTEMPT",
            "RUNTIME",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    let mut items: Vec<&cri::PodSandbox> = items.iter().collect();
    items.sort_by_key(|p| std::cmp::Reverse(p.created_at));
    for p in items {
        let meta = p.metadata.clone().unwrap_or_default();
        let id = if no_trunc {
            p.id.clone()
        } else {
            output::short_id(&p.id).to_owned()
        };
        let runtime = if p.runtime_handler.is_empty() {
            "(default)".to_owned()
        } else {
            p.runtime_handler.clone()
        };
        rows.push(vec![
            id,
            output::ago(p.created_at, now),
            output::pod_state(p.state).to_owned(),
            meta.name,
            meta.namespace,
            meta.attempt.to_string(),
            runtime,
        ]);
    }
    rows
}

/// `pods [-q] [--label k=v] [--state S] [--name N] [--namespace NS] [--id P] [-o json]`.
pub async fn list(c: &mut Client, t: Duration, a: &ListArgs) -> Result<(), CtlError> {
    let filter = cri::PodSandboxFilter {
        id: String::new(),
        state: a
            .state
            .as_deref()
            .map(parse_state)
            .transpose()?
            .map(|state| cri::PodSandboxStateValue { state }),
        label_selector: label_selector(&a.labels)?,
    };
    let req = cri::ListPodSandboxRequest {
        filter: Some(filter),
    };
    let r = call("ListPodSandbox", t, c.list_pod_sandbox(req)).await?;
    let items: Vec<cri::PodSandbox> = r.items.into_iter().filter(|p| matches(p, a)).collect();
    let last = if a.latest { Some(1) } else { a.last };
    let items = output::newest(items, |p| p.created_at, last);
    if a.quiet {
        for p in &items {
            println!("{}", p.id);
        }
        return Ok(());
    }
    match a.output {
        Output::Json => {
            let items = output::cri_json(&items, Kind::Pod)?;
            print_json(&serde_json::json!({ "items": items }))
        }
        Output::Table => {
            print!(
                "{}",
                output::render_table(&table(&items, a.no_trunc, SystemTime::now()))
            );
            Ok(())
        }
    }
}

/// `inspectp ID...`: `{"status": ..., "info": ...}` per pod, like crictl.
pub async fn inspect(c: &mut Client, t: Duration, pods: &[String]) -> Result<(), CtlError> {
    let mut batch = Batch::new(pods.len(), "pod inspections");
    for p in pods {
        let res = async {
            let id = resolve(c, t, p).await?;
            let req = cri::PodSandboxStatusRequest {
                pod_sandbox_id: id,
                verbose: true,
            };
            let r = call("PodSandboxStatus", t, c.pod_sandbox_status(req)).await?;
            let mut out = serde_json::Map::new();
            out.insert("status".to_owned(), output::cri_json(&r.status, Kind::Pod)?);
            let mut info = serde_json::Map::new();
            info_json(&r.info, &mut info);
            out.insert("info".to_owned(), serde_json::Value::Object(info));
            if !r.containers_statuses.is_empty() {
                out.insert(
                    "containersStatuses".to_owned(),
                    output::cri_json(&r.containers_statuses, Kind::Container)?,
                );
            }
            print_json(&serde_json::Value::Object(out))
        }
        .await;
        if let Err(e) = res {
            batch.fail(p, e);
        }
    }
    batch.finish()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::UNIX_EPOCH;

    use clap::Parser;

    use super::*;

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(flatten)]
        a: ListArgs,
    }

    fn pod(id: &str, name: &str, ns: &str, created_s: i64, ready: bool) -> cri::PodSandbox {
        cri::PodSandbox {
            id: id.to_owned(),
            metadata: Some(cri::PodSandboxMetadata {
                name: name.to_owned(),
                namespace: ns.to_owned(),
                uid: String::new(),
                attempt: 1,
            }),
            state: if ready {
                cri::PodSandboxState::SandboxReady as i32
            } else {
                cri::PodSandboxState::SandboxNotready as i32
            },
            created_at: created_s * 1_000_000_000,
            runtime_handler: if ready {
                String::new()
            } else {
                "runsc".to_owned()
            },
            ..Default::default()
        }
    }

    #[test]
    fn table_newest_first_with_crictl_columns() {
        let now = UNIX_EPOCH + Duration::from_secs(1000);
        let items = [
            pod("aaaaaaaaaaaaaaaaaaaa", "old", "default", 400, true),
            pod("bbbbbbbbbbbbbbbbbbbb", "new", "kube-system", 990, false),
        ];
        let rows = table(&items, false, now);
        assert_eq!(
            rows[0],
            [
                "POD ID",
                "CREATED",
                "STATE",
                "NAME",
                "NAMESPACE",
                "ATTEMPT",
                "RUNTIME"
            ]
        );
        assert_eq!(
            rows[1],
            [
                "bbbbbbbbbbbbb",
                "10 seconds ago",
                "NotReady",
                "new",
                "kube-system",
                "1",
                "runsc"
            ]
        );
        assert_eq!(
            rows[2],
            [
                "aaaaaaaaaaaaa",
                "10 minutes ago",
                "Ready",
                "old",
                "default",
                "1",
                "(default)"
            ]
        );
        assert_eq!(table(&items, true, now)[1][0], "bbbbbbbbbbbbbbbbbbbb");
    }

    #[test]
    fn flags_and_filters() {
        let a = Cli::parse_from([
            "x",
            "--name",
            "ng",
            "--namespace",
            "def",
            "-s",
            "ready",
            "--label",
            "a=b",
        ])
        .a;
        assert!(matches(&pod("1", "nginx", "default", 0, true), &a));
        assert!(!matches(&pod("1", "redis", "default", 0, true), &a));
        assert!(!matches(&pod("1", "nginx", "kube", 0, true), &a));
        assert_eq!(
            parse_state("Ready").unwrap(),
            cri::PodSandboxState::SandboxReady as i32
        );
        assert_eq!(
            parse_state("notready").unwrap(),
            cri::PodSandboxState::SandboxNotready as i32
        );
        assert!(parse_state("running").is_err());
        let a = Cli::parse_from(["x", "--id", "ab"]).a;
        assert!(matches(&pod("abc", "n", "d", 0, true), &a));
        assert!(!matches(&pod("bac", "n", "d", 0, true), &a));
        assert_eq!(a.output, Output::Table);
        assert_eq!(Cli::parse_from(["x", "-o", "json"]).a.output, Output::Json);
    }
}
