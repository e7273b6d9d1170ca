//! Answers: forwarding to the upstream (`answer/forward.rs`) and the pages
//! the gateway writes itself. One table maps each gateway error to its status
//! code, reason and page.

pub mod forward;

pub mod pages;

pub mod trust;

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Empty, Full};

/// The error type carried by response and request bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body type the gateway answers with.
pub type Body = BoxBody<Bytes, BoxError>;

/// A body with the given bytes.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|e| match e {}).boxed()
}

/// Adds a `Set-Cookie` to a response of the gateway's own; a value that is
/// not a valid header is left out.
pub fn set_cookie(resp: &mut Response<Body>, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// An empty body.
pub fn empty() -> Body {
    Empty::new().map_err(|e| match e {}).boxed()
}

/// Where an error came from, for logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The client sent something the gateway will not take.
    Downstream,
    /// The upstream app failed.
    Upstream,
    /// The gateway itself.
    Internal,
}

/// Requests the gateway answers itself because it cannot forward them.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum GatewayError {
    /// The request had no Host and no authority.
    #[error("request has no host")]
    MissingHost,
    /// A path whose meaning servers could disagree on (`;`, dot segments),
    /// on a host with an enforced app.
    #[error("request path is not canonical: {0}")]
    BadPath(crate::route::PathError),
    /// A method a reverse proxy does not tunnel (`CONNECT`).
    #[error("method {0} is not served")]
    MethodNotAllowed(http::Method),
    /// No app is configured for the host and path.
    #[error("no app is configured for this host")]
    UnknownHost,
    /// A body the gateway must read could not be read.
    #[error("request body could not be read: {0}")]
    ClientBody(String),
    /// The gateway failed in a way it should not.
    #[error("internal error: {0}")]
    Internal(String),
    /// A body the gateway must read did not arrive within the deadline.
    #[error("request body did not arrive within {0:?}")]
    BodyTimeout(std::time::Duration),
    /// A body the gateway must read was over the limit.
    #[error("request body is over the limit of {limit} bytes")]
    BodyTooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// The upstream refused the connection, or could not be reached.
    #[error("upstream connection failed: {0}")]
    UpstreamConnect(String),
    /// The upstream closed or reset the connection mid-request.
    #[error("upstream closed the connection: {0}")]
    UpstreamReset(String),
    /// The upstream sent something that is not valid HTTP.
    #[error("upstream protocol error: {0}")]
    UpstreamProtocol(String),
    /// The upstream did not answer in time.
    #[error("upstream did not answer within {0:?}")]
    UpstreamTimeout(std::time::Duration),
    /// The fleet's shared state (Redis) cannot be reached, so a new
    /// sign-in cannot be checked against replays: refused, not let through.
    #[error("shared state unavailable: {0}")]
    SharedStateUnavailable(String),
}

/// One row of the error table.
struct Row {
    status: StatusCode,
    reason: &'static str,
    source: Source,
    title: &'static str,
    text: &'static str,
}

impl GatewayError {
    /// Every [`reason`](Self::reason), for metrics created at zero.
    pub const REASONS: [&'static str; 13] = [
        "missing_host",
        "bad_path",
        "method_not_allowed",
        "body_timeout",
        "unknown_host",
        "body_too_large",
        "bad_request_body",
        "internal",
        "upstream_connect",
        "upstream_reset",
        "upstream_protocol",
        "upstream_timeout",
        "shared_state_unavailable",
    ];

