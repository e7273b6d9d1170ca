//! trustgate: a TLS reverse proxy that enforces mobile device trust for SAML
//! and WS-Federation apps.
//!
//! The modules follow the path a request travels: accept, route, classify,
//! evidence, decide, remember, answer, observe. `service` strings the phases
//! together; `lifecycle` starts, reloads and drains the whole.
#![forbid(unsafe_code)]

pub mod config;

// The request path, in order.
pub mod accept;

pub mod route;

pub mod classify;

pub mod evidence;

pub mod decide;

pub mod remember;

pub mod answer;

pub mod observe;

// Around the request path: device events from the UEM.
pub mod uem;

// Around the request path.
pub mod service;

pub mod admin;

pub mod lifecycle;

pub mod demo;

pub mod cli;
