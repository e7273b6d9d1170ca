//! Policy tests: config errors by key path, each condition and action,
//! first-match order, the default action, explanations, lints, the client
//! address behind proxies and host comparison.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use http::{HeaderMap, HeaderValue};
use proptest::prelude::*;
use serde::Deserialize;

use super::*;
use crate::classify::{Client, ClientKind, Platform};
use crate::evidence::DeviceTrust;

/// A config file shaped like trustgate's: `[zones]` and `[apps.<name>]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    zones: RawZones,
    apps: BTreeMap<String, RawPolicy>,
}

fn build(toml_text: &str) -> Result<Policy, ConfigError> {
    let file: File = toml::from_str(toml_text).expect("test TOML parses");
    let zones = Zones::try_from(&file.zones)?;
    let raw = &file.apps["mail"];
    Policy::try_from(PolicySource {
        path: "apps.mail",
        raw,
        zones: &zones,
    })
}

fn policy(toml_text: &str) -> Policy {
    build(toml_text).unwrap_or_else(|e| panic!("policy builds: {e}"))
}

fn error(toml_text: &str) -> String {
    build(toml_text).expect_err("config is refused").to_string()
}

const NO_GROUPS: &[String] = &[];

fn facts(platform: Platform, kind: ClientKind, trust: DeviceTrust) -> Facts<'static> {
    Facts {
        client: Client { platform, kind },
        trust,
        groups: NO_GROUPS,
        ip: IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7)),
    }
}

fn iphone(trust: DeviceTrust) -> Facts<'static> {
    facts(Platform::Ios, ClientKind::Browser, trust)
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Okta's usual shape: trusted mobile allowed, untrusted mobile enrolled,
/// macOS (and so iPadOS desktop mode) needs trust too, desktops allowed.
const TYPICAL: &str = r#"
    [zones]
    corp = ["10.0.0.0/8", "2001:db8::/32"]

    [apps.mail]
    default_action = "deny"

    [[apps.mail.rules]]
    name = "trusted mobile"
    platforms = ["ios", "ipados", "android"]
    trust = "trusted"
    action = "allow"
    max_session_age = "8h"

    [[apps.mail.rules]]
    name = "untrusted mobile"
    platforms = ["ios", "ipados", "android"]
    trust = "not_trusted"
    action = "enroll"

    [[apps.mail.rules]]
    name = "trusted mac"
    platforms = ["macos"]
    trust = "trusted"
    action = "allow"

    [[apps.mail.rules]]
    name = "untrusted mac"
    platforms = ["macos"]
    action = "deny"

    [[apps.mail.rules]]
    name = "desktops on the corp network"
    platforms = ["windows", "linux", "chromeos"]
    zones = ["corp"]
    action = "allow"
"#;

// ---- config -----------------------------------------------------------

/// The TOML example in `config.rs`'s docs, in this file's shape
/// (`[apps.mail]` is the policy). `config/tests.rs` loads the same example,
/// as written, through the real loader.
fn documented_example() -> String {
    documented_example_as_written().replace("apps.mail.policy", "apps.mail")
}

