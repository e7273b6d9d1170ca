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
/// The interned id of [`XML_NS`], the same in every document.
const XML_NS_ID: NsId = 1;

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

/// An element with its resolved name. Names borrow from the input. Its
/// attributes and declarations are ranges of the document's flat lists, and
/// its children a chain through [`Document::next`], so that building the
/// tree allocates per document, not per element.
#[derive(Debug, Clone)]
pub(crate) struct Element<'a> {
    pub(crate) parent: Option<NodeId>,
    pub(crate) prefix: &'a str,
    pub(crate) local: &'a str,
    pub(crate) ns: NsId,
    attrs: Range<u32>,
    decls: Range<u32>,
    first_child: Option<NodeId>,
    last_child: Option<NodeId>,
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

/// A parsed document: an arena of nodes, the flat attribute and declaration
/// lists they index, and the interned namespace URIs.
#[derive(Debug, Clone)]
pub(crate) struct Document<'a> {
    pub(crate) nodes: Vec<Node<'a>>,
    /// The next sibling of each node.
    next: Vec<Option<NodeId>>,
    attrs: Vec<Attr<'a>>,
    decls: Vec<NsDecl<'a>>,
    namespaces: Vec<Cow<'a, str>>,
    pub(crate) root: NodeId,
}

/// The children of one element, in document order.
pub(crate) struct Children<'d, 'a> {
    doc: &'d Document<'a>,
    cur: Option<NodeId>,
}

impl Iterator for Children<'_, '_> {
    type Item = NodeId;

    fn next(&mut self) -> Option<NodeId> {
        let id = self.cur?;
        self.cur = self.doc.next[id];
        Some(id)
    }
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
    #[inline]
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

    /// The attributes of element `id` (namespace declarations excluded), in
    /// document order.
    pub(crate) fn attrs(&self, id: NodeId) -> &[Attr<'a>] {
        let r = &self.element(id).attrs;
        &self.attrs[r.start as usize..r.end as usize]
    }

    /// The namespace declarations written on element `id`.
    pub(crate) fn decls(&self, id: NodeId) -> &[NsDecl<'a>] {
        let r = &self.element(id).decls;
        &self.decls[r.start as usize..r.end as usize]
    }

    /// Every child node of element `id`, in document order.
    pub(crate) fn children(&self, id: NodeId) -> Children<'_, 'a> {
        Children {
            doc: self,
            cur: self.element(id).first_child,
        }
    }

    /// Whether element `id` has namespace `ns` and local name `local`.
    #[inline]
    pub(crate) fn is(&self, id: NodeId, ns: &str, local: &str) -> bool {
        let e = self.element(id);
        e.local == local && self.ns_uri(e.ns) == ns
    }

