//! Every manifest case of `tests/fixtures` through the library: the expected
//! verdict, and for accepts the NameID, device trust and attributes.

#[path = "utils/manifest.rs"]
mod manifest;

use std::collections::BTreeMap;
use std::time::Duration;

use trustgate::evidence::assertion::{
    PinnedKey, ProtocolSelector, TrustMapping, Verifier, VerifierConfig,
};
use trustgate::evidence::DeviceTrust;

/// A verifier pinning every cert of the case, or why one cannot be pinned.
fn verifier_for(case: &manifest::Case) -> Result<Verifier, String> {
    let mut keys = Vec::new();
    for path in case.pinned_certs() {
        let pem = std::fs::read(path).expect("cert");
        let pinned =
            PinnedKey::from_pem(&pem).map_err(|e| format!("pinning {}: {e}", path.display()))?;
        keys.extend(pinned);
    }
    let mut trust = TrustMapping::default();
    // a07/a08 carry Okta Identity Engine's DeviceManaged instead.
    trust.attributes.push("DeviceManaged".to_string());
    Ok(Verifier::new(VerifierConfig {
        protocol: match case.protocol.as_str() {
            "saml2" => ProtocolSelector::Saml2,
            "wsfed" => ProtocolSelector::WsFed,
            _ => ProtocolSelector::Auto,
        },
        keys,
        allow_sha1: case.legacy_sha1,
        audience: case.audience.clone(),
        acs_url: case.acs_url.clone(),
        skew: Duration::ZERO,
        trust,
        replay_capacity: 0,
        ..VerifierConfig::default()
    }))
}

fn expected_trust(v: &str) -> DeviceTrust {
    match v {
        "TRUSTED" | "true" => DeviceTrust::Trusted,
        "NOT_TRUSTED" | "false" => DeviceTrust::NotTrusted,
        _ => DeviceTrust::Unknown,
    }
}

/// Every case through the library; one line per case that went wrong.
fn check_cases(cases: &[manifest::Case]) -> Vec<String> {
    let mut failures = Vec::new();
    for case in cases {
        let xml = std::fs::read(&case.file).expect("fixture");
        let verifier = match verifier_for(case) {
            Ok(v) => v,
            Err(e) => {
                failures.push(format!("{}: {e}", case.label()));
                continue;
            }
        };
        let got = verifier.verify_document(&xml, case.now_time());
        match (&got, case.accept) {
            (Ok(a), true) => {
                if Some(a.name_id()) != case.name_id.as_deref() {
                    failures.push(format!("{}: name_id {:?}", case.label(), a.name_id()));
                }
                if let Some(t) = &case.device_trust {
                    if a.device_trust() != expected_trust(t) {
                        failures.push(format!(
                            "{}: device trust {:?}",
                            case.label(),
                            a.device_trust()
                        ));
                    }
                }
                if let Some(want) = &case.attributes {
                    let have: BTreeMap<String, Vec<String>> =
                        a.attributes().iter().cloned().collect();
                    if &have != want {
                        failures.push(format!("{}: attributes {:?}", case.label(), have));
                    }
                }
            }
            (Err(e), false) => {
                let allowed = manifest::allowed_reasons(case);
                if !allowed.contains(&e.reason()) {
                    failures.push(format!(
                        "{}: rejected with {} ({e}), expected one of {allowed:?}",
                        case.label(),
                        e.reason()
                    ));
                }
            }
            (Err(e), true) => {
                if case.also_safe.as_deref() == Some("reject") {
                    let allowed = manifest::allowed_reasons(case);
                    if allowed.contains(&e.reason()) {
                        continue;
                    }
                }
                failures.push(format!(
                    "{}: rejected with {} ({e})",
                    case.label(),
                    e.reason()
                ));
            }
            (Ok(a), false) => failures.push(format!(
                "{}: ACCEPTED a reject case (name_id {:?})",
                case.label(),
                a.name_id()
            )),
        }
    }
    failures
}

#[test]
fn every_manifest_case_gives_the_expected_verdict() {
    let cases = manifest::all();
    assert_eq!(cases.len(), 30 + 52, "both manifests are complete");
    let failures = check_cases(&cases);
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// ECDSA curve x hash pairs and KeyInfo hints under two pinned certs.
#[test]
fn every_ecdsa_interop_case_gives_the_expected_verdict() {
    let cases = manifest::load("ecdsa-interop");
    assert_eq!(cases.len(), 11, "the ecdsa-interop manifest is complete");
    let failures = check_cases(&cases);
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn bench_fixture_signed_by_xmlsec1_is_accepted() {
    let dir = manifest::fixtures_dir();
    let pem = std::fs::read(dir.join("independent/certs/okta_rsa2048.pem")).unwrap();
    let v = Verifier::new(VerifierConfig {
        idp_entity_id: Some("http://www.okta.com/exkJTvJmH43mEMjCjd7Y".into()),
        keys: PinnedKey::from_pem(&pem).unwrap(),
        audience: Some("https://gateway.corp.example/saml/metadata".into()),
        acs_url: Some("https://gateway.corp.example/saml/acs".into()),
        skew: Duration::ZERO,
        replay_capacity: 0,
        ..VerifierConfig::default()
    });
    let xml =
        std::fs::read(dir.join("bench/okta_10_attributes_rsa2048_sha256_xmlsec1.xml")).unwrap();
    let now = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_660);
    let a = v.verify_document(&xml, now).unwrap();
    assert_eq!(a.name_id(), "alice@corp.example");
    assert_eq!(a.device_trust(), DeviceTrust::Trusted);
    assert_eq!(a.attributes().len(), 10);
    assert_eq!(a.groups().len(), 9);
}
