//! Observation: the Prometheus metrics registry and the tracing subscriber.
//! Other modules record into [`Metrics`]; only the admin listener reads it.

use std::sync::Arc;

use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Buckets for request and upstream durations, in seconds.
const DURATION_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Every metric trustgate exports, owned by one registry.
///
/// Labels are bounded: app names come from config, everything else from
/// static `reason()` strings.
pub struct Metrics {
    registry: Registry,
    /// Open client connections, by listener (`tls` or `plain`).
    pub open_connections: IntGaugeVec,
    /// Open HTTP/1.1 connections parked between requests, by listener.
    pub parked_connections: IntGaugeVec,
    /// Accepted client connections, by listener.
    pub connections: IntCounterVec,
    /// Connections refused because `max_connections` was reached.
    pub connections_refused: IntCounterVec,
    /// TLS handshakes that failed, by reason.
    pub tls_handshake_failures: IntCounterVec,
    /// Requests answered, by app, method class and status class.
    pub requests: IntCounterVec,
    /// Time from request head to response head, by app.
    pub request_duration: HistogramVec,
    /// Time the upstream took to send its response head, by app.
    pub upstream_duration: HistogramVec,
    /// Upstream failures, by app and kind.
    pub upstream_errors: IntCounterVec,
    /// Upstream connections opened, by app (a request that found none idle).
    pub upstream_connections: IntCounterVec,
    /// Idle upstream connections parked (only their sockets kept).
    pub upstream_parked: IntGauge,
    /// Requests answered by the gateway itself with an error, by reason.
    pub gateway_errors: IntCounterVec,
    /// Config reloads, by result.
    pub config_reloads: IntCounterVec,
    /// Reloaded keys that apply only after a restart, by key.
    pub config_reload_warnings: IntCounterVec,
    /// Build information; always 1.
    pub build_info: IntGaugeVec,
    /// Access decisions, by app, platform, action and rule.
    pub decisions: IntCounterVec,
    /// Assertions checked, by app, protocol and result (`accept` or the
    /// verifier's rejection reason).
    pub assertions: IntCounterVec,
    /// Time to verify one assertion, by app.
    pub assertion_duration: HistogramVec,
    /// Decision cache lookups that found a decision.
    pub cache_hits: IntCounterVec,
    /// Decision cache lookups that found nothing.
    pub cache_misses: IntCounterVec,
    /// Decisions in the cache now.
    pub cache_entries: IntGauge,
    /// Live assertion IDs in the replay cache.
    pub replay_entries: IntGauge,
    /// The most live assertion IDs the replay cache holds.
    pub replay_capacity: IntGauge,
    /// Session cookies treated as absent, by reason.
    pub cookies_rejected: IntCounterVec,
    /// Enrollment detours, by app and event (`started`, `resumed`, `expired`).
    pub detours: IntCounterVec,
    /// Sessions revoked, by scope (`session`, `subject`).
    pub revocations: IntCounterVec,
    /// notAfter of each configured certificate, by kind (`tls`, `idp`) and name.
    pub certificate_expiry: GaugeVec,
    /// 1 while the gateway is ready to serve, 0 while starting or draining.
    pub ready: IntGauge,
    /// 1 while Redis answers and the revocation channel is subscribed; 0
    /// otherwise, and 0 without `[redis]`.
    pub redis_up: IntGauge,
    /// Redis operations that failed, by operation.
    pub redis_errors: IntCounterVec,
    /// UEM event notifications, by what they mean (`type`) and what was
    /// done (`result`).
    pub uem_events: IntCounterVec,
}

/// The `op` labels of `trustgate_redis_errors_total`.
pub const REDIS_OPS: [&str; 7] = [
    "connect",
    "subscribe",
    "sync",
    "replay",
    "revoke",
    "publish",
    "event",
];

/// The `type` labels of `trustgate_uem_events_total`.
pub const UEM_EVENT_TYPES: [&str; 4] = ["untrusted", "trusted", "ignored", "unreadable"];

