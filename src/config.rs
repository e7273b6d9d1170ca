//! Configuration: the TOML file read into raw serde structs (`config/raw.rs`),
//! then checked and turned into typed values. Every problem names its key
//! path. Using the config is left to the modules that take it.

pub mod defaults;
pub mod raw;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http::uri::{Authority, Scheme};
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::decide::{host_matches, Lint, Policy, PolicySource, Severity, Zones};
use crate::evidence::assertion::{PinnedKey, ProtocolSelector, TrustMapping, VerifierConfig};
use crate::evidence::DeviceTrust;
use crate::observe::LogFormat;
use raw::{RawApp, RawConfig, RawSecret};

/// One problem found in a config, with the key path it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted key path, such as `apps.mail.upstream`.
    pub path: String,
    /// What is wrong, in lowercase words.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every problem found in one config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Secret bytes (a key or token) whose `Debug` never shows them.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub Vec<u8>);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({} bytes, redacted)", self.0.len())
    }
}

/// `[redis]`: the fleet's shared state.
#[derive(Clone)]
pub struct RedisConfig {
    /// The client for `url` (which may hold a password: never printed).
    pub client: redis::Client,
    /// Prefixes every key and channel, so several fleets share one Redis.
    pub key_prefix: String,
    /// The longest a Redis command may take before it counts as down.
    pub timeout: Duration,
    /// SHA-256 of the URL, so that a reload can tell it changed without
    /// the URL (and its password) being kept in the clear twice.
    pub url_digest: String,
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url_digest", &self.url_digest)
            .field("key_prefix", &self.key_prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// `[uem]`: Workspace ONE UEM Event Notifications.
#[derive(Debug, Clone)]
pub struct UemConfig {
    /// The Basic auth user the UEM is configured with.
    pub username: Secret,
    /// Its password.
    pub password: Secret,
    /// How an event's user maps to the NameID sessions carry.
    pub subject_template: crate::uem::SubjectTemplate,
}

/// The typed, checked configuration.
#[derive(Debug)]
pub struct Config {
    /// The file this config was read from; relative paths resolve against
    /// its folder.
    pub source: PathBuf,
    /// Traffic listeners and their limits.
    pub server: ServerConfig,
    /// Server certificates, in config order; the first is the default.
    pub certificates: Vec<TlsCertificate>,
    /// How the gateway talks to upstreams.
    pub upstream: UpstreamConfig,
    /// The admin listener's address.
    pub admin_listen: SocketAddr,
    /// Bearer token that `POST /sessions/revoke` requires, when set.
    pub admin_token: Option<Secret>,
    /// Log format.
    pub log_format: LogFormat,
    /// Log filter when `RUST_LOG` is unset.
    pub log_level: String,
    /// Whether each request gets an access log line.
    pub log_access: bool,
    /// The fleet's Redis; `None` for one replica alone.
    pub redis: Option<RedisConfig>,
    /// UEM event notifications; `None` when not configured.
    pub uem: Option<UemConfig>,
    /// Session HMAC keys; the first signs.
    pub session_keys: Vec<Secret>,
    /// The built-in demo app, when enabled.
    pub demo: Option<DemoConfig>,
    /// Protected apps, sorted by name.
    pub apps: Vec<App>,
    /// Network zones that policies name.
    pub zones: Zones,
    /// Findings that do not stop the config, for `check` and the log.
    pub warnings: Vec<Lint>,
}

/// `[server]`, typed.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// TLS listener address.
    pub listen: Option<SocketAddr>,
    /// Plain-HTTP listener address, for a sidecar behind another terminator.
    pub plain_listen: Option<SocketAddr>,
    /// Open client connections allowed at once.
    pub max_connections: usize,
    /// Largest request head accepted (HTTP/1 buffer, HTTP/2 header list).
    pub max_header_bytes: usize,
    /// Largest assertion POST body read into memory (413 beyond).
    pub max_assertion_bytes: usize,
    /// Time a client has to send a complete request head.
    pub header_read_timeout: Duration,
    /// Time a client has to complete the TLS handshake.
    pub tls_handshake_timeout: Duration,
    /// A connection with no traffic for this long is closed.
    pub idle_timeout: Duration,
    /// An HTTP/1.1 keep-alive connection quiet this long after an answer is
    /// parked: hyper's buffers and state are freed until the next request
    /// (`accept/park.rs`). Shorter than `header_read_timeout`.
    pub park_after: Duration,
    /// Time in-flight requests get to finish after SIGTERM.
    pub grace_period: Duration,
    /// Time a body the gateway reads whole has to arrive (408 past it).
    pub body_read_timeout: Duration,
    /// The `Strict-Transport-Security` value to send, if any.
    pub hsts: Option<http::HeaderValue>,
    /// Proxies in front whose X-Forwarded-For entries are trusted.
    pub trusted_proxy_hops: usize,
    /// Async worker threads (one per CPU when unset); read at start only.
    pub worker_threads: Option<usize>,
    /// How client connections are spread over the worker threads; read at
    /// start only.
    pub runtime: RuntimeKind,
    /// Verified session cookies the decision cache holds (about 800 bytes
    /// each); read at start only, since the cache outlives reloads.
    pub decision_cache_entries: u64,
    /// Live assertion IDs the replay cache holds; past it, new sign-ins are
    /// refused until some expire. Read at start only.
    pub replay_cache_entries: u64,
}

/// One server certificate and the names it answers for.
#[derive(Debug, Clone)]
pub struct TlsCertificate {
    /// Names (lowercase DNS names or `*.suffix` wildcards) chosen by SNI.
    pub server_names: Vec<String>,
    /// The chain and key, ready for rustls.
    pub key: Arc<CertifiedKey>,
    /// The leaf's notAfter, as unix seconds.
    pub not_after: i64,
    /// The config key of this certificate, for metrics and messages.
    pub name: String,
}

/// `server.runtime`: where client connections run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuntimeKind {
    /// One multi-threaded runtime: a connection's tasks may move between
    /// the worker threads (tokio's work stealing).
    Shared,
    /// One single-threaded runtime per worker thread, each accepting from
    /// the listening sockets: a connection, its streams and the upstream
    /// connections it opens stay on the thread that accepted it (nginx's
    /// and HAProxy's model). The admin listener, Redis and reloads run on a
    /// runtime of their own.
    #[default]
    PerCore,
}

