//! Decoding of an assertion delivery: the urlencoded POST body into the XML
//! document bytes and the relay state.
//!
//! Size limits are enforced here, before any XML work; what the document
//! says is left to the parser and the verifier.

use std::borrow::Cow;

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
    let mut saml_response: Option<&[u8]> = None;
    let mut relay_state: Option<&[u8]> = None;
    let mut wa: Option<&[u8]> = None;
    let mut wresult: Option<&[u8]> = None;
    let mut wctx: Option<&[u8]> = None;
    let mut rest = body;
    while !rest.is_empty() {
        let end = memchr::memchr(b'&', rest).unwrap_or(rest.len());
        let pair = &rest[..end];
        rest = rest.get(end + 1..).unwrap_or_default();
        if pair.is_empty() {
            continue;
        }
        let (k, v) = match memchr::memchr(b'=', pair) {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &pair[pair.len()..]),
        };
        let slot = match unescape(k).as_ref() {
            b"SAMLResponse" => &mut saml_response,
            b"RelayState" => &mut relay_state,
            b"wa" => &mut wa,
            b"wresult" => &mut wresult,
            b"wctx" => &mut wctx,
            _ => continue,
        };
        if slot.is_some() {
            return Err(AssertionError::Malformed(Cow::Borrowed(
                "a form field appears twice",
            )));
        }
        *slot = Some(v);
    }
    let text = |v: Option<&[u8]>| -> Result<Option<String>, AssertionError> {
        v.map(|v| {
            String::from_utf8(unescape(v).into_owned())
                .map_err(|_| AssertionError::Malformed(Cow::Borrowed("a form field is not utf-8")))
        })
        .transpose()
    };
    if let Some(b64) = saml_response {
        if wresult.is_some() {
            return Err(AssertionError::Malformed(Cow::Borrowed(
                "both samlresponse and wresult in one body",
            )));
        }
        let document = decode_base64(&unescape(b64), max_document)?;
        return Ok(Decoded {
            protocol: Protocol::Saml2,
            document,
            relay_state: text(relay_state)?,
        });
    }
    if let Some(xml) = wresult {
        if text(wa)?.as_deref() != Some("wsignin1.0") {
            return Err(AssertionError::Malformed(Cow::Borrowed(
                "wresult without wa=wsignin1.0",
            )));
        }
        let xml = unescape(xml).into_owned();
        if xml.len() > max_document {
            return Err(AssertionError::TooLarge {
                what: "document",
                size: xml.len(),
                limit: max_document,
            });
        }
        return Ok(Decoded {
            protocol: Protocol::WsFed,
            document: xml,
            relay_state: text(wctx)?,
        });
    }
    Err(AssertionError::Malformed(Cow::Borrowed(
        "the body holds neither samlresponse nor wresult",
    )))
}

/// Form unescaping (`+` is a space, `%XX` a byte); a `%` without two hex
/// digits stays as it is, as browsers and `form_urlencoded` treat it.
fn unescape(v: &[u8]) -> Cow<'_, [u8]> {
    let Some(mut at) = memchr::memchr2(b'%', b'+', v) else {
        return Cow::Borrowed(v);
    };
    let mut out = Vec::with_capacity(v.len());
    let mut done = 0;
    loop {
        out.extend_from_slice(&v[done..at]);
        if v[at] == b'+' {
            out.push(b' ');
            done = at + 1;
        } else {
            let mut byte = [0u8; 1];
            match v
                .get(at + 1..at + 3)
                .map(|h| hex::decode_to_slice(h, &mut byte))
            {
                Some(Ok(())) => {
                    out.push(byte[0]);
                    done = at + 3;
                }
                _ => {
                    out.push(b'%');
                    done = at + 1;
                }
            }
        }
        match memchr::memchr2(b'%', b'+', &v[done..]) {
            Some(i) => at = done + i,
            None => break,
        }
    }
    out.extend_from_slice(&v[done..]);
    Cow::Owned(out)
}

/// Decodes padded standard base64, ignoring whitespace: most IdPs send one
/// line, so whitespace is stripped only when the plain decode fails.
pub(crate) fn decode_lenient(b64: &[u8]) -> Option<Vec<u8>> {
    let engine = base64_simd::STANDARD;
    engine.decode_to_vec(b64).ok().or_else(|| {
        let mut compact = b64.to_vec();
        compact.retain(|b| !b.is_ascii_whitespace());
        engine.decode_to_vec(compact).ok()
    })
}

/// Decodes base64 that may be broken into lines, checking the decoded size
/// limit before decoding.
pub(crate) fn decode_base64(b64: &[u8], max_document: usize) -> Result<Vec<u8>, AssertionError> {
    let estimate = b64.len() / 4 * 3;
    if estimate > max_document.saturating_add(3) {
        let compact = b64.iter().filter(|b| !b.is_ascii_whitespace()).count();
        if compact / 4 * 3 > max_document.saturating_add(3) {
            return Err(AssertionError::TooLarge {
                what: "document",
                size: compact / 4 * 3,
                limit: max_document,
            });
        }
    }
    let doc = decode_lenient(b64).ok_or(AssertionError::BadBase64)?;
    if doc.len() > max_document {
        return Err(AssertionError::TooLarge {
            what: "document",
            size: doc.len(),
            limit: max_document,
        });
    }
    Ok(doc)
}

#[cfg(test)]
mod tests;
