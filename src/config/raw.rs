//! The config file as serde reads it: plain values, unknown keys refused.
//! Meaning and cross-checks are `config.rs`'s job.

use super::defaults;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::observe::LogFormat;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub tls: RawTls,
    #[serde(default)]
    pub upstream: RawUpstream,
    #[serde(default)]
    pub admin: RawAdmin,
    #[serde(default)]
    pub log: RawLog,
    #[serde(default)]
    pub session: RawSession,
    #[serde(default)]
    pub demo: RawDemo,
    #[serde(default)]
    pub redis: Option<RawRedis>,
    #[serde(default)]
    pub uem: Option<RawUem>,
    #[serde(default)]
    pub zones: crate::decide::RawZones,
    #[serde(default)]
    pub apps: BTreeMap<String, RawApp>,
}

/// `[server]`: the traffic listeners and their limits.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawServer {
    pub listen: Option<String>,
    pub plain_listen: Option<String>,
    pub max_connections: usize,
    pub max_header_bytes: usize,
    pub max_assertion_bytes: usize,
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub tls_handshake_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// An HTTP/1.1 connection quiet this long between requests gives hyper's
    /// buffers back until its next request; unset, the shorter of
    /// [`defaults::PARK_AFTER`] and half of `header_read_timeout`.
    #[serde(default, with = "humantime_serde")]
    pub park_after: Option<Duration>,
    #[serde(with = "humantime_serde")]
    pub grace_period: Duration,
    /// A body the gateway reads whole (an assertion POST) must arrive
    /// within this.
    #[serde(with = "humantime_serde")]
    pub body_read_timeout: Duration,
    /// `Strict-Transport-Security` for the gateway's answers and for
    /// forwarded responses without one.
    pub hsts: Option<String>,
    /// Proxies in front of the gateway whose X-Forwarded-For entries are
    /// trusted when finding the client address.
    pub trusted_proxy_hops: usize,
    /// Async worker threads; none means one per CPU.
    pub worker_threads: Option<usize>,
    /// How client connections are spread over the worker threads.
    pub runtime: crate::config::RuntimeKind,
    /// Verified session cookies the decision cache holds.
    pub decision_cache_entries: u64,
    /// Live assertion IDs the replay cache holds.
    pub replay_cache_entries: u64,
}

impl Default for RawServer {
    fn default() -> Self {
        RawServer {
            listen: None,
            plain_listen: None,
            max_connections: defaults::MAX_CONNECTIONS,
            max_header_bytes: defaults::MAX_HEADER_BYTES,
            max_assertion_bytes: defaults::MAX_ASSERTION_BYTES,
            header_read_timeout: defaults::HEADER_READ_TIMEOUT,
            tls_handshake_timeout: defaults::TLS_HANDSHAKE_TIMEOUT,
            idle_timeout: defaults::IDLE_TIMEOUT,
            park_after: None,
            grace_period: defaults::GRACE_PERIOD,
            body_read_timeout: defaults::BODY_READ_TIMEOUT,
            hsts: None,
            trusted_proxy_hops: 0,
            worker_threads: None,
            runtime: crate::config::RuntimeKind::default(),
            decision_cache_entries: defaults::DECISION_CACHE_ENTRIES,
            replay_cache_entries: defaults::REPLAY_CACHE_ENTRIES,
        }
    }
}

/// `[tls]`: server certificates, chosen by SNI.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawTls {
    pub certificates: Vec<RawCertificate>,
}

/// One `[[tls.certificates]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCertificate {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Names this certificate answers for; default: its DNS subject
    /// alternative names.
    pub server_names: Option<Vec<String>>,
}

/// `[upstream]`: how the gateway talks to apps.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawUpstream {
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub response_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub pool_idle_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub pool_park_after: Duration,
    pub pool_max_idle_per_host: usize,
    /// Extra PEM roots for https upstreams, added to the system's.
    pub ca_file: Option<PathBuf>,
}

impl Default for RawUpstream {
    fn default() -> Self {
        RawUpstream {
            connect_timeout: defaults::CONNECT_TIMEOUT,
            response_timeout: defaults::RESPONSE_TIMEOUT,
            pool_idle_timeout: defaults::POOL_IDLE_TIMEOUT,
            pool_park_after: defaults::POOL_PARK_AFTER,
            pool_max_idle_per_host: defaults::POOL_MAX_IDLE_PER_HOST,
            ca_file: None,
        }
    }
}

/// `[admin]`: the metrics and health listener.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAdmin {
    pub listen: String,
    /// Bearer token for `POST /sessions/revoke`; without one, only
    /// loopback clients may revoke.
    pub token: Option<RawSecret>,
}

impl Default for RawAdmin {
    fn default() -> Self {
        RawAdmin {
            listen: defaults::ADMIN_LISTEN.to_string(),
            token: None,
        }
    }
}

/// `[log]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLog {
    pub format: LogFormat,
    pub level: String,
    /// One `trustgate::access` line at info per request.
    pub access: bool,
}

impl Default for RawLog {
    fn default() -> Self {
        RawLog {
            format: LogFormat::Text,
            level: defaults::LOG_LEVEL.into(),
            access: false,
        }
    }
}

/// `[session]`: keys for the gateway session cookie.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSession {
    /// HMAC keys; the first signs, every one verifies.
    pub keys: Vec<RawSecret>,
}

/// A secret given inline, from an environment variable, or from a file.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawSecret {
    Inline(String),
    Env { env: String },
    File { file: PathBuf },
}

