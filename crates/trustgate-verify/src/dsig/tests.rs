//! Unit tests for the signature algorithm whitelist and key fit.

use super::{digest_method, signature_method, verify_alg, Hash, SigAlg};
use crate::KeyKind;

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
        "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha224",
        "http://www.w3.org/2007/05/xmldsig-more#ecdsa-sha3-256",
    ] {
        assert_eq!(
            signature_method(uri, true).unwrap_err().reason(),
            "weak_algorithm"
        );
    }
}

#[test]
fn keys_only_fit_their_algorithm() {
    // ECDSA's URI names the hash; the curve comes from the key, so every
    // curve takes every hash (Shibboleth signs ecdsa-sha256 with P-384).
    for kind in [KeyKind::EcP256, KeyKind::EcP384, KeyKind::EcP521] {
        for hash in [Hash::Sha256, Hash::Sha384, Hash::Sha512] {
            assert!(
                verify_alg(SigAlg::Ecdsa(hash), kind, false).is_some(),
                "{kind:?} {hash:?}"
            );
        }
        assert!(verify_alg(SigAlg::Ecdsa(Hash::Sha1), kind, true).is_none());
        assert!(verify_alg(SigAlg::Rsa(Hash::Sha256), kind, false).is_none());
    }
    assert!(verify_alg(SigAlg::Ecdsa(Hash::Sha256), KeyKind::Rsa(2048), false).is_none());
    assert!(verify_alg(SigAlg::Rsa(Hash::Sha256), KeyKind::EcP384, false).is_none());
    // 1024-bit RSA keys are legacy: only with the flag.
    assert!(verify_alg(SigAlg::Rsa(Hash::Sha256), KeyKind::Rsa(1024), false).is_none());
    assert!(verify_alg(SigAlg::Rsa(Hash::Sha256), KeyKind::Rsa(1024), true).is_some());
}
