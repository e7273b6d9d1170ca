use std::path::Path;

use super::*;

pub(crate) fn signer() -> Signer {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    Signer::from_pem(
        &std::fs::read(root.join("certs/demo-idp.key")).unwrap(),
        &std::fs::read(root.join("certs/demo-idp.pem")).unwrap(),
    )
    .unwrap()
}

pub(crate) fn grant(now: SystemTime) -> Grant<'static> {
    static ATTRS: std::sync::OnceLock<Vec<(&'static str, Vec<String>)>> =
        std::sync::OnceLock::new();
    let attrs = ATTRS.get_or_init(|| {
        vec![
            ("email", vec!["alice@corp.example".into()]),
            ("DeviceTrustSignal", vec!["TRUSTED".into()]),
            ("groups", vec!["Everyone".into(), "R&D <lab>".into()]),
        ]
    });
    Grant {
        issuer: "http://idp.demo.trustgate/",
        audience: "https://127.0.0.1:8443/saml/metadata",
        acs_url: "https://127.0.0.1:8443/saml/acs",
        name_id: "alice@corp.example",
        attributes: attrs,
        now,
        lifetime: Duration::from_secs(300),
    }
}

#[test]
fn ids_are_unique_and_ncname() {
    let s = signer();
    let (a, b) = (s.new_id(), s.new_id());
    assert_ne!(a, b);
    assert!(a.starts_with('_') && a.len() == 33);
}

#[test]
fn escaping_follows_c14n() {
    assert_eq!(text("a&b<c>d\r"), "a&amp;b&lt;c&gt;d&#xD;");
    assert_eq!(attr("\"x\"\t\n"), "&quot;x&quot;&#x9;&#xA;");
}

#[test]
fn timestamps_are_utc_millis() {
    let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_767_225_600_123);
    assert_eq!(timestamp(t), "2026-01-01T00:00:00.123Z");
}

/// xmlsec1, an independent verifier, accepts what the demo IdP signs.
#[test]
#[ignore = "needs xmlsec1"]
fn xmlsec1_verifies_the_demo_signature() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("response.xml");
    std::fs::write(&file, signer().response(&grant(SystemTime::now()))).unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new("xmlsec1")
        .arg("--verify")
        .arg("--pubkey-cert-pem")
        .arg(root.join("certs/demo-idp.pem"))
        .args([
            "--id-attr:ID",
            "urn:oasis:names:tc:SAML:2.0:assertion:Assertion",
        ])
        .arg(&file)
        .output()
        .expect("xmlsec1 runs");
    assert!(
        out.status.success(),
        "xmlsec1: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The gateway's verifier accepts what the demo IdP signs, and reads the
/// claims back.
#[test]
fn verifier_accepts_the_demo_signature() {
    use crate::evidence::assertion::{PinnedKey, Verifier, VerifierConfig};
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let keys =
        PinnedKey::from_pem(&std::fs::read(root.join("certs/demo-idp.pem")).unwrap()).unwrap();
    let now = SystemTime::now();
    let g = grant(now);
    let verifier = Verifier::new(VerifierConfig {
        keys,
        idp_entity_id: Some(g.issuer.into()),
        audience: Some(g.audience.into()),
        acs_url: Some(g.acs_url.into()),
        ..VerifierConfig::default()
    });
    let body = format!(
        "SAMLResponse={}&RelayState=%2Finbox",
        form_urlencoded::byte_serialize(signer().response_b64(&g).as_bytes()).collect::<String>()
    );
    let d = verifier.verify_post(body.as_bytes(), now).unwrap();
    assert_eq!(d.relay_state.as_deref(), Some("/inbox"));
    assert_eq!(d.assertion.name_id(), "alice@corp.example");
    assert_eq!(
        d.assertion.device_trust(),
        crate::evidence::DeviceTrust::Trusted
    );
    assert_eq!(d.assertion.groups(), ["Everyone", "R&D <lab>"]);
    // The same delivery twice is a replay.
    assert_eq!(
        verifier
            .verify_post(body.as_bytes(), now)
            .unwrap_err()
            .reason(),
        "replay"
    );
}
