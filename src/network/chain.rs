//! Running a network configuration list (SPEC.md "Network configuration list runtime
//! semantics"): ADD runs the plugins in order, each getting the list's `name` and
//! `cniVersion`, the previous plugin's result as `prevResult` (0.3.0+) and the
//! `runtimeConfig` of the capabilities it declares; DEL runs them in reverse with the
//! cached ADD result as `prevResult` (0.4.0+); CHECK runs them in order with it (0.4.0+,
//! unless `disableCheck`); STATUS and GC (1.1.0+) run every plugin without a container,
//! GC with `cni.dev/valid-attachments`. These are libcni's `buildOneConfig` rules.
//!
//! Unlike libcni, DEL goes on through the remaining plugins after one fails (and reports
//! the first failure): every plugin gets its chance to release what it holds, and DEL is
//! idempotent, so the retry that follows repeats nothing harmful.

use serde_json::{Map, Value, json};

use super::caps;
use super::conf::NetworkList;
use super::error::NetworkError;
use super::exec::{Command, Exec, Target};

fn plugin_type(p: &Map<String, Value>) -> &str {
    p.get("type").and_then(Value::as_str).unwrap_or_default()
}

/// The stdin of one plugin invocation.
pub fn plugin_config(
    list: &NetworkList,
    plugin: &Map<String, Value>,
    prev: Option<&Value>,
    runtime_config: &Map<String, Value>,
    extra: Option<(&str, Value)>,
) -> Vec<u8> {
    let mut p = plugin.clone();
    p.insert("name".into(), json!(list.name));
    p.insert("cniVersion".into(), json!(list.cni_version));
    match prev {
        Some(v) => {
            p.insert("prevResult".into(), v.clone());
        }
        None => {
            p.remove("prevResult");
        }
    }
    caps::inject(&mut p, runtime_config);
    if let Some((k, v)) = extra {
        p.insert(k.into(), v);
    }
    serde_json::to_vec(&Value::Object(p)).unwrap_or_default()
}

fn bad(list: &NetworkList, plugin: &str, command: Command, reason: String) -> NetworkError {
    NetworkError::BadResult {
        network: list.name.clone(),
        plugin: plugin.to_owned(),
        command: command.as_str(),
        reason,
    }
}

/// ADD through the chain; returns the final result as the last plugin printed it.
pub async fn add(
    exec: &Exec,
    list: &NetworkList,
    target: &Target,
    runtime_config: &Map<String, Value>,
) -> Result<Value, NetworkError> {
    let mut prev: Option<Value> = None;
    for plugin in &list.plugins {
        let t = plugin_type(plugin);
        let chained = if list.version.chains() {
            prev.as_ref()
        } else {
            None
        };
        let stdin = plugin_config(list, plugin, chained, runtime_config, None);
        let out = exec
            .run(&list.name, t, Command::Add, Some(target), &stdin)
            .await?;
        if out.iter().all(u8::is_ascii_whitespace) {
            // Nothing printed: the spec requires a result, but a silent pass-through
            // plugin keeps the previous one rather than failing the pod.
            continue;
        }
        let v: Value = serde_json::from_slice(&out)
            .map_err(|e| bad(list, t, Command::Add, format!("invalid JSON: {e}")))?;
        super::result::parse(&v).map_err(|r| bad(list, t, Command::Add, r))?;
        prev = Some(v);
    }
    prev.ok_or_else(|| {
        bad(
            list,
            list.plugin_types().last().copied().unwrap_or_default(),
            Command::Add,
            "no plugin printed a result".to_owned(),
        )
    })
}

/// DEL through the chain in reverse order; `prev` is the cached ADD result.
pub async fn del(
    exec: &Exec,
    list: &NetworkList,
    target: &Target,
    runtime_config: &Map<String, Value>,
    prev: Option<&Value>,
) -> Result<(), NetworkError> {
    let prev = if list.version.has_check() { prev } else { None };
    let mut first_err = None;
    for plugin in list.plugins.iter().rev() {
        let stdin = plugin_config(list, plugin, prev, runtime_config, None);
        if let Err(e) = exec
            .run(
                &list.name,
                plugin_type(plugin),
                Command::Del,
                Some(target),
                &stdin,
            )
            .await
        {
            tracing::warn!(network = %list.name, plugin = plugin_type(plugin), error = %e.full_message(), "cni DEL failed");
            first_err.get_or_insert(e);
        }
    }
    first_err.map_or(Ok(()), Err)
}