/// The `result` labels of `trustgate_uem_events_total`.
pub const UEM_EVENT_RESULTS: [&str; 7] = [
    "revoked",
    "acknowledged",
    "duplicate",
    "unmapped",
    "malformed",
    "unauthorized",
    "unavailable",
];

impl Metrics {
    /// Creates every metric and registers it.
    pub fn new() -> Arc<Metrics> {
        let registry = Registry::new();
        // process_cpu_seconds_total, process_resident_memory_bytes,
        // process_open_fds and the rest, read from /proc at each scrape.
        registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect("unique process metrics");
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(g.clone()))
                .expect("unique metric");
            g
        };
        let histogram = |name: &str, help: &str, labels: &[&str]| {
            let opts = HistogramOpts::new(name, help).buckets(DURATION_BUCKETS.to_vec());
            let h = HistogramVec::new(opts, labels).expect("valid metric");
            registry
                .register(Box::new(h.clone()))
                .expect("unique metric");
            h
        };
        let fgauge = |name: &str, help: &str, labels: &[&str]| {
            let g = GaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(g.clone()))
                .expect("unique metric");
            g
        };
        let single = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("valid metric");
            registry
                .register(Box::new(g.clone()))
                .expect("unique metric");
            g
        };
        let cache_entries = single(
            "trustgate_decision_cache_entries",
            "Decisions held in the decision cache.",
        );
        let replay_entries = single(
            "trustgate_replay_cache_entries",
            "Live assertion IDs the replay cache remembers; at server.replay_cache_entries new sign-ins are refused.",
        );
        let replay_capacity = single(
            "trustgate_replay_cache_capacity",
            "The most live assertion IDs the replay cache holds (server.replay_cache_entries).",
        );
        let ready = single(
            "trustgate_ready",
            "1 while the gateway is ready to serve traffic.",
        );
        let redis_up = single(
            "trustgate_redis_up",
            "1 while Redis answers and the revocation channel is subscribed (0 without [redis]).",
        );

        let metrics = Metrics {
            open_connections: gauge(
                "trustgate_open_connections",
                "Client connections currently open.",
                &["listener"],
            ),
            parked_connections: gauge(
                "trustgate_parked_connections",
                "Open HTTP/1.1 client connections parked between requests (hyper's buffers freed).",
                &["listener"],
            ),
            connections: counter(
                "trustgate_connections_total",
                "Client connections accepted.",
                &["listener"],
            ),
            connections_refused: counter(
                "trustgate_connections_refused_total",
                "Client connections closed at once because max_connections was reached.",
                &["listener"],
            ),
            tls_handshake_failures: counter(
                "trustgate_tls_handshake_failures_total",
                "TLS handshakes that failed, by reason.",
                &["reason"],
            ),
            requests: counter(
                "trustgate_requests_total",
                "Requests answered, by app, method class and status class.",
                &["app", "method", "status"],
            ),
            request_duration: histogram(
                "trustgate_request_duration_seconds",
                "Time from the request head to the response head.",
                &["app"],
            ),
            upstream_duration: histogram(
                "trustgate_upstream_duration_seconds",
                "Time the upstream took to answer with a response head.",
                &["app"],
            ),
            upstream_errors: counter(
                "trustgate_upstream_errors_total",
                "Upstream failures, by app and kind (connect, timeout, reset, protocol).",
                &["app", "kind"],
            ),
            upstream_connections: counter(
                "trustgate_upstream_connections_opened_total",
                "Upstream connections opened, by app (for requests that found no pooled connection).",
                &["app"],
            ),
            upstream_parked: single(
                "trustgate_upstream_parked_connections",
                "Idle pooled upstream HTTP/1 connections parked (hyper's connection dropped, the socket kept).",
            ),
            gateway_errors: counter(
                "trustgate_gateway_errors_total",
                "Requests the gateway answered itself with an error page, by reason.",
                &["reason"],
            ),
            config_reloads: counter(
                "trustgate_config_reloads_total",
                "Config reloads, by result (success or failure).",
                &["result"],
            ),
            config_reload_warnings: counter(
                "trustgate_config_reload_warnings_total",
                "Keys a reload changed that apply only after a restart, by key.",
                &["key"],
            ),
            build_info: gauge(
                "trustgate_build_info",
                "Build information; the value is always 1.",
                &["version"],
            ),
            decisions: counter(
                "trustgate_decisions_total",
                "Access decisions, by app, platform, action and matching rule.",
                &["app", "platform", "action", "rule"],
            ),
            assertions: counter(
                "trustgate_assertions_total",
                "Assertions checked, by app, protocol and result (accept or the rejection reason).",
                &["app", "protocol", "result"],
            ),
            assertion_duration: histogram(
                "trustgate_assertion_verify_duration_seconds",
                "Time to decode, verify and check one assertion.",
                &["app"],
            ),
            cache_hits: counter(
                "trustgate_decision_cache_hits_total",
                "Session requests answered from the decision cache.",
                &["app"],
            ),
            cache_misses: counter(
                "trustgate_decision_cache_misses_total",
                "Session requests whose cookie had to be verified.",
                &["app"],
            ),
            cache_entries,
            replay_entries,
            replay_capacity,
            cookies_rejected: counter(
                "trustgate_session_cookies_rejected_total",
                "Session cookies treated as absent, by reason.",
                &["reason"],
            ),
            detours: counter(
                "trustgate_enrollment_detours_total",
                "Enrollment detours, by app and event (started, resumed, expired).",
                &["app", "event"],
            ),
            redis_up,
            redis_errors: counter(
                "trustgate_redis_errors_total",
                "Redis operations that failed, by operation.",
                &["op"],
            ),
            uem_events: counter(
                "trustgate_uem_events_total",
                "UEM event notifications, by meaning (untrusted, trusted, ignored, unreadable) and result.",
                &["type", "result"],
            ),
            revocations: counter(
                "trustgate_revocations_total",
                "Revocations applied, by scope (session, subject): from the admin endpoint, UEM events and other replicas.",
                &["scope"],
            ),
            certificate_expiry: fgauge(
                "trustgate_certificate_expiry_timestamp_seconds",
                "notAfter of each configured certificate as a unix timestamp, by kind (tls, idp) and name.",
                &["kind", "name"],
            ),
            ready,
            registry,
        };
        metrics
            .build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        Arc::new(metrics)
    }

    /// Resolves one app's per-request series (creating them at zero).
    pub fn for_app(&self, app: &str) -> AppMetrics {
        AppMetrics {
            app: app.to_string(),
            family: self.requests.clone(),
            requests: (0..METHODS.len() * STATUSES.len())
                .map(|_| std::sync::OnceLock::new())
                .collect(),
            request_duration: self.request_duration.with_label_values(&[app]),
            upstream_duration: self.upstream_duration.with_label_values(&[app]),
            upstream_connections: self.upstream_connections.with_label_values(&[app]),
            cache_hits: self.cache_hits.with_label_values(&[app]),
            cache_misses: self.cache_misses.with_label_values(&[app]),
        }
    }

    /// The registry, for modules that add metrics of their own.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Renders every metric in the Prometheus text format.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 * 1024);
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding into a Vec cannot fail");
        out
    }
}

