//! Property tests: byte-level and structural mutations of valid fixtures never
//! panic, and a mutated document is accepted only when what the signature
//! covers is untouched (same canonical signed element, same claims).

use std::time::Duration;

use proptest::prelude::*;
use proptest::sample::Index;

use super::super::c14n::{self, Options};
use super::super::xml::{Document, Node, NodeId};
use super::super::*;
use super::{fixtures, now};

struct Fixture {
    xml: String,
    cfg: VerifierConfig,
    accepted: VerifiedAssertion,
}

fn fixture(file: &str, cert: &str, audience: &str, acs: Option<&str>) -> Fixture {
    let xml = std::fs::read_to_string(fixtures().join("independent").join(file)).unwrap();
    let pem = std::fs::read(fixtures().join("independent/certs").join(cert)).unwrap();
    let cfg = VerifierConfig {
        keys: PinnedKey::from_pem(&pem).unwrap(),
        audience: Some(audience.to_string()),
        acs_url: acs.map(str::to_string),
        skew: Duration::ZERO,
        replay_capacity: 0,
        ..VerifierConfig::default()
    };
    let accepted = Verifier::new(cfg.clone())
        .verify_document(xml.as_bytes(), now())
        .expect("fixture is valid");
    Fixture { xml, cfg, accepted }
}

fn all_fixtures() -> &'static [Fixture] {
    static F: std::sync::OnceLock<Vec<Fixture>> = std::sync::OnceLock::new();
    F.get_or_init(|| {
        let aud = "https://gateway.corp.example/saml/metadata";
        let acs = Some("https://gateway.corp.example/saml/acs");
        vec![
            fixture(
                "a01_okta_rsa2048_sha256_assertion_signed.xml",
                "okta_rsa2048.pem",
                aud,
                acs,
            ),
            fixture(
                "a02_rsa3072_sha384_response_signed.xml",
                "okta_rsa3072.pem",
                aud,
                acs,
            ),
            fixture(
                "a04_ecdsa_p256_sha256_assertion_signed.xml",
                "okta_ec_secp256r1.pem",
                aud,
                acs,
            ),
            fixture(
                "a11_escaped_markup_in_value.xml",
                "okta_rsa2048.pem",
                aud,
                acs,
            ),
            fixture(
                "b01_wsfed_wst2005_rstr_saml11.xml",
                "adfs_rsa2048.pem",
                "urn:federation:MicrosoftOnline",
                None,
            ),
        ]
    })
}

/// IDs of the elements that carry a signature in `xml`.
fn signed_ids(xml: &str) -> Vec<String> {
    let doc = Document::parse(xml.as_bytes()).unwrap();
    doc.elements()
        .filter(|n| {
            doc.children_named(*n, dsig::DSIG_NS, "Signature")
                .next()
                .is_some()
        })
        .filter_map(|n| doc.attr(n, "ID").or_else(|| doc.attr(n, "AssertionID")))
        .map(str::to_string)
        .collect()
}

/// The canonical bytes of the elements with these IDs, each without its
/// own signature child: what the original signatures cover.
fn signed_canon(xml: &str, ids: &[String]) -> Option<Vec<Vec<u8>>> {
    let doc = Document::parse(xml.as_bytes()).ok()?;
    let mut out = Vec::new();
    for id in ids {
        let n = doc.elements().find(|n| {
            doc.attr(*n, "ID") == Some(id.as_str())
                || doc.attr(*n, "AssertionID") == Some(id.as_str())
        })?;
        let sig = doc.children_named(n, dsig::DSIG_NS, "Signature").next();
        let mut buf = Vec::new();
        let prefixes = ["xs".to_string()];
        c14n::canonicalize(
            &doc,
            n,
            Options {
                with_comments: false,
                inclusive: &prefixes,
                exclude: sig,
            },
            &mut buf,
        );
        out.push(buf);
    }
    Some(out)
}

