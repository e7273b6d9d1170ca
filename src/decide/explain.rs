//! `explain`: the same decision as [`Policy::decide`], with every rule that
//! was considered and, in plain words, why it matched or not. Printing it is
//! left to the CLI (`Display` for people, serde for `--json`).

use std::fmt::{self, Write as _};

use serde::Serialize;

use super::{Action, Facts, Member, Policy, Rule, Set, TrustCondition, DEFAULT_RULE};
use crate::classify::{ClientKind, Platform};
use crate::evidence::DeviceTrust;

/// The decision for a set of facts and how it was reached; serializes to the
/// JSON that `trustgate explain --json` prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Explanation {
    /// The client's platform.
    pub platform: Platform,
    /// The client's kind.
    pub client_kind: ClientKind,
    /// The device trust the decision used.
    pub trust: DeviceTrust,
    /// The matching rule's name, or `default`.
    pub rule: String,
    /// What to do.
    pub action: Action,
    /// The rules in the order they were tried, up to the first match, then
    /// `default` if no rule matched.
    pub considered: Vec<Considered>,
}

/// One rule that was tried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Considered {
    /// The rule's name, or `default`.
    pub rule: String,
    /// Whether it matched.
    pub matched: bool,
    /// Why, in plain words.
    pub why: String,
}

impl Policy {
    /// Explains the decision for `facts`: its rule and action are always
    /// those of [`Policy::decide`]. Allocates; meant for the CLI and tests.
    pub fn explain(&self, facts: &Facts<'_>) -> Explanation {
        let decision = self.decide(facts);
        let mut considered = Vec::new();
        let mut matched = false;
        for rule in &self.rules {
            let (ok, why) = reasons(rule, facts);
            considered.push(Considered {
                rule: rule.name.to_string(),
                matched: ok,
                why,
            });
            if ok {
                matched = true;
                break;
            }
        }
        if !matched {
            let why = if self.rules.is_empty() {
                format!(
                    "there are no rules; the default action is {}",
                    self.default_action
                )
            } else {
                format!(
                    "no rule matched; the default action is {}",
                    self.default_action
                )
            };
            considered.push(Considered {
                rule: DEFAULT_RULE.to_owned(),
                matched: true,
                why,
            });
        }
        Explanation {
            platform: facts.client.platform,
            client_kind: facts.client.kind,
            trust: facts.trust,
            rule: decision.rule.to_string(),
            action: decision.action,
            considered,
        }
    }
}

/// Whether `rule` matches, and why: every condition it met when it matches,
/// every condition it missed when it does not.
fn reasons(rule: &Rule, facts: &Facts<'_>) -> (bool, String) {
    let mut met = Vec::new();
    let mut missed = Vec::new();
    let mut note = |ok: bool, words: String| {
        if ok {
            met.push(words)
        } else {
            missed.push(words)
        }
    };

    if let Some(set) = rule.platforms {
        let p = facts.client.platform;
        let ok = set.contains(p);
        note(
            ok,
            format!("platform {p} is {}one of {}", not(ok), list(set)),
        );
    }
    if let Some(set) = rule.kinds {
        let k = facts.client.kind;
        let ok = set.contains(k);
        note(
            ok,
            format!("client kind {k} is {}one of {}", not(ok), list(set)),
        );
    }
    if rule.trust != TrustCondition::Any {
        let ok = rule.trust.admits(facts.trust);
        let device = match facts.trust {
            DeviceTrust::Trusted => "device is trusted",
            DeviceTrust::NotTrusted => "device is not trusted",
            DeviceTrust::Unknown => "device trust is unknown, which counts as not trusted",
        };
        let wants = match rule.trust {
            TrustCondition::Trusted => "trusted",
            _ => "not trusted",
        };
        if ok {
            note(true, device.to_owned());
        } else {
            note(false, format!("{device}; the rule wants {wants}"));
        }
    }
    if let Some(wanted) = rule.groups.as_deref() {
        match facts.groups.iter().find(|g| wanted.contains(g)) {
            Some(g) => note(true, format!("user is in group {g:?}")),
            None => note(
                false,
                format!("user is in none of the groups {}", quoted(wanted)),
            ),
        }
    }
    if let Some(zones) = rule.zones.as_deref() {
        let ip = facts.ip;
        match zones.iter().find(|z| z.contains(ip)) {
            Some(z) => note(true, format!("address {ip} is in zone {:?}", z.name())),
            None => {
                let names: Vec<&str> = zones.iter().map(|z| z.name()).collect();
                note(
                    false,
                    format!("address {ip} is in none of the zones {}", quoted(&names)),
                );
            }
        }
    }

    if !missed.is_empty() {
        return (false, missed.join("; "));
    }
    let mut why = if met.is_empty() {
        "no conditions: matches every request".to_owned()
    } else {
        met.join("; ")
    };
    if let Some(age) = rule.max_session_age {
        let _ = write!(
            why,
            "; sessions last at most {}",
            humantime::format_duration(age)
        );
    }
    (true, why)
}

fn not(ok: bool) -> &'static str {
    if ok {
        ""
    } else {
        "not "
    }
}

fn list<T: Member + fmt::Display>(set: Set<T>) -> String {
    set.iter()
        .map(|v| v.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn quoted<S: AsRef<str>>(names: &[S]) -> String {
    names
        .iter()
        .map(|n| format!("{:?}", n.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for Explanation {
    /// The human form `trustgate explain` prints without `--json`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "platform:    {}", self.platform)?;
        writeln!(f, "client kind: {}", self.client_kind)?;
        writeln!(f, "trust:       {}", self.trust.as_str())?;
        writeln!(f, "rules:")?;
        for c in &self.considered {
            let mark = if c.matched { "match" } else { "no" };
            writeln!(f, "  {:<5} {:?}: {}", mark, c.rule, c.why)?;
        }
        write!(f, "action:      {} (rule {:?})", self.action, self.rule)
    }
}
