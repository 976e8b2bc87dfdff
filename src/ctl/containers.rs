//! Container subcommands of `crust ctl`: create, start, stop, rm, ps, inspect (crictl's
//! names, flags and output shapes).

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use crust_proto::cri;
use crust_proto::cri::image_service_client::ImageServiceClient;
use crust_proto::cri::runtime_service_client::RuntimeServiceClient;
use tonic::transport::Channel;

use super::output::{self, Kind};
use super::{Batch, CtlError, Output, call, info_json, label_selector, print_json};

type Client = RuntimeServiceClient<Channel>;

const WHAT: &str = "container";

/// `create` arguments (crictl's order: POD_ID CONTAINER.json POD.json).
#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// Do not pull the image when it is missing (default: pull if missing, like crictl)
    #[arg(long)]
    pub no_pull: bool,
    /// Pod id or unique id prefix
    pub pod: String,
    /// Container config (crictl JSON)
    pub container_config: PathBuf,
    /// Pod sandbox config the pod was run with (crictl JSON)
    pub pod_config: PathBuf,
}

/// `ps` flags (crictl's).
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Show all containers (default: running only)
    #[arg(short, long)]
    pub all: bool,
    /// Only containers of this pod (id or unique prefix)
    #[arg(short, long)]
    pub pod: Option<String>,
    /// Only show container ids
    #[arg(short, long)]
    pub quiet: bool,
    /// Filter by label key=value (repeatable)
    #[arg(long = "label")]
    pub labels: Vec<String>,
    /// Filter by state: created, running, exited or unknown
    #[arg(short, long)]
    pub state: Option<String>,
    /// Filter by container name (substring)
    #[arg(long)]
    pub name: Option<String>,
    /// Filter by container id prefix
    #[arg(long)]
    pub id: Option<String>,
    /// Show full ids
    #[arg(long)]
    pub no_trunc: bool,
    /// Only the N most recently created containers
    #[arg(long, value_name = "N")]
    pub last: Option<usize>,
    /// Only the most recently created one (same as --last 1)
    #[arg(short, long, conflicts_with = "last")]
    pub latest: bool,
    /// Output format
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: Output,
}

async fn all(c: &mut Client, t: Duration) -> Result<Vec<cri::Container>, CtlError> {
    let req = cri::ListContainersRequest { filter: None };
    Ok(call("ListContainers", t, c.list_containers(req))
        .await?
        .containers)
}

/// Resolve an id or unique id prefix to a full container id.
pub async fn resolve(c: &mut Client, t: Duration, prefix: &str) -> Result<String, CtlError> {
    let list = all(c, t).await?;
    output::resolve_prefix(WHAT, prefix, list.iter().map(|c| c.id.as_str()))
}

/// Pull the container's image unless the runtime has it (crictl's default for `create`).
async fn ensure_image(
    img: &mut ImageServiceClient<Channel>,
    t: Duration,
    image: &str,
    pod: &cri::PodSandboxConfig,
) -> Result<(), CtlError> {
    let spec = cri::ImageSpec {
        image: image.to_owned(),
        ..Default::default()
    };
    let req = cri::ImageStatusRequest {
        image: Some(spec.clone()),
        verbose: false,
    };
    if call("ImageStatus", t, img.image_status(req))
        .await?
        .image
        .is_some()
    {
        return Ok(());
    }
    let req = cri::PullImageRequest {
        image: Some(spec),
        auth: None,
        sandbox_config: Some(pod.clone()),
    };
    let r = call("PullImage", t, img.pull_image(req)).await?;
    eprintln!("Image is up to date for {}", r.image_ref);
    Ok(())
}

/// `create [--no-pull] POD CONTAINER.json POD.json`: prints the new container id.
pub async fn create(
    c: &mut Client,
    img: &mut ImageServiceClient<Channel>,
    t: Duration,
    a: &CreateArgs,
) -> Result<(), CtlError> {
    let cfg = super::load_config(&a.container_config, super::container_config).await?;
    let pod_cfg = super::load_config(&a.pod_config, super::pod_config).await?;
    let pod_id = super::pods::resolve(c, t, &a.pod).await?;
    let image = cfg
        .image
        .as_ref()
        .map(|i| i.image.clone())
        .unwrap_or_default();
    if image.is_empty() {
        return Err(CtlError::Flag {
            flag: "container config",
            value: a.container_config.display().to_string(),
            reason: "`image.image` is required",
        });
    }
    if !a.no_pull {
        ensure_image(img, t, &image, &pod_cfg).await?;
    }
    let req = cri::CreateContainerRequest {
        pod_sandbox_id: pod_id,
        config: Some(cfg),
        sandbox_config: Some(pod_cfg),
    };
    let r = call("CreateContainer", t, c.create_container(req)).await?;
    println!("{}", r.container_id);
    Ok(())
}

