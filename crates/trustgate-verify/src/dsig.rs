//! XML-DSig verification of one enveloped signature, as SAML uses it.
//!
//! The caller names the element that must be signed and the `ds:Signature`
//! that is its direct child; this module checks that the signature has
//! exactly the SAML shape (one Reference to that element's ID, enveloped +
//! exc-c14n transforms, whitelisted algorithms), that the digest matches the
//! element's canonical form, and that a pinned key verifies SignedInfo. What
//! it proved is a [`Signed`] handle to the covered element, which only this
//! module can make and through which claims are read. Which elements must be
//! signed, and what the claims mean, is left to `saml2` and `wsfed`.

use std::borrow::Cow;

use aws_lc_rs::digest;
use subtle::ConstantTimeEq;

use super::c14n::{self, Options};
use super::error::{short, AssertionError};
use super::form::decode_lenient;
use super::keys::{KeyKind, PinnedKey, VerifyAlg};
use super::xml::{Document, Node, NodeId};

/// The XML-DSig namespace.
pub(crate) const DSIG_NS: &str = "http://www.w3.org/2000/09/xmldsig#";
const EXC_C14N: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
const EXC_C14N_COMMENTS: &str = "http://www.w3.org/2001/10/xml-exc-c14n#WithComments";
const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hash {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    fn algorithm(self) -> &'static digest::Algorithm {
        match self {
            Hash::Sha1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
            Hash::Sha256 => &digest::SHA256,
            Hash::Sha384 => &digest::SHA384,
            Hash::Sha512 => &digest::SHA512,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SigAlg {
    Rsa(Hash),
    Ecdsa(Hash),
}

fn digest_method(uri: &str, allow_sha1: bool) -> Result<Hash, AssertionError> {
    let h = match uri {
        "http://www.w3.org/2000/09/xmldsig#sha1" => Hash::Sha1,
        "http://www.w3.org/2001/04/xmlenc#sha256" => Hash::Sha256,
        "http://www.w3.org/2001/04/xmldsig-more#sha384" => Hash::Sha384,
        "http://www.w3.org/2001/04/xmlenc#sha512" => Hash::Sha512,
        _ => return Err(weak(uri)),
    };
    if h == Hash::Sha1 && !allow_sha1 {
        return Err(weak(uri));
    }
    Ok(h)
}

fn signature_method(uri: &str, allow_sha1: bool) -> Result<SigAlg, AssertionError> {
    let alg = match uri {
        "http://www.w3.org/2000/09/xmldsig#rsa-sha1" => SigAlg::Rsa(Hash::Sha1),
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256" => SigAlg::Rsa(Hash::Sha256),
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384" => SigAlg::Rsa(Hash::Sha384),
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512" => SigAlg::Rsa(Hash::Sha512),
        "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256" => SigAlg::Ecdsa(Hash::Sha256),
        "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384" => SigAlg::Ecdsa(Hash::Sha384),
        "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512" => SigAlg::Ecdsa(Hash::Sha512),
        // HMAC (any digest), DSA, ECDSA-SHA1 and everything else.
        _ => return Err(weak(uri)),
    };
    if alg == SigAlg::Rsa(Hash::Sha1) && !allow_sha1 {
        return Err(weak(uri));
    }
    Ok(alg)
}

fn weak(uri: &str) -> AssertionError {
    AssertionError::WeakAlgorithm { uri: short(uri) }
}

/// The algorithm for `alg` with a key of `kind`, if they fit together.
/// Keys under 2048 bits are accepted only with the legacy flag.
fn verify_alg(alg: SigAlg, kind: KeyKind, legacy: bool) -> Option<VerifyAlg> {
    let small_rsa = matches!(kind, KeyKind::Rsa(bits) if bits < 2048);
    Some(match (alg, kind) {
        (SigAlg::Rsa(Hash::Sha1), KeyKind::Rsa(_)) => VerifyAlg::RsaSha1Legacy,
        (SigAlg::Rsa(Hash::Sha256), KeyKind::Rsa(_)) if small_rsa => {
            if !legacy {
                return None;
            }
            VerifyAlg::RsaSha256Legacy
        }
        (SigAlg::Rsa(Hash::Sha256), KeyKind::Rsa(_)) => VerifyAlg::RsaSha256,
        (SigAlg::Rsa(Hash::Sha384), KeyKind::Rsa(_)) => VerifyAlg::RsaSha384,
        (SigAlg::Rsa(Hash::Sha512), KeyKind::Rsa(_)) if small_rsa => {
            if !legacy {
                return None;
            }
            VerifyAlg::RsaSha512Legacy
        }
        (SigAlg::Rsa(Hash::Sha512), KeyKind::Rsa(_)) => VerifyAlg::RsaSha512,
        (SigAlg::Ecdsa(hash), KeyKind::EcP256 | KeyKind::EcP384 | KeyKind::EcP521) => match hash {
            Hash::Sha256 => VerifyAlg::EcdsaSha256,
            Hash::Sha384 => VerifyAlg::EcdsaSha384,
            Hash::Sha512 => VerifyAlg::EcdsaSha512,
            Hash::Sha1 => return None,
        },
        _ => return None,
    })
}

/// What a signature check proved: the element whose canonical form, without
/// its enveloped signature, the checked digest covers, in one parsed
/// document, and the pinned key that verified SignedInfo. Only [`verify`]
/// makes one (goxmldsig returns the validated element in the same way).
///
/// Claims are read through it: it hands out only [`Covered`] nodes inside
/// that element, never the enveloped `ds:Signature` or anything in it (the
/// digest leaves them out), and never a node outside.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Signed<'d> {
    doc: &'d Document<'d>,
    element: NodeId,
    signature: NodeId,
    key: usize,
}

/// A node inside the element a [`Signed`] handle covers. Only a `Signed`
/// hands one out, so a reader holding one reached it through signed bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Covered(NodeId);

impl<'d> Signed<'d> {
    /// The covered element itself.
    pub(crate) fn element(&self) -> Covered {
        Covered(self.element)
    }

    /// The index, in the policy's pinned keys, of the key that verified.
    pub(crate) fn key(&self) -> usize {
        self.key
    }

    /// `n` as a covered node, if it is the covered element or an element
    /// inside it and not inside the enveloped signature.
    pub(crate) fn cover(&self, n: NodeId) -> Option<Covered> {
        let mut cur = n;
        loop {
            if cur == self.signature {
                return None;
            }
            if cur == self.element {
                return Some(Covered(n));
            }
            match self.doc.nodes.get(cur)? {
                Node::Element(e) => cur = e.parent?,
                _ => return None,
            }
        }
    }

    /// The namespace URI and local name of `n`.
    pub(crate) fn name(&self, n: Covered) -> (&'d str, &'d str) {
        let e = self.doc.element(n.0);
        (self.doc.ns_uri(e.ns), e.local)
    }

    /// The value of `n`'s attribute without namespace named `local`.
    pub(crate) fn attr(&self, n: Covered, local: &str) -> Option<&'d str> {
        self.doc.attr(n.0, local)
    }

    /// The text content of `n`, without comments (a `#id` digest never
    /// covers them) and without the enveloped signature's text.
    pub(crate) fn text(&self, n: Covered) -> Cow<'d, str> {
        // The signature is a direct child of the covered element: no other
        // covered node holds it.
        if n.0 != self.element {
            return self.doc.text(n.0);
        }
        let mut out = String::new();
        for c in self.doc.children(n.0) {
            match &self.doc.nodes[c] {
                Node::Text(t) => out.push_str(t),
                Node::Element(_) if c != self.signature => out.push_str(&self.doc.text(c)),
                _ => {}
            }
        }
        Cow::Owned(out)
    }

    /// The element children of `n`, in document order, the enveloped
    /// signature left out.
    pub(crate) fn child_elements(&self, n: Covered) -> impl Iterator<Item = Covered> + 'd {
        let signature = self.signature;
        self.doc
            .child_elements(n.0)
            .filter(move |c| *c != signature)
            .map(Covered)
    }

    /// The element children of `n` named `{ns}local`.
    pub(crate) fn children_named<'b>(
        &self,
        n: Covered,
        ns: &'b str,
        local: &'b str,
    ) -> impl Iterator<Item = Covered> + 'b
    where
        'd: 'b,
    {
        let doc = self.doc;
        self.child_elements(n)
            .filter(move |c| doc.is(c.0, ns, local))
    }
}

