//! SAML 2.0 checks: the Response envelope of the POST binding, and the
//! Assertion itself (shared with SAML 2.0 tokens inside WS-Fed).
//!
//! Claims are read only through the [`Signed`] handle of a verified
//! signature that covers the one Assertion, along fixed child paths; Advice
//! and anything else is never read. The Response envelope (Version, Issuer,
//! Status, Destination) may be unsigned when only the Assertion is: it is
//! checked, and can refuse a message, but nothing is taken from it.
//! Signature mechanics are left to `dsig`.

use std::borrow::Cow;
use std::time::SystemTime;

use super::dsig::{self, Covered, Policy, Signed, DSIG_NS};
use super::error::{short, AssertionError};
use super::xml::{Document, NodeId};
use super::{parse_instant, Claims, VerifierConfig};

/// SAML 2.0 protocol namespace.
pub(crate) const SAMLP_NS: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
/// SAML 2.0 assertion namespace.
pub(crate) const SAML_NS: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
const SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";
const BEARER: &str = "urn:oasis:names:tc:SAML:2.0:cm:bearer";

/// Where a SAML 2.0 assertion came from; decides the Recipient rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Binding {
    /// SAML POST binding: a bearer Recipient must equal the ACS URL.
    Post,
    /// Inside a WS-Fed RSTR: Recipient is checked only when present.
    WsFed,
}

/// Verifies a `samlp:Response` document and returns its assertion's claims.
pub(crate) fn verify_response(
    doc: &Document,
    cfg: &VerifierConfig,
    now: SystemTime,
) -> Result<Claims, AssertionError> {
    let root = doc.root;

    // Exactly one Assertion in the whole document, as a direct child.
    if doc
        .elements()
        .any(|n| doc.is(n, SAML_NS, "EncryptedAssertion"))
    {
        return Err(AssertionError::EncryptedUnsupported);
    }
    let count = doc
        .elements()
        .filter(|n| doc.is(*n, SAML_NS, "Assertion"))
        .count();
    if count > 1 {
        return Err(AssertionError::MultipleAssertions { count });
    }
    unique_ids(doc)?;
    let assertion = doc
        .children_named(root, SAML_NS, "Assertion")
        .next()
        .ok_or_else(|| {
            AssertionError::structure(if count == 0 {
                "the response holds no assertion"
            } else {
                "the assertion is not a direct child of the response"
            })
        })?;

    // Signatures: each one present must verify; at least one must cover the
    // assertion (its own, or the Response's, which encloses it).
    let policy = Policy {
        keys: &cfg.keys,
        allow_sha1: cfg.allow_sha1,
    };
    let response_signed = match one_child(doc, root, DSIG_NS, "Signature")? {
        Some(sig) => {
            let id = doc
                .attr(root, "ID")
                .ok_or_else(|| AssertionError::structure("the response has no id"))?;
            Some(dsig::verify(doc, root, sig, id, policy)?)
        }
        None => None,
    };
    let assertion_signed = match one_child(doc, assertion, DSIG_NS, "Signature")? {
        Some(sig) => {
            let id = doc
                .attr(assertion, "ID")
                .ok_or_else(|| AssertionError::structure("the assertion has no id"))?;
            Some(dsig::verify(doc, assertion, sig, id, policy)?)
        }
        None => None,
    };
    // Claims are read through the narrowest signature over the assertion.
    let (signed, covered) = match (assertion_signed, response_signed) {
        (Some(s), _) => (s, s.element()),
        (None, Some(s)) => {
            let a = s.cover(assertion).ok_or_else(|| {
                AssertionError::structure("the response signature does not cover the assertion")
            })?;
            (s, a)
        }
        (None, None) => return Err(AssertionError::Unsigned),
    };

    if doc.attr(root, "Version") != Some("2.0") {
        return Err(AssertionError::structure("the response is not version 2.0"));
    }
    if let Some(issuer) = one_child(doc, root, SAML_NS, "Issuer")? {
        check_issuer(cfg, &doc.text(issuer))?;
    }
    let status = one_child(doc, root, SAMLP_NS, "Status")?;
    let code = status
        .and_then(|s| doc.children_named(s, SAMLP_NS, "StatusCode").next())
        .and_then(|c| doc.attr(c, "Value"));
    if code != Some(SUCCESS) {
        return Err(AssertionError::StatusNotSuccess {
            code: short(code.unwrap_or("missing")),
        });
    }
    if let (Some(acs), Some(dest)) = (&cfg.acs_url, doc.attr(root, "Destination")) {
        if dest != acs {
            return Err(AssertionError::WrongDestination { found: short(dest) });
        }
    }
    assertion_claims(&signed, covered, cfg, now, Binding::Post)
}

