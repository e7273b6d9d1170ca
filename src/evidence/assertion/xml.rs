//! The single XML parse: quick-xml events into one namespace-resolved tree.
//!
//! Everything downstream (canonicalization, signature checks, claims) walks
//! this tree and nothing else; no second parser ever looks at the bytes. The
//! parser refuses DTDs, entity declarations and processing instructions, and
//! it leaves the meaning of elements to `dsig`, `saml2` and `wsfed`.

use std::borrow::Cow;
use std::ops::Range;

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

/// The `xml` prefix's namespace, bound in every document.
pub(crate) const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";
const XMLNS_NS: &str = "http://www.w3.org/2000/xmlns/";

/// Deepest element nesting accepted; SAML needs about 10. Bounds recursion
/// in canonicalization and text collection.
const MAX_DEPTH: usize = 64;
/// Most attributes (namespace declarations included) on one element; keeps
/// duplicate checks cheap.
const MAX_ATTRIBUTES: usize = 128;
/// Namespace declarations allowed in one document. Real SAML messages carry
/// a dozen; thousands would make every c14n namespace lookup slow.
const MAX_NS_DECLS: usize = 256;

/// Why the bytes are not a document we accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    /// A DOCTYPE (and with it any entity declaration) is present.
    #[error("a document type declaration is not allowed")]
    Doctype,
    /// A processing instruction other than the XML declaration is present.
    #[error("a processing instruction is not allowed")]
    ProcessingInstruction,
    /// The bytes are not UTF-8.
    #[error("the document is not utf-8")]
    NotUtf8,
    /// The document is not well-formed or not namespace-well-formed.
    #[error("{0}")]
    Malformed(&'static str),
}

impl XmlError {
    /// The static reason of the error, as `AssertionError::reason` reports it.
    pub fn reason(&self) -> &'static str {
        match self {
            XmlError::Doctype | XmlError::ProcessingInstruction => "doctype",
            XmlError::NotUtf8 | XmlError::Malformed(_) => "malformed",
        }
    }
}

/// Index of a node in [`Document::nodes`].
pub(crate) type NodeId = usize;

/// Index of an interned namespace URI; 0 is "no namespace".
pub(crate) type NsId = u32;

/// One attribute, with its value already normalized and unescaped.
#[derive(Debug, Clone)]
pub(crate) struct Attr<'a> {
    pub(crate) prefix: &'a str,
    pub(crate) local: &'a str,
    pub(crate) ns: NsId,
    pub(crate) value: Cow<'a, str>,
}

/// One namespace declaration written on an element (`""` is the default).
#[derive(Debug, Clone)]
pub(crate) struct NsDecl<'a> {
    pub(crate) prefix: &'a str,
    pub(crate) ns: NsId,
}

/// An element with its resolved name, attributes and children. Names borrow
/// from the input; values are owned only where normalization changed them.
#[derive(Debug, Clone)]
pub(crate) struct Element<'a> {
    pub(crate) parent: Option<NodeId>,
    pub(crate) prefix: &'a str,
    pub(crate) local: &'a str,
    pub(crate) ns: NsId,
    pub(crate) attrs: Vec<Attr<'a>>,
    pub(crate) decls: Vec<NsDecl<'a>>,
    pub(crate) children: Vec<NodeId>,
    /// Bytes of the input that this element spans.
    pub(crate) span: Range<usize>,
}

/// A node of the tree. CDATA sections and references are merged into text;
/// line ends are normalized (CRLF and CR to LF) in text and comments.
#[derive(Debug, Clone)]
pub(crate) enum Node<'a> {
    Element(Element<'a>),
    Text(Cow<'a, str>),
    Comment(Cow<'a, str>),
    Pi { target: &'a str, data: Cow<'a, str> },
}

/// A parsed document: an arena of nodes and the interned namespace URIs.
#[derive(Debug, Clone)]
pub(crate) struct Document<'a> {
    pub(crate) nodes: Vec<Node<'a>>,
    pub(crate) namespaces: Vec<String>,
    pub(crate) root: NodeId,
}

/// Parser options; processing instructions are allowed only for c14n goldens.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ParseOptions {
    pub(crate) allow_pis: bool,
}

