//! The values the phases hand each other: where a request came from
//! ([`Origin`]), what the gateway saw of the client ([`Seen`], the classify
//! phase), and what enforcement produced ([`Outcome`]: a [`Pass`] to
//! forward, or an answer).

use std::net::IpAddr;
use std::time::SystemTime;

use bytes::Bytes;
use http::header::{self, HeaderMap};
use http::request::Parts;
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming};

use super::ConnInfo;
use crate::answer::{trust, Body};
use crate::classify::{classify, Client};
use crate::decide::client_ip_from_headers;

/// A request the enforcement let through, for the forward phase.
pub struct Pass {
    /// The request to forward.
    pub request: Request<Body>,
    /// `Set-Cookie` values to add to the upstream's answer.
    pub cookies: Vec<String>,
    /// Whether it may open a tunnel (an allowed Upgrade): only when its
    /// session was checked, or the app lets public paths upgrade.
    pub tunnel: bool,
}

impl Pass {
    /// A request forwarded as it came, with no cookies to add.
    pub fn unchecked(parts: Parts, body: Incoming, tunnel: bool) -> Pass {
        Pass {
            request: Request::from_parts(
                parts,
                without_trust_trailers(body).map_err(Into::into).boxed(),
            ),
            cookies: Vec::new(),
            tunnel,
        }
    }
}

/// [`without_trust_trailers`]'s body.
pub(crate) type NoTrustTrailers<B> =
    http_body_util::combinators::MapFrame<B, fn(Frame<Bytes>) -> Frame<Bytes>>;

/// A body whose trailers carry no trust header: trailers are headers too
/// (an HTTP/2 upstream is handed them, and an app may merge them into the
/// request's), so a client's `x-trustgate-device-trust` there is stripped
/// as it is from the head.
pub(crate) fn without_trust_trailers<B>(body: B) -> NoTrustTrailers<B>
where
    B: hyper::body::Body<Data = Bytes>,
{
    fn strip(frame: Frame<Bytes>) -> Frame<Bytes> {
        match frame.into_trailers() {
            Ok(mut trailers) => {
                trust::strip(&mut trailers);
                Frame::trailers(trailers)
            }
            Err(frame) => frame,
        }
    }
    body.map_frame(strip as fn(Frame<Bytes>) -> Frame<Bytes>)
}

/// What the enforcement phases produced: a request to forward, or an
/// answer of the gateway's own.
pub enum Outcome {
    /// Forward this request.
    Forward(Pass),
    /// Answer with this response.
    Answer(Response<Body>),
}

/// Where a request came from and what it is called: the connection, the
/// host it named and its request id.
#[derive(Clone, Copy)]
pub struct Origin<'a> {
    /// The client connection.
    pub conn: ConnInfo,
    /// The host the request named.
    pub host: &'a str,
    /// The request id.
    pub request_id: &'a str,
}

/// What the gateway saw of the client, for the policy and the audit event.
pub struct Seen<'a> {
    /// Platform and client kind, from the headers (see [`classify`]).
    pub client: Client,
    /// The client's address, through the trusted proxy hops.
    pub ip: IpAddr,
    /// The host the request named.
    pub host: &'a str,
    /// The User-Agent, at most [`MAX_AUDIT_USER_AGENT`] bytes.
    pub user_agent: String,
    /// The request id.
    pub request_id: &'a str,
    /// When, by the gateway's clock.
    pub now: SystemTime,
}

/// The longest User-Agent an audit event carries.
const MAX_AUDIT_USER_AGENT: usize = 256;

impl<'a> Seen<'a> {
    /// Classify: what the request's headers say of the client.
    pub fn of(
        headers: &HeaderMap,
        origin: Origin<'a>,
        trusted_proxy_hops: usize,
        now: SystemTime,
    ) -> Seen<'a> {
        Seen {
            client: classify(headers),
            ip: client_ip_from_headers(origin.conn.peer.ip(), headers, trusted_proxy_hops),
            host: origin.host,
            user_agent: audit_user_agent(headers),
            request_id: origin.request_id,
            now,
        }
    }
}

/// The request's User-Agent as audit text: lossy UTF-8, cut at a character
/// boundary within [`MAX_AUDIT_USER_AGENT`] bytes.
fn audit_user_agent(headers: &HeaderMap) -> String {
    let Some(ua) = headers.get(header::USER_AGENT) else {
        return String::new();
    };
    let text = String::from_utf8_lossy(ua.as_bytes());
    let mut end = text.len().min(MAX_AUDIT_USER_AGENT);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn trust_headers_in_trailers_are_stripped_and_the_rest_kept() {
        let mut trailers = HeaderMap::new();
        trailers.insert("x-trustgate-device-trust", "trusted".parse().unwrap());
        trailers.insert("X_Trustgate_Subject", "forged".parse().unwrap());
        trailers.insert("grpc-status", "0".parse().unwrap());
        let frames: Vec<Result<Frame<Bytes>, std::convert::Infallible>> = vec![
            Ok(Frame::data(Bytes::from_static(
                b"x-trustgate-device-trust: data",
            ))),
            Ok(Frame::trailers(trailers)),
        ];
        let body = http_body_util::StreamBody::new(futures_util::stream::iter(frames));
        let collected = without_trust_trailers(body).collect().await.unwrap();
        let seen = collected.trailers().cloned().unwrap();
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert_eq!(seen["grpc-status"], "0");
        assert_eq!(
            &collected.to_bytes()[..],
            b"x-trustgate-device-trust: data",
            "data frames are left as they are"
        );
    }
}