/// The method class labels, in index order.
const METHODS: [&str; 8] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "other",
];
/// The status class labels, in index order.
const STATUSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

fn method_index(method: &http::Method) -> usize {
    match *method {
        http::Method::GET => 0,
        http::Method::HEAD => 1,
        http::Method::POST => 2,
        http::Method::PUT => 3,
        http::Method::DELETE => 4,
        http::Method::PATCH => 5,
        http::Method::OPTIONS => 6,
        _ => 7,
    }
}

fn status_index(status: http::StatusCode) -> usize {
    match status.as_u16() {
        100..=199 => 0,
        200..=299 => 1,
        300..=399 => 2,
        400..=499 => 3,
        _ => 4,
    }
}

/// The method class label: bounded to a few values.
/// Counts one in a gauge while it lives: raised when made, lowered when
/// dropped, whichever way its holder ends.
pub struct GaugeGuard(IntGauge);

impl GaugeGuard {
    /// Raises `gauge` until the guard is dropped.
    pub fn hold(gauge: IntGauge) -> GaugeGuard {
        gauge.inc();
        GaugeGuard(gauge)
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

pub fn method_class(method: &http::Method) -> &'static str {
    METHODS[method_index(method)]
}

/// The status class label (`2xx` ... `5xx`).
pub fn status_class(status: http::StatusCode) -> &'static str {
    STATUSES[status_index(status)]
}

