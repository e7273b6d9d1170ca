//! Policy config in two layers: raw serde structs as the TOML says them, then
//! the typed [`Policy`] and [`Zones`] built with `TryFrom`, where every error
//! names its key path. Defaults live here, and only here.
//!
//! The shape, as a config file holds it (a test loads this very example
//! with the real loader, in place of the shipped config's policy):
//!
//! ```toml
//! [zones]
//! corp = ["10.0.0.0/8", "2001:db8::/32"]   # CIDRs or bare addresses
//!
//! [apps.mail.policy]
//! default_action = "deny"                 # allow | deny (the default) | enroll
//!
//! [[apps.mail.policy.rules]]
//! name = "trusted mobile"                 # unique; not "default"
//! platforms = ["ios", "ipados", "android"]
//! trust = "trusted"                       # trusted | not_trusted | any (the default)
//! action = "allow"
//! max_session_age = "8h"                  # allow rules only
//!
//! [[apps.mail.policy.rules]]
//! name = "untrusted mobile"
//! platforms = ["ios", "ipados", "android"]
//! action = "enroll"
//!
//! [[apps.mail.policy.rules]]
//! name = "trusted mac"                    # iPadOS desktop mode lands here
//! platforms = ["macos"]
//! trust = "trusted"
//! action = "allow"
//!
//! [[apps.mail.policy.rules]]
//! name = "staff browsers on the corp network"
//! client_kinds = ["browser"]              # browser | webview | native
//! groups = ["staff"]                      # any of
//! zones = ["corp"]                        # any of
//! action = "allow"
//! ```
//!
//! Every condition is optional; a rule matches when all it has hold. The
//! app's other keys (`hosts`, `upstream`, `[apps.mail.idp]`, ...) belong to
//! the app config, which hands `[apps.mail.policy]` over as a [`RawPolicy`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::{Action, Policy, Rule, Set, TrustCondition, Zone, Zones, DEFAULT_RULE};
use crate::classify::UnknownName;

/// The action when no rule matches and the config names none.
const DEFAULT_ACTION: Action = Action::Deny;

/// `[zones]`: zone name to a list of CIDRs (or bare addresses).
pub type RawZones = BTreeMap<String, Vec<String>>;

/// One app's policy as written: `default_action` and `[[apps.<app>.rules]]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    /// `allow`, `deny` or `enroll`; `deny` when absent.
    #[serde(default)]
    pub default_action: Option<String>,
    /// The ordered rules; the first match wins.
    #[serde(default)]
    pub rules: Vec<RawRule>,
}

/// One rule as written. Absent conditions match anything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    /// Unique within the app; shown in decisions, metrics and `explain`.
    pub name: Option<String>,
    /// Any of these platforms (`ios`, `ipados`, `android`, `macos`, ...).
    pub platforms: Option<Vec<String>>,
    /// Any of these client kinds (`browser`, `webview`, `native`).
    pub client_kinds: Option<Vec<String>>,
    /// `trusted`, `not_trusted` or `any` (the default).
    pub trust: Option<String>,
    /// Any of these groups.
    pub groups: Option<Vec<String>>,
    /// Any of these zones from `[zones]`.
    pub zones: Option<Vec<String>>,
    /// `allow`, `deny` or `enroll`.
    pub action: Option<String>,
    /// For `allow`: the longest a session may last, such as `8h`.
    pub max_session_age: Option<String>,
}

/// A config value that cannot be used, with the key path that holds it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {problem}")]
pub struct ConfigError {
    /// Where the value is, such as `apps.mail.rules[2].platforms[0]`.
    pub path: String,
    /// What is wrong with it.
    pub problem: Problem,
}

impl ConfigError {
    /// The static label used in logs.
    pub fn reason(&self) -> &'static str {
        self.problem.reason()
    }
}