impl ServerConfig {
    /// The threads that serve client connections.
    pub fn serving_threads(&self) -> usize {
        self.worker_threads.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        })
    }
}

/// `[upstream]`, typed.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// Time allowed to open a TCP connection (and TLS) to an upstream.
    pub connect_timeout: Duration,
    /// Time allowed for the upstream's response head.
    pub response_timeout: Duration,
    /// Idle pooled connections are closed after this.
    pub pool_idle_timeout: Duration,
    /// An idle pooled HTTP/1 connection unused this long is parked: only
    /// its socket (and TLS state) is kept, hyper's connection is dropped.
    pub pool_park_after: Duration,
    /// Idle pooled connections kept per upstream.
    pub pool_max_idle_per_host: usize,
    /// Extra trusted roots for https upstreams.
    pub extra_roots: Vec<CertificateDer<'static>>,
}

/// `[demo]`, typed.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    /// Where the demo app listens.
    pub app_listen: SocketAddr,
    /// Where the demo IdP and enrollment portal listen.
    pub portal_listen: SocketAddr,
    /// The demo IdP's signing key (PKCS#8 PEM).
    pub idp_key: Vec<u8>,
    /// The demo IdP's certificate (PEM).
    pub idp_cert: Vec<u8>,
    /// The demo IdP's entity ID (Issuer).
    pub idp_entity_id: String,
    /// The demo app's SP entity ID (Audience).
    pub sp_entity_id: String,
    /// Where the demo IdP posts assertions (through the gateway).
    pub acs_url: String,
    /// The demo app's address through the gateway.
    pub app_url: String,
    /// PEM roots the portal trusts when it calls the gateway.
    pub gateway_ca: Vec<u8>,
    /// The `[uem]` Basic credentials, so that the portal (standing in for
    /// Workspace ONE) can send a real event notification; `None` without
    /// `[uem]`.
    pub uem: Option<(Secret, Secret)>,
}

/// How the Host header reaches the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostHeader {
    /// The client's Host goes through unchanged.
    Preserve,
    /// Host is rewritten to the upstream's authority.
    Upstream,
}

/// The longest enrollment window and session the caches are sized for;
/// config refuses longer ones.
pub const MAX_ENROLLMENT_WINDOW: Duration = Duration::from_secs(3600);
/// See [`MAX_ENROLLMENT_WINDOW`].
pub const MAX_SESSION_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// One protected app.
#[derive(Debug, Clone)]
pub struct App {
    /// The app's name (its key under `[apps]`).
    pub name: Arc<str>,
    /// The app's position in `Config::apps`, for per-app run-time data.
    pub index: usize,
    /// Lowercase host names without port.
    pub hosts: Vec<String>,
    /// Path prefix this app owns on its hosts; `/` for all.
    pub path_prefix: String,
    /// Upstream scheme (http or https).
    pub upstream_scheme: Scheme,
    /// Upstream host and port.
    pub upstream_authority: Authority,
    /// Host header policy.
    pub host_header: HostHeader,
    /// The `Upgrade` tokens forwarded (lowercase), where the session
    /// check lets upgrades through.
    pub upgrades: Vec<String>,
    /// Upgrades also pass on paths that need no session.
    pub upgrades_on_public_paths: bool,
    /// The app's session and detour cookie names.
    pub cookies: crate::remember::CookieNames,
    /// Device-trust enforcement; `None` for a plain proxied app.
    pub enforcement: Option<Arc<Enforcement>>,
}

impl crate::route::Routable for App {
    fn hosts(&self) -> &[String] {
        &self.hosts
    }
    fn path_prefix(&self) -> &str {
        &self.path_prefix
    }
    fn enforced(&self) -> bool {
        self.enforcement.is_some()
    }
}

/// What is gated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnforceMode {
    /// Only the assertion POST is gated; other requests pass.
    Assertion,
    /// Every request needs a gateway session, except public paths.
    Session,
}

/// One app's device-trust enforcement.
#[derive(Debug, Clone)]
pub struct Enforcement {
    /// What is gated.
    pub mode: EnforceMode,
    /// Paths where assertions arrive.
    pub acs_paths: Vec<String>,
    /// Where a request without a session is sent to sign in again.
    pub login_path: String,
    /// Path prefixes that need no session.
    pub public_paths: Vec<String>,
    /// The enrollment link, when the policy can enroll.
    pub enrollment: Option<EnrollmentUrl>,
    /// How long an enrollment detour may take and still resume.
    pub enrollment_window: Duration,
    /// The longest a session lasts unless a rule caps it lower.
    pub session_lifetime: Duration,
    /// Whether `X-Trustgate-*` headers are set for the app.
    pub trust_headers: bool,
    /// The app is Google Workspace.
    pub google_workspace: bool,
    /// How assertions are verified.
    pub verifier: VerifierConfig,
    /// The ordered rules.
    pub policy: Policy,
    /// Each pinned IdP certificate's name and notAfter (unix seconds).
    pub idp_certs: Vec<(String, i64)>,
}

/// A validated enrollment link. Placeholders (`{app}`, `{platform}`,
/// `{detour}`) may appear only in the query and are percent-encoded, so the
/// link can never point anywhere but the configured host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollmentUrl {
    template: String,
}

impl EnrollmentUrl {
    const PLACEHOLDERS: [&'static str; 3] = ["{app}", "{platform}", "{detour}"];

    /// Checks a template.
    pub fn parse(template: &str) -> Result<EnrollmentUrl, String> {
        let (base, query) = match template.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (template, None),
        };
        if base.contains(['{', '}']) {
            return Err("placeholders may appear only in the query".into());
        }
        let uri: http::Uri = base.parse().map_err(|e| format!("not a URL: {e}"))?;
        let host = uri.host().ok_or("needs a host")?;
        let loopback = host == "localhost"
            || host
                .trim_matches(['[', ']'])
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        match uri.scheme_str() {
            Some("https") => {}
            Some("http") if loopback => {}
            _ => return Err("must be an https URL (http only on loopback)".into()),
        }
        if let Some(q) = query {
            let mut rest = q;
            while let Some(start) = rest.find('{') {
                let end = rest[start..].find('}').ok_or("unclosed '{' in the query")?;
                let name = &rest[start..start + end + 1];
                if !Self::PLACEHOLDERS.contains(&name) {
                    return Err(format!(
                        "unknown placeholder {name}; use {{app}}, {{platform}} or {{detour}}"
                    ));
                }
                rest = &rest[start + end + 1..];
            }
            if rest.contains('}') {
                return Err("unmatched '}' in the query".into());
            }
        }
        Ok(EnrollmentUrl {
            template: template.to_string(),
        })
    }

