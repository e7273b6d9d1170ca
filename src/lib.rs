//! trustgate: a TLS reverse proxy that enforces mobile device trust for SAML
//! and WS-Federation apps.
//!
//! The modules follow the path a request travels: accept, route, classify,
//! evidence, decide, remember, answer, observe.
#![forbid(unsafe_code)]

// In request order; the blank line keeps rustfmt from sorting them.
pub mod classify;
pub mod evidence;

pub mod decide;
pub mod remember;

pub mod cli;
