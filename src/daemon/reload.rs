//! SIGHUP: re-read the config files (with the original flags on top) and apply what can
//! change at run time: the log level and the registry settings (registries.conf, auth
//! file). Other changed keys are logged as needing a restart and keep their running
//! value, so `Status` verbose keeps showing what is actually in effect.

use std::sync::Arc;

use crate::config::{self, Config, ConfigFlags, load::flatten};
use crate::logging::{LogHandle, error_chain};
use crate::server::Context;

/// Keys applied on reload.
pub const RELOADABLE: &[&str] = &[
    "crust.log_level",
    "crust.image.registries_conf",
    "crust.image.global_auth_file",
];

/// What a reload would change: `(key, old, new, reloadable)`.
pub fn diff(old: &Config, new: &Config) -> Vec<(String, String, String, bool)> {
    let old = flatten(old);
    let new = flatten(new);
    new.iter()
        .filter_map(|(k, v)| {
            let before = old.get(k).cloned().unwrap_or_default();
            (before != *v).then(|| {
                (
                    k.clone(),
                    before,
                    v.clone(),
                    RELOADABLE.contains(&k.as_str()),
                )
            })
        })
        .collect()
}

/// The running config with the reloadable keys taken from `new`.
pub fn applied(old: &Config, new: &Config) -> Config {
    let mut out = old.clone();
    out.crust.log_level = new.crust.log_level;
    out.crust.image.registries_conf = new.crust.image.registries_conf.clone();
    out.crust.image.global_auth_file = new.crust.image.global_auth_file.clone();
    out
}

/// Handle one SIGHUP.
pub async fn reload(flags: &ConfigFlags, ctx: &Arc<Context>, log: &LogHandle) {
    tracing::info!("SIGHUP: reloading configuration");
    let new = match config::load(flags) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %error_chain(&e), "reload failed; keeping the running configuration");
            return;
        }
    };
    let old = config::current(&ctx.config);
    for (key, before, after, reloadable) in diff(&old, &new) {
        if reloadable {
            tracing::info!(key, old = before, new = after, "applying changed setting");
        } else {
            tracing::warn!(
                key,
                old = before,
                new = after,
                "changed setting needs a restart to take effect"
            );
        }
    }
    if let Err(e) = log.set_level(new.crust.log_level) {
        tracing::error!(error = %error_chain(&e), "cannot change the log level");
    }
    let image = &new.crust.image;
    if let Err(e) = ctx
        .images
        .reload(
            image.registries_conf.clone(),
            image.auth_file().map(ToOwned::to_owned),
        )
        .await
    {
        tracing::error!(error = %error_chain(&e), "cannot reload registry settings");
    }
    config::replace(&ctx.config, applied(&old, &new));
    tracing::info!("configuration reloaded");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LogLevel;

    #[test]
    fn diff_marks_reloadable() {
        let old = Config::default();
        let mut new = old.clone();
        new.crust.log_level = LogLevel::Debug;
        new.crust.root = "/elsewhere".into();
        let d = diff(&old, &new);
        assert_eq!(d.len(), 2);
        assert!(d.iter().any(|(k, _, _, r)| k == "crust.log_level" && *r));
        assert!(d.iter().any(|(k, _, _, r)| k == "crust.root" && !*r));
        let a = applied(&old, &new);
        assert_eq!(a.crust.log_level, LogLevel::Debug);
        assert_eq!(a.crust.root, old.crust.root);
    }
}