    fn row(&self) -> Row {
        use GatewayError::*;
        let (status, reason, source, title, text) = match self {
            MissingHost => (
                StatusCode::BAD_REQUEST,
                "missing_host",
                Source::Downstream,
                "Bad request",
                "The request did not say which site it is for.",
            ),
            BadPath(_) => (
                StatusCode::BAD_REQUEST,
                "bad_path",
                Source::Downstream,
                "Bad request",
                "The address of this request is not in a form this gateway accepts.",
            ),
            MethodNotAllowed(_) => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                Source::Downstream,
                "Method not allowed",
                "This gateway does not tunnel connections.",
            ),
            BodyTimeout(_) => (
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                Source::Downstream,
                "Request timeout",
                "The request body did not arrive in time. Please try again.",
            ),
            UnknownHost => (
                StatusCode::NOT_FOUND,
                "unknown_host",
                Source::Downstream,
                "Not found",
                "No application is served at this address.",
            ),
            BodyTooLarge { .. } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                Source::Downstream,
                "Request too large",
                "The sign-in message was larger than this gateway accepts.",
            ),
            ClientBody(_) => (
                StatusCode::BAD_REQUEST,
                "bad_request_body",
                Source::Downstream,
                "Bad request",
                "The request body could not be read.",
            ),
            Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                Source::Internal,
                "Internal error",
                "Something went wrong in the gateway. Please try again.",
            ),
            UpstreamConnect(_) => (
                StatusCode::BAD_GATEWAY,
                "upstream_connect",
                Source::Upstream,
                "Bad gateway",
                "The application could not be reached. Please try again shortly.",
            ),
            UpstreamReset(_) => (
                StatusCode::BAD_GATEWAY,
                "upstream_reset",
                Source::Upstream,
                "Bad gateway",
                "The application closed the connection. Please try again shortly.",
            ),
            UpstreamProtocol(_) => (
                StatusCode::BAD_GATEWAY,
                "upstream_protocol",
                Source::Upstream,
                "Bad gateway",
                "The application sent an invalid response.",
            ),
            UpstreamTimeout(_) => (
                StatusCode::GATEWAY_TIMEOUT,
                "upstream_timeout",
                Source::Upstream,
                "Gateway timeout",
                "The application did not answer in time. Please try again shortly.",
            ),
            SharedStateUnavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "shared_state_unavailable",
                Source::Internal,
                "Sign-in paused",
                "Sign-in is paused for a moment while the gateway reconnects. Your open sessions are not affected. Please try again in a few seconds.",
            ),
        };
        Row {
            status,
            reason,
            source,
            title,
            text,
        }
    }

    /// The status code this error answers with.
    pub fn status(&self) -> StatusCode {
        self.row().status
    }

    /// A short static reason: the metric label and log field.
    pub fn reason(&self) -> &'static str {
        self.row().reason
    }

    /// Who caused it.
    pub fn source(&self) -> Source {
        self.row().source
    }

    /// The page for this error. It names no upstream, address or internal
    /// detail; the request id lets an admin find the log line.
    pub fn response(&self, request_id: &str) -> Response<Body> {
        let row = self.row();
        let mut resp = match self {
            // The client's own mistake, named so that it can be fixed; the
            // path itself is not echoed.
            GatewayError::BadPath(e) => page(
                row.status,
                row.title,
                &format!("{} ({e}).", row.text.trim_end_matches('.')),
                request_id,
            ),
            _ => page(row.status, row.title, row.text, request_id),
        };
        match self {
            GatewayError::MethodNotAllowed(_) => {
                resp.headers_mut().insert(
                    header::ALLOW,
                    HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"),
                );
            }
            GatewayError::BodyTimeout(_) => {
                resp.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            GatewayError::SharedStateUnavailable(_) => {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            _ => {}
        }
        resp
    }
}

/// Whether `target` is a path on this origin wherever a browser resolves
/// it: one leading `/`, then not `/` or `\` (`//evil.example` and
/// `/\evil.example` are other hosts to a browser), no backslash at all, and
/// no control character or space (browsers drop tabs and newlines, so
/// `/<TAB>/evil.example` is `//evil.example`). Every redirect the gateway or
/// the demo app builds from client-held data (RelayState, a detour's
/// target) goes through here.
pub fn is_local_target(target: &str) -> bool {
    let b = target.as_bytes();
    b.first() == Some(&b'/')
        && !matches!(b.get(1), Some(b'/' | b'\\'))
        && !b.iter().any(|&c| c == b'\\' || c <= b' ' || c == 0x7f)
}

/// A redirect that no cache keeps. `location` comes from config or the
/// gateway itself, never from the client.
pub fn redirect(status: StatusCode, location: &str) -> Response<Body> {
    let mut resp = Response::new(empty());
    *resp.status_mut() = status;
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// A small HTML page that reads well on a phone and in a webview.
pub fn page(status: StatusCode, title: &str, text: &str, request_id: &str) -> Response<Body> {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<title>{title}</title><style>body{{font-family:system-ui,sans-serif;max-width:36rem;\
margin:2rem auto;padding:0 1rem;line-height:1.5;color:#222}}small{{color:#666}}</style>\
</head><body><h1>{title}</h1><p>{text}</p><p><small>{code} &middot; request {rid}</small></p>\
</body></html>\n",
        title = escape_html(title),
        text = escape_html(text),
        code = status.as_u16(),
        rid = escape_html(request_id),
    );
    let mut resp = Response::new(full(html));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// Escapes text for HTML element content and attribute values.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests;