/// One app's per-request metrics, resolved once per config so that the hot
/// path does no label hashing.
pub struct AppMetrics {
    app: String,
    family: IntCounterVec,
    /// Resolved on first use, so that only seen combinations are exported.
    requests: Vec<std::sync::OnceLock<prometheus::IntCounter>>,
    /// `trustgate_request_duration_seconds{app}`.
    pub request_duration: prometheus::Histogram,
    /// `trustgate_upstream_duration_seconds{app}`.
    pub upstream_duration: prometheus::Histogram,
    /// `trustgate_upstream_connections_opened_total{app}`.
    pub upstream_connections: prometheus::IntCounter,
    /// `trustgate_decision_cache_hits_total{app}`.
    pub cache_hits: prometheus::IntCounter,
    /// `trustgate_decision_cache_misses_total{app}`.
    pub cache_misses: prometheus::IntCounter,
}

impl AppMetrics {
    /// The counter of requests with this method and status.
    pub fn request(
        &self,
        method: &http::Method,
        status: http::StatusCode,
    ) -> &prometheus::IntCounter {
        let (m, st) = (method_index(method), status_index(status));
        self.requests[m * STATUSES.len() + st].get_or_init(|| {
            self.family
                .with_label_values(&[&self.app, METHODS[m], STATUSES[st]])
        })
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Changes the installed subscriber's filter; set by [`init_logging`].
type FilterReload = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;
static FILTER_RELOAD: std::sync::OnceLock<FilterReload> = std::sync::OnceLock::new();

/// Installs the global tracing subscriber. `RUST_LOG` overrides `level`
/// (and then a reload leaves the filter alone). Colour only when stderr is
/// a terminal, so that files and journald get plain text.
pub fn init_logging(format: LogFormat, level: &str) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let from_env = EnvFilter::try_from_default_env().ok();
    let pinned = from_env.is_some();
    let filter = from_env.unwrap_or_else(|| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    // The handle's type names the whole subscriber, so each format installs
    // and keeps its own.
    macro_rules! install {
        ($builder:expr) => {{
            let builder = $builder.with_filter_reloading();
            let handle = builder.reload_handle();
            // A second init (tests) keeps the first subscriber.
            if builder.try_init().is_ok() && !pinned {
                let _ = FILTER_RELOAD.set(Box::new(move |level: &str| {
                    let filter = EnvFilter::try_new(level).map_err(|e| e.to_string())?;
                    handle.reload(filter).map_err(|e| e.to_string())
                }));
            }
        }};
    }
    match format {
        LogFormat::Text => install!(builder),
        LogFormat::Json => install!(builder.json().flatten_event(true)),
    }
}

/// Applies a new `[log] level` to the running subscriber; a no-op when
/// `RUST_LOG` set the filter or no subscriber of ours is installed.
pub fn set_log_level(level: &str) -> Result<(), String> {
    match FILTER_RELOAD.get() {
        Some(reload) => reload(level),
        None => Ok(()),
    }
}