    /// The link for one detour, values percent-encoded.
    pub fn render(&self, app: &str, platform: &str, detour: &str) -> String {
        let enc = |v: &str| form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
        self.template
            .replace("{app}", &enc(app))
            .replace("{platform}", &enc(platform))
            .replace("{detour}", &enc(detour))
    }

    /// The template as configured.
    pub fn as_str(&self) -> &str {
        &self.template
    }
}

impl Config {
    /// Reads, parses and checks a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                path: path.display().to_string(),
                message: format!("cannot read config file: {e}"),
            }])
        })?;
        Config::parse(&text, path)
    }

    /// Parses and checks config text; `source` resolves relative paths.
    pub fn parse(text: &str, source: &Path) -> Result<Config, ConfigErrors> {
        let de = toml::Deserializer::new(text);
        let raw: RawConfig = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            ConfigErrors(vec![ConfigError {
                path: if path == "." { "config".into() } else { path },
                message: inner.message().trim().to_string(),
            }])
        })?;
        Config::from_raw(raw, source)
    }

    /// Raw to typed, section by section (each section's function below
    /// names its keys in its errors), then the checks across sections.
    /// Every problem is collected, so that `check` reports them at once.
    fn from_raw(raw: RawConfig, source: &Path) -> Result<Config, ConfigErrors> {
        let base = source.parent().unwrap_or(Path::new("."));
        let mut errors = Errors::default();

        let server = server_section(&raw.server, &mut errors);
        let certificates = tls_section(&raw.tls, server.listen.is_some(), base, &mut errors);
        let upstream = upstream_section(&raw.upstream, base, &mut errors);
        let (admin_listen, admin_token) = admin_section(&raw.admin, base, &mut errors);
        if tracing_subscriber::EnvFilter::try_new(&raw.log.level).is_err() {
            errors.push(
                "log.level",
                format!("not a valid filter: {:?}", raw.log.level),
            );
        }

        let redis = redis_section(raw.redis.as_ref(), base, &mut errors);
        let uem = uem_section(raw.uem.as_ref(), base, &mut errors);
        let session_keys = session_section(&raw.session, base, &mut errors);
        let demo = demo_section(&raw.demo, uem.as_ref(), base, &mut errors);

        let zones = match Zones::try_from(&raw.zones) {
            Ok(z) => z,
            Err(e) => {
                errors.push(&e.path, e.problem.to_string());
                Zones::try_from(&crate::decide::RawZones::new()).expect("no zones is valid")
            }
        };
        let mut warnings = Vec::new();
        let mut apps = Vec::new();
        for (name, app) in &raw.apps {
            if let Some(app) = check_app(name, app, base, &zones, &mut errors, &mut warnings) {
                apps.push(app);
            }
        }
        for (i, app) in apps.iter_mut().enumerate() {
            app.index = i;
        }
        // Apps that share a host with another enforced app get cookie names
        // of their own.
        let shared: Vec<bool> = apps
            .iter()
            .map(|a| {
                apps.iter().any(|b| {
                    b.index != a.index
                        && b.enforcement.is_some()
                        && b.hosts.iter().any(|h| a.hosts.contains(h))
                })
            })
            .collect();
        for (app, shared) in apps.iter_mut().zip(shared) {
            app.cookies = crate::remember::CookieNames::for_app(&app.name, shared);
        }
        check_routes_unique(&apps, &mut errors);
        check_paths_reach_their_app(&apps, &mut errors, &mut warnings);
        check_enrollment_hosts(&raw.apps, &mut errors);
        check_shared_hosts(&raw.apps, &mut warnings);
        // In a pod there are replicas (the HPA's minimum is two): without
        // Redis each would accept an assertion once, so twice in all, and
        // a revocation would reach one of them.
        let replicas = std::env::var("TRUSTGATE_REPLICAS")
            .ok()
            .and_then(|n| n.parse::<u32>().ok())
            .unwrap_or(if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
                2
            } else {
                1
            });
        if raw.redis.is_none() && replicas > 1 && raw.apps.values().any(|a| enforce_level(a) > 0) {
            warnings.push(Lint {
                severity: Severity::Warning,
                code: "replicas_without_redis",
                path: "redis".into(),
                message: format!(
                    "{replicas} replicas (TRUSTGATE_REPLICAS, or a Kubernetes pod) and no [redis]: \
                     each replica accepts an assertion once, so a captured one signs in again at \
                     another, and revocations and UEM events reach one replica only"
                ),
            });
        }
        if session_keys.is_empty() && apps.iter().any(|a| a.enforcement.is_some()) {
            errors.push(
                "session.keys",
                "apps enforce device trust, so the session cookie needs at least one key",
            );
        }

        if !errors.0.is_empty() {
            return Err(ConfigErrors(errors.0));
        }
        Ok(Config {
            source: source.to_path_buf(),
            server,
            certificates,
            upstream,
            admin_listen,
            admin_token,
            log_format: raw.log.format,
            log_level: raw.log.level,
            log_access: raw.log.access,
            redis,
            uem,
            session_keys,
            demo,
            apps,
            zones,
            warnings,
        })
    }
}

