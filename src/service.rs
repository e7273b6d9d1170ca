//! The request pipeline, in the order of the README's table: route (host
//! and path to an app, `route.rs`); for an enforced app the enforcement
//! phases (`service/enforce.rs`: classify, evidence, decide, remember; the
//! ACS POST in `service/sign_in.rs`); forward (`answer/forward.rs`); observe
//! (metrics, the access log and one span per request, in
//! [`Gateway::handle`]).

pub mod handoff;

pub mod enforce;

pub mod sign_in;

pub mod state;

pub mod uem;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use arc_swap::ArcSwap;
use http::{HeaderValue, Request, Response};
use hyper::body::Incoming;
use tracing::Instrument;

use crate::accept::tls::CertStore;
use crate::answer::forward::{Downstream, X_REQUEST_ID};
use crate::answer::{trust, Body, GatewayError};
use crate::config::{Config, RuntimeKind, MAX_ENROLLMENT_WINDOW, MAX_SESSION_LIFETIME};
use crate::evidence::assertion::replay::ReplayCache;
use crate::observe::{method_class, status_class, Metrics};
use crate::remember::detour::Detours;
use crate::remember::sessions::Sessions;
use crate::route::{request_host, RouteError};
use handoff::{Outcome, Pass};
pub use state::{Enforced, RunningApp, State};

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
    replay: ReplayCache,
    /// Sessions: decision cache, revocations, locks. Survives reloads.
    pub sessions: Sessions,
    /// Pending enrollment detours. Survives reloads.
    pub detours: Detours,
    /// What the fleet shares through Redis (or this replica alone). Read
    /// at start: a `[redis]` change needs a restart.
    pub shared: crate::remember::shared::Shared,
    /// UEM EventIds acted on, when there is no Redis to remember them.
    pub uem_seen: moka::sync::Cache<String, ()>,
    clock_offset: AtomicU64,
    /// Where assertion verification runs, and how many at once.
    pub verification: Verification,
}

/// Where assertion verifications run. On the async worker that received
/// the POST when the runtime has a worker to spare and the body is of a
/// usual size: a verification is then one step of about 50 us, and handing
/// it to the blocking pool cost more in wake-ups and context switches than
/// the work (acs-trusted 7,100 -> 9,500 req/s, gateway CPU 178 -> 133 us per
/// assertion on 2 cores). Otherwise (one worker, or a large body that
/// takes longer to parse) on the blocking pool, which the kernel preempts.
/// On the shared runtime at most one fewer than the workers run at once,
/// so that one worker always serves everything else. Per-core threads each
/// verify their own, one at a time each (a verifying thread's other
/// connections wait for one step): a thread that waited for another's slot
/// would sit idle with its own connections stalled behind the wait, which
/// cost 39% of the acs-trusted throughput (7,359 against 12,003 req/s).
pub struct Verification {
    /// Verifications allowed at once.
    pub slots: tokio::sync::Semaphore,
    /// Whether small bodies are verified on the async worker.
    pub inline: bool,
}

/// The largest assertion body verified on an async worker; Okta responses
/// are 5-15 KB, larger group lists reach some tens of KB.
pub const INLINE_VERIFY_BYTES: usize = 64 * 1024;

impl Verification {
    /// Whether a body of `len` bytes is verified on the async worker.
    pub fn on_worker(&self, len: usize) -> bool {
        self.inline && len <= INLINE_VERIFY_BYTES
    }

    /// For the runtime this runs on (one worker when there is none).
    fn for_runtime() -> Verification {
        let workers = tokio::runtime::Handle::try_current()
            .map(|h| h.metrics().num_workers())
            .unwrap_or(1);
        Verification {
            slots: tokio::sync::Semaphore::new(workers.saturating_sub(1).max(1)),
            inline: workers >= 2,
        }
    }

    /// For `threads` per-core serving threads.
    fn per_core(threads: usize) -> Verification {
        Verification {
            slots: tokio::sync::Semaphore::new(threads.max(1)),
            inline: threads >= 2,
        }
    }
}