impl<'a> Document<'a> {
    /// Parses `bytes` with the assertion profile (no DTD, no PIs).
    pub(crate) fn parse(bytes: &'a [u8]) -> Result<Document<'a>, XmlError> {
        Self::parse_with(bytes, ParseOptions::default())
    }

    /// Parses `bytes` with explicit options.
    pub(crate) fn parse_with(
        bytes: &'a [u8],
        opts: ParseOptions,
    ) -> Result<Document<'a>, XmlError> {
        let text = std::str::from_utf8(bytes).map_err(|_| XmlError::NotUtf8)?;
        if has_control_char(text.as_bytes()) {
            return Err(XmlError::Malformed("control character in document"));
        }
        let bom = if text.starts_with('\u{FEFF}') { 3 } else { 0 };
        Builder::new(opts, text).run(bom)
    }

    /// The element behind `id`; panics if `id` is not an element.
    pub(crate) fn element(&self, id: NodeId) -> &Element<'a> {
        match &self.nodes[id] {
            Node::Element(e) => e,
            _ => unreachable!("node {id} is not an element"),
        }
    }

    /// The namespace URI of an interned id.
    pub(crate) fn ns_uri(&self, ns: NsId) -> &str {
        &self.namespaces[ns as usize]
    }

    /// Whether element `id` has namespace `ns` and local name `local`.
    pub(crate) fn is(&self, id: NodeId, ns: &str, local: &str) -> bool {
        let e = self.element(id);
        e.local == local && self.ns_uri(e.ns) == ns
    }

    /// The element children of `id`, in document order.
    pub(crate) fn child_elements(&self, id: NodeId) -> impl Iterator<Item = NodeId> + '_ {
        self.element(id)
            .children
            .iter()
            .copied()
            .filter(|c| matches!(self.nodes[*c], Node::Element(_)))
    }

    /// The element children of `id` named `{ns}local`.
    pub(crate) fn children_named<'b>(
        &'b self,
        id: NodeId,
        ns: &'b str,
        local: &'b str,
    ) -> impl Iterator<Item = NodeId> + 'b {
        self.child_elements(id)
            .filter(move |c| self.is(*c, ns, local))
    }

    /// The value of the attribute without namespace named `local`.
    pub(crate) fn attr(&self, id: NodeId, local: &str) -> Option<&str> {
        self.element(id)
            .attrs
            .iter()
            .find(|a| a.ns == 0 && a.local == local)
            .map(|a| a.value.as_ref())
    }

    /// The text content of `id`: every descendant text node joined, comments
    /// and processing instructions excluded.
    pub(crate) fn text(&self, id: NodeId) -> String {
        let mut out = String::new();
        self.collect_text(id, &mut out);
        out
    }

    fn collect_text(&self, id: NodeId, out: &mut String) {
        for &c in &self.element(id).children {
            match &self.nodes[c] {
                Node::Text(t) => out.push_str(t),
                Node::Element(_) => self.collect_text(c, out),
                Node::Comment(_) | Node::Pi { .. } => {}
            }
        }
    }

    /// Whether `id` has only whitespace text and comments between its element
    /// children (no mixed content).
    pub(crate) fn only_whitespace_text(&self, id: NodeId) -> bool {
        self.element(id)
            .children
            .iter()
            .all(|c| match &self.nodes[*c] {
                Node::Text(t) => t.bytes().all(|b| matches!(b, b' ' | b'\t' | b'\n')),
                _ => true,
            })
    }

    /// The namespace bound to `prefix` at element `id` (`""` is the default);
    /// `None` when the prefix is unbound or the default namespace is empty.
    pub(crate) fn lookup_prefix(&self, id: NodeId, prefix: &str) -> Option<NsId> {
        let mut cur = Some(id);
        while let Some(n) = cur {
            let e = self.element(n);
            if let Some(d) = e.decls.iter().find(|d| d.prefix == prefix) {
                return if d.ns == 0 { None } else { Some(d.ns) };
            }
            cur = e.parent;
        }
        if prefix == "xml" {
            return self
                .namespaces
                .iter()
                .position(|n| n == XML_NS)
                .map(|p| p as NsId);
        }
        None
    }

    /// Every element of the document, in document order.
    pub(crate) fn elements(&self) -> impl Iterator<Item = NodeId> + '_ {
        (0..self.nodes.len()).filter(|n| matches!(self.nodes[*n], Node::Element(_)))
    }
}

