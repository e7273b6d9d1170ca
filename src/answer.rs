//! Answers: forwarding to the upstream (`answer/forward.rs`, with the trust
//! headers of `answer/trust.rs`) and everything the gateway writes itself.
//! One table ([`Answer::row`]) maps each of those, errors and pages alike,
//! to its status code, reason label, page and headers; `answer/pages.rs`
//! writes the pages that carry data.

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
    /// A method other than `POST`, `GET` and `HEAD` on an ACS path: the
    /// gateway answers for the app's ACS, and no other method brings it
    /// an assertion.
    #[error("method {0} is not taken on the sign-in path")]
    AcsMethod(http::Method),
    /// An assertion (or an artifact to fetch one by) anywhere but the body
    /// of a POST to the ACS: in the query, or in the body of a GET. Apps
    /// that merge query and form fields would read it unverified.
    #[error("an assertion is taken only from a POST body: {0}")]
    AssertionNotPosted(&'static str),
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

/// Every answer the gateway writes itself, errors and pages alike. Its
/// [`row`](Answer::row) is the one table of what each one answers with; the
/// README's error table lists every row.
#[derive(Debug, Clone, Copy)]
pub enum Answer<'a> {
    /// A request the gateway cannot forward.
    Error(&'a GatewayError),
    /// The policy refused this device for `app`; the page links to the
    /// enrollment URL when there is one for the client's platform.
    Denied {
        /// The app.
        app: &'a str,
        /// The enrollment link, rendered.
        enrollment: Option<&'a str>,
    },
    /// An enrollment detour outlived its window: its sign-in is dead, so
    /// the page restarts it instead of a bare SSO error.
    EnrollmentExpired {
        /// The app.
        app: &'a str,
        /// Where sign-in starts again.
        restart: &'a str,
    },
    /// The assertion failed a check; `reason` is the verifier's label.
    AssertionRejected {
        /// The app.
        app: &'a str,
        /// The verifier's static reason.
        reason: &'static str,
        /// Where sign-in starts again.
        restart: &'a str,
    },
    /// A genuine sign-in refused because the replay cache holds its limit
    /// of live assertion IDs; a retry succeeds once some expire.
    ReplayCacheFull {
        /// The app.
        app: &'a str,
        /// Where sign-in starts again.
        restart: &'a str,
    },
    /// A request that needs a session has none, and is not a page load that
    /// could follow a redirect.
    SessionRequired,
    /// A page load without a session: to the app's login path.
    SignIn {
        /// The login path (from config).
        location: &'a str,
    },
    /// An untrusted mobile device, sent to the enrollment link.
    Enroll {
        /// The rendered enrollment link (from config and the detour id).
        location: &'a str,
    },
    /// `/.trustgate/apps`: each enforced app, and whether it is locked.
    Apps {
        /// App names and whether each is locked for this user.
        list: &'a [(String, bool)],
    },
}

/// One row of the answer table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Row {
    /// The status code.
    pub status: StatusCode,
    /// A short static label: the metric label (`trustgate_gateway_errors_total`
    /// for errors) and the log field.
    pub reason: &'static str,
    /// The page's title; empty for a redirect.
    pub title: &'static str,
    /// An error page's one sentence; pages that carry data write their own.
    pub text: &'static str,
    /// Headers the answer carries besides the page's own.
    pub headers: &'static [(&'static str, &'static str)],
}

const fn row(
    status: StatusCode,
    reason: &'static str,
    title: &'static str,
    text: &'static str,
) -> Row {
    Row {
        status,
        reason,
        title,
        text,
        headers: &[],
    }
}

