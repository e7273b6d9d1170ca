//! Decides what to do with a request from plain facts (client, device trust,
//! groups, address) with an app's ordered rules, Okta's model: the first
//! match wins, then the default action. Pure and cheap; building the facts is
//! left to `classify` and `evidence`, acting on the decision to `remember`
//! and the proxy.

mod config;
mod explain;
mod lint;
mod network;

use std::fmt;
use std::marker::PhantomData;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::classify::{Client, ClientKind, Platform};
use crate::evidence::DeviceTrust;

pub use config::{ConfigError, PolicySource, Problem, RawPolicy, RawRule, RawZones};
pub use explain::{Considered, Explanation};
pub use lint::{Lint, Severity};
pub use network::{client_ip, client_ip_from_headers, host_matches, Zone, Zones};

/// What the proxy does with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Let the request through (and remember the decision in a session).
    Allow,
    /// Refuse with a plain 403 page.
    Deny,
    /// Detour through the app's enrollment URL.
    Enroll,
}

impl Action {
    /// Every action, in declaration order.
    pub const ALL: [Action; 3] = [Action::Allow, Action::Deny, Action::Enroll];

    /// The static label used in config, metrics, logs and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Deny => "deny",
            Action::Enroll => "enroll",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rule's device-trust condition. `unknown` trust counts as not trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrustCondition {
    /// Any device.
    Any,
    /// Only devices the IdP reports as trusted.
    Trusted,
    /// Devices reported not trusted, or whose trust is unknown.
    NotTrusted,
}

impl TrustCondition {
    /// The static label used in config and explanations.
    pub fn as_str(self) -> &'static str {
        match self {
            TrustCondition::Any => "any",
            TrustCondition::Trusted => "trusted",
            TrustCondition::NotTrusted => "not_trusted",
        }
    }

    /// Whether a device with this trust meets the condition.
    pub fn admits(self, trust: DeviceTrust) -> bool {
        match self {
            TrustCondition::Any => true,
            TrustCondition::Trusted => trust == DeviceTrust::Trusted,
            TrustCondition::NotTrusted => trust != DeviceTrust::Trusted,
        }
    }
}

/// What a decision is made from: plain values that `classify` and `evidence`
/// produced. No raw XML, no headers.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// The client's platform and kind.
    pub client: Client,
    /// Device trust from the verified assertion or the session.
    pub trust: DeviceTrust,
    /// The user's groups from the verified assertion.
    pub groups: &'a [String],
    /// The client address, from [`client_ip`].
    pub ip: IpAddr,
}

/// The outcome of [`Policy::decide`]: a plain value that flows on to
/// `remember`, the proxy, metrics and the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// What to do.
    pub action: Action,
    /// The name of the matching rule, or `default`.
    pub rule: Arc<str>,
    /// For `allow`: the longest a session may last, if the rule caps it.
    pub max_session_age: Option<Duration>,
    /// `rule_matched` or `no_rule_matched`: the static label for logs.
    pub reason: &'static str,
}

/// The name the default action goes by in decisions and explanations.
pub const DEFAULT_RULE: &str = "default";

/// One app's policy: ordered rules, then the default action.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The config key path of the app, such as `apps.mail`.
    path: String,
    rules: Vec<Rule>,
    default_action: Action,
    default_name: Arc<str>,
}

impl Policy {
    /// Builds a policy from typed rules; `path` names the app in lints (such
    /// as `apps.mail`). Config goes through [`PolicySource`] instead.
    fn new(path: String, rules: Vec<Rule>, default_action: Action) -> Self {
        Policy {
            path,
            rules,
            default_action,
            default_name: Arc::from(DEFAULT_RULE),
        }
    }

    /// The config key path of the app this policy belongs to.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The rules, in the order they are tried.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The action when no rule matches.
    pub fn default_action(&self) -> Action {
        self.default_action
    }