struct Builder<'a> {
    opts: ParseOptions,
    src: &'a str,
    nodes: Vec<Node<'a>>,
    namespaces: Vec<String>,
    interned: std::collections::HashMap<String, NsId>,
    /// Open elements, innermost last.
    stack: Vec<NodeId>,
    /// In-scope bindings, innermost last: (prefix, ns); ns 0 undeclares.
    scope: Vec<(&'a str, NsId)>,
    /// Length of `scope` when each open element started.
    scope_marks: Vec<usize>,
    root: Option<NodeId>,
    /// Scratch for one start tag's attributes, reused across elements.
    raw_attrs: Vec<(&'a str, &'a str, Cow<'a, str>)>,
    /// Whether the last node pushed into the current element is text that a
    /// following text event should extend.
    text_open: bool,
    /// Namespace declarations seen so far.
    decl_count: usize,
}

impl<'a> Builder<'a> {
    fn new(opts: ParseOptions, src: &'a str) -> Self {
        Builder {
            opts,
            src,
            nodes: Vec::with_capacity(src.len() / 32),
            namespaces: vec![String::new(), XML_NS.to_string()],
            interned: [(String::new(), 0), (XML_NS.to_string(), 1)]
                .into_iter()
                .collect(),
            stack: Vec::with_capacity(16),
            scope: vec![("xml", 1)],
            scope_marks: Vec::with_capacity(16),
            root: None,
            raw_attrs: Vec::with_capacity(16),
            text_open: false,
            decl_count: 0,
        }
    }

    fn intern(&mut self, uri: &str) -> NsId {
        if let Some(&id) = self.interned.get(uri) {
            return id;
        }
        let id = self.namespaces.len() as NsId;
        self.namespaces.push(uri.to_string());
        self.interned.insert(uri.to_string(), id);
        id
    }

    fn resolve(&self, prefix: &str) -> Option<NsId> {
        self.scope
            .iter()
            .rev()
            .find(|(p, _)| *p == prefix)
            .map(|(_, ns)| *ns)
    }

    fn run(mut self, bom: usize) -> Result<Document<'a>, XmlError> {
        let mut reader = Reader::from_str(&self.src[bom..]);
        {
            let cfg = reader.config_mut();
            cfg.trim_text(false);
            cfg.expand_empty_elements = false;
            cfg.check_end_names = true;
            cfg.check_comments = true;
            cfg.allow_unmatched_ends = false;
            cfg.allow_dangling_amp = false;
        }
        let mut first = true;
        loop {
            let start = bom + reader.buffer_position() as usize;
            let ev = reader
                .read_event()
                .map_err(|_| XmlError::Malformed("not well-formed xml"))?;
            let was_first = first;
            first = false;
            match ev {
                Event::Decl(d) => {
                    if !was_first {
                        return Err(XmlError::Malformed("misplaced xml declaration"));
                    }
                    if d.version().ok().as_deref() != Some(b"1.0".as_slice()) {
                        return Err(XmlError::Malformed("only xml 1.0 is accepted"));
                    }
                    if let Some(enc) = d.encoding() {
                        let enc = enc.map_err(|_| XmlError::Malformed("bad xml declaration"))?;
                        if !enc.eq_ignore_ascii_case(b"utf-8") {
                            return Err(XmlError::NotUtf8);
                        }
                    }
                }
                Event::DocType(_) => return Err(XmlError::Doctype),
                Event::PI(pi) => {
                    if !self.opts.allow_pis {
                        return Err(XmlError::ProcessingInstruction);
                    }
                    if self.stack.is_empty() {
                        continue;
                    }
                    let target = self.borrowed(pi.target())?;
                    let data = self
                        .borrowed(pi.content())?
                        .trim_start_matches([' ', '\t', '\n', '\r']);
                    self.push_child(Node::Pi {
                        target,
                        data: normalize_eol(data),
                    });
                }
                Event::Start(s) => {
                    self.open(&s, start, false, reader.buffer_position() as usize)?
                }
                Event::Empty(s) => self.open(&s, start, true, reader.buffer_position() as usize)?,
                Event::End(_) => {
                    let id = self
                        .stack
                        .pop()
                        .ok_or(XmlError::Malformed("unmatched end tag"))?;
                    let mark = self.scope_marks.pop().unwrap_or(0);
                    self.scope.truncate(mark);
                    if let Node::Element(e) = &mut self.nodes[id] {
                        e.span.end = bom + reader.buffer_position() as usize;
                    }
                    self.text_open = false;
                }
                Event::Text(t) => {
                    let raw = self.borrowed(&t)?;
                    if memchr::memchr(b'&', raw.as_bytes()).is_some()
                        || memchr::memmem::find(raw.as_bytes(), b"]]>").is_some()
                    {
                        return Err(XmlError::Malformed("bad character data"));
                    }
                    self.text(normalize_eol(raw))?;
                }
                Event::CData(c) => {
                    let raw = self.borrowed(&c)?;
                    if self.stack.is_empty() {
                        return Err(XmlError::Malformed("cdata outside the root element"));
                    }
                    self.text(normalize_eol(raw))?;
                }
                Event::GeneralRef(r) => {
                    let name = std::str::from_utf8(&r).map_err(|_| XmlError::NotUtf8)?;
                    let mut s = String::new();
                    push_reference(name, &mut s)?;
                    if self.stack.is_empty() {
                        return Err(XmlError::Malformed("reference outside the root element"));
                    }
                    self.text(Cow::Owned(s))?;
                }
                Event::Comment(c) => {
                    if self.stack.is_empty() {
                        continue;
                    }
                    let body = self.borrowed(&c)?;
                    if body.ends_with('-') {
                        return Err(XmlError::Malformed("bad comment"));
                    }
                    self.push_child(Node::Comment(normalize_eol(body)));
                }
                Event::Eof => break,
            }
        }
        if !self.stack.is_empty() {
            return Err(XmlError::Malformed("unclosed element"));
        }
        let root = self.root.ok_or(XmlError::Malformed("no root element"))?;
        Ok(Document {
            nodes: self.nodes,
            namespaces: self.namespaces,
            root,
        })
    }

    /// Re-borrows an event's bytes as the slice of the input they are, so
    /// the tree can outlive the reader without copying.
    fn borrowed(&self, bytes: &[u8]) -> Result<&'a str, XmlError> {
        let base = self.src.as_ptr() as usize;
        let at = bytes.as_ptr() as usize;
        match at.checked_sub(base) {
            Some(off) if off + bytes.len() <= self.src.len() => self
                .src
                .get(off..off + bytes.len())
                .ok_or(XmlError::NotUtf8),
            // quick-xml only hands out owned bytes for content it rewrote.
            _ => Err(XmlError::Malformed("unexpected owned event content")),
        }
    }

    fn push_child(&mut self, node: Node<'a>) {
        let id = self.nodes.len();
        self.nodes.push(node);
        if let Some(&parent) = self.stack.last() {
            if let Node::Element(e) = &mut self.nodes[parent] {
                e.children.push(id);
            }
        }
        self.text_open = false;
    }

    fn text(&mut self, s: Cow<'a, str>) -> Result<(), XmlError> {
        if self.stack.is_empty() {
            if s.bytes().all(|b| matches!(b, b' ' | b'\t' | b'\n')) {
                return Ok(());
            }
            return Err(XmlError::Malformed("text outside the root element"));
        }
        if s.is_empty() {
            return Ok(());
        }
        if self.text_open {
            if let Some(Node::Text(t)) = self.nodes.last_mut() {
                t.to_mut().push_str(&s);
                return Ok(());
            }
        }
        self.push_child(Node::Text(s));
        self.text_open = true;
        Ok(())
    }

    fn open(
        &mut self,
        s: &BytesStart<'a>,
        start: usize,
        empty: bool,
        end: usize,
    ) -> Result<(), XmlError> {
        if self.stack.is_empty() && self.root.is_some() {
            return Err(XmlError::Malformed("more than one root element"));
        }
        if self.stack.len() >= MAX_DEPTH {
            return Err(XmlError::Malformed("elements nested too deeply"));
        }
        let qname = self.borrowed(s.name().into_inner())?;
        let (prefix, local) = split_qname(qname)?;
        let mark = self.scope.len();
        let mut decls = Vec::new();
        let mut raw_attrs = std::mem::take(&mut self.raw_attrs);
        raw_attrs.clear();
        let mut attrs_iter = s.attributes();
        // Duplicates are checked below on expanded names, which also
        // catches repeated raw names.
        attrs_iter.with_checks(false);
        for (i, a) in attrs_iter.enumerate() {
            if i >= MAX_ATTRIBUTES {
                return Err(XmlError::Malformed("too many attributes on one element"));
            }
            let a = a.map_err(|_| XmlError::Malformed("bad attribute"))?;
            let key = self.borrowed(a.key.into_inner())?;
            let raw = self.borrowed(&a.value)?;
            let value = normalize_attr(raw)?;
            let (ap, al) = split_qname(key)?;
            if ap.is_empty() && al == "xmlns" {
                let ns = self.intern(&value);
                if value.as_ref() == XML_NS || value == XMLNS_NS {
                    return Err(XmlError::Malformed("reserved namespace bound"));
                }
                decls.push(NsDecl { prefix: "", ns });
            } else if ap == "xmlns" {
                if value.is_empty() {
                    return Err(XmlError::Malformed("empty prefixed namespace declaration"));
                }
                if al == "xmlns" || (al == "xml") != (value == XML_NS) || value == XMLNS_NS {
                    return Err(XmlError::Malformed("reserved prefix misused"));
                }
                if al == "xml" {
                    continue;
                }
                let ns = self.intern(&value);
                decls.push(NsDecl { prefix: al, ns });
            } else {
                raw_attrs.push((ap, al, value));
            }
        }
        self.decl_count += decls.len();
        if self.decl_count > MAX_NS_DECLS {
            return Err(XmlError::Malformed("too many namespace declarations"));
        }
        for (i, d) in decls.iter().enumerate() {
            if decls[..i].iter().any(|x| x.prefix == d.prefix) {
                return Err(XmlError::Malformed("duplicate namespace declaration"));
            }
            self.scope.push((d.prefix, d.ns));
        }
        let ns = match self.resolve(prefix) {
            Some(ns) => ns,
            None if prefix.is_empty() => 0,
            None => return Err(XmlError::Malformed("undeclared namespace prefix")),
        };
        if !prefix.is_empty() && ns == 0 {
            return Err(XmlError::Malformed("undeclared namespace prefix"));
        }
        let mut attrs: Vec<Attr> = Vec::with_capacity(raw_attrs.len());
        for (ap, al, value) in raw_attrs.drain(..) {
            let ans = if ap.is_empty() {
                0
            } else {
                match self.resolve(ap) {
                    Some(ns) if ns != 0 => ns,
                    _ => return Err(XmlError::Malformed("undeclared namespace prefix")),
                }
            };
            if attrs.iter().any(|x| x.ns == ans && x.local == al) {
                return Err(XmlError::Malformed("duplicate attribute"));
            }
            attrs.push(Attr {
                prefix: ap,
                local: al,
                ns: ans,
                value,
            });
        }
        self.raw_attrs = raw_attrs;
        let parent = self.stack.last().copied();
        let id = self.nodes.len();
        self.push_child(Node::Element(Element {
            parent,
            prefix,
            local,
            ns,
            attrs,
            decls,
            children: Vec::new(),
            span: start..end,
        }));
        if parent.is_none() {
            self.root = Some(id);
        }
        if empty {
            self.scope.truncate(mark);
        } else {
            self.stack.push(id);
            self.scope_marks.push(mark);
        }
        Ok(())
    }
}

