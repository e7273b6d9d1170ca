//! Property tests: byte-level and structural mutations of valid fixtures never
//! panic, and a mutated document is accepted only when what the signature
//! covers is untouched (same signed content, same claims).
//!
//! "What the signature covers" is judged by an oracle that shares no code
//! with the verifier: roxmltree (another parser) reads the signed elements
//! into the node set that their `#id` References digest, and the test
//! compares those, never the verifier's own c14n.

use std::time::Duration;

use proptest::prelude::*;
use proptest::sample::Index;

use super::super::xml::{Document, Node, NodeId};
use super::super::*;
use super::{fixtures, now};

struct Fixture {
    xml: String,
    cfg: VerifierConfig,
    accepted: VerifiedAssertion,
    /// The signed elements of `xml`: their IDs and Reference PrefixLists.
    signed: Vec<SignedElement>,
    /// The oracle's reading of them in `xml`.
    content: Vec<Vec<Event>>,
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
    let signed = signed_elements(&xml);
    assert!(!signed.is_empty(), "{file} has a signed element");
    let content = signed_content(&xml, &signed).expect("roxmltree reads the fixture");
    Fixture {
        xml,
        cfg,
        accepted,
        signed,
        content,
    }
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

const DSIG: &str = "http://www.w3.org/2000/09/xmldsig#";
const EXC_C14N: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";

/// An element that carries an enveloped signature.
#[derive(Debug)]
struct SignedElement {
    id: String,
    /// The InclusiveNamespaces PrefixList of its Reference (`#default` as
    /// written).
    prefixes: Vec<String>,
}

/// One node of what a `#id` Reference with enveloped-signature and
/// exclusive c14n (without comments) digests: the element's subtree without
/// its `ds:Signature` child, comments dropped and the text around them
/// joined. Names carry their prefix (c14n writes it) and namespace URI;
/// attributes are in c14n order; `inclusive` is the in-scope URI of each
/// PrefixList prefix, which exclusive c14n renders.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    Start {
        qname: String,
        ns: Option<String>,
        attrs: Vec<(Option<String>, String, String, String)>,
        inclusive: Vec<Option<String>>,
    },
    Text(String),
    Pi(String, Option<String>),
    End,
}

fn parse_other(xml: &str) -> Option<roxmltree::Document<'_>> {
    roxmltree::Document::parse(xml).ok()
}

fn id_of<'a>(n: &roxmltree::Node<'a, '_>) -> Option<&'a str> {
    n.attribute("ID").or_else(|| n.attribute("AssertionID"))
}

/// The elements of `xml` that carry a signature, read by roxmltree.
fn signed_elements(xml: &str) -> Vec<SignedElement> {
    let doc = parse_other(xml).expect("roxmltree reads the fixture");
    doc.descendants()
        .filter(|n| n.is_element())
        .filter_map(|n| {
            let sig = n.children().find(|c| c.has_tag_name((DSIG, "Signature")))?;
            let prefixes = sig
                .descendants()
                .find(|c| c.has_tag_name((EXC_C14N, "InclusiveNamespaces")))
                .and_then(|c| c.attribute("PrefixList"))
                .map(|l| l.split_ascii_whitespace().map(str::to_string).collect())
                .unwrap_or_default();
            Some(SignedElement {
                id: id_of(&n)?.to_string(),
                prefixes,
            })
        })
        .collect()
}

/// The oracle's reading of each signed element in `xml`; `None` when
/// roxmltree refuses `xml` or an element is missing.
fn signed_content(xml: &str, signed: &[SignedElement]) -> Option<Vec<Vec<Event>>> {
    let doc = parse_other(xml)?;
    let mut out = Vec::new();
    for s in signed {
        let n = doc
            .descendants()
            .find(|n| n.is_element() && id_of(n) == Some(s.id.as_str()))?;
        let sig = n
            .children()
            .find(|c| c.has_tag_name((DSIG, "Signature")))
            .map(|c| c.id());
        let mut events = Vec::new();
        read(xml, n, sig, &s.prefixes, &mut events);
        out.push(events);
    }
    Some(out)
}

