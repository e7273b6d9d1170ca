//! The trust headers: what the gateway tells the app about the device
//! (`X-Trustgate-Device-Trust`, `-Platform`, `-Client-Kind`, `-Subject`).
//! Only the gateway speaks for device trust, so any a client sent are
//! removed before anything else reads the request.

use http::header::{HeaderMap, HeaderName, HeaderValue};

use crate::classify::Client;
use crate::evidence::DeviceTrust;

/// The prefix of every trust header.
pub static PREFIX: &str = "x-trustgate-";
static TRUST: HeaderName = HeaderName::from_static("x-trustgate-device-trust");
static PLATFORM: HeaderName = HeaderName::from_static("x-trustgate-platform");
static KIND: HeaderName = HeaderName::from_static("x-trustgate-client-kind");
static SUBJECT: HeaderName = HeaderName::from_static("x-trustgate-subject");

/// How many headers [`set`] adds.
pub const COUNT: usize = 4;

/// Whether a header name speaks for device trust: `x-trustgate-*`, also
/// spelled with `_`, which CGI-style servers read as the same variable.
pub fn is_trust_header(name: &str) -> bool {
    let n = name.as_bytes();
    n.len() >= PREFIX.len()
        && n[..PREFIX.len()]
            .iter()
            .zip(PREFIX.as_bytes())
            .all(|(a, b)| a.to_ascii_lowercase() == *b || (*a == b'_' && *b == b'-'))
}

/// Removes every client-sent trust header.
pub fn strip(headers: &mut HeaderMap) {
    let spoofed: Vec<HeaderName> = headers
        .keys()
        .filter(|k| is_trust_header(k.as_str()))
        .cloned()
        .collect();
    for k in spoofed {
        headers.remove(k);
    }
}

/// Sets the trust headers for the app; `subject` is the subject hash's
/// header value (`SubjectHash::header_value`), built once per session.
pub fn set(h: &mut HeaderMap, trust: DeviceTrust, client: Client, subject: &HeaderValue) {
    h.insert(TRUST.clone(), HeaderValue::from_static(trust.as_str()));
    h.insert(
        PLATFORM.clone(),
        HeaderValue::from_static(client.platform.as_str()),
    );
    h.insert(KIND.clone(), HeaderValue::from_static(client.kind.as_str()));
    h.insert(SUBJECT.clone(), subject.clone());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_of_the_prefix_is_a_trust_header() {
        for name in [
            "x-trustgate-device-trust",
            "X-Trustgate-Anything",
            "x_trustgate_device_trust",
            "X_TRUSTGATE-subject",
        ] {
            assert!(is_trust_header(name), "{name}");
        }
        for name in [
            "x-trustgate",
            "x-trust-gate-x",
            "trustgate-x",
            "x-forwarded-for",
        ] {
            assert!(!is_trust_header(name), "{name}");
        }
    }

    #[test]
    fn strip_removes_every_spoofed_header_and_keeps_the_rest() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-trustgate-device-trust",
            HeaderValue::from_static("managed"),
        );
        h.append(
            "x-trustgate-device-trust",
            HeaderValue::from_static("managed"),
        );
        h.insert("x_trustgate_subject", HeaderValue::from_static("ceo"));
        h.insert("accept", HeaderValue::from_static("*/*"));
        strip(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("accept"));
    }
}
