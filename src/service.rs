//! The request pipeline. Each phase is a named step with its contract:
//! route (host and path to an app), forward (answer from the upstream), and
//! observe (metrics and one span per request). Later phases (classify,
//! evidence, decide, remember) slot in between route and forward.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use arc_swap::ArcSwap;
use http::{HeaderValue, Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tracing::Instrument;

use crate::accept::tls::CertStore;
use crate::answer::forward::{Downstream, Forwarder, X_REQUEST_ID};
use crate::answer::{Body, GatewayError};
use crate::config::Config;
use crate::observe::{method_class, status_class, Metrics};
use crate::route::{request_host, Routes};

/// What one config means at run time. A reload builds a new one and swaps it
/// in whole; requests in flight keep the one they started with.
pub struct State {
    /// The config this state was built from.
    pub config: Arc<Config>,
    /// The routing table.
    pub routes: Routes,
    /// The upstream client pool.
    pub forwarder: Forwarder,
}

impl State {
    /// Builds the run-time state for a config.
    pub fn new(config: Arc<Config>) -> State {
        State {
            routes: Routes::new(&config.apps),
            forwarder: Forwarder::new(&config.upstream),
            config,
        }
    }
}

/// Facts about the client connection a request arrived on.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    /// The client's address.
    pub peer: SocketAddr,
    /// `https` or `http`.
    pub proto: &'static str,
}

/// The gateway shared by every connection: current state, certificates,
/// metrics and lifecycle flags.
pub struct Gateway {
    /// Every metric.
    pub metrics: Arc<Metrics>,
    state: ArcSwap<State>,
    certs: Arc<CertStore>,
    ready: AtomicBool,
}

impl Gateway {
    /// A gateway for `config`; not ready until the lifecycle says so.
    pub fn new(config: Arc<Config>, metrics: Arc<Metrics>) -> Arc<Gateway> {
        let certs = CertStore::new(&config.certificates);
        publish_certificate_expiry(&metrics, &config);
        Arc::new(Gateway {
            metrics,
            state: ArcSwap::from_pointee(State::new(config)),
            certs,
            ready: AtomicBool::new(false),
        })
    }

    /// The current state.
    pub fn state(&self) -> arc_swap::Guard<Arc<State>> {
        self.state.load()
    }

    /// The certificate resolver the TLS listener uses.
    pub fn certs(&self) -> Arc<CertStore> {
        self.certs.clone()
    }

    /// Swaps in a new config and its certificates at once.
    pub fn apply(&self, config: Arc<Config>) {
        self.certs.replace(&config.certificates);
        publish_certificate_expiry(&self.metrics, &config);
        self.state.store(Arc::new(State::new(config)));
    }