/// `[server]`: the listeners, limits and timeouts.
fn server_section(raw: &raw::RawServer, errors: &mut Errors) -> ServerConfig {
    let server = ServerConfig {
        listen: raw
            .listen
            .as_deref()
            .and_then(|a| errors.addr("server.listen", a)),
        plain_listen: raw
            .plain_listen
            .as_deref()
            .and_then(|a| errors.addr("server.plain_listen", a)),
        max_connections: raw.max_connections,
        max_header_bytes: raw.max_header_bytes,
        max_assertion_bytes: raw.max_assertion_bytes,
        header_read_timeout: raw.header_read_timeout,
        tls_handshake_timeout: raw.tls_handshake_timeout,
        idle_timeout: raw.idle_timeout,
        park_after: raw
            .park_after
            .unwrap_or_else(|| defaults::PARK_AFTER.min(raw.header_read_timeout / 2)),
        grace_period: raw.grace_period,
        body_read_timeout: raw.body_read_timeout,
        hsts: raw.hsts.as_deref().and_then(|v| {
            let lower = v.to_ascii_lowercase();
            let max_age = lower
                .split(';')
                .filter_map(|d| d.trim().strip_prefix("max-age="))
                .next()
                .and_then(|a| a.trim_matches('"').parse::<u64>().ok());
            match (max_age, http::HeaderValue::from_str(v)) {
                (Some(_), Ok(h)) => Some(h),
                _ => {
                    errors.push(
                        "server.hsts",
                        "must be a Strict-Transport-Security value with max-age, \
                         as in \"max-age=31536000; includeSubDomains\"",
                    );
                    None
                }
            }
        }),
        trusted_proxy_hops: raw.trusted_proxy_hops,
        worker_threads: raw.worker_threads,
        runtime: raw.runtime,
        decision_cache_entries: raw.decision_cache_entries,
        replay_cache_entries: raw.replay_cache_entries,
    };
    if raw.listen.is_none() && raw.plain_listen.is_none() {
        errors.push("server", "set listen, plain_listen or both");
    }
    if server.max_connections == 0 {
        errors.push("server.max_connections", "must be at least 1");
    }
    if server.worker_threads == Some(0) {
        errors.push("server.worker_threads", "must be at least 1");
    }
    for (key, entries) in [
        (
            "server.decision_cache_entries",
            server.decision_cache_entries,
        ),
        ("server.replay_cache_entries", server.replay_cache_entries),
    ] {
        if entries < 1000 {
            errors.push(key, "must be at least 1000");
        }
    }
    if server.max_header_bytes < 8192 {
        errors.push("server.max_header_bytes", "must be at least 8192");
    }
    for (key, d) in [
        ("server.header_read_timeout", server.header_read_timeout),
        ("server.tls_handshake_timeout", server.tls_handshake_timeout),
        ("server.idle_timeout", server.idle_timeout),
        ("server.body_read_timeout", server.body_read_timeout),
    ] {
        if d.is_zero() {
            errors.push(key, "must be longer than 0s");
        }
    }
    // hyper's header timer runs while a kept-alive connection waits for its
    // next request: the connection must park before it fires.
    // (Unset, it is half of it at most; a zero header timeout is refused
    // above.)
    if !server.header_read_timeout.is_zero() {
        if server.park_after.is_zero() {
            errors.push("server.park_after", "must be longer than 0s");
        } else if server.park_after >= server.header_read_timeout {
            errors.push(
                "server.park_after",
                "must be shorter than server.header_read_timeout",
            );
        }
    }
    server
}

/// `[[tls.certificates]]`, which a TLS listener needs one of.
fn tls_section(
    raw: &raw::RawTls,
    tls_listener: bool,
    base: &Path,
    errors: &mut Errors,
) -> Vec<TlsCertificate> {
    let mut certificates = Vec::new();
    for (i, c) in raw.certificates.iter().enumerate() {
        let key_path = format!("tls.certificates[{i}]");
        if let Some(cert) = load_certificate(
            &key_path,
            &resolve(base, &c.cert),
            &resolve(base, &c.key),
            c.server_names.as_deref(),
            errors,
        ) {
            certificates.push(cert);
        }
    }
    if tls_listener && raw.certificates.is_empty() {
        errors.push(
            "tls.certificates",
            "server.listen is a TLS listener and needs at least one certificate",
        );
    }
    certificates
}

/// `[upstream]`: the client to the apps.
fn upstream_section(raw: &raw::RawUpstream, base: &Path, errors: &mut Errors) -> UpstreamConfig {
    let mut extra_roots = Vec::new();
    if let Some(ca) = &raw.ca_file {
        match read_certs(&resolve(base, ca)) {
            Ok(certs) => extra_roots = certs,
            Err(e) => errors.push("upstream.ca_file", e),
        }
    }
    for (key, d) in [
        ("upstream.connect_timeout", raw.connect_timeout),
        ("upstream.response_timeout", raw.response_timeout),
        // 0 would expire every pooled connection at once; turn pooling off
        // with pool_max_idle_per_host = 0 instead.
        ("upstream.pool_idle_timeout", raw.pool_idle_timeout),
        ("upstream.pool_park_after", raw.pool_park_after),
    ] {
        if d.is_zero() {
            errors.push(key, "must be longer than 0s");
        }
    }
    UpstreamConfig {
        connect_timeout: raw.connect_timeout,
        response_timeout: raw.response_timeout,
        pool_idle_timeout: raw.pool_idle_timeout,
        pool_park_after: raw.pool_park_after,
        pool_max_idle_per_host: raw.pool_max_idle_per_host,
        extra_roots,
    }
}

/// `[admin]`: the admin listener and its token.
fn admin_section(
    raw: &raw::RawAdmin,
    base: &Path,
    errors: &mut Errors,
) -> (SocketAddr, Option<Secret>) {
    let admin_listen = errors
        .addr("admin.listen", &raw.listen)
        .unwrap_or(defaults::ADMIN_LISTEN);

    let admin_token = match &raw.token {
        None => None,
        Some(t) => match read_secret(base, t) {
            Ok(t) if t.len() < 16 => {
                errors.push("admin.token", "an admin token needs at least 16 bytes");
                None
            }
            Ok(t) => Some(Secret(t)),
            Err(e) => {
                errors.push("admin.token", e);
                None
            }
        },
    };
    (admin_listen, admin_token)
}

/// `[redis]`: the fleet's shared state, when there is one.
fn redis_section(
    raw: Option<&raw::RawRedis>,
    base: &Path,
    errors: &mut Errors,
) -> Option<RedisConfig> {
    raw.and_then(|r| {
        let url = match read_secret(base, &r.url) {
            Ok(u) => String::from_utf8(u).unwrap_or_default(),
            Err(e) => {
                errors.push("redis.url", e);
                return None;
            }
        };
        if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
            errors.push("redis.url", "must start with redis:// or rediss:// (TLS)");
            return None;
        }
        if r.timeout.is_zero() {
            errors.push("redis.timeout", "must be longer than 0s");
        }
        if r.key_prefix.is_empty()
            || r.key_prefix.contains(['*', '?', '[', ']', '\\', ' '])
            || !r.key_prefix.is_ascii()
        {
            errors.push(
                "redis.key_prefix",
                "must be non-empty ASCII without *, ?, [, ], \\ or spaces (it is a SCAN pattern's prefix)",
            );
        }
        match redis::Client::open(url.as_str()) {
            // The error text can carry the URL, and so a password.
            Err(_) => {
                errors.push(
                    "redis.url",
                    "not a Redis URL (redis://[user:password@]host:port[/db])",
                );
                None
            }
            Ok(client) => Some(RedisConfig {
                client,
                url_digest: hex::encode(aws_lc_rs::digest::digest(
                    &aws_lc_rs::digest::SHA256,
                    url.as_bytes(),
                )),
                key_prefix: r.key_prefix.clone(),
                timeout: r.timeout,
            }),
        }
    })
}