/// Options of one verification.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Policy<'k> {
    pub(crate) keys: &'k [PinnedKey],
    pub(crate) allow_sha1: bool,
}

/// Verifies that `sig`, a direct child of `signed`, is a valid enveloped
/// signature over `signed`, whose ID attribute value is `id`. Returns the
/// handle to `signed` that claims are read through.
pub(crate) fn verify<'d>(
    doc: &'d Document<'d>,
    signed: NodeId,
    sig: NodeId,
    id: &str,
    policy: Policy<'_>,
) -> Result<Signed<'d>, AssertionError> {
    // An enveloped signature is a child of what it signs; `Signed` relies
    // on that to leave it out.
    if doc.element(sig).parent != Some(signed) {
        return Err(AssertionError::structure(
            "the signature is not a child of the signed element",
        ));
    }
    let parts = SignatureParts::read(doc, sig)?;
    let si = SignedInfoParts::read(doc, parts.signed_info, policy.allow_sha1)?;

    // The one Reference must point at the signature's own parent.
    let uri = doc.attr(si.reference, "URI").unwrap_or("");
    if uri.strip_prefix('#') != Some(id) || id.is_empty() {
        return Err(AssertionError::structure(
            "the reference does not point at the signed element",
        ));
    }
    let reference = ReferenceParts::read(doc, si.reference, policy.allow_sha1)?;

    // Reference validation: the digest of the canonical signed element,
    // without the enveloped signature. A `#id` reference never keeps
    // comments, whatever the c14n transform says.
    let mut ctx = c14n::DigestSink::new(reference.hash.algorithm());
    c14n::canonicalize(
        doc,
        signed,
        Options {
            with_comments: false,
            inclusive: &reference.inclusive,
            exclude: Some(sig),
        },
        &mut ctx,
    );
    let computed = ctx.finish();
    let expected = decode_lenient(doc.text(reference.digest_value).as_bytes())
        .ok_or_else(|| AssertionError::BadDigest { id: short(id) })?;
    let same: bool = (computed.as_ref().len() == expected.len())
        && bool::from(computed.as_ref().ct_eq(expected.as_slice()));
    if !same {
        return Err(AssertionError::BadDigest { id: short(id) });
    }

    // Signature validation over canonical SignedInfo.
    let sig_value = decode_lenient(doc.text(parts.signature_value).as_bytes()).ok_or(
        AssertionError::BadSignature("signature value is not base64"),
    )?;
    if sig_value.is_empty() {
        return Err(AssertionError::BadSignature("empty signature value"));
    }
    // Canonical SignedInfo goes straight into the hash the signature
    // algorithm names; the key then checks the signature over that digest.
    let (SigAlg::Rsa(hash) | SigAlg::Ecdsa(hash)) = si.alg;
    let mut signed_info = c14n::DigestSink::new(hash.algorithm());
    c14n::canonicalize(
        doc,
        parts.signed_info,
        Options {
            with_comments: si.c14n_comments,
            inclusive: &si.c14n_inclusive,
            exclude: None,
        },
        &mut signed_info,
    );
    let signed_info = signed_info.finish();

    // KeyInfo may only select among pinned keys; with one pinned key there
    // is nothing to select, so it is decoded only to explain a failure.
    let offered = |k: Option<NodeId>| k.map(|k| key_info_certs(doc, k)).unwrap_or_default();
    let selected: Option<usize> = if policy.keys.len() > 1 {
        let certs = offered(parts.key_info);
        policy
            .keys
            .iter()
            .position(|k| certs.iter().any(|c| c.as_slice() == k.cert_der()))
    } else {
        None
    };
    // The KeyInfo is a hint, not the trust: the key it names goes first,
    // then every other pinned key (an IdP in a key rollover may name the
    // new certificate and sign with the old key, or the reverse).
    let candidates = selected
        .into_iter()
        .chain((0..policy.keys.len()).filter(|i| Some(*i) != selected));
    let mut fitting = 0;
    for i in candidates {
        let key = &policy.keys[i];
        let Some(alg) = verify_alg(si.alg, key.kind(), policy.allow_sha1) else {
            continue;
        };
        fitting += 1;
        if key.verifies(alg, &signed_info, &sig_value) {
            return Ok(Signed {
                doc,
                element: signed,
                signature: sig,
                key: i,
            });
        }
    }
    if fitting == 0 {
        return Err(AssertionError::UntrustedKey(
            "no pinned key fits the signature algorithm",
        ));
    }
    let certs = offered(parts.key_info);
    let names_pinned = certs
        .iter()
        .any(|c| policy.keys.iter().any(|k| k.cert_der() == c.as_slice()));
    if !certs.is_empty() && !names_pinned {
        return Err(AssertionError::UntrustedKey(
            "signed by a certificate that is not pinned",
        ));
    }
    Err(AssertionError::BadSignature(
        "no pinned key verifies the signature",
    ))
}

