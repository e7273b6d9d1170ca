//! The demo app, as an SP behind the gateway: `/` shows what the gateway
//! told it (the `X-Trustgate-*` headers), `/headers` echoes every request
//! header as JSON, `/saml/login` starts SP-initiated sign-in at the demo IdP,
//! and `/saml/acs` consumes the assertion the gateway let through.

use std::collections::BTreeMap;
use std::sync::Arc;

use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::answer::{escape_html, full, is_local_target, redirect, Body};
use crate::config::DemoConfig;

/// Answers one demo-app request.
pub async fn handle(cfg: Arc<DemoConfig>, req: Request<Incoming>) -> Response<Body> {
    match (req.method(), req.uri().path()) {
        (_, "/headers") => headers_json(&req),
        (&Method::GET, "/saml/login") => {
            let portal = format!("http://{}/idp/sso", cfg.portal_listen);
            let relay = req
                .uri()
                .query()
                .and_then(|q| {
                    form_urlencoded::parse(q.as_bytes())
                        .find(|(k, _)| k == "return")
                        .map(|(_, v)| v.into_owned())
                })
                .filter(|r| is_local_target(r))
                .unwrap_or_else(|| "/".into());
            let location = format!(
                "{portal}?RelayState={}",
                form_urlencoded::byte_serialize(relay.as_bytes()).collect::<String>()
            );
            redirect(StatusCode::FOUND, &location)
        }
        (&Method::POST, "/saml/acs") => {
            // The gateway verified the assertion; the demo app only follows
            // RelayState, and only to its own paths.
            let body = req
                .into_body()
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            let relay = form_urlencoded::parse(&body)
                .find(|(k, _)| k == "RelayState")
                .map(|(_, v)| v.into_owned())
                .filter(|r| is_local_target(r))
                .unwrap_or_else(|| "/".into());
            redirect(StatusCode::SEE_OTHER, &relay)
        }
        (&Method::GET, "/") => home(&req),
        _ => {
            let mut r = Response::new(full("not found\n"));
            *r.status_mut() = StatusCode::NOT_FOUND;
            r
        }
    }
}

fn headers_json(req: &Request<Incoming>) -> Response<Body> {
    let mut map: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (name, value) in req.headers() {
        map.entry(name.as_str())
            .or_default()
            .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
    }
    let body = serde_json::to_vec_pretty(&map).expect("strings serialize");
    let mut r = Response::new(full(body));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn home(req: &Request<Incoming>) -> Response<Body> {
    let h = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(escape_html)
            .unwrap_or_else(|| "(not set)".into())
    };
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>Demo app</title>\
</head><body style=\"font-family:system-ui,sans-serif;max-width:36rem;margin:2rem auto;padding:0 1rem\">\
<h1>Demo app</h1><p id=\"welcome\">You reached the app behind trustgate.</p>\
<table><tr><td>Device trust</td><td id=\"trust\">{}</td></tr>\
<tr><td>Platform</td><td id=\"platform\">{}</td></tr>\
<tr><td>Client kind</td><td id=\"kind\">{}</td></tr>\
<tr><td>Subject (hash)</td><td id=\"subject\">{}</td></tr></table>\
<p><a href=\"/headers\">Every header the app received</a> &middot; \
<a href=\"/.trustgate/apps\">Your apps</a></p></body></html>\n",
        h("x-trustgate-device-trust"),
        h("x-trustgate-platform"),
        h("x-trustgate-client-kind"),
        h("x-trustgate-subject"),
    );
    let mut r = Response::new(full(html));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}