/// What is wrong with a policy config value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// A required key is absent.
    #[error("missing")]
    Missing,
    /// A list that must not be empty is; omit the key to match anything.
    #[error("empty list; leave the key out to match anything")]
    EmptyList,
    /// A name or value that must not be empty is.
    #[error("empty value")]
    EmptyValue,
    /// Not a platform or client kind name.
    #[error(transparent)]
    UnknownName(#[from] UnknownName),
    /// Not `trusted`, `not_trusted` or `any`.
    #[error("unknown trust {0:?} (expected trusted, not_trusted or any)")]
    UnknownTrust(String),
    /// Not `allow`, `deny` or `enroll`.
    #[error("unknown action {0:?} (expected allow, deny or enroll)")]
    UnknownAction(String),
    /// A zone name that `[zones]` does not define.
    #[error("unknown zone {0:?}")]
    UnknownZone(String),
    /// Not a CIDR or an address.
    #[error("invalid network {0:?} (expected a CIDR such as 10.0.0.0/8, or an address)")]
    InvalidNetwork(String),
    /// A CIDR with bits set past its prefix, which is most likely a typo.
    #[error("network {given:?} has host bits set; did you mean {suggested:?}?")]
    HostBitsSet {
        /// As written.
        given: String,
        /// With the host bits cleared.
        suggested: String,
    },
    /// Not a duration such as `8h` or `30m`.
    #[error("invalid duration {value:?}: {why}")]
    InvalidDuration {
        /// As written.
        value: String,
        /// humantime's words.
        why: String,
    },
    /// A zero duration.
    #[error("duration must be longer than zero")]
    ZeroDuration,
    /// `max_session_age` on a rule whose action is not `allow`.
    #[error("only an allow rule can set max_session_age; this rule's action is {0}")]
    SessionAgeWithoutAllow(Action),
    /// Two rules of one app with the same name.
    #[error("duplicate rule name {0:?}")]
    DuplicateRule(String),
    /// A rule named like the default action.
    #[error("the rule name {0:?} is reserved for the default action")]
    ReservedName(String),
}

impl Problem {
    /// The static label used in logs.
    pub fn reason(&self) -> &'static str {
        match self {
            Problem::Missing => "missing",
            Problem::EmptyList => "empty_list",
            Problem::EmptyValue => "empty_value",
            Problem::UnknownName(e) => e.reason(),
            Problem::UnknownTrust(_) => "unknown_trust",
            Problem::UnknownAction(_) => "unknown_action",
            Problem::UnknownZone(_) => "unknown_zone",
            Problem::InvalidNetwork(_) => "invalid_network",
            Problem::HostBitsSet { .. } => "host_bits_set",
            Problem::InvalidDuration { .. } => "invalid_duration",
            Problem::ZeroDuration => "zero_duration",
            Problem::SessionAgeWithoutAllow(_) => "session_age_without_allow",
            Problem::DuplicateRule(_) => "duplicate_rule",
            Problem::ReservedName(_) => "reserved_name",
        }
    }

    fn at(self, path: impl Into<String>) -> ConfigError {
        ConfigError {
            path: path.into(),
            problem: self,
        }
    }
}

impl TryFrom<&RawZones> for Zones {
    type Error = ConfigError;

    fn try_from(raw: &RawZones) -> Result<Self, Self::Error> {
        let mut by_name = BTreeMap::new();
        for (name, nets) in raw {
            let path = format!("zones.{}", toml_key(name));
            if name.is_empty() {
                return Err(Problem::EmptyValue.at(path));
            }
            if nets.is_empty() {
                return Err(Problem::EmptyList.at(path));
            }
            let nets = nets
                .iter()
                .enumerate()
                .map(|(i, net)| parse_network(net).map_err(|p| p.at(format!("{path}[{i}]"))))
                .collect::<Result<Arc<[IpNet]>, _>>()?;
            let zone = Zone {
                name: Arc::from(name.as_str()),
                nets,
            };
            by_name.insert(name.clone(), zone);
        }
        Ok(Zones { by_name })
    }
}

/// A key as TOML writes it in a dotted path: bare when it can be.
fn toml_key(name: &str) -> String {
    let bare = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if bare {
        name.to_owned()
    } else {
        format!("{name:?}")
    }
}

fn parse_network(s: &str) -> Result<IpNet, Problem> {
    if let Ok(ip) = s.parse::<std::net::IpAddr>() {
        return Ok(IpNet::from(ip));
    }
    let net = s
        .parse::<IpNet>()
        .map_err(|_| Problem::InvalidNetwork(s.to_owned()))?;
    if net.trunc() != net {
        return Err(Problem::HostBitsSet {
            given: s.to_owned(),
            suggested: net.trunc().to_string(),
        });
    }
    Ok(net)
}

/// What a [`Policy`] is built from: the app's key path (such as
/// `apps.mail`), its raw policy and the typed zones it may name.
#[derive(Debug, Clone, Copy)]
pub struct PolicySource<'a> {
    /// The app's key path, the prefix of every error path.
    pub path: &'a str,
    /// The app's policy as written.
    pub raw: &'a RawPolicy,
    /// Every zone defined under `[zones]`.
    pub zones: &'a Zones,
}

