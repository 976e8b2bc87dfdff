//! The `when` conditions of a hook file, matched against one container.
//!
//! Semantics of containers/common `pkg/hooks/1.0.0` `When.Match`, condition by condition,
//! every condition that is set must match ("all must match"):
//! - `always`: `true` matches; `false` never matches (so the hook is never injected);
//! - `hasBindMounts`: `true` matches when the caller asked for host bind mounts (CRI
//!   `mounts`, not the runtime's default mounts); `false` never matches;
//! - `annotations`: for *each* key/value pattern pair, some annotation must have a key
//!   matching the key pattern and a value matching the value pattern;
//! - `commands`: `process.args[0]` (as written in `config.json`, e.g. `/bin/sh` or
//!   `sh`) must match *any* of the patterns.
//!
//! Patterns are searched, not anchored (Go's `regexp.MatchString`, here
//! [`regex::Regex::is_match`]): `init` matches `/sbin/init-helper`; write `^...$` for a
//! whole-string match, as the oci-hooks(5) examples do.

use std::collections::HashMap;

use regex::Regex;

/// Compiled `when` conditions.
#[derive(Debug, Clone, Default)]
pub struct When {
    /// `when.always`.
    pub always: Option<bool>,
    /// `when.annotations`: (key pattern, value pattern).
    pub annotations: Vec<(Regex, Regex)>,
    /// `when.commands`.
    pub commands: Vec<Regex>,
    /// `when.hasBindMounts`.
    pub has_bind_mounts: Option<bool>,
}

/// What a container offers to the conditions.
#[derive(Debug, Clone, Copy)]
pub struct MatchInput<'a> {
    /// The container's annotations.
    pub annotations: &'a HashMap<String, String>,
    /// `process.args[0]` of the generated spec (`None` when there is no process).
    pub command: Option<&'a str>,
    /// Whether the container has caller-requested bind mounts.
    pub has_bind_mounts: bool,
}

impl When {
    /// No condition set (rejected when parsing: such a hook would never match).
    pub fn is_empty(&self) -> bool {
        self.always.is_none()
            && self.annotations.is_empty()
            && self.commands.is_empty()
            && self.has_bind_mounts.is_none()
    }

    /// Whether every condition set matches `input` (false when none is set). Like
    /// upstream, a container without a process skips `commands`, and then matches only
    /// if another condition did.
    pub fn matches(&self, input: &MatchInput<'_>) -> bool {
        let mut matched = 0;
        if let Some(always) = self.always {
            if !always {
                return false;
            }
            matched += 1;
        }
        if let Some(wanted) = self.has_bind_mounts {
            if !(wanted && input.has_bind_mounts) {
                return false;
            }
            matched += 1;
        }
        for (kp, vp) in &self.annotations {
            let hit = input
                .annotations
                .iter()
                .any(|(k, v)| kp.is_match(k) && vp.is_match(v));
            if !hit {
                return false;
            }
            matched += 1;
        }
        if let Some(cmd) = input.command
            && !self.commands.is_empty()
        {
            return self.commands.iter().any(|p| p.is_match(cmd));
        }
        matched > 0
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn re(s: &str) -> Regex {
        Regex::new(s).unwrap()
    }

    fn input<'a>(
        annotations: &'a HashMap<String, String>,
        command: &'a str,
        has_bind_mounts: bool,
    ) -> MatchInput<'a> {
        MatchInput {
            annotations,
            command: Some(command),
            has_bind_mounts,
        }
    }

    fn ann(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn always() {
        let a = ann(&[]);
        let yes = When {
            always: Some(true),
            ..Default::default()
        };
        let no = When {
            always: Some(false),
            ..Default::default()
        };
        assert!(yes.matches(&input(&a, "/bin/sh", false)));
        assert!(!no.matches(&input(&a, "/bin/sh", true)));
        assert!(!When::default().matches(&input(&a, "/bin/sh", true)));
    }

    #[test]
    fn has_bind_mounts() {
        let a = ann(&[]);
        let yes = When {
            has_bind_mounts: Some(true),
            ..Default::default()
        };
        assert!(yes.matches(&input(&a, "x", true)));
        assert!(!yes.matches(&input(&a, "x", false)));
        let no = When {
            has_bind_mounts: Some(false),
            ..Default::default()
        };
        // Upstream: `false` never matches, with or without bind mounts.
        assert!(!no.matches(&input(&a, "x", false)));
        assert!(!no.matches(&input(&a, "x", true)));
    }

    #[test]
    fn annotations_each_pair_must_match_one_annotation() {
        let w = When {
            annotations: vec![
                (re(r"^com\.example\.department$"), re(".*fluid-dynamics$")),
                (re("^tier$"), re("^gold$")),
            ],
            ..Default::default()
        };
        let both = ann(&[
            ("com.example.department", "cfd-fluid-dynamics"),
            ("tier", "gold"),
        ]);
        assert!(w.matches(&input(&both, "x", false)));
        let one = ann(&[("com.example.department", "cfd-fluid-dynamics")]);
        assert!(!w.matches(&input(&one, "x", false)));
        // Key and value must match in the same annotation.
        let crossed = ann(&[
            ("com.example.department", "gold"),
            ("tier", "cfd-fluid-dynamics"),
        ]);
        assert!(!w.matches(&input(&crossed, "x", false)));
    }

    #[test]
    fn patterns_are_searched_not_anchored() {
        let w = When {
            annotations: vec![(re("department"), re("fluid"))],
            ..Default::default()
        };
        let a = ann(&[("com.example.department.x", "superfluidity")]);
        assert!(w.matches(&input(&a, "x", false)));
        let anchored = When {
            annotations: vec![(re("^department$"), re("fluid"))],
            ..Default::default()
        };
        assert!(!anchored.matches(&input(&a, "x", false)));

        let c = When {
            commands: vec![re("init")],
            ..Default::default()
        };
        assert!(c.matches(&input(&a, "/sbin/init-helper", false)));
        let c = When {
            commands: vec![re("^init$")],
            ..Default::default()
        };
        assert!(!c.matches(&input(&a, "/sbin/init", false)));
        assert!(c.matches(&input(&a, "init", false)));
    }

    #[test]
    fn commands_any_pattern_matches_args0() {
        let a = ann(&[]);
        let w = When {
            commands: vec![re(".*/init$"), re(".*/systemd$")],
            ..Default::default()
        };
        assert!(w.matches(&input(&a, "/usr/lib/systemd/systemd", false)));
        assert!(w.matches(&input(&a, "/sbin/init", false)));
        assert!(!w.matches(&input(&a, "/bin/sh", false)));
        let none = MatchInput {
            annotations: &a,
            command: None,
            has_bind_mounts: false,
        };
        assert!(!w.matches(&none));
    }

    #[test]
    fn all_conditions_must_match() {
        let a = ann(&[("role", "db")]);
        let w = When {
            always: Some(true),
            annotations: vec![(re("^role$"), re("^db$"))],
            commands: vec![re("^/bin/sh$")],
            has_bind_mounts: Some(true),
        };
        assert!(w.matches(&input(&a, "/bin/sh", true)));
        assert!(!w.matches(&input(&a, "/bin/sh", false)));
        assert!(!w.matches(&input(&a, "/bin/ls", true)));
        assert!(!w.matches(&input(&ann(&[("role", "web")]), "/bin/sh", true)));
    }
}