    /// Marks the gateway ready (listeners bound) or not (draining).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
        self.metrics.ready.set(i64::from(ready));
    }

    /// Whether `/readyz` answers 200.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// Handles one request from start to finish. Never fails: every error
    /// becomes a page with its status code.
    pub async fn handle(&self, req: Request<Incoming>, conn: ConnInfo) -> Response<Body> {
        let start = Instant::now();
        let request_id = request_id(req.headers().get(&X_REQUEST_ID));
        let span = tracing::debug_span!(
            "request",
            id = request_id.to_str().unwrap_or(""),
            method = %req.method(),
            app = tracing::field::Empty,
        );
        let method = method_class(req.method());
        async move {
            let state = self.state();
            let (app_label, mut resp) = match self.route_and_forward(&state, req, conn, &request_id).await {
                Ok((app, resp)) => (app, resp),
                Err((app, err)) => {
                    self.metrics.gateway_errors.with_label_values(&[err.reason()]).inc();
                    tracing::debug!(reason = err.reason(), error = %err, "answered by the gateway");
                    (app, err.response(request_id.to_str().unwrap_or("")))
                }
            };
            resp.headers_mut().insert(X_REQUEST_ID.clone(), request_id.clone());
            let status = resp.status();
            self.metrics
                .requests
                .with_label_values(&[&app_label, method, status_class(status)])
                .inc();
            self.metrics
                .request_duration
                .with_label_values(&[&app_label])
                .observe(start.elapsed().as_secs_f64());
            tracing::debug!(target: "trustgate::access", status = status.as_u16(), elapsed_ms = start.elapsed().as_secs_f64() * 1e3, "done");
            resp
        }
        .instrument(span)
        .await
    }

    /// Route, then forward. The app label is `none` when no app matched.
    async fn route_and_forward(
        &self,
        state: &State,
        req: Request<Incoming>,
        conn: ConnInfo,
        request_id: &HeaderValue,
    ) -> Result<(Arc<str>, Response<Body>), (Arc<str>, GatewayError)> {
        let (parts, body) = req.into_parts();
        let none: Arc<str> = none_label();
        let host = request_host(&parts).ok_or((none.clone(), GatewayError::MissingHost))?;
        let app = state
            .routes
            .find(host, parts.uri.path())
            .ok_or((none, GatewayError::UnknownHost))?
            .clone();
        tracing::Span::current().record("app", &*app.name);
        let host = host.to_string();
        let req = Request::from_parts(parts, body.map_err(Into::into).boxed());
        let down = Downstream {
            client_ip: conn.peer.ip(),
            proto: conn.proto,
            host: &host,
            request_id,
        };
        match state.forwarder.forward(&app, req, &down).await {
            Ok(f) => {
                self.metrics
                    .upstream_duration
                    .with_label_values(&[&app.name])
                    .observe(f.upstream_time.as_secs_f64());
                Ok((app.name.clone(), f.response))
            }
            Err(e) => {
                let kind = match &e {
                    GatewayError::UpstreamConnect(_) => "connect",
                    GatewayError::UpstreamTimeout(_) => "timeout",
                    GatewayError::UpstreamProtocol(_) => "protocol",
                    _ => "reset",
                };
                self.metrics
                    .upstream_errors
                    .with_label_values(&[&app.name, kind])
                    .inc();
                tracing::warn!(app = &*app.name, kind, error = %e, "upstream failed");
                Err((app.name.clone(), e))
            }
        }
    }
}

/// Sets the expiry gauge from scratch, so that removed certificates vanish.
fn publish_certificate_expiry(metrics: &Metrics, config: &Config) {
    metrics.certificate_expiry.reset();
    for c in &config.certificates {
        metrics
            .certificate_expiry
            .with_label_values(&["tls", &c.name])
            .set(c.not_after as f64);
    }
}

fn none_label() -> Arc<str> {
    static NONE: OnceLock<Arc<str>> = OnceLock::new();
    NONE.get_or_init(|| Arc::from("none")).clone()
}

/// Keeps a sane client-sent request id, or makes a new one: a random
/// per-process prefix and a counter, unique without a syscall per request.
fn request_id(given: Option<&HeaderValue>) -> HeaderValue {
    if let Some(v) = given {
        let b = v.as_bytes();
        if !b.is_empty()
            && b.len() <= 128
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b':'))
        {
            return v.clone();
        }
    }
    static PREFIX: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = *PREFIX.get_or_init(|| {
        let mut b = [0u8; 8];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b)
            .expect("system randomness");
        u64::from_le_bytes(b)
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    HeaderValue::from_str(&format!("{prefix:016x}{n:016x}")).expect("hex is a valid header")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_id_kept_when_sane() {
        let v = HeaderValue::from_static("abc-123_x.y:z");
        assert_eq!(request_id(Some(&v)), v);
    }

    #[test]
    fn request_id_replaced_when_odd() {
        for bad in ["", "has space", "<script>", &"x".repeat(129)] {
            let v = HeaderValue::from_str(bad).unwrap();
            let id = request_id(Some(&v));
            assert_ne!(id, v);
            assert_eq!(id.len(), 32);
        }
    }

    #[test]
    fn new_request_ids_are_unique() {
        assert_ne!(request_id(None), request_id(None));
    }
}