/// Splits a QName into prefix and local part, checking both are NCNames.
fn split_qname(q: &str) -> Result<(&str, &str), XmlError> {
    let (p, l) = match q.split_once(':') {
        Some((p, l)) => (p, l),
        None => ("", q),
    };
    if (!p.is_empty() || q.contains(':')) && !is_ncname(p) || !is_ncname(l) {
        return Err(XmlError::Malformed("bad name"));
    }
    Ok((p, l))
}

fn is_ncname(s: &str) -> bool {
    let b = s.as_bytes();
    if s.is_ascii() {
        return match b.first() {
            Some(c) if c.is_ascii_alphabetic() || *c == b'_' => b[1..]
                .iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_')),
            _ => false,
        };
    }
    let mut chars = s.chars();
    match chars.next() {
        None => false,
        Some(c) if c.is_ascii_digit() || matches!(c, '-' | '.') => false,
        Some(c) if !name_char(c) => false,
        _ => chars.all(name_char),
    }
}

fn name_char(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(c, '-' | '.' | '_' | '\u{B7}')
        || (c as u32 >= 0xC0
            && !matches!(c as u32, 0xD7 | 0xF7 | 0x37E | 0x2000..=0x200B | 0x200E..=0x206F | 0x2190..=0x2BFF | 0x2FF0..=0x3000 | 0xD800..=0xF8FF | 0xFDD0..=0xFDEF | 0xFFFE..=0xFFFF))
}

