//! The parser alone: tree shape, names, namespaces and what it refuses.

use super::*;

fn parse(xml: &str) -> Result<Document<'_>, XmlError> {
    Document::parse(xml.as_bytes())
}

fn names(doc: &Document, ids: impl Iterator<Item = NodeId>) -> Vec<String> {
    ids.map(|c| match &doc.nodes[c] {
        Node::Element(e) => format!("<{}>", e.local),
        Node::Text(t) => format!("{t:?}"),
        Node::Comment(t) => format!("<!--{t}-->"),
        Node::Pi { target, .. } => format!("<?{target}?>"),
    })
    .collect()
}

#[test]
fn children_keep_document_order_across_nesting() {
    let doc = parse("<r>a<x><y/>b</x><!--c--><z/>d</r>").unwrap();
    let root = doc.root;
    assert_eq!(
        names(&doc, doc.children(root)),
        ["\"a\"", "<x>", "<!--c-->", "<z>", "\"d\""]
    );
    let x = doc.child_elements(root).next().unwrap();
    assert_eq!(names(&doc, doc.children(x)), ["<y>", "\"b\""]);
    assert_eq!(doc.element(x).parent, Some(root));
    assert_eq!(doc.text(root), "abd");
    let z = doc.child_elements(root).nth(1).unwrap();
    assert_eq!(doc.children(z).count(), 0);
}

#[test]
fn attributes_and_declarations_belong_to_their_element() {
    let doc = parse(
        r#"<r xmlns="urn:d" xmlns:p="urn:p" a="1"><p:x p:b="2" c="3" xmlns:q="urn:q"/><y/></r>"#,
    )
    .unwrap();
    let root = doc.root;
    assert_eq!(doc.ns_uri(doc.element(root).ns), "urn:d");
    assert_eq!(doc.attrs(root).len(), 1);
    assert_eq!(doc.attr(root, "a"), Some("1"));
    let decls: Vec<_> = doc.decls(root).iter().map(|d| d.prefix).collect();
    assert_eq!(decls, ["", "p"]);

    let x = doc.child_elements(root).next().unwrap();
    assert_eq!(doc.ns_uri(doc.element(x).ns), "urn:p");
    let attrs: Vec<_> = doc
        .attrs(x)
        .iter()
        .map(|a| (a.local, doc.ns_uri(a.ns), a.value.as_ref()))
        .collect();
    // An unprefixed attribute has no namespace, whatever the default is.
    assert_eq!(attrs, [("b", "urn:p", "2"), ("c", "", "3")]);
    assert_eq!(doc.decls(x).len(), 1);

    let y = doc.child_elements(root).nth(1).unwrap();
    assert!(doc.attrs(y).is_empty() && doc.decls(y).is_empty());
    // The default namespace and p are inherited, q ended with x.
    assert_eq!(doc.ns_uri(doc.element(y).ns), "urn:d");
    let p = doc.declaration(y, "p").expect("p is in scope");
    assert_eq!((p.prefix, doc.ns_uri(p.ns)), ("p", "urn:p"));
    assert_eq!(
        doc.declaration(y, "").map(|d| doc.ns_uri(d.ns)),
        Some("urn:d")
    );
    assert!(doc.declaration(y, "q").is_none());
    // `xml` is bound without a declaration.
    assert!(doc.declaration(y, "xml").is_none());
}