impl Answer<'_> {
    /// The table: each situation's status, reason label, page and headers.
    pub fn row(&self) -> Row {
        use GatewayError::*;
        match self {
            Answer::Error(e) => match e {
                MissingHost => row(
                    StatusCode::BAD_REQUEST,
                    "missing_host",
                    "Bad request",
                    "The request did not say which site it is for.",
                ),
                BadPath(_) => row(
                    StatusCode::BAD_REQUEST,
                    "bad_path",
                    "Bad request",
                    "The address of this request is not in a form this gateway accepts.",
                ),
                MethodNotAllowed(_) => Row {
                    headers: &[("allow", "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS")],
                    ..row(
                        StatusCode::METHOD_NOT_ALLOWED,
                        "method_not_allowed",
                        "Method not allowed",
                        "This gateway does not tunnel connections.",
                    )
                },
                AcsMethod(_) => Row {
                    headers: &[("allow", "GET, HEAD, POST")],
                    ..row(
                        StatusCode::METHOD_NOT_ALLOWED,
                        "acs_method_not_allowed",
                        "Method not allowed",
                        "This sign-in address takes sign-in messages by POST only.",
                    )
                },
                AssertionNotPosted(_) => row(
                    StatusCode::BAD_REQUEST,
                    "assertion_not_posted",
                    "Bad request",
                    "A sign-in message is taken only from the body of a POST.",
                ),
                BodyTimeout(_) => Row {
                    headers: &[("connection", "close")],
                    ..row(
                        StatusCode::REQUEST_TIMEOUT,
                        "body_timeout",
                        "Request timeout",
                        "The request body did not arrive in time. Please try again.",
                    )
                },
                UnknownHost => row(
                    StatusCode::NOT_FOUND,
                    "unknown_host",
                    "Not found",
                    "No application is served at this address.",
                ),
                BodyTooLarge { .. } => row(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    "Request too large",
                    "The sign-in message was larger than this gateway accepts.",
                ),
                ClientBody(_) => row(
                    StatusCode::BAD_REQUEST,
                    "bad_request_body",
                    "Bad request",
                    "The request body could not be read.",
                ),
                Internal(_) => row(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "Internal error",
                    "Something went wrong in the gateway. Please try again.",
                ),
                UpstreamConnect(_) => row(
                    StatusCode::BAD_GATEWAY,
                    "upstream_connect",
                    "Bad gateway",
                    "The application could not be reached. Please try again shortly.",
                ),
                UpstreamReset(_) => row(
                    StatusCode::BAD_GATEWAY,
                    "upstream_reset",
                    "Bad gateway",
                    "The application closed the connection. Please try again shortly.",
                ),
                UpstreamProtocol(_) => row(
                    StatusCode::BAD_GATEWAY,
                    "upstream_protocol",
                    "Bad gateway",
                    "The application sent an invalid response.",
                ),
                UpstreamTimeout(_) => row(
                    StatusCode::GATEWAY_TIMEOUT,
                    "upstream_timeout",
                    "Gateway timeout",
                    "The application did not answer in time. Please try again shortly.",
                ),
                SharedStateUnavailable(_) => Row {
                    headers: &[("retry-after", "5")],
                    ..row(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "shared_state_unavailable",
                        "Sign-in paused",
                        "Sign-in is paused for a moment while the gateway reconnects. Your open sessions are not affected. Please try again in a few seconds.",
                    )
                },
            },
            Answer::Denied { .. } => row(
                StatusCode::FORBIDDEN,
                "denied",
                "Access blocked on this device",
                "",
            ),
            Answer::EnrollmentExpired { .. } => {
                row(StatusCode::OK, "enrollment_expired", "Sign-in expired", "")
            }
            Answer::AssertionRejected { .. } => row(
                StatusCode::FORBIDDEN,
                "assertion_rejected",
                "Sign-in not verified",
                "",
            ),
            Answer::ReplayCacheFull { .. } => Row {
                headers: &[("retry-after", "60")],
                ..row(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "replay_cache_full",
                    "Sign-in paused",
                    "",
                )
            },
            Answer::SessionRequired => row(
                StatusCode::UNAUTHORIZED,
                "session_required",
                "Sign-in required",
                "Your session has ended. Reload the page to sign in again.",
            ),
            Answer::SignIn { .. } => row(StatusCode::FOUND, "sign_in", "", ""),
            Answer::Enroll { .. } => row(StatusCode::FOUND, "enroll", "", ""),
            Answer::Apps { .. } => row(StatusCode::OK, "apps", "Your apps", ""),
        }
    }

    /// The response: the row's status and headers, and its page (or
    /// redirect). A page names no upstream, address or internal detail; the
    /// request id lets an admin find the log line.
    pub fn response(&self, request_id: &str) -> Response<Body> {
        let row = self.row();
        let mut resp = match self {
            Answer::Error(GatewayError::BadPath(e)) => {
                // The client's own mistake, named so that it can be fixed;
                // the path itself is not echoed.
                let text = format!("{} ({e}).", row.text.trim_end_matches('.'));
                page(row.status, row.title, &text, request_id)
            }
            Answer::Error(_) => page(row.status, row.title, row.text, request_id),
            Answer::SignIn { location } | Answer::Enroll { location } => {
                redirect(row.status, location)
            }
            _ => pages::render(row.status, row.title, &pages::paragraphs(self), request_id),
        };
        for (name, value) in row.headers {
            resp.headers_mut().insert(
                http::HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        resp
    }
}

impl GatewayError {
    /// Every [`reason`](Self::reason), for metrics created at zero.
    pub const REASONS: [&'static str; 15] = [
        "missing_host",
        "bad_path",
        "method_not_allowed",
        "acs_method_not_allowed",
        "assertion_not_posted",
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

    /// The status code this error answers with.
    pub fn status(&self) -> StatusCode {
        Answer::Error(self).row().status
    }

    /// A short static reason: the metric label and log field.
    pub fn reason(&self) -> &'static str {
        Answer::Error(self).row().reason
    }

    /// The page for this error (see [`Answer::response`]).
    pub fn response(&self, request_id: &str) -> Response<Body> {
        Answer::Error(self).response(request_id)
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