fn element_spans(xml: &str) -> Vec<std::ops::Range<usize>> {
    let doc = Document::parse(xml.as_bytes()).unwrap();
    (0..doc.nodes.len())
        .filter_map(|n: NodeId| match &doc.nodes[n] {
            Node::Element(e) => Some(e.span.clone()),
            _ => None,
        })
        .collect()
}

fn check(f: &Fixture, mutated: &[u8]) -> Result<(), TestCaseError> {
    let got = Verifier::new(f.cfg.clone()).verify_document(mutated, now());
    if let Ok(a) = got {
        let a_claims = (
            a.issuer(),
            a.name_id(),
            a.id(),
            a.attributes(),
            a.device_trust(),
            a.not_on_or_after(),
        );
        let f_claims = (
            f.accepted.issuer(),
            f.accepted.name_id(),
            f.accepted.id(),
            f.accepted.attributes(),
            f.accepted.device_trust(),
            f.accepted.not_on_or_after(),
        );
        prop_assert_eq!(a_claims, f_claims, "accepted with different claims");
        let text = std::str::from_utf8(mutated).expect("accepted documents are utf-8");
        let ids = signed_ids(&f.xml);
        prop_assert_eq!(
            signed_canon(text, &ids),
            signed_canon(&f.xml, &ids),
            "accepted with different signed content"
        );
    }
    Ok(())
}

#[derive(Debug, Clone)]
enum ByteOp {
    Set(Index, u8),
    Insert(Index, u8),
    Delete(Index),
    Truncate(Index),
    DuplicateRange(Index, Index),
}

fn byte_op() -> impl Strategy<Value = ByteOp> {
    prop_oneof![
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| ByteOp::Set(i, b)),
        (
            any::<Index>(),
            prop::sample::select(b"<>&\"' =:/!?-x\n".to_vec())
        )
            .prop_map(|(i, b)| ByteOp::Set(i, b)),
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| ByteOp::Insert(i, b)),
        any::<Index>().prop_map(ByteOp::Delete),
        any::<Index>().prop_map(ByteOp::Truncate),
        (any::<Index>(), any::<Index>()).prop_map(|(a, b)| ByteOp::DuplicateRange(a, b)),
    ]
}

fn apply_byte(xml: &str, op: &ByteOp) -> Vec<u8> {
    let mut b = xml.as_bytes().to_vec();
    // A truncation may have emptied the document: only an insert applies.
    if b.is_empty() && !matches!(op, ByteOp::Insert(..)) {
        return b;
    }
    match op {
        ByteOp::Set(i, v) => {
            let i = i.index(b.len());
            b[i] = *v;
        }
        ByteOp::Insert(i, v) => {
            let i = i.index(b.len() + 1);
            b.insert(i, *v);
        }
        ByteOp::Delete(i) => {
            let i = i.index(b.len());
            b.remove(i);
        }
        ByteOp::Truncate(i) => b.truncate(i.index(b.len())),
        ByteOp::DuplicateRange(x, y) => {
            let (x, y) = (x.index(b.len()), y.index(b.len()));
            let (s, e) = (x.min(y), x.max(y).min(x.min(y) + 64));
            let copy = b[s..e].to_vec();
            b.splice(e..e, copy);
        }
    }
    b
}

#[derive(Debug, Clone)]
enum TreeOp {
    Delete(Index),
    Duplicate(Index),
    MoveBefore(Index, Index),
    Wrap(Index),
    CommentInside(Index, Index),
    CopyInto(Index, Index),
}

fn tree_op() -> impl Strategy<Value = TreeOp> {
    prop_oneof![
        any::<Index>().prop_map(TreeOp::Delete),
        any::<Index>().prop_map(TreeOp::Duplicate),
        (any::<Index>(), any::<Index>()).prop_map(|(a, b)| TreeOp::MoveBefore(a, b)),
        any::<Index>().prop_map(TreeOp::Wrap),
        (any::<Index>(), any::<Index>()).prop_map(|(a, b)| TreeOp::CommentInside(a, b)),
        (any::<Index>(), any::<Index>()).prop_map(|(a, b)| TreeOp::CopyInto(a, b)),
    ]
}