fn key_info_certs(doc: &Document, key_info: NodeId) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for x509 in doc.children_named(key_info, DSIG_NS, "X509Data") {
        for cert in doc.children_named(x509, DSIG_NS, "X509Certificate") {
            if let Some(der) = decode_lenient(doc.text(cert).as_bytes()) {
                out.push(der);
            }
        }
    }
    out
}

/// The element children of `id`, refusing non-whitespace text.
fn strict_children(doc: &Document, id: NodeId) -> Result<Vec<NodeId>, AssertionError> {
    if !doc.only_whitespace_text(id) {
        return Err(AssertionError::structure("text inside a signature element"));
    }
    Ok(doc.child_elements(id).collect())
}

fn expect_dsig(doc: &Document, id: NodeId, local: &str) -> bool {
    doc.is(id, DSIG_NS, local)
}

struct SignatureParts {
    signed_info: NodeId,
    signature_value: NodeId,
    key_info: Option<NodeId>,
}

impl SignatureParts {
    fn read(doc: &Document, sig: NodeId) -> Result<Self, AssertionError> {
        let kids = strict_children(doc, sig)?;
        let mut it = kids.into_iter();
        let signed_info = it
            .next()
            .filter(|n| expect_dsig(doc, *n, "SignedInfo"))
            .ok_or_else(|| AssertionError::structure("signature without signedinfo"))?;
        let signature_value = it
            .next()
            .filter(|n| expect_dsig(doc, *n, "SignatureValue"))
            .ok_or_else(|| AssertionError::structure("signature without signaturevalue"))?;
        let mut key_info = None;
        for n in it {
            if expect_dsig(doc, n, "KeyInfo") && key_info.is_none() {
                key_info = Some(n);
            } else {
                return Err(AssertionError::structure(
                    "unexpected element in signature (object or a second keyinfo)",
                ));
            }
        }
        if doc.child_elements(signature_value).next().is_some() {
            return Err(AssertionError::structure("markup inside signaturevalue"));
        }
        Ok(SignatureParts {
            signed_info,
            signature_value,
            key_info,
        })
    }
}