impl Gateway {
    /// A gateway for `config`; not ready until the lifecycle says so.
    pub fn new(config: Arc<Config>, metrics: Arc<Metrics>) -> Arc<Gateway> {
        let certs = CertStore::new(&config.certificates);
        publish_certificate_expiry(&metrics, &config);
        prime_metrics(&metrics, &config);
        let replay = ReplayCache::new(config.server.replay_cache_entries);
        metrics.replay_capacity.set(gauge_value(replay.capacity()));
        let metrics_for_state = metrics.clone();
        let verification = match config.server.runtime {
            RuntimeKind::Shared => Verification::for_runtime(),
            RuntimeKind::PerCore => Verification::per_core(config.server.serving_threads()),
        };
        let shared = match &config.redis {
            Some(r) => {
                crate::remember::shared::Shared::redis(r, MAX_SESSION_LIFETIME, metrics.clone())
            }
            None => crate::remember::shared::Shared::local(),
        };
        Arc::new(Gateway {
            // Before `state`, which takes `config`.
            sessions: Sessions::new(MAX_SESSION_LIFETIME, config.server.decision_cache_entries),
            metrics,
            state: ArcSwap::from_pointee(State::new(config, &replay, &metrics_for_state)),
            certs,
            ready: AtomicBool::new(false),
            replay,
            detours: Detours::new(MAX_ENROLLMENT_WINDOW),
            shared,
            uem_seen: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(std::time::Duration::from_secs(7 * 24 * 3600))
                .build(),
            clock_offset: AtomicU64::new(0),
            verification,
        })
    }

    /// The current state.
    pub fn state(&self) -> arc_swap::Guard<Arc<State>> {
        self.state.load()
    }

    /// Brings the cache gauges up to date; the metrics endpoint calls it
    /// before each scrape, so that no request pays for them.
    pub fn refresh_gauges(&self) {
        self.metrics
            .cache_entries
            .set(gauge_value(self.sessions.cached()));
        self.metrics
            .replay_entries
            .set(gauge_value(self.replay.live()));
    }

    /// The certificate resolver the TLS listener uses.
    pub fn certs(&self) -> Arc<CertStore> {
        self.certs.clone()
    }

    /// Swaps in a new config and its certificates at once.
    pub fn apply(&self, config: Arc<Config>) {
        self.certs.replace(&config.certificates);
        publish_certificate_expiry(&self.metrics, &config);
        prime_metrics(&self.metrics, &config);
        if config.session_keys != self.state().config.session_keys {
            // A cached decision must not outlive the key that signed it.
            self.sessions.clear_cache();
        }
        self.state
            .store(Arc::new(State::new(config, &self.replay, &self.metrics)));
    }

    /// The gateway's clock: the system time plus any offset set by
    /// [`Gateway::advance_clock`]. Every decision reads time from here.
    pub fn now(&self) -> std::time::SystemTime {
        std::time::SystemTime::now()
            + std::time::Duration::from_millis(self.clock_offset.load(Ordering::Relaxed))
    }