fn read(
    input: &str,
    n: roxmltree::Node<'_, '_>,
    skip: Option<roxmltree::NodeId>,
    prefixes: &[String],
    out: &mut Vec<Event>,
) {
    // roxmltree resolves names but keeps no prefix: read the written
    // qualified name back from the input.
    let tag = &input[n.range().start + 1..];
    let end = tag
        .find(|c: char| c.is_ascii_whitespace() || c == '/' || c == '>')
        .unwrap_or(tag.len());
    let mut attrs: Vec<_> = n
        .attributes()
        .map(|a| {
            (
                a.namespace().map(str::to_string),
                a.name().to_string(),
                input[a.range_qname()].to_string(),
                a.value().to_string(),
            )
        })
        .collect();
    attrs.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    let inclusive = prefixes
        .iter()
        .map(|p| {
            let p = (p != "#default").then_some(p.as_str());
            n.lookup_namespace_uri(p).map(str::to_string)
        })
        .collect();
    out.push(Event::Start {
        qname: tag[..end].to_string(),
        ns: n.tag_name().namespace().map(str::to_string),
        attrs,
        inclusive,
    });
    for c in n.children() {
        if Some(c.id()) == skip {
            continue;
        }
        match c.node_type() {
            roxmltree::NodeType::Element => read(input, c, None, prefixes, out),
            roxmltree::NodeType::Text => {
                let t = c.text().unwrap_or_default();
                match out.last_mut() {
                    Some(Event::Text(prev)) => prev.push_str(t),
                    _ => out.push(Event::Text(t.to_string())),
                }
            }
            roxmltree::NodeType::PI => {
                let pi = c.pi().unwrap();
                out.push(Event::Pi(
                    pi.target.to_string(),
                    pi.value.map(str::to_string),
                ));
            }
            roxmltree::NodeType::Comment | roxmltree::NodeType::Root => {}
        }
    }
    out.push(Event::End);
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
        let content = signed_content(text, &f.signed);
        prop_assert_eq!(
            content.as_ref(),
            Some(&f.content),
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

/// The oracle sees what the digest sees, and no more: an edit that changes
/// the canonical form of the signed assertion changes its reading (and the
/// verifier refuses it); one that exclusive c14n cannot see leaves the
/// reading alone (and the verifier accepts it).
#[test]
fn the_oracle_sees_what_the_digest_covers() {
    let f = &all_fixtures()[0];
    let reading = |xml: &str| signed_content(xml, &f.signed).expect("roxmltree reads it");
    let accepted = |xml: &str| {
        Verifier::new(f.cfg.clone())
            .verify_document(xml.as_bytes(), now())
            .is_ok()
    };
    let edit = |from: &str, to: &str| super::replace_once(&f.xml, from, to);
    let changed = [
        // Attribute value and text, inside the assertion.
        edit(
            "xsi:type=\"xs:string\">TRUSTED",
            "xsi:type=\"xs:string\">NOT_TRUSTED",
        ),
        edit("Name=\"groups\"", "Name=\"Groups\""),
        // The same element under another prefix bound to the same URI.
        edit(
            "<saml2:NameID Format",
            "<s:NameID xmlns:s=\"urn:oasis:names:tc:SAML:2.0:assertion\" Format",
        )
        .replacen("</saml2:NameID>", "</s:NameID>", 1),
        // Whitespace between signed elements is signed text.
        edit(
            "</saml2:Subject><saml2:Conditions",
            "</saml2:Subject>\n<saml2:Conditions",
        ),
        // The PrefixList's xs bound elsewhere.
        edit(
            "xmlns:xs=\"http://www.w3.org/2001/XMLSchema\"",
            "xmlns:xs=\"urn:not-xml-schema\"",
        ),
    ];
    for xml in &changed {
        assert_ne!(reading(xml), f.content, "{xml}");
        assert!(!accepted(xml), "{xml}");
    }
    let unchanged = [
        // Outside the signed assertion.
        edit("<saml2p:StatusCode ", "<saml2p:StatusCode Extra=\"1\" "),
        // A comment inside the NameID: the `#id` reference drops comments.
        edit(
            "alice@corp.example</saml2:NameID>",
            "alice@<!-- x -->corp.example</saml2:NameID>",
        ),
        // Quote style, whitespace inside a tag, an unused declaration, a
        // character reference for a plain character.
        edit(
            "Format=\"urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress\"",
            "Format='urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress'",
        ),
        edit("<saml2:Subject>", "<saml2:Subject\n  >"),
        edit(
            "<saml2:Subject>",
            "<saml2:Subject xmlns:unused=\"urn:unused\">",
        ),
        edit(
            ">alice@corp.example</saml2:NameID>",
            ">&#97;lice@corp.example</saml2:NameID>",
        ),
    ];
    for xml in &unchanged {
        assert_eq!(reading(xml), f.content, "{xml}");
        assert!(accepted(xml), "{xml}");
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
