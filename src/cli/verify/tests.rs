//! Unit tests for input detection of `trustgate verify`.

use super::{detect, InputKind};

#[test]
fn input_kinds_are_detected() {
    assert_eq!(detect(b"  <?xml version=\"1.0\"?><a/>"), InputKind::Xml);
    assert_eq!(detect(b"SAMLResponse=PHA%2B&RelayState=x"), InputKind::Form);
    assert_eq!(detect(b"wa=wsignin1.0&wresult=%3Ca%2F%3E"), InputKind::Form);
    assert_eq!(detect(b"PHNhbWxwOlJlc3BvbnNlLz4=\n"), InputKind::Base64);
}