    /// Moves the gateway's clock forward, for tests and drills (a lapsed
    /// enrollment window, an expired session) without waiting.
    pub fn advance_clock(&self, by: std::time::Duration) {
        self.clock_offset
            .fetch_add(by.as_millis() as u64, Ordering::Relaxed);
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
    ///
    /// Not an `async fn`: its future is the instrumented block alone, not
    /// the block inside a second state machine that keeps its own copy of
    /// the request (each layer of a request's future is copied when built).
    pub fn handle(
        &self,
        req: Request<Incoming>,
        conn: ConnInfo,
    ) -> impl std::future::Future<Output = Response<Body>> + Send + '_ {
        let start = Instant::now();
        let request_id = request_id(req.headers().get(&X_REQUEST_ID));
        let span = tracing::debug_span!(
            "request",
            id = request_id.to_str().unwrap_or(""),
            method = %req.method(),
            app = tracing::field::Empty,
        );
        let method = req.method().clone();
        async move {
            let state = self.state();
            // Copied only when the access log is on: the hot path pays nothing.
            let access = state.config.log_access.then(|| {
                (
                    request_host(req.uri(), req.headers())
                        .unwrap_or("")
                        .to_string(),
                    req.uri().path().to_string(),
                )
            });
            let (app, mut resp) = match self.route_and_forward(&state, req, conn, &request_id).await
            {
                Ok((app, resp)) => (app, resp),
                Err((app, err)) => {
                    self.metrics
                        .gateway_errors
                        .with_label_values(&[err.reason()])
                        .inc();
                    tracing::debug!(reason = err.reason(), error = %err, "answered by the gateway");
                    (app, err.response(request_id.to_str().unwrap_or("")))
                }
            };
            resp.headers_mut()
                .insert(X_REQUEST_ID.clone(), request_id.clone());
            if let Some(hsts) = &state.config.server.hsts {
                resp.headers_mut()
                    .entry(http::header::STRICT_TRANSPORT_SECURITY)
                    .or_insert_with(|| hsts.clone());
            }
            let status = resp.status();
            let elapsed = start.elapsed().as_secs_f64();
            match app {
                Some(run) => {
                    run.metrics.request(&method, status).inc();
                    run.metrics.request_duration.observe(elapsed);
                }
                None => {
                    self.metrics
                        .requests
                        .with_label_values(&["none", method_class(&method), status_class(status)])
                        .inc();
                    self.metrics
                        .request_duration
                        .with_label_values(&["none"])
                        .observe(elapsed);
                }
            }
            if let Some((host, path)) = access {
                use http_body::Body as _;
                tracing::info!(
                    target: "trustgate::access",
                    method = method.as_str(),
                    host,
                    path,
                    status = status.as_u16(),
                    bytes = resp.body().size_hint().exact(),
                    duration_ms = elapsed * 1e3,
                    request_id = request_id.to_str().unwrap_or(""),
                    "request"
                );
            }
            resp
        }
        .instrument(span)
    }

    /// The phases in order: route, enforce (for an enforced app), forward.
    /// Gives the app the request was for, `None` when no app matched.
    async fn route_and_forward<'s>(
        &self,
        state: &'s State,
        req: Request<Incoming>,
        conn: ConnInfo,
        request_id: &HeaderValue,
    ) -> Result<(Option<&'s RunningApp>, Response<Body>), (Option<&'s RunningApp>, GatewayError)>
    {
        let (mut parts, body) = req.into_parts();
        if parts.method == http::Method::CONNECT {
            return Err((None, GatewayError::MethodNotAllowed(parts.method)));
        }
        // The UEM calls one URL on whichever host it was given.
        if parts.uri.path() == uem::PATH {
            if let Some(cfg) = &state.config.uem {
                let timeout = state.config.server.body_read_timeout;
                return Ok((None, self.uem_event(cfg, parts, body, timeout).await));
            }
        }

        // Route: host and path to an app.
        let host =
            request_host(&parts.uri, &parts.headers).ok_or((None, GatewayError::MissingHost))?;
        let run: &RunningApp = match state.routes.find(host, parts.uri.path()) {
            Ok(run) => run,
            Err(RouteError::UnknownHost) => return Err((None, GatewayError::UnknownHost)),
            Err(RouteError::BadPath(e)) => return Err((None, GatewayError::BadPath(e))),
        };
        let app = Some(run);
        tracing::Span::current().record("app", run.name());
        let host = host.to_string();
        trust::strip(&mut parts.headers);
        // Room for what enforcement and forwarding add, so that the map
        // grows once instead of at every doubling.
        parts
            .headers
            .reserve(trust::COUNT + crate::answer::forward::FORWARDING_HEADERS);

        // Enforce: classify, evidence, decide, remember.
        let pass = match &run.enforced {
            None => Pass::unchecked(parts, body, true),
            Some(enf) => {
                let origin = handoff::Origin {
                    conn,
                    host: &host,
                    request_id: request_id.to_str().unwrap_or(""),
                };
                match enforce::enforce(self, state, run, enf, parts, body, origin).await {
                    Ok(Outcome::Forward(pass)) => pass,
                    Ok(Outcome::Answer(resp)) => return Ok((app, resp)),
                    Err(e) => return Err((app, e)),
                }
            }
        };

        // Forward: to the upstream, and its answer back.
        let down = Downstream {
            client_ip: conn.peer.ip(),
            proto: conn.proto,
            host: &host,
            trusted_forwarded: conn.proto == "http" && state.config.server.trusted_proxy_hops > 0,
            request_id,
        };
        match state
            .forwarder
            .forward(
                &run.app,
                &run.upstream,
                &run.metrics.upstream_connections,
                pass.request,
                &down,
                pass.tunnel,
            )
            .await
        {
            Ok(mut f) => {
                run.metrics
                    .upstream_duration
                    .observe(f.upstream_time.as_secs_f64());
                for c in pass.cookies {
                    if let Ok(v) = HeaderValue::from_str(&c) {
                        f.response.headers_mut().append(http::header::SET_COOKIE, v);
                    }
                }
                Ok((app, f.response))
            }
            Err(e) => {
                let kind = upstream_error_kind(&e);
                self.metrics
                    .upstream_errors
                    .with_label_values(&[run.name(), kind])
                    .inc();
                tracing::warn!(app = run.name(), kind, error = %e, "upstream failed");
                Err((app, e))
            }
        }
    }
}

