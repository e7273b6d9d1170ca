//! WS-Federation checks: the WS-Trust envelope of a `wresult`, and the SAML
//! 1.1 or SAML 2.0 token inside it.
//!
//! The RSTR's Lifetime and AppliesTo are unsigned hints and are never read;
//! claims are read only through the [`Signed`] handle of the token's own
//! signature. SAML 2.0 tokens reuse `saml2`'s checks.

use std::time::SystemTime;

use super::dsig::{self, Covered, Policy, Signed, DSIG_NS};
use super::error::AssertionError;
use super::saml2::{self, check_issuer, one_child, one_signed_child, unique_ids, Binding, SAML_NS};
use super::xml::{Document, NodeId};
use super::{Claims, VerifierConfig};

/// WS-Trust 2005/02 (ADFS 1.x / Office 365 layout).
const WST_2005: &str = "http://schemas.xmlsoap.org/ws/2005/02/trust";
/// WS-Trust 1.3.
const WST_13: &str = "http://docs.oasis-open.org/ws-sx/ws-trust/200512";
/// SAML 1.x assertion namespace.
const SAML1_NS: &str = "urn:oasis:names:tc:SAML:1.0:assertion";
const XENC_NS: &str = "http://www.w3.org/2001/04/xmlenc#";

/// Whether `root` is an RSTR or an RSTR collection.
pub(crate) fn is_envelope(doc: &Document, root: NodeId) -> bool {
    [WST_2005, WST_13].iter().any(|ns| {
        doc.is(root, ns, "RequestSecurityTokenResponse")
            || doc.is(root, ns, "RequestSecurityTokenResponseCollection")
    })
}

/// Verifies a wresult document and returns its token's claims.
pub(crate) fn verify_rstr(
    doc: &Document,
    cfg: &VerifierConfig,
    now: SystemTime,
) -> Result<Claims, AssertionError> {
    let root = doc.root;
    let e = doc.element(root);
    let ns = doc.ns_uri(e.ns);
    let rstr = if e.local == "RequestSecurityTokenResponseCollection" {
        let mut it = doc.children_named(root, ns, "RequestSecurityTokenResponse");
        let (Some(r), None) = (it.next(), it.next()) else {
            return Err(AssertionError::structure(
                "the collection must hold exactly one response",
            ));
        };
        r
    } else {
        root
    };

    if doc
        .elements()
        .any(|n| doc.is(n, SAML_NS, "EncryptedAssertion") || doc.is(n, XENC_NS, "EncryptedData"))
    {
        return Err(AssertionError::EncryptedUnsupported);
    }
    let count = doc
        .elements()
        .filter(|n| doc.is(*n, SAML_NS, "Assertion") || doc.is(*n, SAML1_NS, "Assertion"))
        .count();
    if count > 1 {
        return Err(AssertionError::MultipleAssertions { count });
    }
    unique_ids(doc)?;
    let token_holder = one_child(doc, rstr, ns, "RequestedSecurityToken")?
        .ok_or_else(|| AssertionError::structure("no requestedsecuritytoken"))?;
    let mut tokens = doc.child_elements(token_holder);
    let (Some(token), None) = (tokens.next(), tokens.next()) else {
        return Err(AssertionError::structure(
            "the requestedsecuritytoken must hold exactly one token",
        ));
    };
    let saml1 = doc.is(token, SAML1_NS, "Assertion");
    if !saml1 && !doc.is(token, SAML_NS, "Assertion") {
        return Err(AssertionError::structure(
            "the token is not a saml assertion",
        ));
    }

    // The token must carry its own signature.
    let id_attr = if saml1 { "AssertionID" } else { "ID" };
    let id = doc
        .attr(token, id_attr)
        .ok_or_else(|| AssertionError::structure("the assertion has no id"))?;
    let sig = one_child(doc, token, DSIG_NS, "Signature")?.ok_or(AssertionError::Unsigned)?;
    let policy = Policy {
        keys: &cfg.keys,
        allow_sha1: cfg.allow_sha1,
    };
    let signed = dsig::verify(doc, token, sig, id, policy)?;

    if saml1 {
        saml11_claims(&signed, cfg, now)
    } else {
        saml2::assertion_claims(&signed, signed.element(), cfg, now, Binding::WsFed)
    }
}

/// Checks a signed SAML 1.1 assertion, the element `signed` covers, and
/// reads its claims through it.
fn saml11_claims(
    signed: &Signed<'_>,
    cfg: &VerifierConfig,
    now: SystemTime,
) -> Result<Claims, AssertionError> {
    let a: Covered = signed.element();
    if signed.attr(a, "MajorVersion") != Some("1") {
        return Err(AssertionError::structure("the assertion is not saml 1.x"));
    }
    let mut claims = Claims {
        id: signed
            .attr(a, "AssertionID")
            .unwrap_or_default()
            .to_string(),
        issuer: signed
            .attr(a, "Issuer")
            .ok_or_else(|| AssertionError::structure("the assertion has no issuer"))?
            .to_string(),
        key: signed.key(),
        ..Claims::default()
    };
    check_issuer(cfg, &claims.issuer)?;

    let conditions = one_signed_child(signed, a, SAML1_NS, "Conditions")?;
    let (end, issued) = super::check_conditions(
        signed,
        a,
        conditions,
        cfg,
        now,
        SAML1_NS,
        "AudienceRestrictionCondition",
    )?;
    claims.not_on_or_after = end;
    claims.issue_instant = Some(issued);

    // Every statement's subject must name the same NameIdentifier.
    let mut subject: Option<(String, Option<String>)> = None;
    for st in signed.child_elements(a) {
        let (ns, local) = signed.name(st);
        if !local.ends_with("Statement") || ns != SAML1_NS {
            continue;
        }
        let Some(subj) = one_signed_child(signed, st, SAML1_NS, "Subject")? else {
            continue;
        };
        let Some(ni) = one_signed_child(signed, subj, SAML1_NS, "NameIdentifier")? else {
            continue;
        };
        let this = (
            signed.text(ni).into_owned(),
            signed.attr(ni, "Format").map(str::to_string),
        );
        match &subject {
            Some(s) if s.0 != this.0 => {
                return Err(AssertionError::structure(
                    "statements name different subjects",
                ))
            }
            Some(_) => {}
            None => subject = Some(this),
        }
    }
    let (name_id, format) =
        subject.ok_or_else(|| AssertionError::structure("the assertion has no nameidentifier"))?;
    claims.name_id = name_id;
    claims.name_id_format = format;

    for st in signed.children_named(a, SAML1_NS, "AttributeStatement") {
        claims.read_attributes(signed, st, SAML1_NS, "AttributeName")?;
    }
    Ok(claims)
}
