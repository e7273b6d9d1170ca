//! Exclusive XML canonicalization 1.0 of one subtree of the parsed tree.
//!
//! Writes into any [`Sink`]: a reusable byte buffer for SignedInfo, or a
//! running digest for a Reference, so the canonical form of the signed
//! element is never materialized. Which subtree to canonicalize, and with
//! what options, is decided by `dsig`.

use super::xml::{Attr, Document, Node, NodeId, NsId};

/// Where canonical bytes go.
pub(crate) trait Sink {
    /// Appends bytes to the output.
    fn put(&mut self, bytes: &[u8]);
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// A digest fed in blocks: c14n emits many tiny pieces, and each
/// `Context::update` call has a fixed cost.
pub(crate) struct DigestSink {
    ctx: aws_lc_rs::digest::Context,
    buf: [u8; 1024],
    len: usize,
}

impl DigestSink {
    /// A sink computing `alg`.
    pub(crate) fn new(alg: &'static aws_lc_rs::digest::Algorithm) -> Self {
        DigestSink {
            ctx: aws_lc_rs::digest::Context::new(alg),
            buf: [0; 1024],
            len: 0,
        }
    }

    /// The digest of everything written.
    pub(crate) fn finish(mut self) -> aws_lc_rs::digest::Digest {
        self.ctx.update(&self.buf[..self.len]);
        self.ctx.finish()
    }

    /// Hashes the buffer (and `bytes`, when they would not fit either).
    #[inline(never)]
    fn spill(&mut self, bytes: &[u8]) {
        self.ctx.update(&self.buf[..self.len]);
        self.len = 0;
        if bytes.len() > self.buf.len() {
            self.ctx.update(bytes);
        } else {
            self.buf[..bytes.len()].copy_from_slice(bytes);
            self.len = bytes.len();
        }
    }
}

impl Sink for DigestSink {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        let end = self.len + bytes.len();
        match self.buf.get_mut(self.len..end) {
            Some(room) => {
                room.copy_from_slice(bytes);
                self.len = end;
            }
            None => self.spill(bytes),
        }
    }
}

/// Options of one canonicalization.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Options<'a> {
    /// `xml-exc-c14n#WithComments`.
    pub(crate) with_comments: bool,
    /// InclusiveNamespaces PrefixList; `""` stands for `#default`.
    pub(crate) inclusive: &'a [String],
    /// A subtree left out of the output (the enveloped signature).
    pub(crate) exclude: Option<NodeId>,
}

/// Canonicalizes the subtree at `apex` into `out`.
pub(crate) fn canonicalize<S: Sink>(
    doc: &Document<'_>,
    apex: NodeId,
    opts: Options<'_>,
    out: &mut S,
) {
    let mut w = Writer {
        doc,
        opts,
        rendered: Vec::with_capacity(16),
        needed: Vec::with_capacity(8),
        attrs: Vec::with_capacity(8),
    };
    w.element(apex, out);
}

