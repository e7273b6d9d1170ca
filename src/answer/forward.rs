//! Forwarding: rewrites a request for its upstream (hop-by-hop headers out,
//! X-Forwarded-* and X-Request-Id in), sends it on a pooled keep-alive
//! connection (`pool`), and streams both bodies. Deciding whether to forward
//! is not done here.

pub mod pool;

use std::collections::HashMap;
use std::io::Write as _;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{self, Authority, PathAndQuery, Scheme};
use http::{Request, Response, StatusCode, Uri, Version};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;

use self::pool::{Connector, Pool, SendError};
use super::{Body, GatewayError};
use crate::config::{App, HostHeader, RuntimeKind, UpstreamConfig};

/// The request id header, forwarded or created.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Facts about the client connection that forwarding writes into headers.
#[derive(Debug, Clone)]
pub struct Downstream<'a> {
    /// The peer address of the client connection.
    pub client_ip: IpAddr,
    /// `https` on the TLS listener, `http` on the plain one.
    pub proto: &'static str,
    /// The host the client asked for.
    pub host: &'a str,
    /// The connection comes from a trusted proxy (`trusted_proxy_hops` on
    /// the plain listener), whose `X-Forwarded-Proto` and `-Host` are kept.
    pub trusted_forwarded: bool,
    /// The request id, already chosen.
    pub request_id: &'a HeaderValue,
}

/// What the upstream answered, and how long its head took.
pub struct Forwarded {
    /// The response, with hop-by-hop headers removed.
    pub response: Response<Body>,
    /// Time to the upstream's response head.
    pub upstream_time: Duration,
}

/// The upstream connection pools of one config generation, one per
/// upstream (apps that share an upstream share its pool).
pub struct Forwarder {
    connector: Connector,
    pools: Mutex<HashMap<(Scheme, Authority), Arc<Pool>>>,
    response_timeout: Duration,
    pool: pool::Settings,
}

impl Forwarder {
    /// Builds the client: system roots plus configured ones, TLS 1.2/1.3,
    /// ALPN h2 and http/1.1 for https upstreams.
    /// `parked` counts the parked idle connections of its pools; `runtime`
    /// says whether threads may take each other's idle connections.
    pub fn new(
        cfg: &UpstreamConfig,
        runtime: RuntimeKind,
        parked: &prometheus::IntGauge,
    ) -> Forwarder {
        let mut roots = rustls::RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        for cert in native.certs {
            let _ = roots.add(cert);
        }
        if roots.is_empty() {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        for cert in &cfg.extra_roots {
            let _ = roots.add(cert.clone());
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("aws-lc-rs supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();

        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(cfg.connect_timeout));
        http.set_keepalive(Some(Duration::from_secs(60)));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        Forwarder {
            connector: https,
            pools: Mutex::new(HashMap::new()),
            response_timeout: cfg.response_timeout,
            pool: pool::Settings {
                max_idle: cfg.pool_max_idle_per_host,
                idle_timeout: cfg.pool_idle_timeout,
                park_after: cfg.pool_park_after,
                steal: runtime == RuntimeKind::Shared,
                parked: parked.clone(),
            },
        }
    }

    /// The pool of `app`'s upstream. Called once per app and generation,
    /// when the generation is built; requests then hold the pool itself.
    pub fn pool(&self, app: &App) -> Arc<Pool> {
        let key = (app.upstream_scheme.clone(), app.upstream_authority.clone());
        let mut pools = self.pools.lock().expect("pools lock");
        pools
            .entry(key)
            .or_insert_with(|| {
                Arc::new(Pool::new(
                    app.upstream_scheme.clone(),
                    app.upstream_authority.clone(),
                    self.connector.clone(),
                    self.pool.clone(),
                ))
            })
            .clone()
    }

    /// Sends `req` to the app's upstream and returns its response head with a
    /// streaming body. An HTTP/1.1 upgrade goes on only when `tunnel` says
    /// the request may open one, and only with the app's allowed tokens
    /// (never `h2c`); otherwise the Upgrade is stripped and the request
    /// served as a plain one (RFC 9110 section 7.8 lets a proxy ignore it).
    /// The connection is spliced only when the upstream answers 101 with a
    /// token that was offered; any other 101 is a protocol error.
    pub async fn forward(
        &self,
        app: &App,
        pool: &Arc<Pool>,
        opened: &prometheus::IntCounter,
        mut req: Request<Body>,
        down: &Downstream<'_>,
        tunnel: bool,
    ) -> Result<Forwarded, GatewayError> {
        let upgrade = if tunnel {
            offered_upgrade(app, &req)
        } else {
            None
        };
        let client_upgrade = upgrade.is_some().then(|| hyper::upgrade::on(&mut req));
        rewrite_request(app, &mut req, down, upgrade.as_ref())?;

        let start = Instant::now();
        let result = tokio::time::timeout(
            self.response_timeout,
            pool.send(req, opened, upgrade.is_some()),
        )
        .await;
        let upstream_time = start.elapsed();
        let mut resp = match result {
            Err(_) => return Err(GatewayError::UpstreamTimeout(self.response_timeout)),
            Ok(Err(e)) => return Err(classify_send_error(&e)),
            Ok(Ok(sent)) => sent.response,
        };

        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            let agreed = upgrade.as_ref().is_some_and(|offered| {
                resp.headers()
                    .get(header::UPGRADE)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|chosen| {
                        tokens(offered.to_str().unwrap_or(""))
                            .any(|t| t.eq_ignore_ascii_case(chosen.trim()))
                    })
            });
            let Some(client_upgrade) = client_upgrade.filter(|_| agreed) else {
                return Err(GatewayError::UpstreamProtocol(
                    "the upstream switched to a protocol that was not offered".into(),
                ));
            };
            let upstream_upgrade = hyper::upgrade::on(&mut resp);
            tokio::spawn(async move {
                match tokio::try_join!(client_upgrade, upstream_upgrade) {
                    Ok((client, upstream)) => {
                        let mut client = TokioIo::new(client);
                        let mut upstream = TokioIo::new(upstream);
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                    }
                    Err(e) => tracing::debug!(error = %e, "upgrade failed"),
                }
            });
            let (mut parts, body) = resp.into_parts();
            strip_hop_by_hop(&mut parts.headers, true);
            return Ok(Forwarded {
                response: Response::from_parts(parts, body),
                upstream_time,
            });
        }

        let (mut parts, body) = resp.into_parts();
        strip_hop_by_hop(&mut parts.headers, false);
        drop_gateway_set_cookies(&mut parts.headers);
        Ok(Forwarded {
            response: Response::from_parts(parts, body),
            upstream_time,
        })
    }
}

