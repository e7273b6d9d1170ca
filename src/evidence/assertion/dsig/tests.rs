//! Unit tests for the signature algorithm whitelist and key fit.

use super::{digest_method, signature_method, verify_alg, Hash, SigAlg};
use crate::evidence::assertion::KeyKind;

#[test]
fn sha1_digest_needs_the_legacy_flag() {
    let uri = "http://www.w3.org/2000/09/xmldsig#sha1";
    assert_eq!(
        digest_method(uri, false).unwrap_err().reason(),
        "weak_algorithm"
    );
    assert_eq!(digest_method(uri, true).unwrap(), Hash::Sha1);
}

#[test]
fn hmac_is_never_a_signature_method() {
    for uri in [
        "http://www.w3.org/2000/09/xmldsig#hmac-sha1",
        "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256",
        "http://www.w3.org/2001/04/xmldsig-more#hmac-sha512",
    ] {
        for legacy in [false, true] {
            assert_eq!(
                signature_method(uri, legacy).unwrap_err().reason(),
                "weak_algorithm"
            );
        }
    }
}

#[test]
fn dsa_and_ecdsa_sha1_are_refused() {
    for uri in [
        "http://www.w3.org/2000/09/xmldsig#dsa-sha1",
        "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha1",
        "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512",
    ] {
        assert_eq!(
            signature_method(uri, true).unwrap_err().reason(),
            "weak_algorithm"
        );
    }
}

#[test]
fn keys_only_fit_their_algorithm() {
    assert!(verify_alg(SigAlg::Ecdsa(Hash::Sha256), KeyKind::EcP256, false).is_some());
    assert!(verify_alg(SigAlg::Ecdsa(Hash::Sha384), KeyKind::EcP256, false).is_none());
    assert!(verify_alg(SigAlg::Ecdsa(Hash::Sha256), KeyKind::Rsa(2048), false).is_none());
    assert!(verify_alg(SigAlg::Rsa(Hash::Sha256), KeyKind::EcP384, false).is_none());
    // 1024-bit RSA keys are legacy: only with the flag.
    assert!(verify_alg(SigAlg::Rsa(Hash::Sha256), KeyKind::Rsa(1024), false).is_none());
    assert!(verify_alg(SigAlg::Rsa(Hash::Sha256), KeyKind::Rsa(1024), true).is_some());
}