struct SignedInfoParts {
    c14n_comments: bool,
    c14n_inclusive: Vec<String>,
    alg: SigAlg,
    reference: NodeId,
}

impl SignedInfoParts {
    fn read(doc: &Document, si: NodeId, allow_sha1: bool) -> Result<Self, AssertionError> {
        let kids = strict_children(doc, si)?;
        if kids.len() < 3 {
            return Err(AssertionError::structure("incomplete signedinfo"));
        }
        let cm = kids[0];
        let sm = kids[1];
        if !expect_dsig(doc, cm, "CanonicalizationMethod")
            || !expect_dsig(doc, sm, "SignatureMethod")
        {
            return Err(AssertionError::structure(
                "signedinfo children out of order",
            ));
        }
        let refs = &kids[2..];
        if refs.iter().any(|r| !expect_dsig(doc, *r, "Reference")) {
            return Err(AssertionError::structure(
                "unexpected element in signedinfo",
            ));
        }
        if refs.len() != 1 {
            return Err(AssertionError::structure(
                "signedinfo must hold exactly one reference",
            ));
        }
        let (c14n_comments, c14n_inclusive) = c14n_method(doc, cm)?;
        let sm_uri = doc.attr(sm, "Algorithm").unwrap_or("");
        if doc
            .child_elements(sm)
            .any(|c| doc.element(c).local == "HMACOutputLength")
        {
            return Err(weak(sm_uri));
        }
        let alg = signature_method(sm_uri, allow_sha1)?;
        if doc.child_elements(sm).next().is_some() {
            return Err(AssertionError::structure(
                "unexpected element in signaturemethod",
            ));
        }
        Ok(SignedInfoParts {
            c14n_comments,
            c14n_inclusive,
            alg,
            reference: refs[0],
        })
    }
}

/// The most InclusiveNamespaces prefixes accepted; Okta sends one (`xs`).
const MAX_INCLUSIVE_PREFIXES: usize = 16;