/// The example as `config.rs` writes it.
pub(crate) fn documented_example_as_written() -> String {
    let src = include_str!("config.rs");
    let start = src.find("//! ```toml\n").expect("example starts") + "//! ```toml\n".len();
    let end = start + src[start..].find("//! ```\n").expect("example ends");
    src[start..end]
        .lines()
        .map(|l| {
            l.strip_prefix("//!")
                .unwrap_or(l)
                .strip_prefix(' ')
                .unwrap_or("")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn documented_example_builds_and_decides() {
    let p = policy(&documented_example());
    assert_eq!(p.rules().len(), 4);
    assert_eq!(p.lints(false), []);
    let d = p.decide(&iphone(DeviceTrust::Unknown));
    assert_eq!((d.action, &*d.rule), (Action::Enroll, "untrusted mobile"));
    let staff = vec!["staff".to_owned()];
    let f = Facts {
        groups: &staff,
        ip: ip("2001:db8::9"),
        ..facts(Platform::Windows, ClientKind::Browser, DeviceTrust::Unknown)
    };
    let d = p.decide(&f);
    assert_eq!(
        (d.action, &*d.rule),
        (Action::Allow, "staff browsers on the corp network")
    );
    let d = p.decide(&facts(
        Platform::Macos,
        ClientKind::Browser,
        DeviceTrust::NotTrusted,
    ));
    assert_eq!((d.action, &*d.rule), (Action::Deny, "default"));
}

#[test]
fn typical_policy_builds_in_order() {
    let p = policy(TYPICAL);
    let names: Vec<&str> = p.rules().iter().map(|r| r.name()).collect();
    assert_eq!(
        names,
        [
            "trusted mobile",
            "untrusted mobile",
            "trusted mac",
            "untrusted mac",
            "desktops on the corp network"
        ]
    );
    assert_eq!(p.default_action(), Action::Deny);
    assert_eq!(p.path(), "apps.mail");
    assert_eq!(
        p.rules()[0].max_session_age(),
        Some(Duration::from_secs(8 * 3600))
    );
    assert_eq!(p.rules()[1].action(), Action::Enroll);
}

#[test]
fn default_action_is_deny_when_absent() {
    let p = policy("[apps.mail]\n");
    assert_eq!(p.default_action(), Action::Deny);
    assert!(p.rules().is_empty());
}

#[test]
fn unknown_platform_names_its_key_path() {
    let err = error(
        r#"
        [apps.mail]
        [[apps.mail.rules]]
        name = "a"
        action = "allow"
        [[apps.mail.rules]]
        name = "b"
        action = "allow"
        [[apps.mail.rules]]
        name = "c"
        platforms = ["iphone"]
        action = "deny"
        "#,
    );
    assert!(
        err.starts_with(r#"apps.mail.rules[2].platforms[0]: unknown platform "iphone""#),
        "{err}"
    );
}

/// One rule with the given extra keys, for error tests.
fn one_rule(extra: &str) -> String {
    format!("[zones]\ncorp = [\"10.0.0.0/8\"]\n[apps.mail]\n[[apps.mail.rules]]\n{extra}\n")
}

#[test]
fn each_bad_value_is_refused_with_its_key_path_and_reason() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "name = \"r\"\nclient_kinds = [\"browser\", \"app\"]\naction = \"allow\"",
            "apps.mail.rules[0].client_kinds[1]: unknown client kind \"app\" (expected browser, webview or native)",
            "unknown_client_kind",
        ),
        (
            "name = \"r\"\ntrust = \"yes\"\naction = \"allow\"",
            "apps.mail.rules[0].trust: unknown trust \"yes\" (expected trusted, not_trusted or any)",
            "unknown_trust",
        ),
        (
            "name = \"r\"\naction = \"permit\"",
            "apps.mail.rules[0].action: unknown action \"permit\" (expected allow, deny or enroll)",
            "unknown_action",
        ),
        (
            "name = \"r\"\nzones = [\"corp\", \"vpn\"]\naction = \"allow\"",
            "apps.mail.rules[0].zones[1]: unknown zone \"vpn\"",
            "unknown_zone",
        ),
        ("action = \"allow\"", "apps.mail.rules[0].name: missing", "missing"),
        ("name = \"\"\naction = \"allow\"", "apps.mail.rules[0].name: empty value", "empty_value"),
        ("name = \"r\"", "apps.mail.rules[0].action: missing", "missing"),
        (
            "name = \"Default\"\naction = \"allow\"",
            "apps.mail.rules[0].name: the rule name \"Default\" is reserved for the default action",
            "reserved_name",
        ),
        (
            "name = \"r\"\nplatforms = []\naction = \"allow\"",
            "apps.mail.rules[0].platforms: empty list; leave the key out to match anything",
            "empty_list",
        ),
        (
            "name = \"r\"\ngroups = []\naction = \"allow\"",
            "apps.mail.rules[0].groups: empty list; leave the key out to match anything",
            "empty_list",
        ),
        (
            "name = \"r\"\ngroups = [\"staff\", \"\"]\naction = \"allow\"",
            "apps.mail.rules[0].groups[1]: empty value",
            "empty_value",
        ),
        (
            "name = \"r\"\naction = \"deny\"\nmax_session_age = \"8h\"",
            "apps.mail.rules[0].max_session_age: only an allow rule can set max_session_age; this rule's action is deny",
            "session_age_without_allow",
        ),
        (
            "name = \"r\"\naction = \"allow\"\nmax_session_age = \"0s\"",
            "apps.mail.rules[0].max_session_age: duration must be longer than zero",
            "zero_duration",
        ),
    ];
    for (rule, want, reason) in cases {
        let e = build(&one_rule(rule)).expect_err(rule);
        assert_eq!(e.to_string(), *want);
        assert_eq!(e.reason(), *reason, "{want}");
    }
}

#[test]
fn invalid_duration_quotes_value_and_cause() {
    let err = error(&one_rule(
        "name = \"r\"\naction = \"allow\"\nmax_session_age = \"8 hourz\"",
    ));
    assert!(
        err.starts_with("apps.mail.rules[0].max_session_age: invalid duration \"8 hourz\": "),
        "{err}"
    );
}

#[test]
fn duplicate_rule_names_are_refused() {
    let err = error(
        r#"
        [apps.mail]
        [[apps.mail.rules]]
        name = "r"
        platforms = ["ios"]
        action = "allow"
        [[apps.mail.rules]]
        name = "r"
        action = "deny"
        "#,
    );
    assert_eq!(err, r#"apps.mail.rules[1].name: duplicate rule name "r""#);
}

#[test]
fn unknown_default_action_is_refused() {
    let err = error("[apps.mail]\ndefault_action = \"block\"\n");
    assert_eq!(
        err,
        r#"apps.mail.default_action: unknown action "block" (expected allow, deny or enroll)"#
    );
}

#[test]
fn bad_zones_are_refused_with_their_key_path() {
    let cases = [
        (
            "[zones]\ncorp = [\"10.0.0.0/8\", \"10.0.0/8\"]\n[apps.mail]\n",
            "zones.corp[1]: invalid network \"10.0.0/8\" (expected a CIDR such as 10.0.0.0/8, or an address)",
        ),
        (
            "[zones]\ncorp = [\"10.1.2.3/8\"]\n[apps.mail]\n",
            "zones.corp[0]: network \"10.1.2.3/8\" has host bits set; did you mean \"10.0.0.0/8\"?",
        ),
        ("[zones]\ncorp = []\n[apps.mail]\n", "zones.corp: empty list; leave the key out to match anything"),
        (
            "[zones]\n\"head office\" = [\"10.0.0.0/33\"]\n[apps.mail]\n",
            "zones.\"head office\"[0]: invalid network \"10.0.0.0/33\" (expected a CIDR such as 10.0.0.0/8, or an address)",
        ),
    ];
    for (text, want) in cases {
        assert_eq!(error(text), want);
    }
}

#[test]
fn unknown_keys_are_refused_by_serde() {
    let text = "[apps.mail]\n[[apps.mail.rules]]\nname = \"r\"\nplatform = [\"ios\"]\naction = \"allow\"\n";
    let err = toml::from_str::<File>(text)
        .err()
        .expect("unknown key refused");
    assert!(
        err.to_string().contains("unknown field `platform`"),
        "{err}"
    );
}

// ---- conditions and actions --------------------------------------------

#[test]
fn platform_condition() {
    let p = policy(&one_rule(
        "name = \"r\"\nplatforms = [\"ios\", \"android\"]\naction = \"allow\"",
    ));
    for platform in Platform::ALL {
        let want = matches!(platform, Platform::Ios | Platform::Android);
        let d = p.decide(&facts(platform, ClientKind::Browser, DeviceTrust::Trusted));
        assert_eq!(d.action == Action::Allow, want, "{platform}");
    }
}

#[test]
fn client_kind_condition() {
    let p = policy(&one_rule(
        "name = \"r\"\nclient_kinds = [\"native\", \"webview\"]\naction = \"enroll\"",
    ));
    for kind in ClientKind::ALL {
        let d = p.decide(&facts(Platform::Ios, kind, DeviceTrust::Unknown));
        let want = if kind == ClientKind::Browser {
            Action::Deny
        } else {
            Action::Enroll
        };
        assert_eq!(d.action, want, "{kind}");
    }
}

#[test]
fn trust_condition_counts_unknown_as_not_trusted() {
    let trusted = policy(&one_rule(
        "name = \"r\"\ntrust = \"trusted\"\naction = \"allow\"",
    ));
    let not_trusted = policy(&one_rule(
        "name = \"r\"\ntrust = \"not_trusted\"\naction = \"allow\"",
    ));
    let any = policy(&one_rule(
        "name = \"r\"\ntrust = \"any\"\naction = \"allow\"",
    ));
    let cases = [
        (DeviceTrust::Trusted, true, false),
        (DeviceTrust::NotTrusted, false, true),
        (DeviceTrust::Unknown, false, true),
    ];
    for (trust, t, nt) in cases {
        assert_eq!(
            trusted.decide(&iphone(trust)).action == Action::Allow,
            t,
            "{trust:?}"
        );
        assert_eq!(
            not_trusted.decide(&iphone(trust)).action == Action::Allow,
            nt,
            "{trust:?}"
        );
        assert_eq!(
            any.decide(&iphone(trust)).action,
            Action::Allow,
            "{trust:?}"
        );
    }
}

#[test]
fn groups_condition_is_any_of_and_exact() {
    let p = policy(&one_rule(
        "name = \"r\"\ngroups = [\"staff\", \"contractors\"]\naction = \"allow\"",
    ));
    let cases: &[(&[&str], Action)] = &[
        (&["everyone", "contractors"], Action::Allow),
        (&["staff"], Action::Allow),
        (&["everyone"], Action::Deny),
        (&["Staff"], Action::Deny),
        (&[], Action::Deny),
    ];
    for (groups, want) in cases {
        let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        let f = Facts {
            groups: &groups,
            ..iphone(DeviceTrust::Trusted)
        };
        assert_eq!(p.decide(&f).action, *want, "{groups:?}");
    }
}

#[test]
fn zones_condition_matches_the_client_address() {
    let text = "[zones]\ncorp = [\"10.0.0.0/8\", \"2001:db8::/32\"]\nvpn = [\"192.0.2.10\"]\n\
                [apps.mail]\n[[apps.mail.rules]]\nname = \"r\"\nzones = [\"corp\", \"vpn\"]\naction = \"allow\"\n";
    let p = policy(text);
    let cases = [
        ("10.20.30.40", Action::Allow),
        ("::ffff:10.20.30.40", Action::Allow),
        ("2001:db8::1", Action::Allow),
        ("192.0.2.10", Action::Allow),
        ("192.0.2.11", Action::Deny),
        ("11.0.0.1", Action::Deny),
        ("2001:db9::1", Action::Deny),
    ];
    for (addr, want) in cases {
        let f = Facts {
            ip: ip(addr),
            ..iphone(DeviceTrust::Trusted)
        };
        assert_eq!(p.decide(&f).action, want, "{addr}");
    }
}

#[test]
fn conditions_are_anded() {
    let text = "[zones]\ncorp = [\"10.0.0.0/8\"]\n[apps.mail]\n[[apps.mail.rules]]\nname = \"r\"\n\
                platforms = [\"ios\"]\nclient_kinds = [\"browser\"]\ntrust = \"trusted\"\n\
                groups = [\"staff\"]\nzones = [\"corp\"]\naction = \"allow\"\n";
    let p = policy(text);
    let staff = vec!["staff".to_owned()];
    let all = Facts {
        groups: &staff,
        ip: ip("10.1.1.1"),
        ..iphone(DeviceTrust::Trusted)
    };
    assert_eq!(p.decide(&all).action, Action::Allow);
    let one_off: [Facts<'_>; 5] = [
        Facts {
            client: Client {
                platform: Platform::Android,
                kind: ClientKind::Browser,
            },
            ..all
        },
        Facts {
            client: Client {
                platform: Platform::Ios,
                kind: ClientKind::Native,
            },
            ..all
        },
        Facts {
            trust: DeviceTrust::Unknown,
            ..all
        },
        Facts {
            groups: NO_GROUPS,
            ..all
        },
        Facts {
            ip: ip("192.0.2.1"),
            ..all
        },
    ];
    for f in one_off {
        assert_eq!(p.decide(&f).action, Action::Deny, "{f:?}");
    }
}

#[test]
fn each_action_and_the_session_cap() {
    let p = policy(TYPICAL);
    let d = p.decide(&iphone(DeviceTrust::Trusted));
    assert_eq!(
        d,
        Decision {
            action: Action::Allow,
            rule: "trusted mobile".into(),
            max_session_age: Some(Duration::from_secs(8 * 3600)),
            reason: "rule_matched",
        }
    );
    let d = p.decide(&iphone(DeviceTrust::NotTrusted));
    assert_eq!((d.action, &*d.rule), (Action::Enroll, "untrusted mobile"));
    assert_eq!(d.max_session_age, None);
    let d = p.decide(&facts(
        Platform::Macos,
        ClientKind::Browser,
        DeviceTrust::Unknown,
    ));
    assert_eq!((d.action, &*d.rule), (Action::Deny, "untrusted mac"));
    let d = p.decide(&facts(
        Platform::Macos,
        ClientKind::Browser,
        DeviceTrust::Trusted,
    ));
    assert_eq!(
        (d.action, &*d.rule, d.max_session_age),
        (Action::Allow, "trusted mac", None)
    );
}

#[test]
fn first_match_wins() {
    let text = "[apps.mail]\n\
                [[apps.mail.rules]]\nname = \"first\"\nplatforms = [\"ios\"]\naction = \"deny\"\n\
                [[apps.mail.rules]]\nname = \"second\"\nplatforms = [\"ios\"]\ntrust = \"trusted\"\naction = \"allow\"\n";
    let d = policy(text).decide(&iphone(DeviceTrust::Trusted));
    assert_eq!((d.action, &*d.rule), (Action::Deny, "first"));
}

#[test]
fn default_action_comes_last() {
    let p = policy(TYPICAL);
    let outside = Facts {
        ip: ip("198.51.100.1"),
        ..facts(Platform::Windows, ClientKind::Browser, DeviceTrust::Unknown)
    };
    let d = p.decide(&outside);
    assert_eq!(
        d,
        Decision {
            action: Action::Deny,
            rule: "default".into(),
            max_session_age: None,
            reason: "no_rule_matched",
        }
    );
    let allow = policy("[apps.mail]\ndefault_action = \"allow\"\n");
    assert_eq!(allow.decide(&outside).action, Action::Allow);
    let enroll = policy("[apps.mail]\ndefault_action = \"enroll\"\n");
    assert_eq!(enroll.decide(&outside).action, Action::Enroll);
}

#[test]
fn listing_every_platform_is_no_condition() {
    let text = "[apps.mail]\n[[apps.mail.rules]]\nname = \"all\"\n\
                platforms = [\"ios\", \"ipados\", \"android\", \"macos\", \"windows\", \"chromeos\", \"linux\", \"other\"]\n\
                action = \"allow\"\n";
    assert!(policy(text).rules()[0].is_catch_all());
}

// ---- explain -----------------------------------------------------------

#[test]
fn explain_json_has_the_documented_shape() {
    let p = policy(TYPICAL);
    let value = serde_json::to_value(p.explain(&iphone(DeviceTrust::Unknown))).unwrap();
    let want = serde_json::json!({
        "platform": "ios",
        "client_kind": "browser",
        "trust": "unknown",
        "rule": "untrusted mobile",
        "action": "enroll",
        "considered": [
            {
                "rule": "trusted mobile",
                "matched": false,
                "why": "device trust is unknown, which counts as not trusted; the rule wants trusted",
            },
            {
                "rule": "untrusted mobile",
                "matched": true,
                "why": "platform ios is one of ios, ipados, android; device trust is unknown, which counts as not trusted",
            },
        ],
    });
    assert_eq!(value, want);
}

#[test]
fn explain_lists_every_rule_then_the_default_when_nothing_matches() {
    let p = policy(TYPICAL);
    let staff = vec!["staff".to_owned()];
    let f = Facts {
        groups: &staff,
        ip: ip("198.51.100.1"),
        ..facts(
            Platform::Linux,
            ClientKind::Browser,
            DeviceTrust::NotTrusted,
        )
    };
    let e = p.explain(&f);
    assert_eq!((e.rule.as_str(), e.action), ("default", Action::Deny));
    let whys: Vec<(&str, bool, &str)> = e
        .considered
        .iter()
        .map(|c| (c.rule.as_str(), c.matched, c.why.as_str()))
        .collect();
    assert_eq!(
        whys,
        [
            (
                "trusted mobile",
                false,
                "platform linux is not one of ios, ipados, android; device is not trusted; the rule wants trusted"
            ),
            ("untrusted mobile", false, "platform linux is not one of ios, ipados, android"),
            (
                "trusted mac",
                false,
                "platform linux is not one of macos; device is not trusted; the rule wants trusted"
            ),
            ("untrusted mac", false, "platform linux is not one of macos"),
            (
                "desktops on the corp network",
                false,
                "address 198.51.100.1 is in none of the zones \"corp\""
            ),
            ("default", true, "no rule matched; the default action is deny"),
        ]
    );
}

#[test]
fn explain_words_for_groups_zones_kinds_and_caps() {
    let text = "[zones]\ncorp = [\"10.0.0.0/8\"]\n[apps.mail]\n[[apps.mail.rules]]\nname = \"r\"\n\
                client_kinds = [\"browser\"]\ngroups = [\"staff\", \"ops\"]\nzones = [\"corp\"]\n\
                action = \"allow\"\nmax_session_age = \"90m\"\n";
    let p = policy(text);
    let groups = vec!["everyone".to_owned(), "ops".to_owned()];
    let f = Facts {
        groups: &groups,
        ip: ip("10.9.8.7"),
        ..iphone(DeviceTrust::Trusted)
    };
    let e = p.explain(&f);
    assert_eq!(
        e.considered[0].why,
        "client kind browser is one of browser; user is in group \"ops\"; \
         address 10.9.8.7 is in zone \"corp\"; sessions last at most 1h 30m"
    );
    let f = Facts {
        client: Client {
            platform: Platform::Ios,
            kind: ClientKind::Native,
        },
        groups: NO_GROUPS,
        ..f
    };
    assert_eq!(
        p.explain(&f).considered[0].why,
        "client kind native is not one of browser; user is in none of the groups \"staff\", \"ops\""
    );
}

#[test]
fn explain_of_an_empty_policy_and_a_catch_all() {
    let e = policy("[apps.mail]\n").explain(&iphone(DeviceTrust::Trusted));
    assert_eq!(e.considered.len(), 1);
    assert_eq!(
        e.considered[0].why,
        "there are no rules; the default action is deny"
    );
    let e = policy(&one_rule("name = \"all\"\naction = \"allow\""))
        .explain(&iphone(DeviceTrust::Trusted));
    assert_eq!(e.considered[0].why, "no conditions: matches every request");
    assert_eq!(e.action, Action::Allow);
}

#[test]
fn explain_prints_for_people() {
    let text = policy(TYPICAL)
        .explain(&iphone(DeviceTrust::Trusted))
        .to_string();
    let want = "platform:    ios\n\
                client kind: browser\n\
                trust:       trusted\n\
                rules:\n  \
                match \"trusted mobile\": platform ios is one of ios, ipados, android; device is trusted; sessions last at most 8h\n\
                action:      allow (rule \"trusted mobile\")";
    assert_eq!(text, want);
}

fn any_facts() -> impl Strategy<Value = (Platform, ClientKind, DeviceTrust, Vec<String>, IpAddr)> {
    let trust = prop_oneof![
        Just(DeviceTrust::Trusted),
        Just(DeviceTrust::NotTrusted),
        Just(DeviceTrust::Unknown)
    ];
    let groups = proptest::collection::vec(
        prop_oneof![Just("staff".to_owned()), Just("ops".to_owned())],
        0..3,
    );
    let addr = prop_oneof![
        Just(ip("10.1.2.3")),
        Just(ip("198.51.100.1")),
        Just(ip("2001:db8::5"))
    ];
    (
        proptest::sample::select(Platform::ALL.to_vec()),
        proptest::sample::select(ClientKind::ALL.to_vec()),
        trust,
        groups,
        addr,
    )
}

proptest! {
    /// `explain` reaches the same rule and action as `decide`, and only the
    /// last rule it lists matched.
    #[test]
    fn explain_agrees_with_decide((platform, kind, trust, groups, addr) in any_facts()) {
        let text = format!("{TYPICAL}\n[[apps.mail.rules]]\nname = \"ops\"\ngroups = [\"ops\"]\nclient_kinds = [\"native\"]\naction = \"allow\"\n");
        let p = policy(&text);
        let f = Facts { client: Client { platform, kind }, trust, groups: &groups, ip: addr };
        let d = p.decide(&f);
        let e = p.explain(&f);
        prop_assert_eq!(&*d.rule, e.rule.as_str());
        prop_assert_eq!(d.action, e.action);
        let (last, before) = e.considered.split_last().unwrap();
        prop_assert!(last.matched);
        prop_assert_eq!(&last.rule, &e.rule);
        prop_assert!(before.iter().all(|c| !c.matched));
    }
}

// ---- lints -------------------------------------------------------------

#[test]
fn typical_policy_has_no_lints() {
    assert_eq!(policy(TYPICAL).lints(false), []);
}

#[test]
fn rule_after_a_catch_all_is_an_error() {
    let text = "[apps.mail]\n\
                [[apps.mail.rules]]\nname = \"mobile\"\nplatforms = [\"ios\"]\naction = \"allow\"\n\
                [[apps.mail.rules]]\nname = \"everyone\"\naction = \"deny\"\n\
                [[apps.mail.rules]]\nname = \"late\"\nplatforms = [\"macos\"]\naction = \"allow\"\n";
    let lints = policy(text).lints(false);
    assert_eq!(
        lints,
        [Lint {
            severity: Severity::Error,
            code: "unreachable_rule",
            path: "apps.mail.rules[2]".into(),
            message: "rule \"late\" can never match: rule \"everyone\" above it is a catch-all"
                .into(),
        }]
    );
    assert_eq!(
        lints[0].to_string(),
        "error: apps.mail.rules[2]: rule \"late\" can never match: rule \"everyone\" above it is a catch-all"
    );
}

#[test]
fn rule_shadowed_by_a_broader_rule_is_an_error() {
    let text = "[zones]\ncorp = [\"10.0.0.0/8\"]\nlab = [\"192.168.0.0/16\"]\n[apps.mail]\n\
                [[apps.mail.rules]]\nname = \"broad\"\nplatforms = [\"ios\", \"ipados\"]\ngroups = [\"staff\", \"ops\"]\nzones = [\"corp\", \"lab\"]\naction = \"deny\"\n\
                [[apps.mail.rules]]\nname = \"narrow\"\nplatforms = [\"ios\"]\ntrust = \"trusted\"\nclient_kinds = [\"browser\"]\ngroups = [\"ops\"]\nzones = [\"lab\"]\naction = \"allow\"\n";
    let lints: Vec<Lint> = policy(text)
        .lints(false)
        .into_iter()
        .filter(|l| l.severity == Severity::Error)
        .collect();
    assert_eq!(lints.len(), 1, "{lints:?}");
    assert_eq!(
        (lints[0].code, lints[0].path.as_str()),
        ("unreachable_rule", "apps.mail.rules[1]")
    );
    assert_eq!(
        lints[0].message,
        "rule \"narrow\" can never match: rule \"broad\" above it matches every request it would"
    );
}

#[test]
fn a_narrower_rule_above_does_not_shadow() {
    // Each pair differs in one condition where the earlier rule is narrower
    // or disjoint, so the later rule can still match.
    let pairs = [
        (
            "platforms = [\"ios\"]",
            "platforms = [\"ios\", \"android\"]",
        ),
        ("trust = \"trusted\"", "trust = \"any\""),
        ("trust = \"trusted\"", "trust = \"not_trusted\""),
        ("groups = [\"staff\"]", "groups = [\"staff\", \"ops\"]"),
        ("groups = [\"staff\"]", ""),
        ("zones = [\"corp\"]", "zones = [\"corp\", \"lab\"]"),
        (
            "client_kinds = [\"browser\"]",
            "client_kinds = [\"native\"]",
        ),
    ];
    for (earlier, later) in pairs {
        let text = format!(
            "[zones]\ncorp = [\"10.0.0.0/8\"]\nlab = [\"192.168.0.0/16\"]\n[apps.mail]\n\
             [[apps.mail.rules]]\nname = \"a\"\n{earlier}\naction = \"deny\"\n\
             [[apps.mail.rules]]\nname = \"b\"\n{later}\naction = \"allow\"\n"
        );
        assert_eq!(policy(&text).lints(false), [], "{earlier} / {later}");
    }
}

#[test]
fn mobile_trust_rules_without_a_macos_rule_warn() {
    let text = "[apps.mail]\n\
                [[apps.mail.rules]]\nname = \"trusted ios\"\nplatforms = [\"ios\", \"ipados\"]\ntrust = \"trusted\"\naction = \"allow\"\n\
                [[apps.mail.rules]]\nname = \"untrusted ios\"\nplatforms = [\"ios\", \"ipados\"]\naction = \"enroll\"\n\
                [[apps.mail.rules]]\nname = \"everyone else\"\naction = \"allow\"\n";
    let lints = policy(text).lints(false);
    assert_eq!(lints.len(), 1, "{lints:?}");
    assert_eq!(lints[0].severity, Severity::Warning);
    assert_eq!(lints[0].code, "ipados_desktop_mode");
    assert_eq!(lints[0].path, "apps.mail.rules[0]");
    assert!(
        lints[0].message.contains("iPadOS Safari in desktop mode"),
        "{}",
        lints[0].message
    );

    // Naming macos in any rule answers it.
    let fixed = text.replace(
        "name = \"everyone else\"",
        "name = \"mac\"\nplatforms = [\"macos\"]\ntrust = \"trusted\"\naction = \"allow\"\n\
         [[apps.mail.rules]]\nname = \"everyone else\"",
    );
    assert_eq!(policy(&fixed).lints(false), []);
}

#[test]
fn mobile_rules_without_trust_do_not_warn_about_macos() {
    let text = "[apps.mail]\n[[apps.mail.rules]]\nname = \"mobile\"\nplatforms = [\"android\"]\naction = \"enroll\"\n";
    assert_eq!(policy(text).lints(false), []);
}

#[test]
fn android_rules_on_google_workspace_warn() {
    let p = policy(TYPICAL);
    let lints = p.lints(true);
    let found: Vec<(Severity, &str, &str)> = lints
        .iter()
        .map(|l| (l.severity, l.code, l.path.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            (
                Severity::Warning,
                "google_workspace_android",
                "apps.mail.rules[0]"
            ),
            (
                Severity::Warning,
                "google_workspace_android",
                "apps.mail.rules[1]"
            ),
        ]
    );
    assert!(lints[0]
        .message
        .contains("not recognise as managed on Android"));
    assert_eq!(p.lints(false), []);
}

#[test]
fn errors_come_before_warnings() {
    let text = "[apps.mail]\n\
                [[apps.mail.rules]]\nname = \"android\"\nplatforms = [\"android\"]\ntrust = \"trusted\"\naction = \"allow\"\n\
                [[apps.mail.rules]]\nname = \"all\"\naction = \"deny\"\n\
                [[apps.mail.rules]]\nname = \"dead\"\naction = \"allow\"\n";
    let codes: Vec<&str> = policy(text).lints(true).iter().map(|l| l.code).collect();
    assert_eq!(
        codes,
        [
            "unreachable_rule",
            "ipados_desktop_mode",
            "google_workspace_android"
        ]
    );
}

// ---- client address ----------------------------------------------------

#[test]
fn client_ip_counts_trusted_hops_from_the_right() {
    let peer = ip("10.0.0.2");
    let xff = HeaderValue::from_static("6.6.6.6, 203.0.113.9, 10.0.0.1");
    let cases = [
        (0, "10.0.0.2"),
        (1, "10.0.0.1"),
        (2, "203.0.113.9"),
        (3, "6.6.6.6"),
        // Fewer entries than hops: the outermost proxy passed saw the client.
        (4, "6.6.6.6"),
    ];
    for (hops, want) in cases {
        assert_eq!(client_ip(peer, Some(&xff), hops), ip(want), "hops {hops}");
    }
}

#[test]
fn client_ip_falls_back_to_the_peer() {
    let peer = ip("192.0.2.1");
    assert_eq!(client_ip(peer, None, 2), peer);
    let garbage = HeaderValue::from_static("6.6.6.6, unknown");
    assert_eq!(client_ip(peer, Some(&garbage), 1), peer);
    let empty = HeaderValue::from_static("");
    assert_eq!(client_ip(peer, Some(&empty), 1), peer);
    let opaque = HeaderValue::from_bytes(b"1.2.3.4, \xff").unwrap();
    assert_eq!(client_ip(peer, Some(&opaque), 1), peer);
}

#[test]
fn client_ip_reads_ports_brackets_and_mapped_addresses() {
    let peer = ip("192.0.2.1");
    let cases = [
        ("203.0.113.9:54321", "203.0.113.9"),
        ("[2001:db8::7]:443", "2001:db8::7"),
        ("[2001:db8::7]", "2001:db8::7"),
        ("2001:db8::7", "2001:db8::7"),
        ("::ffff:203.0.113.9", "203.0.113.9"),
    ];
    for (entry, want) in cases {
        let xff = HeaderValue::from_str(entry).unwrap();
        assert_eq!(client_ip(peer, Some(&xff), 1), ip(want), "{entry}");
    }
    assert_eq!(client_ip(ip("::ffff:192.0.2.1"), None, 0), peer);
}

#[test]
fn client_ip_from_headers_reads_every_line_in_order() {
    let mut headers = HeaderMap::new();
    headers.append(
        "x-forwarded-for",
        HeaderValue::from_static("6.6.6.6, 203.0.113.9"),
    );
    headers.append("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
    let peer = ip("10.0.0.2");
    assert_eq!(client_ip_from_headers(peer, &headers, 1), ip("10.0.0.1"));
    assert_eq!(client_ip_from_headers(peer, &headers, 2), ip("203.0.113.9"));
    assert_eq!(client_ip_from_headers(peer, &headers, 3), ip("6.6.6.6"));
    assert_eq!(client_ip_from_headers(peer, &HeaderMap::new(), 1), peer);
}

proptest! {
    #[test]
    fn client_ip_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200), hops in 0usize..6) {
        if let Ok(xff) = HeaderValue::from_bytes(&bytes) {
            let _ = client_ip(ip("192.0.2.1"), Some(&xff), hops);
        }
    }
}

// ---- hosts -------------------------------------------------------------

#[test]
fn host_matches_ignores_scheme_port_path_case_and_trailing_dot() {
    let enroll = "https://uem.example.com/enroll/welcome";
    for same in [
        "uem.example.com",
        "UEM.example.com.",
        "uem.example.com:8443",
        "https://uem.example.com",
        "http://admin@uem.example.com:80/x?y#z",
        "//uem.example.com/",
    ] {
        assert!(host_matches(same, enroll), "{same}");
    }
    for other in [
        "example.com",
        "uem.example.com.evil.test",
        "https://evil.test/uem.example.com",
        "https://uem.example.com@evil.test/",
        "",
        "https://",
    ] {
        assert!(!host_matches(other, enroll), "{other}");
    }
    assert!(host_matches(
        "[2001:db8::1]:443",
        "https://[2001:db8::1]/enroll"
    ));
    assert!(host_matches("getws1.com", "https://getws1.com"));
    assert!(!host_matches("getws1.com", "not a url"));
}

#[test]
fn policies_and_decisions_cross_threads() {
    fn send_sync<T: Send + Sync + 'static>() {}
    send_sync::<Policy>();
    send_sync::<Decision>();
    send_sync::<Zones>();
    send_sync::<Explanation>();
}