/// `[uem]`: the Workspace ONE event notifications endpoint.
fn uem_section(raw: Option<&raw::RawUem>, base: &Path, errors: &mut Errors) -> Option<UemConfig> {
    raw.and_then(|u| {
        let username = match read_secret(base, &u.username) {
            Ok(v) if !v.is_empty() && !v.contains(&b':') => Some(Secret(v)),
            Ok(_) => {
                errors.push(
                    "uem.username",
                    "must be non-empty and hold no ':' (Basic auth)",
                );
                None
            }
            Err(e) => {
                errors.push("uem.username", e);
                None
            }
        };
        let password = match read_secret(base, &u.password) {
            Ok(v) if v.len() >= 12 => Some(Secret(v)),
            Ok(_) => {
                errors.push("uem.password", "needs at least 12 bytes");
                None
            }
            Err(e) => {
                errors.push("uem.password", e);
                None
            }
        };
        let template = match crate::uem::SubjectTemplate::parse(&u.subject_template) {
            Ok(t) => Some(t),
            Err(e) => {
                errors.push("uem.subject_template", e);
                None
            }
        };
        Some(UemConfig {
            username: username?,
            password: password?,
            subject_template: template?,
        })
    })
}

/// `[session]`: the keys that seal every cookie, the first signing.
fn session_section(raw: &raw::RawSession, base: &Path, errors: &mut Errors) -> Vec<Secret> {
    let mut session_keys = Vec::new();
    for (i, s) in raw.keys.iter().enumerate() {
        let path = format!("session.keys[{i}]");
        match read_secret(base, s) {
            Ok(k) if k.len() < 32 => errors.push(&path, "a session key needs at least 32 bytes"),
            Ok(k) => session_keys.push(Secret(k)),
            Err(e) => errors.push(&path, e),
        }
    }
    session_keys
}

/// `[demo]`: the local IdP, app and portal of the shipped demo.
fn demo_section(
    raw: &raw::RawDemo,
    uem: Option<&UemConfig>,
    base: &Path,
    errors: &mut Errors,
) -> Option<DemoConfig> {
    if raw.enabled {
        let d = raw;
        let read = |key: &str, p: &Path, errors: &mut Errors| {
            let p = resolve(base, p);
            std::fs::read(&p)
                .map_err(|e| errors.push(key, format!("cannot read {}: {e}", p.display())))
                .ok()
        };
        let app_listen = errors.addr("demo.app_listen", &d.app_listen);
        let portal_listen = errors.addr("demo.portal_listen", &d.portal_listen);
        let idp_key = read("demo.idp_key", &d.idp_key, errors);
        let idp_cert = read("demo.idp_cert", &d.idp_cert, errors);
        let gateway_ca = read("demo.gateway_ca", &d.gateway_ca, errors);
        match (app_listen, portal_listen, idp_key, idp_cert, gateway_ca) {
            (
                Some(app_listen),
                Some(portal_listen),
                Some(idp_key),
                Some(idp_cert),
                Some(gateway_ca),
            ) => Some(DemoConfig {
                gateway_ca,
                uem: uem.map(|u| (u.username.clone(), u.password.clone())),
                app_listen,
                portal_listen,
                idp_key,
                idp_cert,
                idp_entity_id: d.idp_entity_id.clone(),
                sp_entity_id: d.sp_entity_id.clone(),
                acs_url: d.acs_url.clone(),
                app_url: d.app_url.clone(),
            }),
            _ => None,
        }
    } else {
        None
    }
}

/// Collects problems so that `check` can print them all at once.
#[derive(Default)]
struct Errors(Vec<ConfigError>);

impl Errors {
    fn push(&mut self, path: &str, message: impl Into<String>) {
        self.0.push(ConfigError {
            path: path.to_string(),
            message: message.into(),
        });
    }

    fn addr(&mut self, path: &str, value: &str) -> Option<SocketAddr> {
        match value.parse() {
            Ok(a) => Some(a),
            Err(_) => {
                self.push(
                    path,
                    format!("{value:?} is not an address like 127.0.0.1:8443"),
                );
                None
            }
        }
    }
}

fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let data = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    use rustls_pki_types::pem::PemObject;
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(&data).collect();
    match certs {
        Ok(c) if c.is_empty() => Err(format!("no PEM certificate in {}", path.display())),
        Ok(c) => Ok(c),
        Err(e) => Err(format!("bad PEM in {}: {e}", path.display())),
    }
}

fn load_certificate(
    key_path: &str,
    cert: &Path,
    key: &Path,
    names: Option<&[String]>,
    errors: &mut Errors,
) -> Option<TlsCertificate> {
    let chain = match read_certs(cert) {
        Ok(c) => c,
        Err(e) => {
            errors.push(&format!("{key_path}.cert"), e);
            return None;
        }
    };
    let key_der: PrivateKeyDer<'static> = match std::fs::read(key)
        .map_err(|e| format!("cannot read {}: {e}", key.display()))
        .and_then(|data| {
            use rustls_pki_types::pem::{self, PemObject};
            PrivateKeyDer::from_pem_slice(&data).map_err(|e| match e {
                pem::Error::NoItemsFound => format!("no PEM private key in {}", key.display()),
                e => format!("bad PEM in {}: {e}", key.display()),
            })
        }) {
        Ok(k) => k,
        Err(e) => {
            errors.push(&format!("{key_path}.key"), e);
            return None;
        }
    };
    let signing_key = match rustls::crypto::aws_lc_rs::sign::any_supported_type(&key_der) {
        Ok(k) => k,
        Err(e) => {
            errors.push(&format!("{key_path}.key"), format!("unusable key: {e}"));
            return None;
        }
    };
    let certified = CertifiedKey::new(chain, signing_key);
    if let Err(e) = certified.keys_match() {
        errors.push(
            &format!("{key_path}.key"),
            format!("the key does not match the certificate: {e}"),
        );
        return None;
    }
    let (sans, not_after) = match leaf_facts(&certified.cert[0]) {
        Ok(f) => f,
        Err(e) => {
            errors.push(&format!("{key_path}.cert"), e);
            return None;
        }
    };
    let server_names: Vec<String> = match names {
        Some(n) => n.iter().map(|s| s.to_ascii_lowercase()).collect(),
        None => sans,
    };
    Some(TlsCertificate {
        server_names,
        key: Arc::new(certified),
        not_after,
        name: cert
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_else(|| key_path.to_string()),
    })
}

