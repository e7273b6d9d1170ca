//! Decoding of an assertion delivery: the urlencoded POST body into the XML
//! document bytes and the relay state.
//!
//! Size limits are enforced here, before any XML work; what the document
//! says is left to the parser and the verifier.

use std::borrow::Cow;

use base64::Engine as _;

use super::error::AssertionError;
use super::Protocol;

/// The decoded content of one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Decoded {
    pub(crate) protocol: Protocol,
    pub(crate) document: Vec<u8>,
    pub(crate) relay_state: Option<String>,
}

/// Decodes a SAML POST binding or WS-Fed `wsignin1.0` form body.
pub(crate) fn decode_body(
    body: &[u8],
    max_body: usize,
    max_document: usize,
) -> Result<Decoded, AssertionError> {
    if body.len() > max_body {
        return Err(AssertionError::TooLarge {
            what: "body",
            size: body.len(),
            limit: max_body,
        });
    }
    let mut saml_response: Option<Cow<'_, str>> = None;
    let mut relay_state = None;
    let mut wa = None;
    let mut wresult: Option<Cow<'_, str>> = None;
    let mut wctx = None;
    for (k, v) in form_urlencoded::parse(body) {
        let slot = match k.as_ref() {
            "SAMLResponse" => &mut saml_response,
            "RelayState" => &mut relay_state,
            "wa" => &mut wa,
            "wresult" => &mut wresult,
            "wctx" => &mut wctx,
            _ => continue,
        };
        if slot.is_some() {
            return Err(AssertionError::Malformed(Cow::Borrowed(
                "a form field appears twice",
            )));
        }
        *slot = Some(v);
    }
    if let Some(b64) = saml_response {
        if wresult.is_some() {
            return Err(AssertionError::Malformed(Cow::Borrowed(
                "both samlresponse and wresult in one body",
            )));
        }
        let document = decode_base64(b64.as_bytes(), max_document)?;
        return Ok(Decoded {
            protocol: Protocol::Saml2,
            document,
            relay_state: relay_state.map(Cow::into_owned),
        });
    }
    if let Some(xml) = wresult {
        if wa.as_deref() != Some("wsignin1.0") {
            return Err(AssertionError::Malformed(Cow::Borrowed(
                "wresult without wa=wsignin1.0",
            )));
        }
        if xml.len() > max_document {
            return Err(AssertionError::TooLarge {
                what: "document",
                size: xml.len(),
                limit: max_document,
            });
        }
        return Ok(Decoded {
            protocol: Protocol::WsFed,
            document: xml.into_owned().into_bytes(),
            relay_state: wctx.map(Cow::into_owned),
        });
    }
    Err(AssertionError::Malformed(Cow::Borrowed(
        "the body holds neither samlresponse nor wresult",
    )))
}

/// Decodes base64 that may be broken into lines, checking the decoded size
/// limit before decoding.
pub(crate) fn decode_base64(b64: &[u8], max_document: usize) -> Result<Vec<u8>, AssertionError> {
    let compact: Cow<'_, [u8]> = if b64.iter().any(|b| b.is_ascii_whitespace()) {
        Cow::Owned(
            b64.iter()
                .copied()
                .filter(|b| !b.is_ascii_whitespace())
                .collect(),
        )
    } else {
        Cow::Borrowed(b64)
    };
    let estimate = compact.len() / 4 * 3;
    if estimate > max_document.saturating_add(3) {
        return Err(AssertionError::TooLarge {
            what: "document",
            size: estimate,
            limit: max_document,
        });
    }
    let doc = base64::engine::general_purpose::STANDARD
        .decode(&compact)
        .map_err(|_| AssertionError::BadBase64)?;
    if doc.len() > max_document {
        return Err(AssertionError::TooLarge {
            what: "document",
            size: doc.len(),
            limit: max_document,
        });
    }
    Ok(doc)
}
