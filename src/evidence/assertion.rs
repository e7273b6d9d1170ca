//! SAML 2.0 and WS-Federation assertion verification (pure: bytes and `now`
//! in, a `VerifiedAssertion` or a rejection out).
