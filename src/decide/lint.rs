//! `check`'s lints on one app's policy: rules that can never match (errors),
//! the iPadOS desktop-mode bypass and Google Workspace on Android (warnings).
//! The enrollment-host error needs the app's hosts and is left to the config
//! loader, with [`host_matches`](super::host_matches).

use std::fmt;

use serde::Serialize;

use super::{Policy, Rule, Set, TrustCondition};
use crate::classify::Platform;

/// How bad a lint is: errors refuse the config, warnings are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// The config is refused.
    Error,
    /// The config runs; the admin should look.
    Warning,
}

impl Severity {
    /// The static label used in output and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// One finding of `check`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lint {
    /// Error or warning.
    pub severity: Severity,
    /// A short static label: `unreachable_rule`, `ipados_desktop_mode` or
    /// `google_workspace_android`.
    pub code: &'static str,
    /// The key path it is about, such as `apps.mail.rules[3]`.
    pub path: String,
    /// What is wrong and what to do, in plain words.
    pub message: String,
}

impl fmt::Display for Lint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}: {}",
            self.severity.as_str(),
            self.path,
            self.message
        )
    }
}

impl Policy {
    /// Every lint of this policy, errors first, each group in rule order.
    /// `app_is_google_workspace` marks an app whose Android sign-ins Okta
    /// cannot see as managed.
    pub fn lints(&self, app_is_google_workspace: bool) -> Vec<Lint> {
        let mut lints = Vec::new();
        self.unreachable(&mut lints);
        self.ipados_desktop_mode(&mut lints);
        if app_is_google_workspace {
            self.google_workspace_android(&mut lints);
        }
        lints.sort_by_key(|l| l.severity);
        lints
    }

    fn rule_path(&self, index: usize) -> String {
        format!("{}.rules[{index}]", self.path)
    }

    /// A rule is unreachable when an earlier rule matches every request it
    /// would: first match wins, so it never gets one.
    fn unreachable(&self, lints: &mut Vec<Lint>) {
        for (i, later) in self.rules.iter().enumerate() {
            let Some(earlier) = self.rules[..i].iter().find(|e| covers(e, later)) else {
                continue;
            };
            let message = if earlier.is_catch_all() {
                format!(
                    "rule {:?} can never match: rule {:?} above it is a catch-all",
                    later.name(),
                    earlier.name()
                )
            } else {
                format!(
                    "rule {:?} can never match: rule {:?} above it matches every request it would",
                    later.name(),
                    earlier.name()
                )
            };
            lints.push(Lint {
                severity: Severity::Error,
                code: "unreachable_rule",
                path: self.rule_path(i),
                message,
            });
        }
    }

    /// iPadOS Safari in desktop mode sends a macOS User-Agent. Rules that set
    /// device trust for mobile platforms then do not see those iPads unless a
    /// rule decides `macos` too.
    fn ipados_desktop_mode(&self, lints: &mut Vec<Lint>) {
        let mobile = mobile_platforms();
        let Some(first) = self.rules.iter().position(|r| {
            r.trust != TrustCondition::Any && r.platforms.is_some_and(|s| s.intersects(mobile))
        }) else {
            return;
        };
        let names_macos = self
            .rules
            .iter()
            .any(|r| r.platforms.is_some_and(|s| s.contains(Platform::Macos)));
        if names_macos {
            return;
        }
        lints.push(Lint {
            severity: Severity::Warning,
            code: "ipados_desktop_mode",
            path: self.rule_path(first),
            message: format!(
                "rule {:?} sets device trust for mobile platforms, but no rule names macos: \
                 iPadOS Safari in desktop mode sends a macOS User-Agent and skips the mobile rules; \
                 add a rule for platform macos",
                self.rules[first].name()
            ),
        });
    }

    /// Okta does not recognise Google Workspace on Android as managed.
    fn google_workspace_android(&self, lints: &mut Vec<Lint>) {
        for (i, rule) in self.rules.iter().enumerate() {
            if rule
                .platforms
                .is_some_and(|s| s.contains(Platform::Android))
            {
                lints.push(Lint {
                    severity: Severity::Warning,
                    code: "google_workspace_android",
                    path: self.rule_path(i),
                    message: format!(
                        "rule {:?} names android, but this app is Google Workspace, which Okta \
                         does not recognise as managed on Android (a known limitation)",
                        rule.name()
                    ),
                });
            }
        }
    }
}

fn mobile_platforms() -> Set<Platform> {
    let mut set = Set::empty();
    for p in Platform::ALL.into_iter().filter(|p| p.is_mobile()) {
        set.insert(p);
    }
    set
}

/// Whether `earlier` matches every request that `later` matches: each of its
/// conditions is absent, or no narrower than `later`'s.
fn covers(earlier: &Rule, later: &Rule) -> bool {
    fn set_covers<T: super::Member>(e: Option<Set<T>>, l: Option<Set<T>>) -> bool {
        match (e, l) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(e), Some(l)) => e.is_superset(l),
        }
    }
    let trust = earlier.trust == TrustCondition::Any || earlier.trust == later.trust;
    // Any-of lists: a shorter list that `earlier` contains is narrower.
    let groups = match (earlier.groups.as_deref(), later.groups.as_deref()) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(e), Some(l)) => l.iter().all(|g| e.contains(g)),
    };
    let zones = match (earlier.zones.as_deref(), later.zones.as_deref()) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(e), Some(l)) => l.iter().all(|z| e.iter().any(|ez| ez.name == z.name)),
    };
    set_covers(earlier.platforms, later.platforms)
        && set_covers(earlier.kinds, later.kinds)
        && trust
        && groups
        && zones
}
