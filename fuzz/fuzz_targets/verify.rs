//! Fuzzes decode + parse + verify: arbitrary bytes as a form body and as an
//! XML document, against a verifier pinned to the independent fixtures' keys.
#![no_main]

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use libfuzzer_sys::fuzz_target;
use trustgate::evidence::assertion::{PinnedKey, Verifier, VerifierConfig};

fn verifier() -> &'static Verifier {
    static V: OnceLock<Verifier> = OnceLock::new();
    V.get_or_init(|| {
        let mut keys = Vec::new();
        for pem in [
            &include_bytes!("../../tests/fixtures/independent/certs/okta_rsa2048.pem")[..],
            &include_bytes!("../../tests/fixtures/independent/certs/okta_ec_secp256r1.pem")[..],
            &include_bytes!("../../tests/fixtures/independent/certs/adfs_rsa2048.pem")[..],
        ] {
            keys.extend(PinnedKey::from_pem(pem).expect("fixture cert"));
        }
        Verifier::new(VerifierConfig {
            keys,
            allow_sha1: true,
            audience: Some("https://gateway.corp.example/saml/metadata".into()),
            acs_url: Some("https://gateway.corp.example/saml/acs".into()),
            replay_capacity: 0,
            ..VerifierConfig::default()
        })
    })
}

fuzz_target!(|data: &[u8]| {
    // 2026-01-01T00:01:00Z, inside the fixtures' validity windows.
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_660);
    let v = verifier();
    let _ = v.verify_document(data, now);
    let _ = v.verify_post(data, now);
});