/// CHECK through the chain; a no-op for versions without CHECK or with `disableCheck`.
pub async fn check(
    exec: &Exec,
    list: &NetworkList,
    target: &Target,
    runtime_config: &Map<String, Value>,
    prev: &Value,
) -> Result<(), NetworkError> {
    if !list.version.has_check() || list.disable_check {
        return Ok(());
    }
    for plugin in &list.plugins {
        let stdin = plugin_config(list, plugin, Some(prev), runtime_config, None);
        exec.run(
            &list.name,
            plugin_type(plugin),
            Command::Check,
            Some(target),
            &stdin,
        )
        .await?;
    }
    Ok(())
}

/// STATUS of every plugin (1.1.0+; older lists are ready once loaded).
pub async fn status(exec: &Exec, list: &NetworkList) -> Result<(), NetworkError> {
    if !list.version.has_status_and_gc() {
        return Ok(());
    }
    for plugin in &list.plugins {
        let stdin = plugin_config(list, plugin, None, &Map::new(), None);
        exec.run(
            &list.name,
            plugin_type(plugin),
            Command::Status,
            None,
            &stdin,
        )
        .await?;
    }
    Ok(())
}

/// GC of every plugin with the attachments that are still valid (1.1.0+, unless
/// `disableGC`). Returns whether GC ran.
pub async fn gc(
    exec: &Exec,
    list: &NetworkList,
    valid: &[(String, String)],
) -> Result<bool, NetworkError> {
    if !list.version.has_status_and_gc() || list.disable_gc {
        return Ok(false);
    }
    let attachments: Vec<Value> = valid
        .iter()
        .map(|(id, ifname)| json!({"containerID": id, "ifname": ifname}))
        .collect();
    let mut first_err = None;
    for plugin in &list.plugins {
        let stdin = plugin_config(
            list,
            plugin,
            None,
            &Map::new(),
            Some((
                "cni.dev/valid-attachments",
                Value::Array(attachments.clone()),
            )),
        );
        if let Err(e) = exec
            .run(&list.name, plugin_type(plugin), Command::Gc, None, &stdin)
            .await
        {
            first_err.get_or_insert(e);
        }
    }
    first_err.map_or(Ok(true), Err)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    use super::*;
    use crate::network::conf::parse;
    use crate::network::exec::tests::script;

    /// A plugin that logs "<verb> <stdin>" lines to `log` and, on ADD, prints its
    /// prevResult with its own marker interface appended (or a fresh result).
    fn recorder(dir: &Path, name: &str, log: &Path) {
        script(
            dir,
            name,
            &format!(
                r#"in=$(cat); echo "$CNI_COMMAND {name} $in" >> {log}
if [ "$CNI_COMMAND" = ADD ]; then
  echo '{{"cniVersion":"1.0.0","interfaces":[{{"name":"eth0","sandbox":"'$CNI_NETNS'"}},{{"name":"{name}"}}],"ips":[{{"interface":0,"address":"10.0.0.2/24"}}]}}'
fi"#,
                log = log.display()
            ),
        );
    }

    fn setup(version: &str) -> (tempfile::TempDir, Exec, NetworkList, PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let log = t.path().join("log");
        for n in ["first", "second"] {
            recorder(t.path(), n, &log);
        }
        let list = parse(
            &t.path().join("n.conflist"),
            &format!(
                r#"{{"cniVersion":"{version}","name":"testnet","plugins":[{{"type":"first","x":1}},{{"type":"second","capabilities":{{"portMappings":true}}}}]}}"#
            ),
            true,
        )
        .unwrap();
        let exec = Exec {
            plugin_dirs: vec![t.path().to_path_buf()],
            timeout: Duration::from_secs(5),
        };
        (t, exec, list, log)
    }

    fn lines(log: &Path) -> Vec<(String, String, Value)> {
        std::fs::read_to_string(log)
            .unwrap()
            .lines()
            .map(|l| {
                let mut it = l.splitn(3, ' ');
                let verb = it.next().unwrap().to_string();
                let name = it.next().unwrap().to_string();
                let v: Value = serde_json::from_str(it.next().unwrap()).unwrap();
                (verb, name, v)
            })
            .collect()
    }

    #[tokio::test]
    async fn add_chains_prev_result_and_capabilities_del_reverses() {
        let (_t, exec, list, log) = setup("1.0.0");
        let target = Target {
            container_id: "c1".into(),
            netns: "/ns".into(),
            ifname: "eth0".into(),
            args: String::new(),
        };
        let rc = json!({"portMappings": [{"hostPort": 1, "containerPort": 2, "protocol": "tcp"}], "dns": {}})
            .as_object()
            .unwrap()
            .clone();
        let res = add(&exec, &list, &target, &rc).await.unwrap();
        assert_eq!(res["interfaces"][1]["name"], "second");
        let l = lines(&log);
        assert_eq!(l.len(), 2);
        assert_eq!((l[0].0.as_str(), l[0].1.as_str()), ("ADD", "first"));
        assert_eq!(l[0].2["name"], "testnet");
        assert_eq!(l[0].2["cniVersion"], "1.0.0");
        assert_eq!(l[0].2["x"], 1);
        assert!(l[0].2.get("prevResult").is_none());
        assert!(l[0].2.get("runtimeConfig").is_none());
        assert_eq!(l[1].2["prevResult"]["interfaces"][1]["name"], "first");
        assert_eq!(
            l[1].2["runtimeConfig"],
            json!({"portMappings": rc["portMappings"]})
        );

        std::fs::remove_file(&log).unwrap();
        del(&exec, &list, &target, &rc, Some(&res)).await.unwrap();
        let l = lines(&log);
        assert_eq!(
            l.iter()
                .map(|x| (x.0.as_str(), x.1.as_str()))
                .collect::<Vec<_>>(),
            [("DEL", "second"), ("DEL", "first")]
        );
        assert_eq!(l[0].2["prevResult"], res);

        std::fs::remove_file(&log).unwrap();
        check(&exec, &list, &target, &rc, &res).await.unwrap();
        let l = lines(&log);
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].0, "CHECK");
        // 1.0.0 has neither STATUS nor GC.
        status(&exec, &list).await.unwrap();
        assert!(!gc(&exec, &list, &[]).await.unwrap());
    }

    #[tokio::test]
    async fn old_versions_get_no_prev_result_and_no_check() {
        let (_t, exec, list, log) = setup("0.3.1");
        let target = Target::default();
        let res = add(&exec, &list, &target, &Map::new()).await.unwrap();
        let l = lines(&log);
        assert!(l[1].2.get("prevResult").is_some(), "0.3.x chains");
        std::fs::remove_file(&log).unwrap();
        del(&exec, &list, &target, &Map::new(), Some(&res))
            .await
            .unwrap();
        let l = lines(&log);
        assert!(
            l[0].2.get("prevResult").is_none(),
            "DEL prevResult is 0.4.0+"
        );
        std::fs::remove_file(&log).unwrap();
        check(&exec, &list, &target, &Map::new(), &res)
            .await
            .unwrap();
        assert!(!log.exists(), "no CHECK before 0.4.0");
        let (_t, exec, list, log) = setup("0.2.0");
        add(&exec, &list, &target, &Map::new()).await.unwrap();
        assert!(lines(&log)[1].2.get("prevResult").is_none());
    }

    #[tokio::test]
    async fn status_and_gc_for_1_1() {
        let (_t, exec, list, log) = setup("1.1.0");
        status(&exec, &list).await.unwrap();
        let valid = vec![("c1".to_string(), "eth0".to_string())];
        assert!(gc(&exec, &list, &valid).await.unwrap());
        let l = lines(&log);
        assert_eq!(
            l.iter()
                .map(|x| (x.0.as_str(), x.1.as_str()))
                .collect::<Vec<_>>(),
            [
                ("STATUS", "first"),
                ("STATUS", "second"),
                ("GC", "first"),
                ("GC", "second")
            ]
        );
        assert_eq!(
            l[2].2["cni.dev/valid-attachments"],
            json!([{"containerID": "c1", "ifname": "eth0"}])
        );
    }

    #[tokio::test]
    async fn del_runs_every_plugin_and_reports_the_first_error() {
        let (t, exec, list, log) = setup("1.0.0");
        script(
            t.path(),
            "second",
            &format!(
                r#"cat >/dev/null; echo "$CNI_COMMAND second" >> {}; echo '{{"code":999,"msg":"nope"}}'; exit 1"#,
                log.display()
            ),
        );
        let e = del(&exec, &list, &Target::default(), &Map::new(), None)
            .await
            .unwrap_err();
        assert!(
            e.to_string().contains("plugin second failed on DEL: nope"),
            "{e}"
        );
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.contains("DEL first"), "{text}");
    }
}
