//! Unit tests of [`NetworkManager`] against shell-script plugins that log their calls.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use super::*;
use crate::network::exec::tests::script;

struct Fixture {
    t: tempfile::TempDir,
    mgr: Arc<NetworkManager>,
}

impl Fixture {
    fn new() -> Self {
        let t = tempfile::tempdir().unwrap();
        let cfg = NetworkConfig {
            network_dir: t.path().join("net.d"),
            plugin_dirs: vec![t.path().join("bin")],
            default_network: String::new(),
            cache_dir: t.path().join("cache"),
            plugin_timeout: Duration::from_secs(5),
        };
        // `ok` logs its calls and answers ADD with a result naming its netns.
        script(
            &t.path().join("bin"),
            "ok",
            &format!(
                r#"in=$(cat); echo "$CNI_COMMAND $CNI_CONTAINERID [$CNI_NETNS] $in" >> {log}
if [ "$CNI_COMMAND" = ADD ]; then
  echo '{{"cniVersion":"1.0.0","interfaces":[{{"name":"eth0","sandbox":"/x"}}],"ips":[{{"interface":0,"address":"fd00::7/64"}},{{"interface":0,"address":"10.5.0.7/24"}}]}}'
fi"#,
                log = t.path().join("log").display()
            ),
        );
        script(
            &t.path().join("bin"),
            "failadd",
            &format!(
                r#"cat > /dev/null; echo "$CNI_COMMAND failadd" >> {log}
if [ "$CNI_COMMAND" = ADD ]; then echo '{{"code":11,"msg":"no addresses left"}}'; exit 1; fi"#,
                log = t.path().join("log").display()
            ),
        );
        let mgr = Arc::new(NetworkManager::new(&cfg, t.path()).unwrap());
        Self { t, mgr }
    }

    fn write_conf(&self, name: &str, body: &str) {
        std::fs::create_dir_all(self.t.path().join("net.d")).unwrap();
        std::fs::write(self.t.path().join("net.d").join(name), body).unwrap();
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.t.path().join("log")).unwrap_or_default()
    }

    fn cache_file(&self, id: &str) -> std::path::PathBuf {
        self.t.path().join("cache").join(format!("{id}.json"))
    }
}

fn req(id: &str, netns: &Path) -> AttachRequest {
    AttachRequest {
        pod_id: id.into(),
        name: "web".into(),
        namespace: "default".into(),
        uid: "u-1".into(),
        netns: netns.to_path_buf(),
        capabilities: Capabilities::default(),
    }
}

const LIST: &str = r#"{"cniVersion":"1.0.0","name":"n1","plugins":[{"type":"ok"},{"type":"ok","capabilities":{"portMappings":true}}]}"#;

#[tokio::test]
async fn no_config_means_loopback_only_and_not_ready() {
    let f = Fixture::new();
    assert!(
        matches!(f.mgr.status().await, Readiness::NotReady { message } if message.contains("no CNI configuration file"))
    );
    let r = f.mgr.attach(req("aa", Path::new("/ns"))).await.unwrap();
    assert_eq!(r, None);
    assert_eq!(f.log(), "");
}