    /// The first matching rule's action, else the default action. Does not
    /// allocate.
    pub fn decide(&self, facts: &Facts<'_>) -> Decision {
        match self.rules.iter().find(|rule| rule.matches(facts)) {
            Some(rule) => Decision {
                action: rule.action,
                rule: Arc::clone(&rule.name),
                max_session_age: rule.max_session_age,
                reason: "rule_matched",
            },
            None => Decision {
                action: self.default_action,
                rule: Arc::clone(&self.default_name),
                max_session_age: None,
                reason: "no_rule_matched",
            },
        }
    }
}

/// One rule: conditions (all optional, ANDed) and an action.
#[derive(Debug, Clone)]
pub struct Rule {
    name: Arc<str>,
    /// `None` when the rule does not look at it (a set of every value is
    /// stored as `None` too).
    platforms: Option<Set<Platform>>,
    kinds: Option<Set<ClientKind>>,
    trust: TrustCondition,
    groups: Option<Box<[String]>>,
    zones: Option<Box<[Zone]>>,
    action: Action,
    max_session_age: Option<Duration>,
}

impl Rule {
    /// The rule's name, unique within its policy.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the rule does when it matches.
    pub fn action(&self) -> Action {
        self.action
    }

    /// For `allow`: the longest a session may last, if capped.
    pub fn max_session_age(&self) -> Option<Duration> {
        self.max_session_age
    }

    /// Whether the rule has no conditions and so matches every request.
    pub fn is_catch_all(&self) -> bool {
        self.platforms.is_none()
            && self.kinds.is_none()
            && self.trust == TrustCondition::Any
            && self.groups.is_none()
            && self.zones.is_none()
    }

    fn matches(&self, facts: &Facts<'_>) -> bool {
        self.platforms
            .map_or(true, |s| s.contains(facts.client.platform))
            && self.kinds.map_or(true, |s| s.contains(facts.client.kind))
            && self.trust.admits(facts.trust)
            && self
                .groups
                .as_deref()
                .map_or(true, |wanted| in_any_group(wanted, facts.groups))
            && self
                .zones
                .as_deref()
                .map_or(true, |zones| zones.iter().any(|z| z.contains(facts.ip)))
    }
}

/// Group names match exactly, as the IdP sends them.
fn in_any_group(wanted: &[String], groups: &[String]) -> bool {
    groups.iter().any(|g| wanted.contains(g))
}

/// A set of enum values as bits; `T::ALL` fixes each value's bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Set<T> {
    bits: u16,
    _of: PhantomData<T>,
}

/// A fieldless enum whose values fit in a [`Set`]; `ALL` is in declaration
/// order, so a value's discriminant is its bit.
trait Member: Copy + 'static {
    const ALL: &'static [Self];
    fn index(self) -> u16;
}

impl Member for Platform {
    const ALL: &'static [Self] = &Platform::ALL;
    fn index(self) -> u16 {
        self as u16
    }
}

impl Member for ClientKind {
    const ALL: &'static [Self] = &ClientKind::ALL;
    fn index(self) -> u16 {
        self as u16
    }
}

impl<T: Member> Set<T> {
    fn empty() -> Self {
        Set {
            bits: 0,
            _of: PhantomData,
        }
    }

    fn bit(value: T) -> u16 {
        1 << value.index()
    }

    fn insert(&mut self, value: T) {
        self.bits |= Self::bit(value);
    }

    fn contains(self, value: T) -> bool {
        self.bits & Self::bit(value) != 0
    }

    fn is_full(self) -> bool {
        self.bits.count_ones() as usize == T::ALL.len()
    }

    fn is_superset(self, other: Set<T>) -> bool {
        other.bits & !self.bits == 0
    }

    fn intersects(self, other: Set<T>) -> bool {
        self.bits & other.bits != 0
    }

    fn iter(self) -> impl Iterator<Item = T> {
        T::ALL.iter().copied().filter(move |&v| self.contains(v))
    }
}

#[cfg(test)]
pub(crate) mod tests;
