//! Unit tests for the signature algorithm whitelist and key fit, and for
//! what a [`Signed`] handle lets a claim reader reach.

use std::path::PathBuf;

use super::{
    digest_method, signature_method, verify, verify_alg, Covered, Hash, Policy, SigAlg, Signed,
    DSIG_NS,
};
use crate::saml2::{SAMLP_NS, SAML_NS};
use crate::xml::{Document, NodeId};
use crate::{KeyKind, PinnedKey};

fn independent(path: &str) -> Vec<u8> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/independent");
    std::fs::read(dir.join(path)).unwrap()
}

/// The first element named `{ns}local` in document order.
fn find(doc: &Document, ns: &str, local: &str) -> NodeId {
    doc.elements().find(|n| doc.is(*n, ns, local)).unwrap()
}

/// Verifies the signature that is a child of `signed`.
fn check<'d>(doc: &'d Document<'d>, signed: NodeId, keys: &[PinnedKey]) -> Signed<'d> {
    let sig = doc
        .children_named(signed, DSIG_NS, "Signature")
        .next()
        .unwrap();
    let id = doc.attr(signed, "ID").unwrap();
    let policy = Policy {
        keys,
        allow_sha1: false,
    };
    verify(doc, signed, sig, id, policy).unwrap()
}

/// Every element a reader can reach from the covered element.
fn reachable(s: &Signed<'_>) -> Vec<NodeId> {
    let mut out = Vec::new();
    let mut todo: Vec<Covered> = vec![s.element()];
    while let Some(n) = todo.pop() {
        out.push(n.0);
        todo.extend(s.child_elements(n));
    }
    out
}

#[test]
fn an_assertion_signature_covers_the_assertion_and_nothing_else() {
    let xml = independent("a01_okta_rsa2048_sha256_assertion_signed.xml");
    let doc = Document::parse(&xml).unwrap();
    let keys = PinnedKey::from_pem(&independent("certs/okta_rsa2048.pem")).unwrap();
    let assertion = find(&doc, SAML_NS, "Assertion");
    let s = check(&doc, assertion, &keys);
    assert_eq!(s.element, assertion);
    assert_eq!(s.key(), 0);

    // The unsigned Response around it, and its Issuer and Status, are out.
    for outside in [
        doc.root,
        find(&doc, SAML_NS, "Issuer"),
        find(&doc, SAMLP_NS, "Status"),
    ] {
        assert!(!reachable(&s).contains(&outside), "{outside}");
        assert_eq!(s.cover(outside), None);
    }
    // The enveloped signature and everything in it are out as well.
    let sig = find(&doc, DSIG_NS, "Signature");
    for in_sig in [
        sig,
        find(&doc, DSIG_NS, "SignatureValue"),
        find(&doc, DSIG_NS, "X509Certificate"),
    ] {
        assert_eq!(s.cover(in_sig), None);
    }
    // What the reader reaches is exactly the assertion's elements outside
    // the signature.
    let mut got = reachable(&s);
    got.sort_unstable();
    let want: Vec<NodeId> = doc
        .elements()
        .filter(|n| {
            let mut cur = Some(*n);
            let mut inside = false;
            while let Some(c) = cur {
                if c == sig {
                    return false;
                }
                inside |= c == assertion;
                cur = doc.element(c).parent;
            }
            inside
        })
        .collect();
    assert_eq!(got, want);
    for n in &got {
        assert_eq!(s.cover(*n), Some(Covered(*n)));
    }
    let name_id = s.cover(find(&doc, SAML_NS, "NameID")).unwrap();
    assert_eq!(s.text(name_id), "alice@corp.example");
}

#[test]
fn a_response_signature_covers_the_assertion_inside_it() {
    let xml = independent("a02_rsa3072_sha384_response_signed.xml");
    let doc = Document::parse(&xml).unwrap();
    let keys = PinnedKey::from_pem(&independent("certs/okta_rsa3072.pem")).unwrap();
    let s = check(&doc, doc.root, &keys);
    let assertion = s.cover(find(&doc, SAML_NS, "Assertion")).unwrap();
    assert_eq!(
        s.children_named(s.element(), SAML_NS, "Assertion")
            .collect::<Vec<_>>(),
        [assertion]
    );
    assert!(s.cover(find(&doc, DSIG_NS, "SignedInfo")).is_none());
}

#[test]
fn covered_text_leaves_the_enveloped_signature_out() {
    let xml = independent("a01_okta_rsa2048_sha256_assertion_signed.xml");
    let doc = Document::parse(&xml).unwrap();
    let keys = PinnedKey::from_pem(&independent("certs/okta_rsa2048.pem")).unwrap();
    let assertion = find(&doc, SAML_NS, "Assertion");
    let s = check(&doc, assertion, &keys);
    let all = doc.text(assertion);
    let signed = s.text(s.element());
    let sig_text = doc.text(find(&doc, DSIG_NS, "Signature"));
    assert!(all.contains(sig_text.as_ref()) && !sig_text.trim().is_empty());
    assert_eq!(signed.len() + sig_text.len(), all.len());
    assert!(!signed.contains(doc.text(find(&doc, DSIG_NS, "SignatureValue")).as_ref()));
    assert!(signed.contains("alice@corp.example"));
}

#[test]
fn a_signature_must_be_a_child_of_what_it_signs() {
    let xml = independent("a01_okta_rsa2048_sha256_assertion_signed.xml");
    let doc = Document::parse(&xml).unwrap();
    let keys = PinnedKey::from_pem(&independent("certs/okta_rsa2048.pem")).unwrap();
    let assertion = find(&doc, SAML_NS, "Assertion");
    let sig = find(&doc, DSIG_NS, "Signature");
    let policy = Policy {
        keys: &keys,
        allow_sha1: false,
    };
    // The assertion's own signature, offered as the Response's.
    let id = doc.attr(assertion, "ID").unwrap();
    let e = verify(&doc, doc.root, sig, id, policy).unwrap_err();
    assert_eq!(e.reason(), "unexpected_structure");
    verify(&doc, assertion, sig, id, policy).unwrap();
}

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