/// The Upgrade tokens of an HTTP/1.1 upgrade request (`GET` with
/// `Connection: upgrade`) that the app allows, as the header to send on;
/// `None` when none is allowed.
fn offered_upgrade(app: &App, req: &Request<Body>) -> Option<HeaderValue> {
    if req.method() != http::Method::GET || req.version() != Version::HTTP_11 {
        return None;
    }
    let asked = upgrade_protocol(req.headers())?;
    let allowed: Vec<&str> = tokens(asked.to_str().ok()?)
        .filter(|t| {
            let name = t.split('/').next().unwrap_or("");
            app.upgrades.iter().any(|a| a.eq_ignore_ascii_case(name))
        })
        .collect();
    if allowed.is_empty() {
        return None;
    }
    HeaderValue::from_str(&allowed.join(", ")).ok()
}

/// The comma-separated tokens of a header value, trimmed, empty ones
/// skipped.
fn tokens(v: &str) -> impl Iterator<Item = &str> {
    v.split(',').map(str::trim).filter(|t| !t.is_empty())
}

/// The Upgrade header of an HTTP/1.1 upgrade request (`Connection: upgrade`).
fn upgrade_protocol(headers: &HeaderMap) -> Option<HeaderValue> {
    if connection_tokens(headers).any(|t| t.eq_ignore_ascii_case("upgrade")) {
        headers.get(header::UPGRADE).cloned()
    } else {
        None
    }
}

/// How many headers [`rewrite_request`] may add besides an upgrade's: Host,
/// X-Forwarded-For, -Proto and -Host, X-Request-Id.
pub const FORWARDING_HEADERS: usize = 5;