/// `start ID...`: prints each id started.
pub async fn start(c: &mut Client, t: Duration, ids: &[String]) -> Result<(), CtlError> {
    let mut batch = Batch::new(ids.len(), "container starts");
    for p in ids {
        let res = async {
            let id = resolve(c, t, p).await?;
            let req = cri::StartContainerRequest {
                container_id: id.clone(),
            };
            call("StartContainer", t, c.start_container(req)).await?;
            println!("{id}");
            Ok::<_, CtlError>(())
        }
        .await;
        if let Err(e) = res {
            batch.fail(p, e);
        }
    }
    batch.finish()
}

async fn stop_one(c: &mut Client, t: Duration, id: &str, grace: i64) -> Result<(), CtlError> {
    let req = cri::StopContainerRequest {
        container_id: id.to_owned(),
        timeout: grace,
    };
    // The RPC legitimately takes up to the grace period: give it that on top of --timeout.
    let t = t + Duration::from_secs(u64::try_from(grace).unwrap_or(0));
    call("StopContainer", t, c.stop_container(req)).await?;
    Ok(())
}

/// `stop [-t SECONDS] ID...`: prints each id stopped.
pub async fn stop(c: &mut Client, t: Duration, grace: i64, ids: &[String]) -> Result<(), CtlError> {
    let mut batch = Batch::new(ids.len(), "container stops");
    for p in ids {
        let res = async {
            let id = resolve(c, t, p).await?;
            stop_one(c, t, &id, grace).await?;
            println!("{id}");
            Ok::<_, CtlError>(())
        }
        .await;
        if let Err(e) = res {
            batch.fail(p, e);
        }
    }
    batch.finish()
}