/// Reads an exc-c14n method element: whether it keeps comments, and its
/// InclusiveNamespaces PrefixList.
fn c14n_method(doc: &Document, m: NodeId) -> Result<(bool, Vec<String>), AssertionError> {
    let uri = doc.attr(m, "Algorithm").unwrap_or("");
    let comments = match uri {
        EXC_C14N => false,
        EXC_C14N_COMMENTS => true,
        _ => {
            return Err(AssertionError::UnexpectedStructure(Cow::Owned(format!(
                "canonicalization not allowed: {}",
                short(uri)
            ))))
        }
    };
    let kids = strict_children(doc, m)?;
    let mut inclusive = Vec::new();
    match kids.as_slice() {
        [] => {}
        [inc] if doc.is(*inc, EXC_C14N, "InclusiveNamespaces") => {
            let list = doc.attr(*inc, "PrefixList").unwrap_or("");
            for p in list.split_ascii_whitespace() {
                let prefix = if p == "#default" { "" } else { p };
                // Each entry costs a namespace lookup on every element
                // canonicalized: a long list is a CPU attack, not a layout.
                let ncname = p == "#default"
                    || (!p.is_empty()
                        && !p.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '.')
                        && !p.contains(':'));
                if !ncname {
                    return Err(AssertionError::structure(
                        "InclusiveNamespaces PrefixList holds something that is not a prefix",
                    ));
                }
                if !inclusive.iter().any(|q: &String| q == prefix) {
                    inclusive.push(prefix.to_string());
                }
                if inclusive.len() > MAX_INCLUSIVE_PREFIXES {
                    return Err(AssertionError::structure(
                        "InclusiveNamespaces PrefixList is too long",
                    ));
                }
            }
        }
        _ => {
            return Err(AssertionError::structure(
                "unexpected element in a c14n method",
            ))
        }
    }
    Ok((comments, inclusive))
}

struct ReferenceParts {
    hash: Hash,
    inclusive: Vec<String>,
    digest_value: NodeId,
}

impl ReferenceParts {
    fn read(doc: &Document, r: NodeId, allow_sha1: bool) -> Result<Self, AssertionError> {
        let kids = strict_children(doc, r)?;
        let [transforms, dm, dv] = kids.as_slice() else {
            return Err(AssertionError::structure(
                "reference must hold transforms, digestmethod and digestvalue",
            ));
        };
        if !expect_dsig(doc, *transforms, "Transforms")
            || !expect_dsig(doc, *dm, "DigestMethod")
            || !expect_dsig(doc, *dv, "DigestValue")
        {
            return Err(AssertionError::structure("reference children out of order"));
        }
        // Exactly enveloped-signature then exc-c14n: anything else (XPath,
        // XSLT, base64, inclusive c14n) changes what the digest covers.
        let ts = strict_children(doc, *transforms)?;
        if ts.iter().any(|t| !expect_dsig(doc, *t, "Transform")) {
            return Err(AssertionError::structure(
                "unexpected element in transforms",
            ));
        }
        for t in &ts {
            let uri = doc.attr(*t, "Algorithm").unwrap_or("");
            if uri != ENVELOPED && uri != EXC_C14N && uri != EXC_C14N_COMMENTS {
                return Err(AssertionError::UnexpectedStructure(Cow::Owned(format!(
                    "transform not allowed: {}",
                    short(uri)
                ))));
            }
        }
        let [env, c14n_t] = ts.as_slice() else {
            return Err(AssertionError::structure(
                "transforms must be enveloped-signature then exc-c14n",
            ));
        };
        if doc.attr(*env, "Algorithm") != Some(ENVELOPED)
            || doc.child_elements(*env).next().is_some()
        {
            return Err(AssertionError::structure(
                "transforms must be enveloped-signature then exc-c14n",
            ));
        }
        let (_, inclusive) = c14n_method(doc, *c14n_t)?;
        let hash = digest_method(doc.attr(*dm, "Algorithm").unwrap_or(""), allow_sha1)?;
        if doc.child_elements(*dm).next().is_some() || doc.child_elements(*dv).next().is_some() {
            return Err(AssertionError::structure("markup inside digest elements"));
        }
        // The digest value must be plain text, never split by comments.
        if doc
            .children(*dv)
            .any(|c| !matches!(doc.nodes[c], Node::Text(_)))
        {
            return Err(AssertionError::structure("markup inside digestvalue"));
        }
        Ok(ReferenceParts {
            hash,
            inclusive,
            digest_value: *dv,
        })
    }
}

#[cfg(test)]
mod tests;
