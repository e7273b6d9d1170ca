//! Every default of the config file, in one place: the raw structs'
//! `Default` impls and the per-app fallbacks of the typed config read them
//! from here, and `config::tests::the_readme_defaults_are_the_code_defaults`
//! holds the README's config reference to them.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

// [server]
/// `server.max_connections`.
pub const MAX_CONNECTIONS: usize = 10_000;
/// `server.max_header_bytes`.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// `server.max_assertion_bytes`.
pub const MAX_ASSERTION_BYTES: usize = 512 * 1024;
/// `server.header_read_timeout`.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// `server.tls_handshake_timeout`.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// `server.idle_timeout`.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// `server.park_after`, unless half of `server.header_read_timeout` is
/// shorter.
pub const PARK_AFTER: Duration = Duration::from_secs(1);
/// `server.grace_period`.
pub const GRACE_PERIOD: Duration = Duration::from_secs(30);
/// `server.body_read_timeout`.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// `server.decision_cache_entries`.
pub const DECISION_CACHE_ENTRIES: u64 = 1_000_000;
/// `server.replay_cache_entries`.
pub const REPLAY_CACHE_ENTRIES: u64 = 1_000_000;

// [upstream]
/// `upstream.connect_timeout`.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// `upstream.response_timeout`.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);
/// `upstream.pool_idle_timeout`.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// `upstream.pool_park_after`.
pub const POOL_PARK_AFTER: Duration = Duration::from_secs(1);
/// `upstream.pool_max_idle_per_host`.
pub const POOL_MAX_IDLE_PER_HOST: usize = 256;

// [admin]
/// `admin.listen`.
pub const ADMIN_LISTEN: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 1), 9901));

// [log]
/// `log.level`.
pub const LOG_LEVEL: &str = "info";

// [apps.NAME]
/// `apps.NAME.path_prefix`.
pub const PATH_PREFIX: &str = "/";
/// `apps.NAME.login_path`.
pub const LOGIN_PATH: &str = "/";
/// `apps.NAME.enrollment_window`.
pub const ENROLLMENT_WINDOW: Duration = Duration::from_secs(600);
/// `apps.NAME.session_lifetime`.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(8 * 3600);
/// `apps.NAME.trust_headers`.
pub const TRUST_HEADERS: bool = true;
/// `apps.NAME.idp.clock_skew`.
pub const CLOCK_SKEW: Duration = Duration::from_secs(60);