    /// The element children of `id`, in document order.
    pub(crate) fn child_elements(&self, id: NodeId) -> impl Iterator<Item = NodeId> + '_ {
        self.children(id)
            .filter(|c| matches!(self.nodes[*c], Node::Element(_)))
    }

    /// The element children of `id` named `{ns}local`.
    #[inline]
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
    #[inline]
    pub(crate) fn attr(&self, id: NodeId, local: &str) -> Option<&str> {
        self.attrs(id)
            .iter()
            .find(|a| a.ns == 0 && a.local == local)
            .map(|a| a.value.as_ref())
    }

    /// The text content of `id`: every descendant text node joined, comments
    /// and processing instructions excluded. Borrowed when `id` holds one
    /// text node and nothing else, as nearly every SAML value does.
    pub(crate) fn text(&self, id: NodeId) -> Cow<'_, str> {
        let mut children = self.children(id);
        match (children.next().map(|c| &self.nodes[c]), children.next()) {
            (None, _) => Cow::Borrowed(""),
            (Some(Node::Text(t)), None) => Cow::Borrowed(t),
            _ => {
                let mut out = String::new();
                self.collect_text(id, &mut out);
                Cow::Owned(out)
            }
        }
    }

    fn collect_text(&self, id: NodeId, out: &mut String) {
        for c in self.children(id) {
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
        self.children(id).all(|c| match &self.nodes[c] {
            Node::Text(t) => t.bytes().all(|b| matches!(b, b' ' | b'\t' | b'\n')),
            _ => true,
        })
    }

    /// The declaration in scope at element `id` that binds `prefix` (`""`
    /// is the default), written on `id` or its nearest ancestor. The `xml`
    /// prefix is bound without one.
    pub(crate) fn declaration(&self, id: NodeId, prefix: &str) -> Option<&NsDecl<'a>> {
        let mut cur = Some(id);
        while let Some(n) = cur {
            if let Some(d) = self.decls(n).iter().find(|d| d.prefix == prefix) {
                return Some(d);
            }
            cur = self.element(n).parent;
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
    next: Vec<Option<NodeId>>,
    attrs: Vec<Attr<'a>>,
    decls: Vec<NsDecl<'a>>,
    /// Interned URIs; a document has a handful, so a linear search beats
    /// hashing.
    namespaces: Vec<Cow<'a, str>>,
    /// Open elements, innermost last.
    stack: Vec<NodeId>,
    /// In-scope bindings, innermost last: (prefix, ns); ns 0 undeclares.
    scope: Vec<(&'a str, NsId)>,
    /// Length of `scope` when each open element started.
    scope_marks: Vec<usize>,
    root: Option<NodeId>,
    /// Whether the last node pushed into the current element is text that a
    /// following text event should extend.
    text_open: bool,
}

impl<'a> Builder<'a> {
    fn new(opts: ParseOptions, src: &'a str) -> Self {
        let nodes = src.len() / 48 + 8;
        Builder {
            opts,
            src,
            nodes: Vec::with_capacity(nodes),
            next: Vec::with_capacity(nodes),
            attrs: Vec::with_capacity(nodes),
            decls: Vec::with_capacity(16),
            namespaces: {
                let mut n = Vec::with_capacity(16);
                n.extend([Cow::Borrowed(""), Cow::Borrowed(XML_NS)]);
                n
            },
            stack: Vec::with_capacity(16),
            scope: {
                let mut s = Vec::with_capacity(16);
                s.push(("xml", XML_NS_ID));
                s
            },
            scope_marks: Vec::with_capacity(16),
            root: None,
            text_open: false,
        }
    }

    fn intern(&mut self, uri: Cow<'a, str>) -> NsId {
        if let Some(id) = self.namespaces.iter().position(|n| *n == uri) {
            return id as NsId;
        }
        self.namespaces.push(uri);
        (self.namespaces.len() - 1) as NsId
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
                    if !decl_well_formed(&d) {
                        return Err(XmlError::Malformed("bad xml declaration"));
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
                    // One scan for all three: `]` and CR are rare in text,
                    // and every search costs a setup on every text node.
                    let b = raw.as_bytes();
                    let mut cr = false;
                    for i in memchr::memchr3_iter(b'&', b']', b'\r', b) {
                        match b[i] {
                            b'\r' => cr = true,
                            b']' if !b[i..].starts_with(b"]]>") => {}
                            _ => return Err(XmlError::Malformed("bad character data")),
                        }
                    }
                    self.text(if cr {
                        normalize_eol(raw)
                    } else {
                        Cow::Borrowed(raw)
                    })?;
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
            next: self.next,
            attrs: self.attrs,
            decls: self.decls,
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
        self.next.push(None);
        if let Some(&parent) = self.stack.last() {
            if let Node::Element(e) = &mut self.nodes[parent] {
                match e.last_child.replace(id) {
                    Some(prev) => self.next[prev] = Some(id),
                    None => e.first_child = Some(id),
                }
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
        let decls_start = self.decls.len();
        // Attributes go straight into the document's list; their prefixes
        // resolve once the element's own declarations are known.
        let attrs_start = self.attrs.len();
        let raw = self.borrowed(s.attributes_raw())?;
        // Duplicates are checked below on expanded names, which also
        // catches repeated raw names.
        for (i, a) in Attributes::new(raw).enumerate() {
            if i >= MAX_ATTRIBUTES {
                return Err(XmlError::Malformed("too many attributes on one element"));
            }
            let (ap, al, raw) = a?;
            let value = normalize_attr(raw)?;
            if ap.is_empty() && al == "xmlns" {
                if value.as_ref() == XML_NS || value == XMLNS_NS {
                    return Err(XmlError::Malformed("reserved namespace bound"));
                }
                let ns = self.intern(value);
                self.declare("", ns, decls_start)?;
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
                let ns = self.intern(value);
                self.declare(al, ns, decls_start)?;
            } else {
                self.attrs.push(Attr {
                    prefix: ap,
                    local: al,
                    ns: 0,
                    value,
                });
            }
        }
        let ns = match self.resolve(prefix) {
            Some(ns) => ns,
            None if prefix.is_empty() => 0,
            None => return Err(XmlError::Malformed("undeclared namespace prefix")),
        };
        if !prefix.is_empty() && ns == 0 {
            return Err(XmlError::Malformed("undeclared namespace prefix"));
        }
        for i in attrs_start..self.attrs.len() {
            let prefix = self.attrs[i].prefix;
            if !prefix.is_empty() {
                match self.resolve(prefix) {
                    Some(ns) if ns != 0 => self.attrs[i].ns = ns,
                    _ => return Err(XmlError::Malformed("undeclared namespace prefix")),
                }
            }
            let (ns, local) = (self.attrs[i].ns, self.attrs[i].local);
            if self.attrs[attrs_start..i]
                .iter()
                .any(|x| x.ns == ns && x.local == local)
            {
                return Err(XmlError::Malformed("duplicate attribute"));
            }
        }
        let parent = self.stack.last().copied();
        let id = self.nodes.len();
        self.push_child(Node::Element(Element {
            parent,
            prefix,
            local,
            ns,
            attrs: index(attrs_start)..index(self.attrs.len()),
            decls: index(decls_start)..index(self.decls.len()),
            first_child: None,
            last_child: None,
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

    /// Records a declaration of the element being opened (whose own start
    /// at `decls_start`) and brings it into scope.
    fn declare(&mut self, prefix: &'a str, ns: NsId, decls_start: usize) -> Result<(), XmlError> {
        if self.decls[decls_start..].iter().any(|d| d.prefix == prefix) {
            return Err(XmlError::Malformed("duplicate namespace declaration"));
        }
        if self.decls.len() >= MAX_NS_DECLS {
            return Err(XmlError::Malformed("too many namespace declarations"));
        }
        self.decls.push(NsDecl { prefix, ns });
        self.scope.push((prefix, ns));
        Ok(())
    }
}

/// A position in one of the document's flat lists, which `MAX_ATTRIBUTES`
/// per element and the document size limit keep far below `u32::MAX`.
fn index(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

/// The attributes of one start tag, from the bytes after its name:
/// `(S Name S? '=' S? ('"' [^"]* '"' | "'" [^']* "'"))* S?`. Yields
/// prefix, local name and the raw value; stops at the first error.
struct Attributes<'a> {
    src: &'a str,
    pos: usize,
}

impl<'a> Attributes<'a> {
    fn new(src: &'a str) -> Self {
        Attributes { src, pos: 0 }
    }

    fn skip_space(&mut self) -> usize {
        let b = self.src.as_bytes();
        let start = self.pos;
        while self.pos < b.len() && is_space(b[self.pos]) {
            self.pos += 1;
        }
        self.pos - start
    }

    fn attribute(&mut self) -> Result<(&'a str, &'a str, &'a str), XmlError> {
        const BAD: XmlError = XmlError::Malformed("bad attribute");
        let b = self.src.as_bytes();
        // The name's bytes are classified as they are scanned, so an ASCII
        // name (every real one) needs no second pass to be split.
        let name_start = self.pos;
        let (mut classes, mut colons, mut colon_at) = (0u8, 0u8, 0usize);
        while let Some(&c) = b.get(self.pos) {
            let k = NAME_CLASS[c as usize];
            if k == 0 {
                break;
            }
            classes |= k;
            if k == COLON {
                colons = colons.saturating_add(1);
                colon_at = self.pos - name_start;
            }
            self.pos += 1;
        }
        let name = &self.src[name_start..self.pos];
        let (prefix, local) = if classes & WIDE == 0 {
            split_ascii_qname(name, colons, colon_at)?
        } else {
            split_qname(name)?
        };
        self.skip_space();
        if b.get(self.pos) != Some(&b'=') {
            return Err(BAD);
        }
        self.pos += 1;
        self.skip_space();
        let quote = match b.get(self.pos) {
            Some(&q @ (b'"' | b'\'')) => q,
            _ => return Err(BAD),
        };
        let value_start = self.pos + 1;
        let len = memchr::memchr(quote, &b[value_start..]).ok_or(BAD)?;
        self.pos = value_start + len + 1;
        // Attributes are separated by white space: `a="1"b="2"` is not XML.
        if self.pos < b.len() && !is_space(b[self.pos]) {
            return Err(BAD);
        }
        Ok((prefix, local, &self.src[value_start..value_start + len]))
    }
}

impl<'a> Iterator for Attributes<'a> {
    type Item = Result<(&'a str, &'a str, &'a str), XmlError>;

    fn next(&mut self) -> Option<Self::Item> {
        // The tokenizer ends the tag name at white space, so every
        // attribute, the first one too, follows white space.
        if self.skip_space() == 0 && self.pos < self.src.len() {
            self.pos = self.src.len();
            return Some(Err(XmlError::Malformed("bad attribute")));
        }
        if self.pos >= self.src.len() {
            return None;
        }
        let item = self.attribute();
        if item.is_err() {
            self.pos = self.src.len();
        }
        Some(item)
    }
}

/// XML white space (production S).
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// Whether the content of an XML declaration (`xml` and what follows, up
/// to `?>`) follows XML 1.0's `XMLDecl`: `version`, then optionally
/// `encoding`, then optionally `standalone`, each as `S name Eq 'value'`,
/// in that order, with well-formed values. quick-xml looks the three up by
/// name and lets anything else through.
fn decl_well_formed(content: &[u8]) -> bool {
    fn skip_space(b: &[u8]) -> &[u8] {
        let n = b.iter().take_while(|c| is_space(**c)).count();
        &b[n..]
    }
    /// `S name Eq quoted-value` at the start of `rest`, consumed only
    /// when it is there.
    fn pseudo<'b>(rest: &mut &'b [u8], name: &[u8]) -> Option<&'b [u8]> {
        let after_space = skip_space(rest);
        if after_space.len() == rest.len() {
            return None;
        }
        let r = after_space.strip_prefix(name)?;
        let r = skip_space(skip_space(r).strip_prefix(b"=")?);
        let (&quote, r) = r.split_first()?;
        if quote != b'"' && quote != b'\'' {
            return None;
        }
        let end = r.iter().position(|c| *c == quote)?;
        *rest = &r[end + 1..];
        Some(&r[..end])
    }
    let Some(mut rest) = content.strip_prefix(b"xml") else {
        return false;
    };
    let version_ok = pseudo(&mut rest, b"version").is_some_and(|v| {
        v.strip_prefix(b"1.")
            .is_some_and(|d| !d.is_empty() && d.iter().all(u8::is_ascii_digit))
    });
    if !version_ok {
        return false;
    }
    if let Some(enc) = pseudo(&mut rest, b"encoding") {
        let name_ok = enc.first().is_some_and(u8::is_ascii_alphabetic)
            && enc
                .iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'));
        if !name_ok {
            return false;
        }
    }
    if let Some(sd) = pseudo(&mut rest, b"standalone") {
        if sd != b"yes" && sd != b"no" {
            return false;
        }
    }
    skip_space(rest).is_empty()
}

/// Splits a QName into prefix and local part, checking both are NCNames.
fn split_qname(q: &str) -> Result<(&str, &str), XmlError> {
    const BAD: XmlError = XmlError::Malformed("bad name");
    let b = q.as_bytes();
    // Real SAML names are short ASCII: classify them 32 bytes at once, and
    // decode chars only for anything else.
    match ascii_name_bytes(b) {
        Some((colons, at)) => split_ascii_qname(q, colons, at),
        None => {
            let (p, l) = q.split_once(':').unwrap_or(("", q));
            if l.contains(':') || (q.contains(':') && !is_ncname(p)) || !is_ncname(l) {
                return Err(BAD);
            }
            Ok((p, l))
        }
    }
}

/// Splits a name whose bytes are all ASCII name characters or colons,
/// given how many colons it has and where the last one is.
fn split_ascii_qname(q: &str, colons: u8, at: usize) -> Result<(&str, &str), XmlError> {
    const BAD: XmlError = XmlError::Malformed("bad name");
    let (p, l) = match colons {
        0 => ("", q),
        1 => (&q[..at], &q[at + 1..]),
        _ => return Err(BAD),
    };
    let starts = |s: &str| {
        s.as_bytes()
            .first()
            .is_some_and(|&c| NAME_CLASS[c as usize] & START != 0)
    };
    if !starts(l) || colons == 1 && !starts(p) {
        return Err(BAD);
    }
    Ok((p, l))
}

/// For a name of at most 32 bytes that are all ASCII NCName characters or
/// colons: the number of colons and the index of the last one. Works on a
/// fixed-size copy so that the compiler checks all bytes in vector lanes.
fn ascii_name_bytes(b: &[u8]) -> Option<(u8, usize)> {
    let mut buf = [b'a'; 32];
    buf.get_mut(..b.len())?.copy_from_slice(b);
    let (mut bad, mut colons, mut at) = (false, 0u8, 0u8);
    for (i, &c) in buf.iter().enumerate() {
        let name = ((c | 0x20).wrapping_sub(b'a') < 26)
            | (c.wrapping_sub(b'0') < 10)
            | (c == b'-')
            | (c == b'.')
            | (c == b'_');
        let colon = c == b':';
        bad |= !(name | colon);
        colons += u8::from(colon);
        at = at.max(if colon { i as u8 } else { 0 });
    }
    (!bad).then_some((colons, usize::from(at)))
}

/// Byte classes of names: ASCII that may start an NCName, ASCII that may
/// continue one, the colon, and bytes of non-ASCII characters (which
/// `is_ncname` checks char by char). Class 0 ends or breaks a name.
const START: u8 = 1;
const CONT: u8 = 2;
const COLON: u8 = 4;
const WIDE: u8 = 8;
const NAME_CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = if b.is_ascii_alphabetic() || b == b'_' {
            START | CONT
        } else if b.is_ascii_digit() || b == b'-' || b == b'.' {
            CONT
        } else if b == b':' {
            COLON
        } else if b >= 0x80 {
            WIDE
        } else {
            0
        };
        c += 1;
    }
    t
};

fn is_ncname(s: &str) -> bool {
    let b = s.as_bytes();
    if s.is_ascii() {
        return match b.split_first() {
            Some((&c, rest)) => {
                NAME_CLASS[c as usize] & START != 0
                    && rest.iter().all(|&c| NAME_CLASS[c as usize] & CONT != 0)
            }
            None => false,
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
    // A two-step check (any byte under 0x20 first, then which) counts fewer
    // instructions but took longer: it branches on every chunk with a line
    // end, where this folds without a branch.
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
    // Values are short: one pass that flags every special byte.
    let special = raw.as_bytes().iter().fold(0u8, |acc, &b| {
        acc | match b {
            b'<' => 1,
            b'&' | b'\t' | b'\n' | b'\r' => 2,
            _ => 0,
        }
    });
    if special & 1 != 0 {
        return Err(XmlError::Malformed("'<' in attribute value"));
    }
    if special == 0 {
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

#[cfg(test)]
mod tests;