/// The leaf's DNS subject alternative names and notAfter.
fn leaf_facts(der: &CertificateDer<'_>) -> Result<(Vec<String>, i64), String> {
    use x509_parser::prelude::*;
    let (_, cert) = X509Certificate::from_der(der.as_ref())
        .map_err(|e| format!("cannot parse the leaf certificate: {e}"))?;
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            if let GeneralName::DNSName(d) = n {
                names.push(d.to_ascii_lowercase());
            }
        }
    }
    Ok((names, cert.validity().not_after.timestamp()))
}

/// Reads a secret given inline, from an environment variable or a file.
fn read_secret(base: &Path, s: &RawSecret) -> Result<Vec<u8>, String> {
    match s {
        RawSecret::Inline(v) => Ok(v.as_bytes().to_vec()),
        RawSecret::Env { env } => std::env::var(env)
            .map(String::into_bytes)
            .map_err(|_| format!("environment variable {env} is not set")),
        RawSecret::File { file } => {
            let p = resolve(base, file);
            let mut v =
                std::fs::read(&p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
            // A trailing newline from `echo` or an editor is not part of the key.
            while v.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                v.pop();
            }
            Ok(v)
        }
    }
}

fn check_app(
    name: &str,
    raw: &RawApp,
    base: &Path,
    zones: &Zones,
    errors: &mut Errors,
    warnings: &mut Vec<Lint>,
) -> Option<App> {
    let at = |k: &str| format!("apps.{name}.{k}");
    let before = errors.0.len();
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        errors.push(
            &format!("apps.{name}"),
            "app names use letters, digits, '-' and '_' only",
        );
    }
    if raw.hosts.is_empty() {
        errors.push(&at("hosts"), "list at least one host");
    }
    let mut hosts = Vec::new();
    for (i, h) in raw.hosts.iter().enumerate() {
        let lower = h.to_ascii_lowercase();
        if lower.is_empty() || lower.contains([':', '/', ' ']) {
            errors.push(
                &format!("{}[{i}]", at("hosts")),
                format!("{h:?} is not a bare host name (no scheme, port or path)"),
            );
        } else {
            hosts.push(lower);
        }
    }
    let path_prefix = raw
        .path_prefix
        .clone()
        .unwrap_or_else(|| defaults::PATH_PREFIX.into());
    if !path_prefix.starts_with('/') {
        errors.push(&at("path_prefix"), "must start with '/'");
    } else if path_prefix.contains(['*', '?', '#'])
        || !path_prefix.is_ascii()
        || path_prefix.parse::<http::uri::PathAndQuery>().is_err()
    {
        errors.push(
            &at("path_prefix"),
            "must be a literal path (no *, ? or #; ASCII, with other characters percent-encoded)",
        );
    } else if let Err(e) = crate::route::canonical_path(&path_prefix) {
        errors.push(
            &at("path_prefix"),
            format!("no request could match it on a host with an enforced app ({e})"),
        );
    }
    let upstream = match raw.upstream.parse::<http::Uri>() {
        Ok(uri) => {
            let scheme = uri.scheme().cloned();
            let ok_scheme = scheme
                .as_ref()
                .is_some_and(|s| *s == Scheme::HTTP || *s == Scheme::HTTPS);
            let ok_path = matches!(uri.path(), "" | "/") && uri.query().is_none();
            match (scheme, uri.authority().cloned()) {
                _ if !ok_scheme => {
                    errors.push(&at("upstream"), "the scheme must be http or https");
                    None
                }
                _ if !ok_path => {
                    errors.push(&at("upstream"), "must not carry a path or query");
                    None
                }
                (Some(scheme), Some(authority)) => Some((scheme, authority)),
                _ => {
                    errors.push(&at("upstream"), "needs a host, as in http://127.0.0.1:8080");
                    None
                }
            }
        }
        Err(e) => {
            errors.push(&at("upstream"), format!("not a URL: {e}"));
            None
        }
    };
    let host_header = match raw.host_header.as_deref() {
        None | Some("preserve") => HostHeader::Preserve,
        Some("upstream") => HostHeader::Upstream,
        Some(other) => {
            errors.push(
                &at("host_header"),
                format!("{other:?} is not one of \"preserve\", \"upstream\""),
            );
            HostHeader::Preserve
        }
    };
    let upgrades = check_upgrades(raw.upgrades.as_deref(), &at("upgrades"), errors);
    let enforcement = check_enforcement(name, raw, base, zones, errors, warnings);
    if raw.upgrades_on_public_paths && enforcement.is_none() {
        errors.push(
            &at("upgrades_on_public_paths"),
            "only an app that enforces device trust has paths without a session check",
        );
    }
    let (upstream_scheme, upstream_authority) = upstream?;
    if errors.0.len() != before {
        return None;
    }
    Some(App {
        index: 0,
        name: Arc::from(name),
        hosts,
        path_prefix,
        upstream_scheme,
        upstream_authority,
        host_header,
        upgrades,
        upgrades_on_public_paths: raw.upgrades_on_public_paths,
        cookies: crate::remember::CookieNames::default(),
        enforcement: enforcement.map(Arc::new),
    })
}

/// The `Upgrade` tokens an app forwards: default `websocket`; never `h2c`,
/// which would turn the connection into HTTP/2 streams that no session
/// check sees.
fn check_upgrades(raw: Option<&[String]>, path: &str, errors: &mut Errors) -> Vec<String> {
    let Some(raw) = raw else {
        return vec!["websocket".to_string()];
    };
    let mut tokens = Vec::new();
    for (i, t) in raw.iter().enumerate() {
        let lower = t.to_ascii_lowercase();
        let at = format!("{path}[{i}]");
        if lower == "h2c" || lower == "h2" || lower.starts_with("http/2") {
            errors.push(
                &at,
                "HTTP/2 (h2c, h2) is never forwarded: its streams would reach the app unchecked",
            );
        } else if lower.contains('/') {
            errors.push(
                &at,
                format!("{t:?}: name the protocol without a version (websocket, not websocket/13)"),
            );
        } else if lower.is_empty()
            || http::HeaderValue::from_str(&lower).is_err()
            || lower.contains([',', ' ', '\t'])
        {
            errors.push(&at, format!("{t:?} is not an Upgrade token"));
        } else {
            tokens.push(lower);
        }
    }
    tokens
}

