//! `crust config`: the effective configuration as commented TOML that is itself a valid
//! config file (like `crio config`).
//!
//! The printer walks the serialized config, so new tables print without changes here;
//! [`doc`] holds the comment for each key (a unit test checks every key has one).

use std::fmt::Write as _;

use super::Config;

/// The comment printed above `key`.
fn doc(key: &str) -> Option<&'static str> {
    Some(match key {
        "crust" => "crust daemon settings.",
        "crust.root" => "Persistent state: the image store lives in <root>/storage.",
        "crust.runroot" => "Volatile state (sockets, mounts), lost on reboot.",
        "crust.storage_driver" => "Storage driver. Only \"overlay\" is supported.",
        "crust.log_level" => "Log level: error, warn, info, debug or trace. Reloaded on SIGHUP.",
        "crust.log_format" => "Log format on stderr: text or json. Needs a restart.",
        "crust.api" => "The CRI gRPC API.",
        "crust.api.listen" => "Unix socket the CRI server listens on.",
        "crust.api.grpc_max_recv_msg_size" => "Largest gRPC message received, in bytes.",
        "crust.api.grpc_max_send_msg_size" => "Largest gRPC message sent, in bytes.",
        "crust.image" => "Image pulls and registries.",
        "crust.image.registries_conf" => "containers-registries.conf(5) file. Reloaded on SIGHUP.",
        "crust.image.global_auth_file" => {
            "Node-wide docker-style auth.json; \"\" means none. Reloaded on SIGHUP."
        }
        "crust.image.pull_progress_timeout" => {
            "Cancel a pull that receives no data for this long (e.g. \"60s\", \"5m\"); \"0s\" disables."
        }
        "crust.image.max_concurrent_downloads" => "Layers downloaded at once per pull.",
        "crust.image.pull_sync_fs" => {
            "Sync a pull's layers to disk before PullImage returns (default: in the background right after; after a power loss, images whose layers were not synced yet are dropped and pulled again)."
        }
        "crust.runtime" => "OCI runtimes (RuntimeClass handlers) and the helper binaries.",
        "crust.runtime.default_runtime" => {
            "Handler used when a pod names none; must be a key of crust.runtime.runtimes."
        }
        "crust.runtime.cgroup_manager" => {
            "cgroup driver for linux.cgroupsPath: \"cgroupfs\" or \"systemd\" (match the kubelet)."
        }
        "crust.runtime.monitor_path" => {
            "crust-monitor binary; \"\" = next to the crust executable, then $PATH."
        }
        "crust.runtime.pause_path" => {
            "crust-pause binary (pods with a shared PID namespace); \"\" = next to crust, then $PATH."
        }
        "crust.runtime.seccomp_profile" => {
            "Seccomp profile (JSON) for RuntimeDefault; \"\" = crust's built-in profile."
        }
        "crust.runtime.default_capabilities" => {
            "Capabilities every container gets (e.g. [\"CAP_CHOWN\"]); [] = built-in default set."
        }
        "crust.runtime.hooks_dir" => {
            "OCI hook directories (oci-hooks(5) *.json files, schema 1.0.0), lowest precedence\n\
             # first: a file in a later directory masks the same name in an earlier one. Changes\n\
             # apply to the next container without a restart; a malformed file is logged and skipped."
        }
        "crust.runtime.runtimes" => {
            "RuntimeClass handlers, one [crust.runtime.runtimes.<handler>] table each (names:\n\
             # [A-Za-z0-9_-]). Keys: runtime_path, runtime_root, runtime_args, monitor_path,\n\
             # privileged_without_host_devices, allowed_annotations. A table here overrides or\n\
             # extends the built-in runc, runsc, crun and youki entries key by key; handlers\n\
             # whose binary is missing are reported unavailable."
        }
        other => {
            return super::streaming::doc(other)
                .or_else(|| handler_doc(other))
                .or_else(|| super::network::doc(other))
                .or_else(|| super::metrics::doc(other));
        }
    })
}

/// Comments for `crust.runtime.runtimes.<handler>[.<key>]`, whatever the handler name.
fn handler_doc(key: &str) -> Option<&'static str> {
    let rest = key.strip_prefix("crust.runtime.runtimes.")?;
    Some(match rest.split_once('.') {
        None => "A runc-compatible OCI runtime (RuntimeClass handler).",
        Some((_, "runtime_path")) => {
            "Runtime binary; \"\" = the handler name in $PATH, /usr/local/sbin, /usr/local/bin,\n\
             # /usr/sbin, /usr/bin, /sbin, /bin."
        }
        Some((_, "runtime_root")) => {
            "Runtime state directory (--root); \"\" = <runroot>/runtimes/<handler>."
        }
        Some((_, "runtime_args")) => "Extra global arguments given before the subcommand.",
        Some((_, "monitor_path")) => {
            "crust-monitor binary for this handler; \"\" = crust.runtime.monitor_path."
        }
        Some((_, "privileged_without_host_devices")) => {
            "Privileged containers do not get all host devices (VM-based runtimes)."
        }
        Some((_, "allowed_annotations")) => {
            "Annotation prefixes passed from pod/container into the OCI spec."
        }
        Some(_) => return None,
    })
}

/// Render `config` as commented TOML.
pub fn to_commented_toml(config: &Config) -> Result<String, toml::ser::Error> {
    let table = toml::Table::try_from(config)?;
    let mut out = String::from(
        "# crust configuration (effective: defaults, config files, drop-ins and flags).\n\
         # Files: /etc/crust/crust.toml, then /etc/crust/crust.conf.d/*.toml in name order.\n",
    );
    write_table(&mut out, &table, "");
    Ok(out)
}

fn comment(out: &mut String, key: &str) {
    if let Some(d) = doc(key) {
        let _ = writeln!(out, "# {d}");
    }
}

fn write_table(out: &mut String, table: &toml::Table, prefix: &str) {
    let path = |k: &str| {
        if prefix.is_empty() {
            k.to_owned()
        } else {
            format!("{prefix}.{k}")
        }
    };
    for (k, v) in table.iter().filter(|(_, v)| !v.is_table()) {
        comment(out, &path(k));
        let _ = writeln!(out, "{k} = {v}\n");
    }
    for (k, v) in table {
        if let toml::Value::Table(t) = v {
            let key = path(k);
            out.push('\n');
            comment(out, &key);
            let _ = writeln!(out, "[{key}]\n");
            write_table(out, t, &key);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::config::{ConfigFlags, LogLevel, load::flatten, load::load_from};

    #[test]
    fn printed_config_reparses_to_same() {
        let flags = ConfigFlags {
            root: Some("/tmp/r oot".into()),
            log_level: Some(LogLevel::Debug),
            global_auth_file: Some("/etc/crust/auth.json".into()),
            pull_progress_timeout: Some("90s".into()),
            ..Default::default()
        };
        let c = load_from(&[], &flags).unwrap();
        let text = to_commented_toml(&c).unwrap();
        assert!(text.contains("[crust.image]"), "{text}");
        let again = load_from(
            &[(PathBuf::from("/printed.toml"), text)],
            &ConfigFlags::default(),
        )
        .unwrap();
        assert_eq!(again, c);
        let text = to_commented_toml(&Config::default()).unwrap();
        let again: Config = toml::from_str(&text).unwrap();
        assert_eq!(again, Config::default());
    }

    #[test]
    fn every_key_documented() {
        for key in flatten(&Config::default()).keys() {
            assert!(doc(key).is_some(), "no doc for {key}");
        }
    }
}