#[test]
fn namespace_uris_are_interned_once() {
    let doc = parse(r#"<a:r xmlns:a="urn:x"><b:s xmlns:b="urn:x"/></a:r>"#).unwrap();
    let s = doc.child_elements(doc.root).next().unwrap();
    assert_eq!(doc.element(doc.root).ns, doc.element(s).ns);
}

#[test]
fn names_must_be_qnames() {
    for good in [
        "<a/>",
        "<a:b xmlns:a=\"urn:a\"/>",
        "<_x-1.y/>",
        "<é xmlns:ü=\"urn:u\" ü:ß=\"1\"/>",
    ] {
        assert!(parse(good).is_ok(), "{good}");
    }
    for bad in [
        "<a:b:c xmlns:a=\"urn:a\"/>",
        "<r :a=\"1\"/>",
        "<r a:=\"1\" xmlns:a=\"urn:a\"/>",
        "<r xmlns:a=\"urn:a\" a::b=\"1\"/>",
        "<r -a=\"1\"/>",
        "<r xmlns:1a=\"urn:a\"/>",
    ] {
        assert_eq!(
            parse(bad).unwrap_err(),
            XmlError::Malformed("bad name"),
            "{bad}"
        );
    }
}

#[test]
fn split_qname_splits_once() {
    assert_eq!(
        split_qname("saml2:Assertion").unwrap(),
        ("saml2", "Assertion")
    );
    assert_eq!(split_qname("Assertion").unwrap(), ("", "Assertion"));
    assert_eq!(split_qname("ä:ö").unwrap(), ("ä", "ö"));
    for bad in ["", ":", "a:", ":a", "a:b:c", "1a", "a b", "a\u{200B}:b"] {
        assert!(split_qname(bad).is_err(), "{bad:?}");
    }
}

/// The XML declaration is held to XML 1.0's grammar; quick-xml alone lets
/// a stray token such as `!encoding` through (found by the property tests'
/// independent parser).
#[test]
fn xml_declaration_follows_the_grammar() {
    for good in [
        "<?xml version=\"1.0\"?><r/>",
        "<?xml version='1.0' encoding='UTF-8'?><r/>",
        "<?xml version=\"1.0\" encoding=\"utf-8\" standalone=\"yes\" ?><r/>",
        "<?xml\tversion = \"1.0\"\r\n standalone='no'?><r/>",
    ] {
        parse(good).unwrap_or_else(|e| panic!("{good}: {e}"));
    }
    for bad in [
        "<?xml version=\"1.0\" !encoding=\"UTF-8\"?><r/>",
        "<?xml version=\"1.0\"encoding=\"UTF-8\"?><r/>",
        "<?xml encoding=\"UTF-8\" version=\"1.0\"?><r/>",
        "<?xml version=\"1.0\" standalone=\"yes\" encoding=\"UTF-8\"?><r/>",
        "<?xml version=\"1.0\" standalone=\"maybe\"?><r/>",
        "<?xml version=\"1.0\" encoding=\"8bit\"?><r/>",
        "<?xml version=\"1.0\" encoding=\"UTF-8\" encoding=\"UTF-8\"?><r/>",
        "<?xml version=\"1.0\" foo=\"bar\"?><r/>",
        "<?xml version=\"1.0'?><r/>",
        "<?xml version=\"1.\"?><r/>",
        "<?xml?><r/>",
    ] {
        assert_eq!(
            parse(bad).unwrap_err(),
            XmlError::Malformed("bad xml declaration"),
            "{bad}"
        );
    }
    // Well-formed, but not what the verifier takes.
    assert_eq!(
        parse("<?xml version=\"1.1\"?><r/>").unwrap_err(),
        XmlError::Malformed("only xml 1.0 is accepted")
    );
    assert_eq!(
        parse("<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><r/>").unwrap_err(),
        XmlError::NotUtf8
    );
}

#[test]
fn namespace_errors() {
    let cases = [
        ("<p:r/>", "undeclared namespace prefix"),
        ("<r p:a=\"1\"/>", "undeclared namespace prefix"),
        (
            "<r xmlns:p=\"urn:p\" xmlns:p=\"urn:q\"/>",
            "duplicate namespace declaration",
        ),
        (
            "<r xmlns:p=\"urn:p\" xmlns:q=\"urn:p\" p:a=\"1\" q:a=\"2\"/>",
            "duplicate attribute",
        ),
        ("<r xmlns:p=\"\"/>", "empty prefixed namespace declaration"),
        (
            "<r xmlns=\"http://www.w3.org/2000/xmlns/\"/>",
            "reserved namespace bound",
        ),
        ("<r xmlns:xml=\"urn:other\"/>", "reserved prefix misused"),
    ];
    for (xml, why) in cases {
        assert_eq!(parse(xml).unwrap_err(), XmlError::Malformed(why), "{xml}");
    }
}

#[test]
fn too_many_namespace_declarations_are_refused() {
    let mut xml = String::from("<r>");
    for i in 0..=MAX_NS_DECLS {
        xml.push_str(&format!("<e xmlns:p{i}=\"urn:{i}\"/>"));
    }
    xml.push_str("</r>");
    assert_eq!(
        parse(&xml).unwrap_err(),
        XmlError::Malformed("too many namespace declarations")
    );
}

#[test]
fn attribute_values_are_normalized() {
    let doc = parse("<r a=\"x&#9;y\tz&amp;\r\nw\" b=\"plain\"/>").unwrap();
    assert_eq!(doc.attr(doc.root, "a"), Some("x\ty z& w"));
    assert!(matches!(
        doc.attrs(doc.root)[1].value,
        Cow::Borrowed("plain")
    ));
    assert_eq!(
        parse("<r a=\"<\"/>").unwrap_err(),
        XmlError::Malformed("'<' in attribute value")
    );
}

#[test]
fn adjacent_text_and_references_merge_into_one_node() {
    let doc = parse("<r>a&amp;b<![CDATA[<c>]]>d\r\ne</r>").unwrap();
    assert_eq!(names(&doc, doc.children(doc.root)), ["\"a&b<c>d\\ne\""]);
}

#[test]
fn spans_cover_the_element_bytes() {
    let xml = "<?xml version=\"1.0\"?><r><x a=\"1\">t</x><y/></r>";
    let doc = parse(xml).unwrap();
    let x = doc.child_elements(doc.root).next().unwrap();
    let y = doc.child_elements(doc.root).nth(1).unwrap();
    assert_eq!(&xml[doc.element(x).span.clone()], "<x a=\"1\">t</x>");
    assert_eq!(&xml[doc.element(y).span.clone()], "<y/>");
    assert_eq!(&xml[doc.element(doc.root).span.clone()], &xml[21..]);
}

#[test]
fn cdata_end_in_text_is_refused() {
    assert!(parse("<r>a]]>b</r>").is_err());
    assert!(parse("<r>a]]b]</r>").is_ok());
    assert!(parse("<r>]</r>").is_ok());
}

#[test]
fn start_tag_attribute_syntax() {
    for good in [
        r#"<a b="1"/>"#,
        r#"<a b='1' c="2"/>"#,
        "<a\tb = \"1\"\n\r c\t=\t'>'  />",
        r#"<a b="it's"></a>"#,
        r#"<a b='say "hi"'/>"#,
        r#"<a b=""/>"#,
        "<a b=\"1\"\n/>",
    ] {
        assert!(parse(good).is_ok(), "{good}");
    }
    for bad in [
        r#"<a b="1"c="2"/>"#,
        r#"<a b/>"#,
        r#"<a b=1/>"#,
        r#"<a b="1/>"#,
        r#"<a b='1"/>"#,
        r#"<a ="1"/>"#,
        r#"<a b=="1"/>"#,
        r#"<a b="1" c/>"#,
        r#"<a b"="1"/>"#,
        r#"<a b="1"="2"/>"#,
        r#"<a b="<"/>"#,
        r#"<a 1b="1"/>"#,
        r#"<a b:c:d="1"/>"#,
    ] {
        assert_eq!(
            parse(bad).err().map(|e| e.reason()),
            Some("malformed"),
            "{bad}"
        );
    }
    let doc = parse("<a\tb = \"1\"\n\r c\t=\t'>' d='x&amp;y' />").unwrap();
    let vals: Vec<_> = doc
        .attrs(doc.root)
        .iter()
        .map(|a| (a.local, a.value.as_ref()))
        .collect();
    assert_eq!(vals, [("b", "1"), ("c", ">"), ("d", "x&y")]);
}

/// A start tag's attribute bytes: well-formed attributes (prefixed or not,
/// both quote kinds, white space around `=`, the other quote, `>`, `/` and
/// `=` inside values), then half of the time one byte removed or one piece
/// inserted somewhere, so that both accepted and refused forms come up.
fn attribute_bytes() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    let space = prop::sample::select(vec![" ", "\t", "\n", "\r\n", "  "]);
    let eq = prop::sample::select(vec!["=", " =", "= ", "\t=\n"]);
    let name = prop::sample::select(vec!["a", "b", "ID", "p:c", "xs:type", "_x-1.y", "é"]);
    let value = prop::sample::select(vec!["", "v", "'", "\"", ">", "/", "=", "&amp;", "a b"]);
    let attribute = (space, name, eq, any::<bool>(), value).prop_map(|(s, n, e, dq, v)| {
        let q = if dq { '"' } else { '\'' };
        let v = v.replace(q, "");
        format!("{s}{n}{e}{q}{v}{q}")
    });
    let piece = prop::sample::select(vec![" ", "=", "\"", "'", "a", ":", "/"]);
    (
        prop::collection::vec(attribute, 0..5),
        prop::option::of((any::<prop::sample::Index>(), any::<bool>(), piece)),
    )
        .prop_map(|(attrs, edit)| {
            let mut s = attrs.concat();
            if let Some((at, remove, piece)) = edit {
                let chars: Vec<char> = s.chars().collect();
                if !chars.is_empty() {
                    let i = at.index(chars.len());
                    let (head, tail) = chars.split_at(i);
                    let head: String = head.iter().collect();
                    let tail: String = tail.iter().skip(usize::from(remove)).collect();
                    s = format!("{head}{}{tail}", if remove { "" } else { piece });
                }
            }
            s
        })
}