struct Writer<'d, 'o> {
    doc: &'d Document<'d>,
    opts: Options<'o>,
    /// Namespace declarations rendered by output ancestors, innermost last.
    rendered: Vec<(&'d str, NsId)>,
    /// Scratch: prefixes the current element needs. Emptied before
    /// descending, so one buffer serves the whole walk.
    needed: Vec<(&'d str, NsId)>,
    /// Scratch: the current element's attributes in canonical order.
    attrs: Vec<&'d Attr<'d>>,
}

impl<'d> Writer<'d, '_> {
    fn rendered_binding(&self, prefix: &str) -> Option<NsId> {
        self.rendered
            .iter()
            .rev()
            .find(|(p, _)| *p == prefix)
            .map(|(_, ns)| *ns)
    }

    fn need(&mut self, p: &'d str, ns: NsId) {
        if p != "xml" && !self.needed.iter().any(|(q, _)| *q == p) {
            self.needed.push((p, ns));
        }
    }

    fn element<S: Sink>(&mut self, id: NodeId, out: &mut S) {
        let doc = self.doc;
        let e = doc.element(id);
        let mark = self.rendered.len();

        // Prefixes visibly utilized by the element and its attributes, plus
        // the inclusive ones that are in scope.
        self.needed.clear();
        self.need(e.prefix, e.ns);
        for a in doc.attrs(id) {
            if !a.prefix.is_empty() {
                self.need(a.prefix, a.ns);
            }
        }
        // The `xml` prefix has no declaration and is never rendered.
        for p in self.opts.inclusive {
            match doc.declaration(id, p) {
                Some(d) if d.ns != 0 => self.need(d.prefix, d.ns),
                _ if p.is_empty() => self.need("", 0),
                _ => {}
            }
        }
        // Keep only what an output ancestor has not already rendered.
        let mut needed = std::mem::take(&mut self.needed);
        needed.retain(|(p, ns)| match self.rendered_binding(p) {
            Some(c) => c != *ns,
            // Nothing rendered yet: an empty default needs no xmlns="".
            None => !(p.is_empty() && *ns == 0),
        });
        needed.sort_unstable_by(|a, b| a.0.cmp(b.0));

        out.put(b"<");
        put_qname(out, e.prefix, e.local);
        for (p, ns) in &needed {
            if p.is_empty() {
                out.put(b" xmlns=\"");
            } else {
                out.put(b" xmlns:");
                out.put(p.as_bytes());
                out.put(b"=\"");
            }
            escape_attr(out, doc.ns_uri(*ns));
            out.put(b"\"");
        }
        self.rendered.extend(needed.iter().copied());
        self.needed = needed;

        let mut attrs = std::mem::take(&mut self.attrs);
        attrs.clear();
        attrs.extend(doc.attrs(id).iter());
        // By namespace URI, then local name; most attributes share the
        // empty namespace, so the URIs are compared only when they differ.
        attrs.sort_unstable_by(|a, b| {
            let by_ns = if a.ns == b.ns {
                std::cmp::Ordering::Equal
            } else {
                doc.ns_uri(a.ns).cmp(doc.ns_uri(b.ns))
            };
            by_ns.then_with(|| a.local.cmp(b.local))
        });
        for a in &attrs {
            out.put(b" ");
            put_qname(out, a.prefix, a.local);
            out.put(b"=\"");
            escape_attr(out, &a.value);
            out.put(b"\"");
        }
        out.put(b">");
        self.attrs = attrs;

        for c in doc.children(id) {
            if Some(c) == self.opts.exclude {
                continue;
            }
            match &doc.nodes[c] {
                Node::Element(_) => self.element(c, out),
                Node::Text(t) => escape_text(out, t),
                Node::Comment(t) => {
                    if self.opts.with_comments {
                        out.put(b"<!--");
                        out.put(t.as_bytes());
                        out.put(b"-->");
                    }
                }
                Node::Pi { target, data } => {
                    out.put(b"<?");
                    out.put(target.as_bytes());
                    if !data.is_empty() {
                        out.put(b" ");
                        out.put(data.as_bytes());
                    }
                    out.put(b"?>");
                }
            }
        }

        out.put(b"</");
        put_qname(out, e.prefix, e.local);
        out.put(b">");
        self.rendered.truncate(mark);
    }
}

fn put_qname<S: Sink>(out: &mut S, prefix: &str, local: &str) {
    if !prefix.is_empty() {
        out.put(prefix.as_bytes());
        out.put(b":");
    }
    out.put(local.as_bytes());
}

fn escape_text<S: Sink>(out: &mut S, s: &str) {
    let bytes = s.as_bytes();
    let mut start = 0;
    // Text is mostly plain: jump between the few bytes that need escaping.
    while let Some(i) = next_text_special(&bytes[start..]) {
        let at = start + i;
        out.put(&bytes[start..at]);
        out.put(match bytes[at] {
            b'&' => b"&amp;",
            b'<' => b"&lt;",
            b'>' => b"&gt;",
            _ => b"&#xD;",
        });
        start = at + 1;
    }
    out.put(&bytes[start..]);
}

fn next_text_special(b: &[u8]) -> Option<usize> {
    let a = memchr::memchr3(b'&', b'<', b'>', b);
    let cr = memchr::memchr(b'\r', &b[..a.unwrap_or(b.len())]);
    cr.or(a)
}

fn escape_attr<S: Sink>(out: &mut S, s: &str) {
    let bytes = s.as_bytes();
    // Nearly every value (namespace URIs above all) needs no escaping: a
    // check without early exit, which vectorizes, then one copy. Bytes
    // under 0x20 other than TAB, LF and CR never reach here (the parser
    // refuses them), so counting them in only sends them the slow way.
    let special = bytes.iter().fold(false, |acc, &b| {
        acc | (b < 0x20) | (b == b'"') | (b == b'&') | (b == b'<')
    });
    if !special {
        out.put(bytes);
        return;
    }
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let rep: &[u8] = match b {
            b'&' => b"&amp;",
            b'<' => b"&lt;",
            b'"' => b"&quot;",
            b'\t' => b"&#x9;",
            b'\n' => b"&#xA;",
            b'\r' => b"&#xD;",
            _ => continue,
        };
        out.put(&bytes[start..i]);
        out.put(rep);
        start = i + 1;
    }
    out.put(&bytes[start..]);
}

#[cfg(test)]
mod tests;