fn apply_tree(xml: &str, op: &TreeOp) -> String {
    let spans = element_spans(xml);
    let pick = |i: &Index| spans[i.index(spans.len())].clone();
    match op {
        TreeOp::Delete(i) => {
            let s = pick(i);
            format!("{}{}", &xml[..s.start], &xml[s.end..])
        }
        TreeOp::Duplicate(i) => {
            let s = pick(i);
            format!("{}{}", &xml[..s.end], &xml[s.start..])
        }
        TreeOp::MoveBefore(a, b) => {
            let (s, t) = (pick(a), pick(b));
            if t.start >= s.start && t.start < s.end {
                return xml.to_string();
            }
            let moved = &xml[s.clone()];
            let without = format!("{}{}", &xml[..s.start], &xml[s.end..]);
            let at = if t.start > s.start {
                t.start - s.len()
            } else {
                t.start
            };
            format!("{}{}{}", &without[..at], moved, &without[at..])
        }
        TreeOp::Wrap(i) => {
            let s = pick(i);
            format!(
                "{}<w:x xmlns:w=\"urn:w\">{}</w:x>{}",
                &xml[..s.start],
                &xml[s.clone()],
                &xml[s.end..]
            )
        }
        TreeOp::CommentInside(i, p) => {
            let s = pick(i);
            // A position between two characters of the element's content.
            let inner = &xml[s.clone()];
            let Some(open_end) = inner.find('>') else {
                return xml.to_string();
            };
            let at = s.start + open_end + 1 + p.index(inner.len() - open_end);
            if !xml.is_char_boundary(at) {
                return xml.to_string();
            }
            format!("{}<!---->{}", &xml[..at], &xml[at..])
        }
        TreeOp::CopyInto(a, b) => {
            // Copy element a just inside element b's start tag.
            let (s, t) = (pick(a), pick(b));
            let inner = &xml[t.clone()];
            match inner.find('>') {
                Some(k) if !inner[..k].ends_with('/') => format!(
                    "{}{}{}",
                    &xml[..t.start + k + 1],
                    &xml[s],
                    &xml[t.start + k + 1..]
                ),
                _ => xml.to_string(),
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 1000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn byte_mutations_never_pass_with_changed_signed_content(
        f in 0usize..5,
        ops in prop::collection::vec(byte_op(), 1..4),
    ) {
        let fx = &all_fixtures()[f];
        let mut xml = fx.xml.as_bytes().to_vec();
        for op in &ops {
            xml = apply_byte(&String::from_utf8_lossy(&xml), op);
        }
        check(fx, &xml)?;
    }

    #[test]
    fn structural_mutations_never_pass_with_changed_signed_content(
        f in 0usize..5,
        ops in prop::collection::vec(tree_op(), 1..3),
    ) {
        let fx = &all_fixtures()[f];
        let mut xml = fx.xml.clone();
        for op in &ops {
            if Document::parse(xml.as_bytes()).is_err() {
                break;
            }
            xml = apply_tree(&xml, op);
        }
        check(fx, xml.as_bytes())?;
    }

    #[test]
    fn form_body_mutations_never_panic(
        ops in prop::collection::vec(byte_op(), 1..4),
    ) {
        use base64::Engine as _;
        let fx = &all_fixtures()[0];
        let b64 = base64::engine::general_purpose::STANDARD.encode(&fx.xml);
        let mut body = form_urlencoded::Serializer::new(String::new())
            .append_pair("SAMLResponse", &b64)
            .append_pair("RelayState", "/x")
            .finish()
            .into_bytes();
        for op in &ops {
            body = apply_byte(&String::from_utf8_lossy(&body), op);
        }
        if let Ok(d) = Verifier::new(fx.cfg.clone()).verify_post(&body, now()) {
            prop_assert_eq!(d.assertion.name_id(), fx.accepted.name_id());
            prop_assert_eq!(d.assertion.attributes(), fx.accepted.attributes());
        }
    }
}