/// `[redis]`: the fleet's shared state.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRedis {
    /// `redis://[user:password@]host:port[/db]` or `rediss://...` (TLS);
    /// a secret, since it may hold the password.
    pub url: RawSecret,
    #[serde(default = "default_key_prefix")]
    pub key_prefix: String,
    /// Connect and command timeout.
    #[serde(default = "default_redis_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

fn default_key_prefix() -> String {
    "trustgate:".into()
}

fn default_redis_timeout() -> Duration {
    Duration::from_millis(500)
}

/// `[uem]`: Workspace ONE UEM Event Notifications.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUem {
    pub username: RawSecret,
    pub password: RawSecret,
    /// Maps the event's EnrollmentUserName (`{user}`) or email (`{email}`)
    /// to the NameID the sessions carry.
    pub subject_template: String,
}

/// `[demo]`: the built-in demo app, IdP and enrollment portal.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawDemo {
    pub enabled: bool,
    pub app_listen: String,
    pub portal_listen: String,
    pub idp_key: PathBuf,
    pub idp_cert: PathBuf,
    pub idp_entity_id: String,
    pub sp_entity_id: String,
    pub acs_url: String,
    pub app_url: String,
    /// The CA the portal trusts when it calls the gateway (the UEM event of
    /// "mark this device non-compliant").
    pub gateway_ca: PathBuf,
}

impl Default for RawDemo {
    fn default() -> Self {
        RawDemo {
            enabled: false,
            app_listen: "127.0.0.1:8081".into(),
            portal_listen: "127.0.0.2:8082".into(),
            idp_key: "certs/demo-idp.key".into(),
            idp_cert: "certs/demo-idp.pem".into(),
            idp_entity_id: "http://127.0.0.2:8082/idp".into(),
            sp_entity_id: "https://127.0.0.1:8443/saml/metadata".into(),
            acs_url: "https://127.0.0.1:8443/saml/acs".into(),
            app_url: "https://127.0.0.1:8443/".into(),
            gateway_ca: "certs/dev-ca.pem".into(),
        }
    }
}

/// One `[apps.NAME]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApp {
    pub hosts: Vec<String>,
    #[serde(default)]
    pub path_prefix: Option<String>,
    pub upstream: String,
    #[serde(default)]
    pub host_header: Option<String>,
    /// `off` (plain proxy), `assertion` or `session`; default `session`
    /// when `idp` is set, else `off`.
    #[serde(default)]
    pub enforce: Option<String>,
    /// `saml2`, `wsfed` or `auto`.
    #[serde(default)]
    pub protocol: Option<String>,
    /// Paths where the IdP posts assertions (SAML ACS, WS-Fed endpoint).
    #[serde(default)]
    pub acs_paths: Vec<String>,
    /// Where a request without a session goes to start sign-in again.
    #[serde(default)]
    pub login_path: Option<String>,
    /// Path prefixes that need no session in `session` mode.
    #[serde(default)]
    pub public_paths: Vec<String>,
    /// The enrollment link, optionally with `{app}`, `{platform}` and
    /// `{detour}` in its query.
    #[serde(default)]
    pub enrollment_url: Option<String>,
    #[serde(default, with = "humantime_serde")]
    pub enrollment_window: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub session_lifetime: Option<Duration>,
    /// Set `X-Trustgate-*` headers for the app.
    #[serde(default)]
    pub trust_headers: Option<bool>,
    /// The app is Google Workspace (Android devices show as unmanaged).
    #[serde(default)]
    pub google_workspace: bool,
    /// The `Upgrade` tokens forwarded to the upstream; default
    /// `["websocket"]`. `h2c` is refused.
    #[serde(default)]
    pub upgrades: Option<Vec<String>>,
    /// Whether upgrades pass on paths that need no session (login and
    /// public paths, and every path of an `assertion` app).
    #[serde(default)]
    pub upgrades_on_public_paths: bool,
    #[serde(default)]
    pub idp: Option<RawIdp>,
    #[serde(default)]
    pub sp: Option<RawSp>,
    #[serde(default)]
    pub attributes: RawAttributes,
    #[serde(default)]
    pub policy: crate::decide::RawPolicy,
}

/// `[apps.NAME.idp]`: the IdP whose assertions the app accepts.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIdp {
    pub entity_id: String,
    pub certs: Vec<PathBuf>,
    #[serde(default)]
    pub allow_sha1: bool,
    #[serde(default, with = "humantime_serde")]
    pub clock_skew: Option<Duration>,
}

/// `[apps.NAME.sp]`: the app as a service provider.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSp {
    /// SP entity ID (SAML audience) or wtrealm (WS-Fed).
    pub entity_id: String,
    /// The ACS URL the IdP posts to (Destination, Recipient).
    #[serde(default)]
    pub acs_url: Option<String>,
}

/// `[apps.NAME.attributes]`: where device trust and groups are read.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAttributes {
    pub device_trust: Vec<String>,
    pub trusted: Vec<String>,
    pub not_trusted: Vec<String>,
    pub unknown: Vec<String>,
    pub groups: String,
}

impl Default for RawAttributes {
    fn default() -> Self {
        RawAttributes {
            device_trust: vec!["DeviceTrustSignal".into()],
            trusted: vec!["TRUSTED".into(), "true".into()],
            not_trusted: vec!["NOT_TRUSTED".into(), "false".into()],
            unknown: vec!["UNKNOWN".into(), String::new()],
            groups: "groups".into(),
        }
    }
}