/// The `kind` label of an upstream failure.
fn upstream_error_kind(e: &GatewayError) -> &'static str {
    match e {
        GatewayError::UpstreamConnect(_) => UPSTREAM_ERROR_KINDS[0],
        GatewayError::UpstreamTimeout(_) => UPSTREAM_ERROR_KINDS[1],
        GatewayError::UpstreamProtocol(_) => UPSTREAM_ERROR_KINDS[3],
        _ => UPSTREAM_ERROR_KINDS[2],
    }
}

/// The `kind` labels of `trustgate_upstream_errors_total`.
pub const UPSTREAM_ERROR_KINDS: [&str; 4] = ["connect", "timeout", "reset", "protocol"];

/// Sets the expiry gauge from scratch, so that removed certificates vanish.
fn publish_certificate_expiry(metrics: &Metrics, config: &Config) {
    metrics.certificate_expiry.reset();
    for c in &config.certificates {
        metrics
            .certificate_expiry
            .with_label_values(&["tls", &c.name])
            .set(c.not_after as f64);
    }
    for (name, not_after) in config
        .apps
        .iter()
        .filter_map(|a| a.enforcement.as_ref())
        .flat_map(|e| e.idp_certs.iter())
    {
        metrics
            .certificate_expiry
            .with_label_values(&["idp", name])
            .set(*not_after as f64);
    }
}