/// Whether `b` holds a C0 control other than TAB, LF and CR (not XML 1.0
/// characters). Folds 64-byte chunks so the compiler can vectorize.
fn has_control_char(b: &[u8]) -> bool {
    b.chunks(64).any(|chunk| {
        chunk.iter().fold(false, |acc, &c| {
            acc | (c < 0x20 && c != b'\t' && c != b'\n' && c != b'\r')
        })
    })
}

/// XML 1.0 section 2.11: CRLF and lone CR become LF.
fn normalize_eol(s: &str) -> Cow<'_, str> {
    if memchr::memchr(b'\r', s.as_bytes()).is_some() {
        Cow::Owned(s.replace("\r\n", "\n").replace('\r', "\n"))
    } else {
        Cow::Borrowed(s)
    }
}

/// Attribute value normalization for CDATA attributes (no DTD here): line
/// ends are normalized, literal whitespace characters become spaces, then
/// references are resolved.
fn normalize_attr(raw: &str) -> Result<Cow<'_, str>, XmlError> {
    let bytes = raw.as_bytes();
    if memchr::memchr(b'<', bytes).is_some() {
        return Err(XmlError::Malformed("'<' in attribute value"));
    }
    if memchr::memchr3(b'&', b'\t', b'\n', bytes).is_none()
        && memchr::memchr(b'\r', bytes).is_none()
    {
        return Ok(Cow::Borrowed(raw));
    }
    let raw = normalize_eol(raw);
    let mut out = String::with_capacity(raw.len());
    let mut rest: &str = &raw;
    while let Some(i) = rest.find(['&', '\t', '\n']) {
        out.push_str(&rest[..i]);
        if rest.as_bytes()[i] == b'&' {
            let end = rest[i..]
                .find(';')
                .ok_or(XmlError::Malformed("unterminated reference"))?;
            push_reference(&rest[i + 1..i + end], &mut out)?;
            rest = &rest[i + end + 1..];
        } else {
            out.push(' ');
            rest = &rest[i + 1..];
        }
    }
    out.push_str(rest);
    Ok(Cow::Owned(out))
}

/// Resolves one reference body (`amp`, `#13`, `#x9`); any other entity is
/// undeclared, since no DTD is allowed.
fn push_reference(name: &str, out: &mut String) -> Result<(), XmlError> {
    let c = match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        _ => {
            let code = if let Some(hex) = name.strip_prefix("#x") {
                u32::from_str_radix(hex, 16).ok()
            } else if let Some(dec) = name.strip_prefix('#') {
                dec.parse::<u32>().ok()
            } else {
                return Err(XmlError::Malformed("undeclared entity"));
            };
            let c = code
                .and_then(char::from_u32)
                .ok_or(XmlError::Malformed("bad character reference"))?;
            if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r')
                || matches!(c as u32, 0xFFFE | 0xFFFF)
            {
                return Err(XmlError::Malformed("bad character reference"));
            }
            c
        }
    };
    out.push(c);
    Ok(())
}