/// Points the request at the upstream and rewrites its headers.
fn rewrite_request(
    app: &App,
    req: &mut Request<Body>,
    down: &Downstream<'_>,
    upgrade: Option<&HeaderValue>,
) -> Result<(), GatewayError> {
    // The parsed path and query move over as they are: no second parse.
    let mut uri = uri::Parts::default();
    uri.scheme = Some(app.upstream_scheme.clone());
    uri.authority = Some(app.upstream_authority.clone());
    uri.path_and_query = Some(
        req.uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/")),
    );
    *req.uri_mut() = Uri::from_parts(uri)
        .map_err(|e| GatewayError::UpstreamProtocol(format!("bad upstream uri: {e}")))?;
    // The pooled client picks h1 or h2 per upstream connection.
    *req.version_mut() = Version::HTTP_11;

    let headers = req.headers_mut();
    strip_hop_by_hop(headers, false);
    strip_gateway_cookies(headers);
    strip_rewrites(headers, down.trusted_forwarded);
    if let Some(proto) = upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, proto.clone());
    }

    let host = match app.host_header {
        HostHeader::Preserve => HeaderValue::from_str(down.host),
        HostHeader::Upstream => HeaderValue::from_str(app.upstream_authority.as_str()),
    }
    .map_err(|_| GatewayError::MissingHost)?;
    headers.insert(header::HOST, host);

    let ip = IpText::new(down.client_ip);
    let ip = ip.as_str();
    let xff = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(prior) if !prior.trim().is_empty() => HeaderValue::from_str(&format!("{prior}, {ip}")),
        _ => HeaderValue::from_str(ip),
    };
    if let Ok(v) = xff {
        headers.insert(X_FORWARDED_FOR.clone(), v);
    }
    // Behind a trusted ingress the scheme and host the user saw are the
    // ingress's: a SAML SP builds its ACS URL from them. From anyone else,
    // the gateway's own values.
    let keep_proto = down.trusted_forwarded
        && headers
            .get(&X_FORWARDED_PROTO)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(',')
                    .map(str::trim)
                    .all(|p| p.eq_ignore_ascii_case("https") || p.eq_ignore_ascii_case("http"))
            });
    if !keep_proto {
        headers.insert(
            X_FORWARDED_PROTO.clone(),
            HeaderValue::from_static(down.proto),
        );
    }
    let keep_host = down.trusted_forwarded && headers.contains_key(&X_FORWARDED_HOST);
    if !keep_host {
        if let Ok(v) = HeaderValue::from_str(down.host) {
            headers.insert(X_FORWARDED_HOST.clone(), v);
        }
    }
    headers.insert(X_REQUEST_ID.clone(), down.request_id.clone());
    Ok(())
}

/// An address as text, on the stack: IPv4 digit by digit (`Ipv4Addr`'s
/// `Display` goes through the formatter and its padding, about a
/// microsecond per request), IPv6 through `Display`.
struct IpText {
    /// IPv4 takes 15 bytes and IPv6's `Display` at most 39; 45 is the
    /// longest textual IPv6 form of all (`ffff:...:255.255.255.255`).
    buf: [u8; 45],
    len: usize,
}

impl IpText {
    fn new(ip: IpAddr) -> IpText {
        let mut t = IpText {
            buf: [0; 45],
            len: 0,
        };
        match ip {
            IpAddr::V4(v4) => {
                for (i, octet) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        t.push(b'.');
                    }
                    if octet >= 100 {
                        t.push(b'0' + octet / 100);
                    }
                    if octet >= 10 {
                        t.push(b'0' + octet / 10 % 10);
                    }
                    t.push(b'0' + octet % 10);
                }
            }
            IpAddr::V6(v6) => {
                let mut rest = &mut t.buf[..];
                let _ = write!(rest, "{v6}");
                t.len = 45 - rest.len();
            }
        }
        t
    }

    fn push(&mut self, b: u8) {
        self.buf[self.len] = b;
        self.len += 1;
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).expect("an address is ASCII")
    }
}

/// The comma-separated tokens of every `Connection` header, trimmed.
fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
}

/// Whether a header is hop-by-hop whatever `Connection` says (RFC 9110
/// section 7.6.1, and the `Proxy-Connection` and `Keep-Alive` of older
/// clients). One match on the name's bytes, since every header of every
/// request and response passes through here.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str().as_bytes(),
        b"connection"
            | b"upgrade"
            | b"http2-settings"
            | b"keep-alive"
            | b"proxy-connection"
            | b"proxy-authenticate"
            | b"proxy-authorization"
            | b"te"
            | b"trailer"
            | b"transfer-encoding"
    )
}

/// Removes the hop-by-hop headers of RFC 9110 section 7.6.1, and every
/// header that `Connection` names. `keep_upgrade` keeps `Connection` and
/// `Upgrade` on a 101 response.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    // One pass over the names first: most messages carry none of them, and
    // a removal by name hashes that name.
    if !headers.keys().any(is_hop_by_hop) {
        return;
    }
    let kept =
        |name: &HeaderName| keep_upgrade && (name == header::CONNECTION || name == header::UPGRADE);
    let mut doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|name| is_hop_by_hop(name) && !kept(name))
        .cloned()
        .collect();
    let named = connection_tokens(headers)
        .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
        // A client must not be able to delete the gateway's own headers by
        // naming them in Connection.
        .filter(|name| !kept(name) && !super::trust::is_trust_header(name.as_str()));
    doomed.extend(named);
    for name in doomed {
        headers.remove(name);
    }
}

/// The name every cookie of the gateway's starts with (sessions, detours,
/// locks, of every app).
const GATEWAY_COOKIE_PREFIX: &[u8] = b"__Host-trustgate";