/// The `enforce`, `idp`, `sp`, `attributes` and `policy` keys of one app.
fn check_enforcement(
    name: &str,
    raw: &RawApp,
    base: &Path,
    zones: &Zones,
    errors: &mut Errors,
    warnings: &mut Vec<Lint>,
) -> Option<Enforcement> {
    let at = |k: &str| format!("apps.{name}.{k}");
    let mode = match (raw.enforce.as_deref(), raw.idp.is_some()) {
        (Some("off"), _) | (None, false) => {
            if raw.idp.is_some() || !raw.acs_paths.is_empty() || !raw.policy.rules.is_empty() {
                errors.push(
                    &at("enforce"),
                    "is off, yet idp, acs_paths or policy rules are set; remove them or enforce",
                );
            }
            return None;
        }
        (Some("assertion"), _) => EnforceMode::Assertion,
        (Some("session"), _) | (None, true) => EnforceMode::Session,
        (Some(other), _) => {
            errors.push(
                &at("enforce"),
                format!("{other:?} is not one of \"off\", \"assertion\", \"session\""),
            );
            return None;
        }
    };
    let before = errors.0.len();
    let protocol = match raw
        .protocol
        .as_deref()
        .unwrap_or("saml2")
        .parse::<ProtocolSelector>()
    {
        Ok(p) => p,
        Err(e) => {
            errors.push(&at("protocol"), e);
            ProtocolSelector::Saml2
        }
    };
    let Some(idp) = &raw.idp else {
        errors.push(
            &at("idp"),
            "enforcing device trust needs the IdP's entity_id and certs",
        );
        return None;
    };
    let mut keys = Vec::new();
    let mut idp_certs = Vec::new();
    if idp.certs.is_empty() {
        errors.push(&at("idp.certs"), "list at least one pinned IdP certificate");
    }
    for (i, cert) in idp.certs.iter().enumerate() {
        let path = resolve(base, cert);
        match std::fs::read(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))
            .and_then(|pem| PinnedKey::from_pem(&pem).map_err(|e| e.to_string()))
        {
            Ok(k) => {
                let file = cert
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default();
                for key in &k {
                    idp_certs.push((format!("{name}/{file}"), key.not_after()));
                }
                keys.extend(k);
            }
            Err(e) => errors.push(&format!("{}[{i}]", at("idp.certs")), e),
        }
    }
    if idp.entity_id.trim().is_empty() {
        errors.push(&at("idp.entity_id"), "must not be empty");
    }
    let Some(sp) = &raw.sp else {
        errors.push(
            &at("sp"),
            "enforcing device trust needs the SP entity_id (audience)",
        );
        return None;
    };
    if sp.entity_id.trim().is_empty() {
        errors.push(&at("sp.entity_id"), "must not be empty");
    }
    if sp.acs_url.is_none() && protocol != ProtocolSelector::WsFed {
        errors.push(
            &at("sp.acs_url"),
            "SAML 2.0 needs the ACS URL for Destination and Recipient checks",
        );
    }
    let mut acs_paths = raw.acs_paths.clone();
    if acs_paths.is_empty() {
        match sp.acs_url.as_deref().map(str::parse::<http::Uri>) {
            Some(Ok(uri)) => acs_paths.push(uri.path().to_string()),
            Some(Err(e)) => errors.push(&at("sp.acs_url"), format!("not a URL: {e}")),
            None => errors.push(&at("acs_paths"), "list the path(s) where the IdP posts"),
        }
    }
    for (i, p) in acs_paths.iter().enumerate() {
        if !p.starts_with('/') {
            errors.push(&format!("{}[{i}]", at("acs_paths")), "must start with '/'");
        }
    }
    for (i, p) in raw.public_paths.iter().enumerate() {
        if !p.starts_with('/') {
            errors.push(
                &format!("{}[{i}]", at("public_paths")),
                "must start with '/'",
            );
        }
    }
    let login_path = raw
        .login_path
        .clone()
        .unwrap_or_else(|| defaults::LOGIN_PATH.into());
    if !login_path.starts_with('/') {
        errors.push(&at("login_path"), "must start with '/'");
    }
    let enrollment = match raw.enrollment_url.as_deref().map(EnrollmentUrl::parse) {
        Some(Ok(u)) => Some(u),
        Some(Err(e)) => {
            errors.push(&at("enrollment_url"), e);
            None
        }
        None => None,
    };
    let a = &raw.attributes;
    if a.device_trust.is_empty() {
        errors.push(
            &at("attributes.device_trust"),
            "list at least one attribute name",
        );
    }
    let mut values = Vec::new();
    for (list, trust) in [
        (&a.trusted, DeviceTrust::Trusted),
        (&a.not_trusted, DeviceTrust::NotTrusted),
        (&a.unknown, DeviceTrust::Unknown),
    ] {
        for v in list {
            values.push((v.clone(), trust));
        }
    }
    let policy = match Policy::try_from(PolicySource {
        path: &format!("apps.{name}.policy"),
        raw: &raw.policy,
        zones,
    }) {
        Ok(p) => p,
        Err(e) => {
            errors.push(&e.path, e.problem.to_string());
            return None;
        }
    };
    for lint in policy.lints(raw.google_workspace) {
        match lint.severity {
            Severity::Error => errors.push(&lint.path, lint.message),
            Severity::Warning => warnings.push(lint),
        }
    }
    let enrolls = policy.default_action() == crate::decide::Action::Enroll
        || policy
            .rules()
            .iter()
            .any(|r| r.action() == crate::decide::Action::Enroll);
    if enrolls && raw.enrollment_url.is_none() {
        errors.push(
            &at("enrollment_url"),
            "the policy can enroll, so it needs the enrollment link",
        );
    }
    let window = raw.enrollment_window.unwrap_or(defaults::ENROLLMENT_WINDOW);
    let lifetime = raw.session_lifetime.unwrap_or(defaults::SESSION_LIFETIME);
    for (key, d, max) in [
        ("enrollment_window", window, MAX_ENROLLMENT_WINDOW),
        ("session_lifetime", lifetime, MAX_SESSION_LIFETIME),
    ] {
        if d.is_zero() {
            errors.push(&at(key), "must be longer than 0s");
        }
        if d > max {
            errors.push(
                &at(key),
                format!("must be at most {}", humantime::format_duration(max)),
            );
        }
    }
    if errors.0.len() != before {
        return None;
    }
    Some(Enforcement {
        mode,
        acs_paths,
        login_path,
        public_paths: raw.public_paths.clone(),
        enrollment,
        enrollment_window: window,
        session_lifetime: lifetime,
        trust_headers: raw.trust_headers.unwrap_or(defaults::TRUST_HEADERS),
        google_workspace: raw.google_workspace,
        verifier: VerifierConfig {
            protocol,
            idp_entity_id: Some(idp.entity_id.clone()),
            keys,
            allow_sha1: idp.allow_sha1,
            audience: Some(sp.entity_id.clone()),
            acs_url: sp.acs_url.clone(),
            skew: idp.clock_skew.unwrap_or(defaults::CLOCK_SKEW),
            trust: TrustMapping {
                attributes: a.device_trust.clone(),
                values,
            },
            groups_attribute: a.groups.clone(),
            ..VerifierConfig::default()
        },
        policy,
        idp_certs,
    })
}

