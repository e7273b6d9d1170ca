//! Unit tests for form decoding.

use super::{decode_body, unescape};
use crate::Protocol;

#[test]
fn unescape_matches_form_urlencoded() {
    for raw in [
        &b"a+b%2Bc%2f%3D%3d"[..],
        b"plain",
        b"bad%zzpercent%",
        b"%e2%9c%93+%",
        b"%4",
        b"%4g1%g41",
        b"%C3%a9%2B%2b",
        b"",
    ] {
        let ours = unescape(raw).into_owned();
        let theirs: Vec<u8> = form_urlencoded::parse(&[b"k=", raw].concat())
            .next()
            .map(|(_, v)| v.into_owned().into_bytes())
            .unwrap_or_default();
        if std::str::from_utf8(&ours).is_ok() {
            assert_eq!(ours, theirs, "{}", String::from_utf8_lossy(raw));
        }
    }
}

/// Bytes that are not UTF-8 come through as bytes, as the form carries
/// them (the comparison above skips them).
#[test]
fn unescape_keeps_raw_bytes() {
    assert_eq!(
        unescape(b"%ff%FE%4").as_ref(),
        [0xff, 0xfe, b'%', b'4'].as_slice()
    );
}

#[test]
fn relay_state_and_wctx_are_decoded() {
    let d = decode_body(
        b"RelayState=%2Fa%3Fb%3D1&SAMLResponse=PGEvPg%3D%3D",
        1000,
        1000,
    )
    .unwrap();
    assert_eq!(d.protocol, Protocol::Saml2);
    assert_eq!(d.document, b"<a/>");
    assert_eq!(d.relay_state.as_deref(), Some("/a?b=1"));
    let d = decode_body(b"wa=wsignin1.0&wresult=%3Ca%2F%3E&wctx=rm%3D0", 1000, 1000).unwrap();
    assert_eq!(d.protocol, Protocol::WsFed);
    assert_eq!(d.document, b"<a/>");
    assert_eq!(d.relay_state.as_deref(), Some("rm=0"));
}

#[test]
fn non_utf8_relay_state_is_malformed() {
    let e = decode_body(b"RelayState=%FF&SAMLResponse=PGEvPg%3D%3D", 1000, 1000).unwrap_err();
    assert_eq!(e.reason(), "malformed");
}