impl TryFrom<PolicySource<'_>> for Policy {
    type Error = ConfigError;

    fn try_from(src: PolicySource<'_>) -> Result<Self, Self::Error> {
        let default_action = match &src.raw.default_action {
            None => DEFAULT_ACTION,
            Some(a) => parse_action(a).map_err(|p| p.at(format!("{}.default_action", src.path)))?,
        };
        let mut rules: Vec<Rule> = Vec::with_capacity(src.raw.rules.len());
        for (i, raw) in src.raw.rules.iter().enumerate() {
            let path = format!("{}.rules[{i}]", src.path);
            let rule = build_rule(&path, raw, src.zones)?;
            if rules.iter().any(|r| r.name == rule.name) {
                return Err(
                    Problem::DuplicateRule(rule.name.to_string()).at(format!("{path}.name"))
                );
            }
            rules.push(rule);
        }
        Ok(Policy::new(src.path.to_owned(), rules, default_action))
    }
}

fn build_rule(path: &str, raw: &RawRule, zones: &Zones) -> Result<Rule, ConfigError> {
    let name = match raw.name.as_deref() {
        None => return Err(Problem::Missing.at(format!("{path}.name"))),
        Some("") => return Err(Problem::EmptyValue.at(format!("{path}.name"))),
        Some(n) if n.eq_ignore_ascii_case(DEFAULT_RULE) => {
            return Err(Problem::ReservedName(n.to_owned()).at(format!("{path}.name")))
        }
        Some(n) => Arc::<str>::from(n),
    };
    let platforms = set_of(path, "platforms", raw.platforms.as_deref())?;
    let kinds = set_of(path, "client_kinds", raw.client_kinds.as_deref())?;
    let trust = match raw.trust.as_deref() {
        None | Some("any") => TrustCondition::Any,
        Some("trusted") => TrustCondition::Trusted,
        Some("not_trusted") => TrustCondition::NotTrusted,
        Some(other) => {
            return Err(Problem::UnknownTrust(other.to_owned()).at(format!("{path}.trust")))
        }
    };
    let groups = match raw.groups.as_deref() {
        None => None,
        Some([]) => return Err(Problem::EmptyList.at(format!("{path}.groups"))),
        Some(groups) => {
            if let Some(i) = groups.iter().position(|g| g.is_empty()) {
                return Err(Problem::EmptyValue.at(format!("{path}.groups[{i}]")));
            }
            Some(groups.to_vec().into_boxed_slice())
        }
    };
    let zones = match raw.zones.as_deref() {
        None => None,
        Some([]) => return Err(Problem::EmptyList.at(format!("{path}.zones"))),
        Some(names) => Some(
            names
                .iter()
                .enumerate()
                .map(|(i, n)| {
                    zones.get(n).cloned().ok_or_else(|| {
                        Problem::UnknownZone(n.clone()).at(format!("{path}.zones[{i}]"))
                    })
                })
                .collect::<Result<Box<[Zone]>, _>>()?,
        ),
    };
    let action = match raw.action.as_deref() {
        None => return Err(Problem::Missing.at(format!("{path}.action"))),
        Some(a) => parse_action(a).map_err(|p| p.at(format!("{path}.action")))?,
    };
    let max_session_age = match raw.max_session_age.as_deref() {
        None => None,
        Some(s) => {
            let at = format!("{path}.max_session_age");
            if action != Action::Allow {
                return Err(Problem::SessionAgeWithoutAllow(action).at(at));
            }
            let age = humantime::parse_duration(s).map_err(|e| {
                Problem::InvalidDuration {
                    value: s.to_owned(),
                    why: e.to_string(),
                }
                .at(&at)
            })?;
            if age == Duration::ZERO {
                return Err(Problem::ZeroDuration.at(at));
            }
            Some(age)
        }
    };
    Ok(Rule {
        name,
        platforms,
        kinds,
        trust,
        groups,
        zones,
        action,
        max_session_age,
    })
}

/// A set from a list of names; a set of every value is no condition.
fn set_of<T>(path: &str, key: &str, names: Option<&[String]>) -> Result<Option<Set<T>>, ConfigError>
where
    T: super::Member + std::str::FromStr<Err = UnknownName>,
{
    let Some(names) = names else {
        return Ok(None);
    };
    if names.is_empty() {
        return Err(Problem::EmptyList.at(format!("{path}.{key}")));
    }
    let mut set = Set::empty();
    for (i, name) in names.iter().enumerate() {
        let value = name
            .parse::<T>()
            .map_err(|e| Problem::from(e).at(format!("{path}.{key}[{i}]")))?;
        set.insert(value);
    }
    Ok((!set.is_full()).then_some(set))
}

fn parse_action(s: &str) -> Result<Action, Problem> {
    Action::ALL
        .into_iter()
        .find(|a| a.as_str() == s)
        .ok_or_else(|| Problem::UnknownAction(s.to_owned()))
}