/// A count as a Prometheus integer gauge.
fn gauge_value(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Creates the bounded label sets at zero, so that dashboards and
/// `increase()` see a series before its first event.
fn prime_metrics(m: &Metrics, config: &Config) {
    if config.redis.is_some() {
        for op in crate::observe::REDIS_OPS {
            m.redis_errors.with_label_values(&[op]);
        }
    }
    if config.uem.is_some() {
        for t in crate::observe::UEM_EVENT_TYPES {
            for r in crate::observe::UEM_EVENT_RESULTS {
                m.uem_events.with_label_values(&[t, r]);
            }
        }
    }
    for result in ["success", "failure"] {
        m.config_reloads.with_label_values(&[result]);
    }
    for listener in ["tls", "plain"] {
        m.connections_refused.with_label_values(&[listener]);
    }
    for reason in GatewayError::REASONS {
        m.gateway_errors.with_label_values(&[reason]);
    }
    for app in &config.apps {
        for kind in UPSTREAM_ERROR_KINDS {
            m.upstream_errors.with_label_values(&[&app.name, kind]);
        }
    }
    for scope in ["session", "subject"] {
        m.revocations.with_label_values(&[scope]);
    }
    for reason in crate::remember::sessions::SessionReject::REASONS {
        m.cookies_rejected.with_label_values(&[reason]);
    }
    for app in &config.apps {
        let Some(enf) = &app.enforcement else {
            continue;
        };
        let name = &*app.name;
        m.cache_hits.with_label_values(&[name]);
        m.cache_misses.with_label_values(&[name]);
        m.assertion_duration.with_label_values(&[name]);
        for event in ["started", "resumed", "expired"] {
            m.detours.with_label_values(&[name, event]);
        }
        let protocols: &[&str] = match enf.verifier.protocol {
            crate::evidence::assertion::ProtocolSelector::Saml2 => &["saml2"],
            crate::evidence::assertion::ProtocolSelector::WsFed => &["wsfed"],
            crate::evidence::assertion::ProtocolSelector::Auto => &["saml2", "wsfed"],
        };
        for p in protocols {
            m.assertions.with_label_values(&[name, p, "accept"]);
        }
        // The refusal that pages (TrustgateReplayCacheFull) exists from the
        // start, so that increase() sees its first rise.
        m.assertions.with_label_values(&[
            name,
            sign_in::rejected_protocol(enf),
            "replay_cache_full",
        ]);
        m.decisions.with_label_values(&[
            name,
            "other",
            enf.policy.default_action().as_str(),
            crate::decide::DEFAULT_RULE,
        ]);
    }
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
        aws_lc_rs::rand::SecureRandom::fill(&aws_lc_rs::rand::SystemRandom::new(), &mut b)
            .expect("system randomness");
        u64::from_le_bytes(b)
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    // Into a stack buffer: `format!` took a tenth of the forwarding path's
    // own work.
    let mut raw = [0u8; 16];
    raw[..8].copy_from_slice(&prefix.to_be_bytes());
    raw[8..].copy_from_slice(&n.to_be_bytes());
    let mut id = [0u8; 32];
    hex::encode_to_slice(raw, &mut id).expect("32 digits for 16 bytes");
    HeaderValue::from_bytes(&id).expect("hex is a valid header")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of the future a closure returns, without calling it.
    fn future_size<A, B, C, F: Fn(A, B, C) -> R, R>(_: F) -> usize {
        std::mem::size_of::<R>()
    }

    #[test]
    fn a_request_future_stays_small() {
        // Every request builds this future and moves it (into its box, and
        // each layer into the next), so its size is paid per request. Rare
        // paths whose futures are large (a new upstream connection, a parked
        // one's restart, sign-in) are boxed to keep it so: 3,520 bytes on
        // rustc 1.95, 6,032 before they were. If this fails, box the
        // awaited future that grew it.
        let size = future_size(|g: &Gateway, r: Request<Incoming>, c: ConnInfo| g.handle(r, c));
        assert!(size <= 4096, "Gateway::handle's future is {size} bytes");
    }

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
    fn verification_keeps_a_worker_free_and_goes_inline_only_with_one_to_spare() {
        let v = Verification::for_runtime();
        assert_eq!(
            (v.slots.available_permits(), v.inline),
            (1, false),
            "no runtime"
        );
        let one = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let v = one.block_on(async { Verification::for_runtime() });
        assert_eq!(
            (v.slots.available_permits(), v.inline),
            (1, false),
            "one worker"
        );
        for (workers, slots) in [(2, 1), (3, 2), (8, 7)] {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(workers)
                .build()
                .unwrap();
            let v = rt.block_on(async { Verification::for_runtime() });
            assert_eq!(
                (v.slots.available_permits(), v.inline),
                (slots, true),
                "{workers} workers"
            );
        }
    }

    #[test]
    fn per_core_threads_each_verify_their_own_and_one_thread_uses_the_pool() {
        let v = Verification::per_core(1);
        assert_eq!((v.slots.available_permits(), v.inline), (1, false));
        for threads in [2, 3, 8] {
            let v = Verification::per_core(threads);
            assert_eq!(
                (v.slots.available_permits(), v.inline),
                (threads, true),
                "{threads} threads"
            );
        }
    }

    #[test]
    fn new_request_ids_are_unique() {
        assert_ne!(request_id(None), request_id(None));
    }

    #[test]
    fn new_request_ids_are_the_prefix_and_counter_in_hex() {
        let a = request_id(None);
        let b = request_id(None);
        let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
        assert_eq!(a.len(), 32);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)));
        assert_eq!(a[..16], b[..16], "one prefix per process");
        let n = |id: &str| u64::from_str_radix(&id[16..], 16).unwrap();
        assert!(n(b) > n(a), "the counter goes up: {a} {b}");
    }
}