#[tokio::test]
async fn becomes_ready_when_a_config_appears_and_attach_detach_round_trip() {
    let f = Fixture::new();
    assert!(matches!(f.mgr.status().await, Readiness::NotReady { .. }));
    f.write_conf("10-n1.conflist", LIST);
    assert_eq!(
        f.mgr.status().await,
        Readiness::Ready {
            network: "n1".into()
        }
    );
    let mut r = req("aa", Path::new("/ns"));
    r.capabilities.port_mappings.push(PortMapping {
        protocol: "tcp",
        container_port: 80,
        host_port: 8080,
        host_ip: String::new(),
    });
    let net = f.mgr.attach(r).await.unwrap().unwrap();
    assert_eq!(net.network, "n1");
    assert_eq!(net.interface, "eth0");
    assert_eq!(
        net.ips,
        vec![
            "10.5.0.7".parse::<IpAddr>().unwrap(),
            "fd00::7".parse().unwrap()
        ]
    );
    let log = f.log();
    assert_eq!(log.matches("ADD aa [/ns]").count(), 2, "{log}");
    let cached: Attachment =
        serde_json::from_slice(&std::fs::read(f.cache_file("aa")).unwrap()).unwrap();
    assert_eq!(cached.state, AttachState::Added);
    assert_eq!(cached.config, LIST);
    assert_eq!(
        cached.cni_args,
        "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=aa;K8S_POD_UID=u-1"
    );
    assert!(cached.runtime_config.contains_key("portMappings"));
    assert_eq!(f.mgr.pod_network("aa").await, Some(net));
    f.mgr.check("aa").await.unwrap();
    assert_eq!(f.log().matches("CHECK aa").count(), 2);

    // The config changes (even disappears): DEL still uses the cached one; the netns
    // "/ns" is not a live pin, so DEL gets an empty CNI_NETNS.
    std::fs::remove_file(f.t.path().join("net.d/10-n1.conflist")).unwrap();
    assert!(f.mgr.detach("aa").await.unwrap());
    let log = f.log();
    assert_eq!(log.matches("DEL aa []").count(), 2, "{log}");
    assert!(log.contains("\"prevResult\""), "{log}");
    assert!(!f.cache_file("aa").exists());
    // Idempotent.
    assert!(!f.mgr.detach("aa").await.unwrap());
    assert_eq!(f.log().matches("DEL aa").count(), 2);
}

#[tokio::test]
async fn failed_add_is_undone_and_names_the_plugin() {
    let f = Fixture::new();
    f.write_conf(
        "10-bad.conflist",
        r#"{"cniVersion":"1.0.0","name":"bad","plugins":[{"type":"ok"},{"type":"failadd"}]}"#,
    );
    let e = f.mgr.attach(req("bb", Path::new("/ns"))).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "network bad: plugin failadd failed on ADD: no addresses left"
    );
    let log = f.log();
    assert!(log.contains("DEL failadd"), "{log}");
    assert!(log.contains("DEL bb"), "{log}");
    assert!(!f.cache_file("bb").exists());
}

#[tokio::test]
async fn unusable_config_is_an_error_not_loopback() {
    let f = Fixture::new();
    f.write_conf("10-broken.conflist", "{ nope");
    let e = f.mgr.attach(req("cc", Path::new("/ns"))).await.unwrap_err();
    assert!(matches!(e, NetworkError::NotReady { .. }), "{e}");
    assert!(
        e.to_string().contains("10-broken.conflist: invalid JSON"),
        "{e}"
    );
    assert_eq!(e.kind(), crate::image::ErrorKind::FailedPrecondition);
}

#[tokio::test]
async fn gc_releases_attachments_of_unknown_pods_only() {
    let f = Fixture::new();
    f.write_conf("10-n1.conflist", LIST);
    f.mgr.attach(req("keep", Path::new("/ns"))).await.unwrap();
    f.mgr.attach(req("gone", Path::new("/ns"))).await.unwrap();
    // A crash mid-ADD leaves an "adding" record.
    let mut a: Attachment =
        serde_json::from_slice(&std::fs::read(f.cache_file("gone")).unwrap()).unwrap();
    a.pod_id = "half".into();
    a.state = AttachState::Adding;
    a.result = None;
    std::fs::write(f.cache_file("half"), serde_json::to_vec(&a).unwrap()).unwrap();
    let known: HashSet<String> = ["keep".to_string()].into();
    let mut released = f.mgr.gc(&known).await;
    released.sort();
    assert_eq!(released, ["gone", "half"]);
    assert!(f.cache_file("keep").exists());
    assert!(!f.cache_file("gone").exists());
    assert!(!f.cache_file("half").exists());
    let log = f.log();
    assert!(!log.contains("DEL keep"), "{log}");
    assert_eq!(log.matches("DEL half").count(), 2, "{log}");
}
