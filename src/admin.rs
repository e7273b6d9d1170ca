//! The admin listener, apart from traffic: `/metrics` (Prometheus text),
//! `/healthz` (the process is alive), `/readyz` (200 once listeners are
//! bound and config is loaded, 503 while starting or draining) and
//! `POST /sessions/revoke`. It has no authentication of its own: keep it on
//! loopback or a private network.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::answer::{full, Body};
use crate::service::Gateway;

/// Serves admin requests until `stop` turns true.
pub async fn serve(listener: TcpListener, gateway: Arc<Gateway>, mut stop: watch::Receiver<bool>) {
    while let Some((stream, peer)) = crate::accept::next_connection(&listener, &mut stop).await {
        let gateway = gateway.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let gateway = gateway.clone();
                async move { Ok::<_, Infallible>(handle(&gateway, req, peer).await) }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

async fn handle(gateway: &Gateway, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
    if req.uri().path() == "/sessions/revoke" {
        if let Err(why) = not_cross_site(&req) {
            let mut r = Response::new(full(serde_json::json!({ "error": why }).to_string()));
            *r.status_mut() = StatusCode::FORBIDDEN;
            return r;
        }
        if !may_revoke(gateway, &req, peer) {
            let mut r = Response::new(full("{\"error\": \"revoking needs the admin token\"}"));
            *r.status_mut() = StatusCode::UNAUTHORIZED;
            return r;
        }
        return revoke(gateway, req).await;
    }
    let text = |status: StatusCode, body: &'static str| {
        let mut r = Response::new(full(body));
        *r.status_mut() = status;
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        r
    };
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    }
    match req.uri().path() {
        "/metrics" => {
            gateway.refresh_gauges();
            let mut r = Response::new(full(gateway.metrics.render()));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            r
        }
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" if gateway.is_ready() => text(StatusCode::OK, "ready\n"),
        "/readyz" => text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// A browser on the gateway's host must not be made to revoke by another
/// site's page (a `text/plain` form POST needs no CORS preflight): the
/// request says it is JSON, and carries no `Origin` or `Sec-Fetch-Site`
/// from elsewhere. Command-line clients send neither header.
fn not_cross_site(req: &Request<Incoming>) -> Result<(), &'static str> {
    let h = req.headers();
    if let Some(site) = h.get("sec-fetch-site") {
        if !matches!(site.as_bytes(), b"same-origin" | b"none") {
            return Err("cross-site requests may not revoke");
        }
    }
    if let Some(origin) = h.get(header::ORIGIN) {
        let own = h
            .get(header::HOST)
            .map(|host| [b"http://", host.as_bytes()].concat());
        if own.as_deref() != Some(origin.as_bytes()) {
            return Err("requests from another origin may not revoke");
        }
    }
    if req.method() == Method::POST {
        let json = h
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
        if !json {
            return Err("the body must be sent as content-type application/json");
        }
    }
    Ok(())
}

/// With `admin.token` set, the request must carry it as a bearer token
/// (compared in constant time); without one, only loopback clients may
/// revoke, and only under a Host that is an address or `localhost`: a
/// page that rebinds its own DNS name to 127.0.0.1 is then still refused.
fn may_revoke(gateway: &Gateway, req: &Request<Incoming>, peer: SocketAddr) -> bool {
    let state = gateway.state();
    match &state.config.admin_token {
        None => peer.ip().is_loopback() && local_host_header(req),
        Some(token) => req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
            .is_some_and(|given| {
                given.len() == token.0.len()
                    && bool::from(subtle::ConstantTimeEq::ct_eq(given, token.0.as_slice()))
            }),
    }
}

/// Whether the Host header names an IP address or `localhost` (any port),
/// not a DNS name that a browser page could point at the listener.
fn local_host_header(req: &Request<Incoming>) -> bool {
    let Some(host) = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
    else {
        return false;
    };
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok()
}

/// `POST /sessions/revoke` with `{"session": "<hex id>"}`,
/// `{"subject": "<NameID>"}` or `{"subject_hash": "<hex>"}`.
async fn revoke(gateway: &Gateway, req: Request<Incoming>) -> Response<Body> {
    use http_body_util::BodyExt;

    use crate::remember::token::{SessionId, SubjectHash};

    let json = |status: StatusCode, v: serde_json::Value| {
        let mut r = Response::new(full(v.to_string()));
        *r.status_mut() = status;
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        r
    };
    let bad = |why: &str| json(StatusCode::BAD_REQUEST, serde_json::json!({ "error": why }));
    if req.method() != Method::POST {
        return json(
            StatusCode::METHOD_NOT_ALLOWED,
            serde_json::json!({ "error": "use POST" }),
        );
    }
    let deadline = gateway.state().config.server.body_read_timeout;
    let read = http_body_util::Limited::new(req.into_body(), 4096).collect();
    let body = match tokio::time::timeout(deadline, read).await {
        Ok(Ok(body)) => body,
        Ok(Err(_)) => return bad("body unreadable or over 4096 bytes"),
        Err(_) => {
            gateway
                .metrics
                .gateway_errors
                .with_label_values(&["body_timeout"])
                .inc();
            return json(
                StatusCode::REQUEST_TIMEOUT,
                serde_json::json!({ "error": "the body did not arrive in time" }),
            );
        }
    };
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body.to_bytes()) else {
        return bad("body is not JSON");
    };
    let hex16 = |s: &str| -> Option<[u8; 16]> {
        let mut out = [0u8; 16];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(out)
    };
    let now = gateway.now();
    let metrics = &gateway.metrics;
    if let Some(s) = v.get("session").and_then(|s| s.as_str()) {
        let Some(id) = hex16(s) else {
            return bad("session must be 32 hex digits");
        };
        let rev = gateway.sessions.revoke_session(SessionId(id), now);
        metrics.revocations.with_label_values(&["session"]).inc();
        tracing::info!(target: "trustgate::audit", scope = "session", session = s, "revoked");
        let fleet = fleet_word(gateway, gateway.shared.publish(rev, now).await);
        return json(
            StatusCode::OK,
            serde_json::json!({ "revoked": "session", "fleet": fleet }),
        );
    }
    let subjects: Vec<SubjectHash> = match (
        v.get("subject").and_then(|s| s.as_str()),
        v.get("subject_hash").and_then(|s| s.as_str()),
    ) {
        // As sign-in keys it: trimmed, and lowercased for an emailAddress
        // NameID; the format is not known here, so both forms go.
        (Some(s), _) => SubjectHash::keyings(s),
        (None, Some(h)) => match hex16(h) {
            Some(h) => vec![SubjectHash(h)],
            None => return bad("subject_hash must be 32 hex digits"),
        },
        (None, None) => return bad("give session, subject or subject_hash"),
    };
    let mut published = Ok(());
    for subject in &subjects {
        let rev = gateway.sessions.revoke_subject(*subject, now);
        tracing::info!(target: "trustgate::audit", scope = "subject", subject = %subject, "revoked");
        if let Err(e) = gateway.shared.publish(rev, now).await {
            published = Err(e);
        }
    }
    metrics.revocations.with_label_values(&["subject"]).inc();
    let fleet = fleet_word(gateway, published);
    json(
        StatusCode::OK,
        serde_json::json!({ "revoked": "subject", "fleet": fleet }),
    )
}

/// What the fleet knows of a revocation made here: `local` (no Redis),
/// `published`, or `pending` (Redis unreachable; sent on reconnect).
fn fleet_word(
    gateway: &Gateway,
    published: Result<(), crate::remember::shared::Unavailable>,
) -> &'static str {
    match (gateway.shared.is_fleet(), published) {
        (false, _) => "local",
        (true, Ok(())) => "published",
        (true, Err(e)) => {
            tracing::warn!(error = %e, "revocation applied here; the fleet hears of it when redis is back");
            "pending"
        }
    }
}
