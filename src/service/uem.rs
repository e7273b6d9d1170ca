//! `POST /.trustgate/uem/events`: a Workspace ONE UEM event notification.
//! Basic auth (constant time), at most 64 KB within the body deadline,
//! JSON or `Eventlog` XML; an event that says the device is no longer
//! trusted revokes its user's sessions on every replica. Idempotent by
//! delivery (the whole event: Workspace ONE's EventId numbers the event
//! type, not the delivery), and never a partial state: an event whose revocation cannot
//! reach the fleet answers 503 and is not remembered, so the UEM's retry
//! does it again.

use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Method, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use subtle::ConstantTimeEq;

use super::Gateway;
use crate::answer::{full, Body};
use crate::config::UemConfig;
use crate::evidence::assertion::subject_key;
use crate::remember::token::SubjectHash;
use crate::uem::{Effect, Event, MAX_EVENT_BYTES};

/// Where the UEM posts, on the traffic listener of any host.
pub const PATH: &str = "/.trustgate/uem/events";

fn answer(status: StatusCode, v: serde_json::Value) -> Response<Body> {
    let mut r = Response::new(full(v.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Whether the request carries the configured Basic credentials. Both
/// halves are compared in full, in constant time, whatever the first says.
fn authorized(cfg: &UemConfig, parts: &Parts) -> bool {
    use base64::Engine as _;
    let Some(given) = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Basic "))
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim_ascii())
                .ok()
        })
    else {
        return false;
    };
    let Some(colon) = given.iter().position(|b| *b == b':') else {
        return false;
    };
    let (user, pass) = (&given[..colon], &given[colon + 1..]);
    // Digests of equal length, compared in constant time: neither the
    // content nor the length of the secrets shows in the timing.
    let digest = |b: &[u8]| aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b);
    let same = |a: &[u8], b: &[u8]| bool::from(digest(a).as_ref().ct_eq(digest(b).as_ref()));
    let user_ok = same(user, &cfg.username.0);
    let pass_ok = same(pass, &cfg.password.0);
    user_ok & pass_ok
}

impl Gateway {
    /// One event notification, start to finish; the answer says what was
    /// done in JSON.
    pub(super) async fn uem_event(
        &self,
        cfg: &UemConfig,
        parts: Parts,
        body: Incoming,
        deadline: Duration,
    ) -> Response<Body> {
        let count = |kind: &str, result: &str| {
            self.metrics
                .uem_events
                .with_label_values(&[kind, result])
                .inc();
        };
        if parts.method != Method::POST {
            let mut r = answer(
                StatusCode::METHOD_NOT_ALLOWED,
                serde_json::json!({ "error": "post the event" }),
            );
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST"));
            return r;
        }
        if !authorized(cfg, &parts) {
            count("unreadable", "unauthorized");
            tracing::info!("uem event refused: wrong or missing Basic credentials");
            let mut r = answer(
                StatusCode::UNAUTHORIZED,
                serde_json::json!({ "error": "the UEM's Basic credentials are required" }),
            );
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"trustgate uem events\", charset=\"UTF-8\""),
            );
            return r;
        }
        let body: Bytes = match tokio::time::timeout(
            deadline,
            Limited::new(body, MAX_EVENT_BYTES).collect(),
        )
        .await
        {
            Ok(Ok(c)) => c.to_bytes(),
            Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
                count("unreadable", "malformed");
                return answer(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    serde_json::json!({ "error": format!("the event is over {MAX_EVENT_BYTES} bytes") }),
                );
            }
            Ok(Err(_)) => {
                count("unreadable", "malformed");
                return answer(
                    StatusCode::BAD_REQUEST,
                    serde_json::json!({ "error": "the body could not be read" }),
                );
            }
            Err(_) => {
                count("unreadable", "malformed");
                return answer(
                    StatusCode::REQUEST_TIMEOUT,
                    serde_json::json!({ "error": "the body did not arrive in time" }),
                );
            }
        };
        let event = match Event::parse(&body) {
            Ok(e) => e,
            Err(e) => {
                count("unreadable", "malformed");
                tracing::info!(error = %e, "uem event refused");
                return answer(
                    StatusCode::BAD_REQUEST,
                    serde_json::json!({ "error": e.to_string() }),
                );
            }
        };
        let effect = event.effect();
        let kind = effect.as_str();
        // Not the EventId alone: Workspace ONE's numbers the event type.
        let delivery = event.delivery_key();
        let seen = match self.shared.event_seen(&delivery).await {
            Ok(seen) => seen || self.uem_seen.contains_key(&delivery),
            Err(e) => {
                count(kind, "unavailable");
                tracing::warn!(event_id = %event.event_id, error = %e, "uem event not recorded: redis unavailable; the UEM will retry");
                return answer(
                    StatusCode::SERVICE_UNAVAILABLE,
                    serde_json::json!({ "error": "shared state unavailable; retry" }),
                );
            }
        };
        if seen {
            count(kind, "duplicate");
            return answer(
                StatusCode::OK,
                serde_json::json!({ "event_id": event.event_id, "result": "duplicate" }),
            );
        }
        let result = match effect {
            Effect::Untrusted => match event.subject(&cfg.subject_template) {
                None => {
                    tracing::warn!(
                        event_id = %event.event_id,
                        event_type = %event.event_type,
                        "uem event names no user the subject template can map; nothing revoked"
                    );
                    "unmapped"
                }
                Some(subject) => {
                    if let Err(e) = self.revoke_subject_everywhere(&subject).await {
                        count(kind, "unavailable");
                        tracing::warn!(event_id = %event.event_id, error = %e, "uem revocation applied here, not yet fleet-wide: the UEM will retry");
                        return answer(
                            StatusCode::SERVICE_UNAVAILABLE,
                            serde_json::json!({ "error": "revoked on this replica only; retry" }),
                        );
                    }
                    tracing::info!(
                        target: "trustgate::audit",
                        event_id = %event.event_id,
                        event_type = %event.event_type,
                        device_id = event.device_id.as_deref(),
                        subject = %SubjectHash::of(&subject_key(&subject, true)),
                        "device no longer trusted: sessions revoked"
                    );
                    "revoked"
                }
            },
            Effect::Trusted => "acknowledged",
            Effect::Ignored => {
                tracing::info!(event_id = %event.event_id, event_type = %event.event_type, "uem event of a type that needs no action");
                "acknowledged"
            }
        };
        // Remembered only once acted on, so that a failure above is retried.
        if self.shared.event_done(&delivery).await.is_err() {
            tracing::warn!(event_id = %event.event_id, "uem event done but not remembered fleet-wide; a repeat would act again (harmless)");
        }
        self.uem_seen.insert(delivery, ());
        count(kind, result);
        answer(
            StatusCode::OK,
            serde_json::json!({ "event_id": event.event_id, "type": kind, "result": result }),
        )
    }

    /// Revokes every session of `subject` (both keyings: as given, and as
    /// an emailAddress NameID is keyed) here and, through Redis, on every
    /// replica. Applied here whatever Redis says; the error says the fleet
    /// has not heard yet (it is queued and sent on reconnect).
    pub async fn revoke_subject_everywhere(
        &self,
        subject: &str,
    ) -> Result<(), crate::remember::shared::Unavailable> {
        let now = self.now();
        let mut result = Ok(());
        for h in SubjectHash::keyings(subject) {
            let rev = self.sessions.revoke_subject(h, now);
            if let Err(e) = self.shared.publish(rev, now).await {
                result = Err(e);
            }
        }
        self.metrics
            .revocations
            .with_label_values(&["subject"])
            .inc();
        result
    }
}