/// Removes the gateway's own cookies from the `Cookie` headers sent
/// upstream: a session is a bearer token, and no app (least of all an
/// unenforced one on a shared host) needs to see it.
/// Headers with which a client could make the upstream act on another
/// path or method than the one the gateway decided on (IIS URL Rewrite,
/// Symfony and Laminas honour `X-Original-URL`; frameworks take a method
/// override), or on another client address: removed from every request.
const REWRITES: [&str; 11] = [
    "x-original-url",
    "x-rewrite-url",
    "x-original-uri",
    "x-forwarded-uri",
    "x-forwarded-path",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "x-real-ip",
    "true-client-ip",
    "x-client-ip",
];

/// What an ingress says of the request the user made, kept only from a
/// trusted ingress (as `X-Forwarded-Proto` and `-Host` are).
const INGRESS_SAYS: [&str; 3] = ["forwarded", "x-forwarded-prefix", "x-forwarded-port"];

/// The headers the gateway sets itself: a spelling with `_` is the same
/// header to CGI, WSGI and ASGI servers (`HTTP_X_FORWARDED_HOST`), so a
/// client's `X_Forwarded_Host` would compete with the gateway's.
const SET_HERE: [&str; 4] = [
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-request-id",
];

/// Removes [`REWRITES`], [`INGRESS_SAYS`] unless `trusted_forwarded`, and
/// any `_` spelling of those or of [`SET_HERE`], in one pass over the names.
fn strip_rewrites(headers: &mut HeaderMap, trusted_forwarded: bool) {
    let listed = |name: &str| {
        REWRITES.contains(&name) || (!trusted_forwarded && INGRESS_SAYS.contains(&name))
    };
    let underscored = |name: &str| {
        name.contains('_') && {
            let dashed = name.replace('_', "-");
            [&REWRITES[..], &INGRESS_SAYS, &SET_HERE]
                .iter()
                .any(|list| list.contains(&dashed.as_str()))
        }
    };
    let doomed: Vec<header::HeaderName> = headers
        .keys()
        .filter(|k| {
            let name = k.as_str();
            // Every listed name starts with one of these.
            (matches!(name.as_bytes().first(), Some(b'x' | b'f' | b't')) && listed(name))
                || underscored(name)
        })
        .cloned()
        .collect();
    for k in doomed {
        headers.remove(k);
    }
}

fn strip_gateway_cookies(headers: &mut HeaderMap) {
    // Every session request carries one: a plain search, no searcher
    // built per request.
    if !headers
        .get_all(header::COOKIE)
        .iter()
        .any(|v| memchr::memmem::find(v.as_bytes(), GATEWAY_COOKIE_PREFIX).is_some())
    {
        return;
    }
    let kept: Vec<HeaderValue> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|line| {
            let pairs: Vec<&[u8]> = line
                .as_bytes()
                .split(|b| *b == b';')
                .map(<[u8]>::trim_ascii)
                .filter(|p| !p.is_empty() && !p.starts_with(GATEWAY_COOKIE_PREFIX))
                .collect();
            (!pairs.is_empty())
                .then(|| HeaderValue::from_bytes(&pairs.join(&b"; "[..])).ok())
                .flatten()
        })
        .collect();
    headers.remove(header::COOKIE);
    for v in kept {
        headers.append(header::COOKIE, v);
    }
}

/// Drops `Set-Cookie` lines from an upstream that would set one of the
/// gateway's cookies (session fixation, or logging out another app).
fn drop_gateway_set_cookies(headers: &mut HeaderMap) {
    let planted = |v: &HeaderValue| {
        v.as_bytes()
            .trim_ascii_start()
            .starts_with(GATEWAY_COOKIE_PREFIX)
    };
    if !headers.get_all(header::SET_COOKIE).iter().any(planted) {
        return;
    }
    let kept: Vec<HeaderValue> = headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter(|v| !planted(v))
        .cloned()
        .collect();
    tracing::warn!("the upstream tried to set a gateway cookie; dropped");
    headers.remove(header::SET_COOKIE);
    for v in kept {
        headers.append(header::SET_COOKIE, v);
    }
}

/// Maps a failed send to a gateway error by what went wrong.
fn classify_send_error(e: &SendError) -> GatewayError {
    let h = match e {
        SendError::Connect(e) => return GatewayError::UpstreamConnect(error_chain(e.as_ref())),
        SendError::Closed => {
            return GatewayError::UpstreamReset(
                "the connection closed before it took the request".into(),
            )
        }
        SendError::Http(h) => h,
    };
    let detail = error_chain(h);
    if h.is_parse() || h.is_parse_status() || h.is_parse_too_large() {
        GatewayError::UpstreamProtocol(detail)
    } else if h.is_timeout() {
        GatewayError::UpstreamTimeout(Duration::ZERO)
    } else {
        GatewayError::UpstreamReset(detail)
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

#[cfg(test)]
mod tests;