/// Checks a SAML 2.0 `Assertion`, `a`, inside the element `signed` covers
/// (the assertion itself, or the Response around it), and reads its claims
/// through `signed`.
pub(crate) fn assertion_claims(
    signed: &Signed<'_>,
    a: Covered,
    cfg: &VerifierConfig,
    now: SystemTime,
    binding: Binding,
) -> Result<Claims, AssertionError> {
    if signed.attr(a, "Version") != Some("2.0") {
        return Err(AssertionError::structure(
            "the assertion is not version 2.0",
        ));
    }
    let mut claims = Claims {
        id: signed.attr(a, "ID").unwrap_or_default().to_string(),
        key: signed.key(),
        ..Claims::default()
    };
    let issuer = one_signed_child(signed, a, SAML_NS, "Issuer")?
        .ok_or_else(|| AssertionError::structure("the assertion has no issuer"))?;
    claims.issuer = signed.text(issuer).into_owned();
    check_issuer(cfg, &claims.issuer)?;

    // Time bounds: Conditions, then IssueInstant; then the audience.
    let conditions = one_signed_child(signed, a, SAML_NS, "Conditions")?;
    let (mut end, issued) = super::check_conditions(
        signed,
        a,
        conditions,
        cfg,
        now,
        SAML_NS,
        "AudienceRestriction",
    )?;

    // Subject: NameID and a bearer confirmation that holds.
    let subject = one_signed_child(signed, a, SAML_NS, "Subject")?
        .ok_or_else(|| AssertionError::structure("the assertion has no subject"))?;
    if signed
        .children_named(subject, SAML_NS, "EncryptedID")
        .next()
        .is_some()
    {
        return Err(AssertionError::EncryptedUnsupported);
    }
    let name_id = one_signed_child(signed, subject, SAML_NS, "NameID")?
        .ok_or_else(|| AssertionError::structure("the subject has no nameid"))?;
    claims.name_id = signed.text(name_id).into_owned();
    claims.name_id_format = signed.attr(name_id, "Format").map(str::to_string);
    let scd_end = bearer_confirmation(signed, subject, cfg, now, binding)?;
    end = match (end, scd_end) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    claims.not_on_or_after = end;
    claims.issue_instant = Some(issued);

    if let Some(authn) = signed.children_named(a, SAML_NS, "AuthnStatement").next() {
        claims.session_index = signed.attr(authn, "SessionIndex").map(str::to_string);
    }
    for st in signed.children_named(a, SAML_NS, "AttributeStatement") {
        if signed
            .children_named(st, SAML_NS, "EncryptedAttribute")
            .next()
            .is_some()
        {
            return Err(AssertionError::EncryptedUnsupported);
        }
        claims.read_attributes(signed, st, SAML_NS, "Name")?;
    }
    Ok(claims)
}