#[test]
fn attribute_names_split_as_qnames() {
    fn names(raw: &str) -> Result<Vec<(&str, &str)>, XmlError> {
        Attributes::new(raw)
            .map(|a| a.map(|(p, l, _)| (p, l)))
            .collect()
    }
    assert_eq!(
        names(r#" p:l="1" ID='2' ä:ö="3" _x-1.y="4""#).unwrap(),
        [("p", "l"), ("", "ID"), ("ä", "ö"), ("", "_x-1.y")]
    );
    for bad in [
        r#" a:b:c="1""#,
        r#" 1a="1""#,
        r#" :a="1""#,
        r#" a:="1""#,
        r#" -a="1""#,
        r#" a:1="1""#,
        " a\u{200B}:b=\"1\"",
        " ä:ö:ü=\"1\"",
    ] {
        assert_eq!(names(bad), Err(XmlError::Malformed("bad name")), "{bad}");
    }
}

/// Bytes mostly clean text with line ends, now and then a control.
fn mostly_text() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
    use proptest::prelude::*;
    let byte = prop::sample::select(vec![
        b'a', b'a', b'a', b'a', b'a', b'a', b'a', b'a', b' ', b'<', b'\n', b'\t', b'\r', 0x00,
        0x08, 0x0b, 0x1f, 0x20, 0x7f, 0x80, 0xff,
    ]);
    (
        prop::collection::vec(byte, 0..400),
        any::<prop::sample::Index>(),
    )
        .prop_map(|(mut b, at)| {
            // Keep most samples free of controls, so that both answers
            // come up often.
            if at.index(4) != 0 {
                b.retain(|&c| c >= 0x20 || matches!(c, b'\t' | b'\n' | b'\r'));
            }
            b
        })
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig {
        cases: 2000,
        failure_persistence: None,
        ..proptest::prelude::ProptestConfig::default()
    })]

    /// The chunked control check says what its definition says.
    #[test]
    fn control_check_matches_its_definition(b in mostly_text()) {
        let expected = b
            .iter()
            .any(|&c| c < 0x20 && !matches!(c, b'\t' | b'\n' | b'\r'));
        proptest::prop_assert_eq!(has_control_char(&b), expected);
    }

    /// Whatever our scanner accepts, quick-xml's own attribute iterator
    /// reads as the same names and raw values: the two never split a start
    /// tag differently.
    #[test]
    fn attribute_scan_agrees_with_quick_xml(raw in attribute_bytes()) {
        let ours: Result<Vec<_>, _> = Attributes::new(&raw).collect();
        if let Ok(ours) = ours {
            let tag = format!("r{raw}");
            let start = quick_xml::events::BytesStart::from_content(tag.as_str(), 1);
            // Duplicates are refused later, on expanded names.
            let mut attributes = start.attributes();
            attributes.with_checks(false);
            let theirs: Vec<(String, String)> = attributes
                .map(|a| {
                    let a = a.expect("quick-xml refuses what the scanner accepted");
                    (
                        String::from_utf8(a.key.as_ref().to_vec()).unwrap(),
                        String::from_utf8(a.value.to_vec()).unwrap(),
                    )
                })
                .collect();
            let ours: Vec<(String, String)> = ours
                .into_iter()
                .map(|(p, l, v)| {
                    let name = if p.is_empty() { l.to_string() } else { format!("{p}:{l}") };
                    (name, v.to_string())
                })
                .collect();
            proptest::prop_assert_eq!(ours, theirs);
        }
    }
}

