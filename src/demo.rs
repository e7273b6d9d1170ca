//! The local demo: a demo app, a demo IdP that signs SAML 2.0 Responses with
//! the TEST-ONLY key in `certs/`, and a demo enrollment page. Each is an
//! ordinary HTTP server on loopback; the gateway reaches them through the
//! normal proxy path and knows nothing of their insides.

pub mod app;
pub mod idp;