/// `rm [-f] [-a] ID...`: a running container is refused without `-f` (crictl's behaviour);
/// with it the container is stopped first (no grace period, like `crictl rm -f`).
pub async fn remove(
    c: &mut Client,
    t: Duration,
    ids: &[String],
    force: bool,
    all_flag: bool,
) -> Result<(), CtlError> {
    let list = all(c, t).await?;
    let targets: Vec<String> = if all_flag {
        list.iter().map(|c| c.id.clone()).collect()
    } else {
        ids.to_vec()
    };
    let mut batch = Batch::new(targets.len(), "container removals");
    for p in &targets {
        let res = async {
            let id = output::resolve_prefix(WHAT, p, list.iter().map(|c| c.id.as_str()))?;
            let running = list
                .iter()
                .any(|c| c.id == id && c.state == cri::ContainerState::ContainerRunning as i32);
            if running {
                if !force {
                    return Err(CtlError::Flag {
                        flag: "rm",
                        value: id,
                        reason: "container is running: stop it first or use -f",
                    });
                }
                stop_one(c, t, &id, 0).await?;
            }
            let req = cri::RemoveContainerRequest {
                container_id: id.clone(),
            };
            call("RemoveContainer", t, c.remove_container(req)).await?;
            println!("{id}");
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
    let state = match s.to_ascii_lowercase().as_str() {
        "created" | "container_created" => cri::ContainerState::ContainerCreated,
        "running" | "container_running" => cri::ContainerState::ContainerRunning,
        "exited" | "container_exited" => cri::ContainerState::ContainerExited,
        "unknown" | "container_unknown" => cri::ContainerState::ContainerUnknown,
        _ => {
            return Err(CtlError::Flag {
                flag: "--state",
                value: s.to_owned(),
                reason: "expected created, running, exited or unknown",
            });
        }
    };
    Ok(state as i32)
}

/// The CRI filter for `ps`: `--state` wins, else running only unless `-a`.
pub fn filter(a: &ListArgs, pod_id: String) -> Result<cri::ContainerFilter, CtlError> {
    // --last/--latest include every state, like crictl.
    let all = a.all || a.latest || a.last.is_some();
    let state = match (&a.state, all) {
        (Some(s), _) => Some(parse_state(s)?),
        (None, true) => None,
        (None, false) => Some(cri::ContainerState::ContainerRunning as i32),
    };
    Ok(cri::ContainerFilter {
        id: String::new(),
        state: state.map(|state| cri::ContainerStateValue { state }),
        pod_sandbox_id: pod_id,
        label_selector: label_selector(&a.labels)?,
    })
}

/// Client-side filters (name substring, id prefix).
pub fn matches(c: &cri::Container, a: &ListArgs) -> bool {
    let name = c.metadata.as_ref().map_or("", |m| m.name.as_str());
    a.name.as_ref().is_none_or(|n| name.contains(n.as_str()))
        && a.id.as_ref().is_none_or(|i| c.id.starts_with(i.as_str()))
}

/// The IMAGE column: the image as asked for, or a short id when it is a digest id.
fn image_column(c: &cri::Container, no_trunc: bool) -> String {
    let image = c.image.as_ref().map_or("", |i| i.image.as_str());
    let image = if image.is_empty() {
        &c.image_ref
    } else {
        image
    };
    let hex = image.strip_prefix("sha256:").unwrap_or(image);
    let digest_id = hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit());
    if digest_id && !no_trunc {
        output::short_id(image).to_owned()
    } else {
        image.to_owned()
    }
}

/// Table rows (header first) for `ps`, newest first like crictl.
pub fn table(items: &[cri::Container], no_trunc: bool, now: SystemTime) -> Vec<Vec<String>> {
    let header = [
        "CONTAINER",
        "IMAGE",
        "CREATED",
        "STATE",
        "NAME",
        "ATTEMPT",
        "POD ID",
    ];
    let mut rows = vec![header.map(str::to_owned).to_vec()];
    let mut items: Vec<&cri::Container> = items.iter().collect();
    items.sort_by_key(|p| std::cmp::Reverse(p.created_at));
    let trunc = |id: &str| {
        if no_trunc {
            id.to_owned()
        } else {
            output::short_id(id).to_owned()
        }
    };
    for c in items {
        let meta = c.metadata.clone().unwrap_or_default();
        rows.push(vec![
            trunc(&c.id),
            image_column(c, no_trunc),
            output::ago(c.created_at, now),
            output::container_state(c.state).to_owned(),
            meta.name,
            meta.attempt.to_string(),
            trunc(&c.pod_sandbox_id),
        ]);
    }
    rows
}

/// `ps [-a] [--pod P] [-q] [--label k=v] [--state S] [--name N] [--id P] [-o json]`.
pub async fn list(c: &mut Client, t: Duration, a: &ListArgs) -> Result<(), CtlError> {
    let pod_id = match &a.pod {
        Some(p) => super::pods::resolve(c, t, p).await?,
        None => String::new(),
    };
    let req = cri::ListContainersRequest {
        filter: Some(filter(a, pod_id)?),
    };
    let r = call("ListContainers", t, c.list_containers(req)).await?;
    let items: Vec<cri::Container> = r.containers.into_iter().filter(|c| matches(c, a)).collect();
    let last = if a.latest { Some(1) } else { a.last };
    let items = output::newest(items, |c| c.created_at, last);
    if a.quiet {
        for c in &items {
            println!("{}", c.id);
        }
        return Ok(());
    }
    match a.output {
        Output::Json => {
            let items = output::cri_json(&items, Kind::Container)?;
            print_json(&serde_json::json!({ "containers": items }))
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

/// ContainerStatus (verbose) of a resolved id.
pub async fn status(
    c: &mut Client,
    t: Duration,
    id: &str,
    verbose: bool,
) -> Result<cri::ContainerStatusResponse, CtlError> {
    let req = cri::ContainerStatusRequest {
        container_id: id.to_owned(),
        verbose,
    };
    call("ContainerStatus", t, c.container_status(req)).await
}

/// `inspect ID...`: `{"status": ..., "info": ...}` per container, like crictl.
pub async fn inspect(c: &mut Client, t: Duration, ids: &[String]) -> Result<(), CtlError> {
    let mut batch = Batch::new(ids.len(), "container inspections");
    for p in ids {
        let res = async {
            let id = resolve(c, t, p).await?;
            let r = status(c, t, &id, true).await?;
            let mut out = serde_json::Map::new();
            out.insert(
                "status".to_owned(),
                output::cri_json(&r.status, Kind::Container)?,
            );
            let mut info = serde_json::Map::new();
            info_json(&r.info, &mut info);
            out.insert("info".to_owned(), serde_json::Value::Object(info));
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

    fn ctr(
        id: &str,
        name: &str,
        image: &str,
        state: cri::ContainerState,
        created_s: i64,
    ) -> cri::Container {
        cri::Container {
            id: id.to_owned(),
            pod_sandbox_id: "ffffffffffffffffffff".to_owned(),
            metadata: Some(cri::ContainerMetadata {
                name: name.to_owned(),
                attempt: 2,
            }),
            image: Some(cri::ImageSpec {
                image: image.to_owned(),
                ..Default::default()
            }),
            state: state as i32,
            created_at: created_s * 1_000_000_000,
            ..Default::default()
        }
    }

    #[test]
    fn table_columns() {
        let now = UNIX_EPOCH + Duration::from_secs(100);
        let digest = format!("sha256:{}", "ab".repeat(32));
        let items = [
            ctr(
                "1111111111111111",
                "web",
                "docker.io/library/nginx:1",
                cri::ContainerState::ContainerRunning,
                40,
            ),
            ctr(
                "2222222222222222",
                "sidecar",
                &digest,
                cri::ContainerState::ContainerExited,
                98,
            ),
        ];
        let rows = table(&items, false, now);
        assert_eq!(
            rows[0],
            [
                "CONTAINER",
                "IMAGE",
                "CREATED",
                "STATE",
                "NAME",
                "ATTEMPT",
                "POD ID"
            ]
        );
        assert_eq!(
            rows[1],
            [
                "2222222222222",
                "abababababababa".get(..13).unwrap(),
                "2 seconds ago",
                "Exited",
                "sidecar",
                "2",
                "fffffffffffff"
            ]
        );
        assert_eq!(
            rows[2],
            [
                "1111111111111",
                "docker.io/library/nginx:1",
                "About a minute ago",
                "Running",
                "web",
                "2",
                "fffffffffffff"
            ]
        );
        let full = table(&items, true, now);
        assert_eq!(full[1][1], digest);
        assert_eq!(full[1][6], "ffffffffffffffffffff");
    }

    #[test]
    fn ps_filter_defaults_to_running() {
        let a = Cli::parse_from(["x"]).a;
        let f = filter(&a, String::new()).unwrap();
        assert_eq!(
            f.state.unwrap().state,
            cri::ContainerState::ContainerRunning as i32
        );
        let a = Cli::parse_from(["x", "-a", "--label", "k=v", "--label", "x=y=z"]).a;
        let f = filter(&a, "pod".to_owned()).unwrap();
        assert!(f.state.is_none());
        assert_eq!(f.pod_sandbox_id, "pod");
        assert_eq!(f.label_selector["x"], "y=z");
        let a = Cli::parse_from(["x", "-a", "--state", "exited"]).a;
        let f = filter(&a, String::new()).unwrap();
        assert_eq!(
            f.state.unwrap().state,
            cri::ContainerState::ContainerExited as i32
        );
        let a = Cli::parse_from(["x", "-l"]).a;
        assert!(filter(&a, String::new()).unwrap().state.is_none());
        assert!(Cli::try_parse_from(["x", "-l", "--last", "2"]).is_err());
        let a = Cli::parse_from(["x", "--state", "dead"]).a;
        assert!(filter(&a, String::new()).is_err());
        let a = Cli::parse_from(["x", "--label", "novalue"]).a;
        assert!(matches!(
            filter(&a, String::new()),
            Err(CtlError::Flag {
                flag: "--label",
                ..
            })
        ));
    }

    #[test]
    fn client_side_name_and_id_filters() {
        let c = ctr(
            "abc",
            "web-1",
            "i",
            cri::ContainerState::ContainerRunning,
            0,
        );
        assert!(matches(&c, &Cli::parse_from(["x", "--name", "web"]).a));
        assert!(!matches(&c, &Cli::parse_from(["x", "--name", "db"]).a));
        assert!(matches(&c, &Cli::parse_from(["x", "--id", "ab"]).a));
        assert!(!matches(&c, &Cli::parse_from(["x", "--id", "b"]).a));
    }
}