/// Finds a bearer SubjectConfirmation whose data holds; returns its
/// NotOnOrAfter. The first failure is reported when none holds.
fn bearer_confirmation(
    signed: &Signed<'_>,
    subject: Covered,
    cfg: &VerifierConfig,
    now: SystemTime,
    binding: Binding,
) -> Result<Option<SystemTime>, AssertionError> {
    let mut first_err = None;
    for sc in signed.children_named(subject, SAML_NS, "SubjectConfirmation") {
        if signed.attr(sc, "Method") != Some(BEARER) {
            continue;
        }
        match check_bearer(signed, sc, cfg, now, binding) {
            Ok(end) => return Ok(end),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    Err(first_err
        .unwrap_or_else(|| AssertionError::structure("the subject has no bearer confirmation")))
}

fn check_bearer(
    signed: &Signed<'_>,
    sc: Covered,
    cfg: &VerifierConfig,
    now: SystemTime,
    binding: Binding,
) -> Result<Option<SystemTime>, AssertionError> {
    let data = one_signed_child(signed, sc, SAML_NS, "SubjectConfirmationData")?;
    let recipient = data.and_then(|d| signed.attr(d, "Recipient"));
    if let Some(acs) = &cfg.acs_url {
        match (recipient, binding) {
            (Some(r), _) if r != acs => {
                return Err(AssertionError::WrongRecipient { found: short(r) })
            }
            (None, Binding::Post) => {
                return Err(AssertionError::WrongRecipient {
                    found: "missing".to_string(),
                })
            }
            _ => {}
        }
    }
    let Some(data) = data else {
        return match binding {
            Binding::Post => Err(AssertionError::structure(
                "the bearer confirmation has no data",
            )),
            Binding::WsFed => Ok(None),
        };
    };
    // The POST profile says a bearer confirmation carries no NotBefore, but
    // real IdPs (Secureworks, in the public fixtures) send one equal to
    // IssueInstant. It may only narrow validity, so it is honoured as a
    // bound rather than refused.
    if let Some(nb) = signed.attr(data, "NotBefore") {
        if super::later(now, cfg.skew) < parse_instant(nb)? {
            return Err(AssertionError::NotYetValid {
                what: "subject confirmation",
                at: short(nb),
            });
        }
    }
    match signed.attr(data, "NotOnOrAfter") {
        Some(na) => {
            let t = parse_instant(na)?;
            if super::earlier(now, cfg.skew) >= t {
                return Err(AssertionError::Expired {
                    what: "subject confirmation",
                    at: short(na),
                });
            }
            Ok(Some(t))
        }
        None if binding == Binding::Post => Err(AssertionError::structure(
            "the bearer confirmation has no notonorafter",
        )),
        None => Ok(None),
    }
}

/// Checks an Issuer against the configured IdP entity ID, when set.
pub(crate) fn check_issuer(cfg: &VerifierConfig, issuer: &str) -> Result<(), AssertionError> {
    match &cfg.idp_entity_id {
        Some(want) if issuer.trim() != want => Err(AssertionError::WrongIssuer {
            found: short(issuer.trim()),
        }),
        _ => Ok(()),
    }
}

/// The only child `{ns}local` of `parent`, refusing a second one.
pub(crate) fn one_child(
    doc: &Document,
    parent: NodeId,
    ns: &str,
    local: &'static str,
) -> Result<Option<NodeId>, AssertionError> {
    only(doc.children_named(parent, ns, local), local)
}

/// The only covered child `{ns}local` of `parent`, refusing a second one.
pub(crate) fn one_signed_child(
    signed: &Signed<'_>,
    parent: Covered,
    ns: &str,
    local: &'static str,
) -> Result<Option<Covered>, AssertionError> {
    only(signed.children_named(parent, ns, local), local)
}

fn only<T>(mut it: impl Iterator<Item = T>, local: &str) -> Result<Option<T>, AssertionError> {
    let first = it.next();
    if it.next().is_some() {
        return Err(AssertionError::UnexpectedStructure(Cow::Owned(format!(
            "more than one {} element",
            local.to_ascii_lowercase()
        ))));
    }
    Ok(first)
}

/// Refuses documents where two elements carry the same ID value, whatever
/// the attribute (`ID`, `AssertionID`, `Id`, `wsu:Id`).
pub(crate) fn unique_ids(doc: &Document) -> Result<(), AssertionError> {
    const WSU: &str =
        "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd";
    let mut ids: Vec<&str> = Vec::with_capacity(8);
    for n in doc.elements() {
        for a in doc.attrs(n) {
            if (a.ns == 0 && matches!(a.local, "ID" | "AssertionID" | "Id"))
                || (a.local == "Id" && doc.ns_uri(a.ns) == WSU)
            {
                ids.push(a.value.as_ref());
            }
        }
    }
    // Sorting keeps a hostile document with thousands of IDs at n log n; a
    // real message has a handful, where this beats hashing.
    ids.sort_unstable();
    if ids.windows(2).any(|w| w[0] == w[1]) {
        return Err(AssertionError::structure("duplicate id in the document"));
    }
    Ok(())
}