/// Workspace ONE must stay reachable for devices that are not yet trusted:
/// no app may serve or be the enrollment host. Checked on the raw apps, so
/// that it is reported even when an app has other errors.
fn check_enrollment_hosts(apps: &std::collections::BTreeMap<String, RawApp>, errors: &mut Errors) {
    for (name, app) in apps {
        let Some(link) = app.enrollment_url.as_deref() else {
            continue;
        };
        for (other_name, other) in apps {
            let serves = other.hosts.iter().any(|h| host_matches(h, link))
                || host_matches(&other.upstream, link);
            if serves {
                errors.push(
                    &format!("apps.{name}.enrollment_url"),
                    format!(
                        "its host is served by apps.{other_name}: do not protect Workspace ONE \
                         with device trust, or devices that are not yet trusted can never enroll"
                    ),
                );
            }
        }
    }
}

/// How strongly a raw app enforces: 0 off, 1 assertion only, 2 session.
fn enforce_level(app: &RawApp) -> u8 {
    match app.enforce.as_deref() {
        Some("session") => 2,
        Some("assertion") => 1,
        Some(_) => 0,
        None if app.idp.is_some() => 2,
        None => 0,
    }
}

/// An enforced app under a path prefix shares its host with an app that
/// enforces less (off, assertion only, or another policy): the boundary
/// between them is only the path, so every path trick that an upstream
/// reads differently matters. The gateway refuses those (see
/// `route::canonical_path`), and the admin should know what the layout
/// relies on.
fn check_shared_hosts(apps: &std::collections::BTreeMap<String, RawApp>, warnings: &mut Vec<Lint>) {
    for (name, app) in apps {
        let level = enforce_level(app);
        if level == 0 {
            continue;
        }
        for (other_name, other) in apps {
            if other_name == name {
                continue;
            }
            let shared = app
                .hosts
                .iter()
                .find(|h| other.hosts.iter().any(|o| o.eq_ignore_ascii_case(h)));
            let Some(host) = shared else {
                continue;
            };
            let other_level = enforce_level(other);
            let weaker = if other_level < level {
                Some(match other_level {
                    0 => "does not enforce device trust",
                    _ => "enforces only at the assertion",
                })
            } else if other.policy != app.policy {
                Some("has another policy")
            } else {
                None
            };
            if let Some(how) = weaker {
                warnings.push(Lint {
                    severity: Severity::Warning,
                    code: "shared_host_weaker_app",
                    path: format!("apps.{name}.path_prefix"),
                    message: format!(
                        "{host} is shared with apps.{other_name}, which {how}: only the path \
                         separates them, so give the app a host of its own if you can"
                    ),
                });
            }
        }
    }
}

/// An enforced app's ACS, login and public paths must reach the app itself
/// on each of its hosts: one outside its prefix goes to another app, so
/// the gateway would never verify that ACS (an unenforced neighbour would
/// get the POST) nor exempt that path. A public path that covers the whole
/// prefix makes the app public, which is worth a warning.
fn check_paths_reach_their_app(apps: &[App], errors: &mut Errors, warnings: &mut Vec<Lint>) {
    let routes = crate::route::Routes::new(apps.iter());
    for app in apps {
        let Some(enf) = &app.enforcement else {
            continue;
        };
        let keyed = enf
            .acs_paths
            .iter()
            .enumerate()
            .map(|(i, p)| (format!("apps.{}.acs_paths[{i}]", app.name), p))
            .chain(std::iter::once((
                format!("apps.{}.login_path", app.name),
                &enf.login_path,
            )))
            .chain(
                enf.public_paths
                    .iter()
                    .enumerate()
                    .map(|(i, p)| (format!("apps.{}.public_paths[{i}]", app.name), p)),
            );
        for (key, path) in keyed {
            for host in &app.hosts {
                match routes.find(host, path) {
                    Ok(found) if found.index == app.index => {}
                    Ok(found) => errors.push(
                        &key,
                        format!(
                            "{host}{path} is routed to apps.{}, not to this app: keep it under path_prefix {:?}",
                            found.name, app.path_prefix
                        ),
                    ),
                    Err(e) => errors.push(&key, format!("{path:?} can never match ({e})")),
                }
            }
        }
        for (i, p) in enf.public_paths.iter().enumerate() {
            if crate::route::prefix_matches(p, &app.path_prefix) {
                warnings.push(Lint {
                    severity: Severity::Warning,
                    code: "public_path_covers_app",
                    path: format!("apps.{}.public_paths[{i}]", app.name),
                    message: format!(
                        "{p:?} covers the whole app (path_prefix {:?}): no request needs a session",
                        app.path_prefix
                    ),
                });
            }
        }
    }
}

/// Two apps may share a host only under different path prefixes.
fn check_routes_unique(apps: &[App], errors: &mut Errors) {
    for (i, a) in apps.iter().enumerate() {
        for b in &apps[..i] {
            for h in &a.hosts {
                let same = |p: &str| p.trim_end_matches('/').to_string();
                if b.hosts.contains(h) && same(&a.path_prefix) == same(&b.path_prefix) {
                    errors.push(
                        &format!("apps.{}.hosts", a.name),
                        format!("{h}{} is already served by apps.{}", a.path_prefix, b.name),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