/// RUSTSEC-2026-0194 (quick-xml's quadratic duplicate-attribute check) and
/// -0195 (unbounded namespace declarations in `NsReader`) do not reach the
/// verifier: it scans attributes itself and uses no `NsReader`. A hostile
/// start tag of 200,000 distinct attributes is refused at the 129th, so
/// the pairwise duplicate check never sees more than 128 names, and a
/// flood of declarations stops at `MAX_NS_DECLS`.
#[test]
fn a_hostile_start_tag_is_cut_off_at_the_attribute_limit() {
    let mut xml = String::from("<r");
    for i in 0..200_000 {
        xml.push_str(&format!(" a{i}=\"v\""));
    }
    xml.push_str("/>");
    assert_eq!(
        parse(&xml).unwrap_err(),
        XmlError::Malformed("too many attributes on one element")
    );
    let mut xml = String::from("<r");
    for i in 0..200_000 {
        xml.push_str(&format!(" xmlns:p{i}=\"urn:{i}\""));
    }
    xml.push_str("/>");
    assert!(parse(&xml).is_err());
    // The limit itself is accepted.
    let mut xml = String::from("<r");
    for i in 0..MAX_ATTRIBUTES {
        xml.push_str(&format!(" a{i}=\"v\""));
    }
    xml.push_str("/>");
    assert!(parse(&xml).is_ok());
}
