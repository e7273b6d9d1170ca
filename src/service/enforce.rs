//! The enforcement phases for an app with device trust: classify the client,
//! gather evidence (a verified assertion on the ACS path, or a session
//! cookie), decide with the app's policy, remember (session, detour, lock),
//! and answer (forward with trust headers, redirect, or a page). Each phase
//! hands the next a plain value; none reads another's insides.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::request::Parts;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use super::{ConnInfo, Gateway, State};
use crate::answer::{full, is_local_target, pages, redirect, Body, GatewayError};
use crate::classify::{classify, Client};
use crate::config::{App, EnforceMode, Enforcement};
use crate::decide::{client_ip_from_headers, Action, Decision, Facts};
use crate::evidence::assertion::{AssertionError, Delivery, ProtocolSelector, Verifier};
use crate::evidence::DeviceTrust;
use crate::remember::detour::{self, Return};
use crate::remember::seal::{cookie, Sealer};
use crate::remember::sessions::Valid;
use crate::remember::token::{self, SessionToken, SubjectHash};
use crate::route::{canonical_path, prefix_matches, same_path};

/// Headers the gateway sets for the app; any the client sent are removed.
pub static TRUST_HEADER_PREFIX: &str = "x-trustgate-";
static H_TRUST: HeaderName = HeaderName::from_static("x-trustgate-device-trust");
static H_PLATFORM: HeaderName = HeaderName::from_static("x-trustgate-platform");
static H_KIND: HeaderName = HeaderName::from_static("x-trustgate-client-kind");
static H_SUBJECT: HeaderName = HeaderName::from_static("x-trustgate-subject");

/// The longest RelayState or wctx a detour remembers.
const MAX_TARGET_BYTES: usize = 2048;

/// The lock cookie: the sealed subject hash of a refused user.
pub const LOCK_COOKIE: &str = "__Host-trustgate-locks";
const LOCK_CONTEXT: &[u8] = b"trustgate locks v1\0";

/// What the enforcement phases produced: a request to forward (with cookies
/// to add to the upstream's answer), or an answer of the gateway's own.
pub enum Outcome {
    /// Forward this request; add these `Set-Cookie` values to the response.
    /// The flag says whether it may open a tunnel (an allowed Upgrade): only
    /// when its session was checked, or the app lets public paths upgrade.
    Forward(Request<Body>, Vec<String>, bool),
    /// Answer with this response.
    Answer(Response<Body>),
}

/// Whether a header name speaks for device trust: `x-trustgate-*`, also
/// spelled with `_`, which CGI-style servers read as the same variable.
pub fn is_trust_header(name: &str) -> bool {
    let n = name.as_bytes();
    n.len() >= TRUST_HEADER_PREFIX.len()
        && n[..TRUST_HEADER_PREFIX.len()]
            .iter()
            .zip(TRUST_HEADER_PREFIX.as_bytes())
            .all(|(a, b)| a.to_ascii_lowercase() == *b || (*a == b'_' && *b == b'-'))
}

/// Removes every client-sent `X-Trustgate-*` header: only the gateway may
/// speak for device trust.
pub fn strip_trust_headers(headers: &mut HeaderMap) {
    let spoofed: Vec<HeaderName> = headers
        .keys()
        .filter(|k| is_trust_header(k.as_str()))
        .cloned()
        .collect();
    for k in spoofed {
        headers.remove(k);
    }
}

/// Per-request context shared by the phases.
struct Ctx<'a> {
    gw: &'a Gateway,
    state: &'a State,
    app: &'a App,
    enf: &'a Enforcement,
    client: Client,
    ip: IpAddr,
    /// The host the request named, for the audit event.
    host: &'a str,
    /// The User-Agent, at most [`MAX_AUDIT_USER_AGENT`] bytes, for the
    /// audit event.
    user_agent: String,
    now: SystemTime,
    request_id: &'a str,
}

/// The longest User-Agent an audit event carries.
const MAX_AUDIT_USER_AGENT: usize = 256;

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

/// Where a request came from and what it is called: the connection, the
/// host it named and its request id.
#[derive(Clone, Copy)]
pub(super) struct Origin<'a> {
    pub(super) conn: ConnInfo,
    pub(super) host: &'a str,
    pub(super) request_id: &'a str,
}

impl Gateway {
    /// Runs the enforcement phases for one request to an enforced app.
    pub(super) async fn enforce(
        &self,
        state: &State,
        app: &App,
        enf: &Enforcement,
        req: Request<Incoming>,
        origin: Origin<'_>,
    ) -> Result<Outcome, GatewayError> {
        let Origin {
            conn,
            host,
            request_id,
        } = origin;
        let (parts, body) = req.into_parts();
        let now = self.now();
        let ctx = |client| Ctx {
            gw: self,
            state,
            app,
            enf,
            client,
            ip: client_ip_from_headers(
                conn.peer.ip(),
                &parts.headers,
                state.config.server.trusted_proxy_hops,
            ),
            host,
            user_agent: audit_user_agent(&parts.headers),
            now,
            request_id,
        };
        // Routing held the path to `canonical_path` (the host has an
        // enforced app), so the ACS, login and public matching below read
        // the same bytes as the routing and the upstream.
        let path = parts.uri.path();
        debug_assert!(canonical_path(path).is_ok());
        if path == "/.trustgate/apps.json" || path == "/.trustgate/apps" {
            let ctx = ctx(classify(&parts.headers));
            return Ok(Outcome::Answer(ctx.lock_state(&parts)));
        }
        let acs = enf.acs_paths.iter().any(|p| same_path(path, p));
        if acs && parts.method == Method::POST {
            check_assertion_post(&parts)?;
            let ctx = ctx(classify(&parts.headers));
            let limit = state.config.server.max_assertion_bytes;
            let deadline = state.config.server.body_read_timeout;
            // Boxed: this once-per-session path is the largest state of the
            // request future, which every pass-through request would
            // otherwise allocate and move.
            return Box::pin(async move {
                let body = read_limited(body, limit, deadline).await?;
                Ok(ctx.assertion(parts, body).await)
            })
            .await;
        }
        // The login path must be reachable without a session, or sign-in
        // could never start.
        let public = same_path(path, &enf.login_path)
            || enf.public_paths.iter().any(|p| prefix_matches(p, path));
        if enf.mode == EnforceMode::Session && !public {
            // A valid session classifies the client itself, from what its
            // cache entry remembers; the full context is for the rest.
            return Ok(match self.session(state, app, &parts, now) {
                Some(v) => forward_in_session(enf, parts, body, &v),
                None => ctx(classify(&parts.headers)).no_session(&parts),
            });
        }
        Ok(Outcome::Forward(
            Request::from_parts(parts, body.map_err(Into::into).boxed()),
            Vec::new(),
            app.upgrades_on_public_paths,
        ))
    }

    /// The session path: the first session cookie that holds for this app
    /// and client at `now`, counted as a cache hit or miss; rejected ones
    /// are counted by reason.
    fn session(&self, state: &State, app: &App, parts: &Parts, now: SystemTime) -> Option<Valid> {
        for value in token::cookie_values(&parts.headers, &app.cookies.session) {
            match self
                .sessions
                .check(&state.keys, value, &app.name, &parts.headers, now)
            {
                Ok(v) => {
                    if let Some(m) = state.app_metrics.get(app.index) {
                        if v.cached {
                            m.cache_hits.inc();
                        } else {
                            m.cache_misses.inc();
                        }
                    }
                    return Some(v);
                }
                Err(e) => {
                    self.metrics
                        .cookies_rejected
                        .with_label_values(&[e.reason()])
                        .inc();
                }
            }
        }
        None
    }
}

/// Forwards a request that came with a valid session, with the trust headers
/// prebuilt in its cache entry.
fn forward_in_session(enf: &Enforcement, mut parts: Parts, body: Incoming, v: &Valid) -> Outcome {
    if enf.trust_headers {
        let t = &v.entry.token;
        set_trust_headers(
            &mut parts.headers,
            t.trust,
            t.client,
            &v.entry.subject_header,
        );
    }
    Outcome::Forward(
        Request::from_parts(parts, body.map_err(Into::into).boxed()),
        Vec::new(),
        true,
    )
}

/// The form fields of an assertion delivery (SAML POST binding, WS-Fed
/// `wsignin1.0`); nothing else is forwarded from an assertion POST.
const ASSERTION_FIELDS: [&str; 5] = ["SAMLResponse", "RelayState", "wa", "wresult", "wctx"];

/// An assertion POST is one urlencoded form in UTF-8, and nothing
/// assertion-like rides in its query, where an app could read a second,
/// unchecked copy. A declared charset other than UTF-8 (or ASCII) is
/// refused: an app that honours `charset=utf-16le` would read other fields
/// from the same bytes than the gateway did.
fn check_assertion_post(parts: &Parts) -> Result<(), GatewayError> {
    let bad = |why: &str| Err(GatewayError::ClientBody(why.into()));
    let mut types = parts.headers.get_all(header::CONTENT_TYPE).iter();
    let (Some(content_type), None) = (types.next(), types.next()) else {
        return bad("an assertion post has one content-type, application/x-www-form-urlencoded");
    };
    let content_type = content_type.to_str().unwrap_or("");
    let mut params = content_type.split(';');
    let form = params.next().is_some_and(|v| {
        v.trim()
            .eq_ignore_ascii_case("application/x-www-form-urlencoded")
    });
    if !form {
        return bad("an assertion post must be application/x-www-form-urlencoded");
    }
    for param in params {
        let (name, value) = param.split_once('=').unwrap_or((param, ""));
        if name.trim().eq_ignore_ascii_case("charset") {
            let charset = value.trim().trim_matches('"');
            if !["utf-8", "utf8", "us-ascii"]
                .iter()
                .any(|c| charset.eq_ignore_ascii_case(c))
            {
                return bad("an assertion post must be utf-8");
            }
        }
    }
    if let Some(q) = parts.uri.query() {
        let smuggled = form_urlencoded::parse(q.as_bytes())
            .any(|(k, _)| ASSERTION_FIELDS.iter().any(|f| f.eq_ignore_ascii_case(&k)));
        if smuggled {
            return bad("assertion fields belong in the body, not the query");
        }
    }
    Ok(())
}

/// Reads a body that a later phase must parse, up to `limit` bytes and
/// within `deadline` for the whole of it: a client that drips a byte every
/// few seconds keeps the idle timer from firing, but not this one.
async fn read_limited(
    body: Incoming,
    limit: usize,
    deadline: std::time::Duration,
) -> Result<Bytes, GatewayError> {
    match tokio::time::timeout(deadline, Limited::new(body, limit).collect()).await {
        Err(_) => Err(GatewayError::BodyTimeout(deadline)),
        Ok(Ok(c)) => Ok(c.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            Err(GatewayError::BodyTooLarge { limit })
        }
        Ok(Err(e)) => Err(GatewayError::ClientBody(e.to_string())),
    }
}

impl Ctx<'_> {
    fn sealer(&self) -> &Sealer {
        &self.state.sealer
    }

    /// The ACS path: verify, decide, remember, answer.
    async fn assertion(&self, parts: Parts, body: Bytes) -> Outcome {
        let metrics = &self.gw.metrics;
        let app = &*self.app.name;
        let start = Instant::now();
        let Some(verifier) = self.state.verifiers.get(app).cloned() else {
            let e = GatewayError::Internal("no verifier for an enforced app".into());
            return Outcome::Answer(e.response(self.request_id));
        };
        // CPU work, a bounded number at a time, so that a burst of
        // assertions cannot stall every other connection (or /healthz); see
        // `Verification` for where it runs.
        let v = &self.gw.verification;
        let Ok(slot) = v.slots.acquire().await else {
            let e = GatewayError::Internal("verification slots closed".into());
            return Outcome::Answer(e.response(self.request_id));
        };
        let now = self.now;
        let verified = if v.on_worker(body.len()) {
            verifier.verify_post(&body, now)
        } else {
            let input = body.clone();
            let task = verifier.clone();
            match tokio::task::spawn_blocking(move || task.verify_post(&input, now)).await {
                Ok(v) => v,
                Err(_) => {
                    let e = GatewayError::Internal("verification task failed".into());
                    return Outcome::Answer(e.response(self.request_id));
                }
            }
        };
        // The CPU work is done; the fleet's check below only waits.
        drop(slot);
        metrics
            .assertion_duration
            .with_label_values(&[app])
            .observe(start.elapsed().as_secs_f64());
        // The fleet decides replays: this replica's cache only filtered.
        let verified = match verified {
            Ok(d) if self.gw.shared.is_fleet() => {
                let a = &d.assertion;
                let until = verifier.replay_until(a.not_on_or_after(), now);
                match self
                    .gw
                    .shared
                    .first_use(&Verifier::replay_key(a), until, now)
                    .await
                {
                    Ok(true) => Ok(d),
                    Ok(false) => Err(AssertionError::Replay {
                        id: a.id().chars().take(64).collect(),
                    }),
                    Err(e) => {
                        // Not a decision: the sign-in did not happen, and
                        // its retry must not count as a replay here.
                        verifier.forget(a);
                        tracing::warn!(app, error = %e, "sign-in refused: the fleet's replay memory is unreachable");
                        metrics
                            .gateway_errors
                            .with_label_values(&["shared_state_unavailable"])
                            .inc();
                        return Outcome::Answer(
                            GatewayError::SharedStateUnavailable(e.0).response(self.request_id),
                        );
                    }
                }
            }
            other => other,
        };
        let delivery = match verified {
            Ok(d) => {
                metrics
                    .assertions
                    .with_label_values(&[app, d.assertion.protocol().as_str(), "accept"])
                    .inc();
                d
            }
            Err(e) => {
                metrics
                    .assertions
                    .with_label_values(&[app, rejected_protocol(self.enf), e.reason()])
                    .inc();
                if let AssertionError::ReplayCacheFull { .. } = e {
                    // Not a policy decision and not the user's fault: no
                    // deny is recorded, and the log says so at warn.
                    tracing::warn!(app, error = %e, "sign-in paused: replay cache full");
                    return Outcome::Answer(pages::replay_cache_full(
                        app,
                        &self.enf.login_path,
                        self.request_id,
                    ));
                }
                let decision = Decision {
                    action: Action::Deny,
                    rule: Arc::from("assertion_rejected"),
                    max_session_age: None,
                    reason: e.reason(),
                };
                self.record(&decision, DeviceTrust::Unknown, None, None);
                tracing::info!(app, reason = e.reason(), error = %e, "assertion rejected");
                return Outcome::Answer(pages::assertion_rejected(
                    app,
                    e.reason(),
                    &self.enf.login_path,
                    self.request_id,
                ));
            }
        };
        let a = &delivery.assertion;
        let subject = SubjectHash::of(&a.subject());
        // A detour resumes only the sign-in of the subject that began it.
        let detour = cookie(&parts.headers, &self.app.cookies.detour).and_then(|c| {
            self.gw.detours.check(
                self.sealer(),
                c,
                app,
                Some(&subject),
                self.enf.enrollment_window,
                self.now,
            )
        });
        if let Some(Return::Expired { .. }) = detour {
            metrics.detours.with_label_values(&[app, "expired"]).inc();
            let mut resp = pages::enrollment_expired(app, &self.enf.login_path, self.request_id);
            set_cookie(&mut resp, &detour::clear_cookie(&self.app.cookies.detour));
            return Outcome::Answer(resp);
        }

        let trust = a.device_trust();
        let decision = self.enf.policy.decide(&Facts {
            client: self.client,
            trust,
            groups: a.groups(),
            ip: self.ip,
        });
        self.record(&decision, trust, Some(&subject), Some(a.issuer()));
        match decision.action {
            Action::Allow => self.allow(parts, body, delivery, &decision, detour),
            Action::Deny => self.deny(subject),
            Action::Enroll => self.enroll(subject, delivery.relay_state, detour),
        }
    }

    /// Allow: a session cookie, then the assertion POST goes on to the app,
    /// resuming a detour's original target when there was one.
    fn allow(
        &self,
        mut parts: Parts,
        body: Bytes,
        delivery: Delivery,
        decision: &Decision,
        detour: Option<Return>,
    ) -> Outcome {
        let app = &*self.app.name;
        let a = &delivery.assertion;
        let lifetime = decision
            .max_session_age
            .map_or(self.enf.session_lifetime, |m| {
                m.min(self.enf.session_lifetime)
            });
        let mut cookies = Vec::new();
        let token = SessionToken::new(
            app,
            a.device_trust(),
            self.client,
            &a.subject(),
            self.now,
            lifetime,
        );
        match token.and_then(|t| {
            let subject = t.subject;
            self.gw
                .sessions
                .issue(&self.state.keys, t, &parts.headers)
                .map(|v| (v, subject))
        }) {
            Ok((value, subject)) => {
                cookies.push(token::set_cookie(
                    &self.app.cookies.session,
                    &value,
                    lifetime,
                ));
                if self.enf.trust_headers {
                    set_trust_headers(
                        &mut parts.headers,
                        a.device_trust(),
                        self.client,
                        &subject.header_value(),
                    );
                }
            }
            Err(e) => tracing::error!(app, error = %e, "cannot issue a session"),
        }

        let mut relay_state = delivery.relay_state.clone();
        match detour {
            Some(Return::Alive(recorded)) => {
                if let Some(d) = recorded {
                    // Only ever a path on this origin: whatever the detour
                    // holds, it is never a redirect elsewhere.
                    if let Some(target) = d.target.as_ref().filter(|t| is_local_target(t)) {
                        relay_state = Some(target.clone());
                    }
                    self.gw.detours.finish(&d.id);
                }
                self.gw
                    .metrics
                    .detours
                    .with_label_values(&[app, "resumed"])
                    .inc();
                cookies.push(detour::clear_cookie(&self.app.cookies.detour));
            }
            // Another subject's detour: it lends nothing, and goes.
            Some(Return::Foreign) => cookies.push(detour::clear_cookie(&self.app.cookies.detour)),
            Some(Return::Expired { .. }) | None => {}
        }
        // The app gets the fields the gateway read, written anew: no other
        // field, no second spelling of one (`samlresponse`), nothing the app
        // could decode differently.
        let relay_field = match a.protocol() {
            crate::evidence::assertion::Protocol::Saml2 => "RelayState",
            crate::evidence::assertion::Protocol::WsFed => "wctx",
        };
        let replace = relay_state
            .as_deref()
            .filter(|t| Some(*t) != delivery.relay_state.as_deref())
            .map(|t| (relay_field, t));
        let body = forwarded_form(&body, replace);
        parts
            .headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        parts.headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        Outcome::Forward(Request::from_parts(parts, full(body)), cookies, false)
    }

    /// Deny: a 403 page, and the app joins the subject's locked set.
    fn deny(&self, subject: SubjectHash) -> Outcome {
        let app = &*self.app.name;
        self.gw.sessions.lock(subject, app);
        let link = self
            .enf
            .enrollment
            .as_ref()
            .filter(|_| self.client.platform.is_mobile())
            .map(|e| e.render(app, self.client.platform.as_str(), ""));
        let mut resp = pages::denied(app, link.as_deref(), self.request_id);
        if let Some(v) = self.sealer().seal(LOCK_CONTEXT, &subject.0) {
            set_cookie(
                &mut resp,
                &format!(
                    "{LOCK_COOKIE}={v}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age={}",
                    self.enf.session_lifetime.as_secs()
                ),
            );
        }
        Outcome::Answer(resp)
    }

    /// Enroll: record the detour and send the device to the enrollment link.
    fn enroll(
        &self,
        subject: SubjectHash,
        relay_state: Option<String>,
        detour: Option<Return>,
    ) -> Outcome {
        let app = &*self.app.name;
        let Some(link) = &self.enf.enrollment else {
            // Config refuses an enroll action without a link.
            return self.deny(subject);
        };
        // A device that comes back still untrusted keeps its first target.
        // An outsized RelayState is not worth remembering, nor one that
        // could not be restored (only a path on this origin is).
        let relay_state = relay_state.filter(|r| r.len() <= MAX_TARGET_BYTES && is_local_target(r));
        let target = match detour {
            Some(Return::Alive(Some(d))) => d.target.clone().or(relay_state),
            _ => relay_state,
        };
        let platform = self.client.platform.as_str();
        let Some((d, value)) =
            self.gw
                .detours
                .start(self.sealer(), app, subject, target, platform, self.now)
        else {
            return Outcome::Answer(
                GatewayError::Internal("cannot start a detour".into()).response(self.request_id),
            );
        };
        self.gw
            .metrics
            .detours
            .with_label_values(&[app, "started"])
            .inc();
        let mut resp = redirect(StatusCode::FOUND, &link.render(app, platform, &d.id));
        set_cookie(
            &mut resp,
            &detour::set_cookie(&self.app.cookies.detour, &value),
        );
        Outcome::Answer(resp)
    }

    /// No valid session: resume an expired detour's page, else back to
    /// sign-in.
    fn no_session(&self, parts: &Parts) -> Outcome {
        let app = &*self.app.name;
        let metrics = &self.gw.metrics;
        let detour = cookie(&parts.headers, &self.app.cookies.detour).and_then(|c| {
            self.gw.detours.check(
                self.sealer(),
                c,
                app,
                None,
                self.enf.enrollment_window,
                self.now,
            )
        });
        if let Some(Return::Expired { .. }) = detour {
            metrics.detours.with_label_values(&[app, "expired"]).inc();
            let mut resp = pages::enrollment_expired(app, &self.enf.login_path, self.request_id);
            set_cookie(&mut resp, &detour::clear_cookie(&self.app.cookies.detour));
            return Outcome::Answer(resp);
        }
        metrics
            .decisions
            .with_label_values(&[
                app,
                self.client.platform.as_str(),
                "reauthenticate",
                "no_session",
            ])
            .inc();
        if parts.method == Method::GET || parts.method == Method::HEAD {
            Outcome::Answer(redirect(StatusCode::FOUND, &self.enf.login_path))
        } else {
            Outcome::Answer(pages::session_required(self.request_id))
        }
    }

    /// `/.trustgate/apps(.json)`: every enforced app and whether it is
    /// locked for this user, known from a session or lock cookie.
    fn lock_state(&self, parts: &Parts) -> Response<Body> {
        let now_unix = self
            .now
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let subject = token::cookie_values(&parts.headers, &self.app.cookies.session)
            .find_map(|v| self.state.keys.open(v).ok())
            .filter(|t| t.expires_at > now_unix)
            .map(|t| t.subject)
            .or_else(|| {
                cookie(&parts.headers, LOCK_COOKIE)
                    .and_then(|c| self.sealer().open(LOCK_CONTEXT, c))
                    .and_then(|b| <[u8; 16]>::try_from(b.as_slice()).ok())
                    .map(SubjectHash)
            });
        let locked = subject
            .map(|s| self.gw.sessions.locked(&s))
            .unwrap_or_default();
        let list: Vec<(String, bool)> = self
            .state
            .config
            .apps
            .iter()
            .filter(|a| a.enforcement.is_some())
            .map(|a| (a.name.to_string(), locked.contains(&*a.name)))
            .collect();
        if parts.uri.path().ends_with(".json") {
            let json = serde_json::json!({
                "session": subject.is_some(),
                "apps": list.iter().map(|(app, locked)| serde_json::json!({"app": app, "locked": locked})).collect::<Vec<_>>(),
            });
            let mut resp = Response::new(full(json.to_string()));
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            resp.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            resp
        } else {
            pages::apps(&list, self.request_id)
        }
    }

    /// One decision: its metric and its audit event.
    fn record(
        &self,
        d: &Decision,
        trust: DeviceTrust,
        subject: Option<&SubjectHash>,
        issuer: Option<&str>,
    ) {
        let app = &*self.app.name;
        let platform = self.client.platform.as_str();
        self.gw
            .metrics
            .decisions
            .with_label_values(&[app, platform, d.action.as_str(), &d.rule])
            .inc();
        tracing::info!(
            target: "trustgate::audit",
            app,
            subject = subject.map(tracing::field::display),
            issuer,
            client = %self.ip,
            host = self.host,
            user_agent = self.user_agent.as_str(),
            platform,
            kind = self.client.kind.as_str(),
            trust = trust.as_str(),
            rule = &*d.rule,
            action = d.action.as_str(),
            reason = d.reason,
            request_id = self.request_id,
            "decision"
        );
    }
}

/// The protocol label of a rejected assertion: the configured one, or
/// `unknown` when either is accepted (a rejected document may not say).
pub(crate) fn rejected_protocol(enf: &Enforcement) -> &'static str {
    match enf.verifier.protocol {
        ProtocolSelector::Saml2 => "saml2",
        ProtocolSelector::WsFed => "wsfed",
        ProtocolSelector::Auto => "unknown",
    }
}

/// The assertion fields of a verified form body, serialized anew in their
/// order, with `replace`'s field set to its value (replaced, or appended).
fn forwarded_form(body: &[u8], replace: Option<(&str, &str)>) -> Bytes {
    let mut out = form_urlencoded::Serializer::new(String::with_capacity(body.len() + 64));
    let mut replaced = false;
    for (k, v) in form_urlencoded::parse(body) {
        if !ASSERTION_FIELDS.contains(&&*k) {
            continue;
        }
        match replace {
            Some((field, value)) if field == k => {
                if !replaced {
                    out.append_pair(field, value);
                    replaced = true;
                }
            }
            _ => {
                out.append_pair(&k, &v);
            }
        }
    }
    if let Some((field, value)) = replace.filter(|_| !replaced) {
        out.append_pair(field, value);
    }
    Bytes::from(out.finish())
}

/// How many headers [`set_trust_headers`] adds.
pub const TRUST_HEADERS: usize = 4;

/// Sets the trust headers for the app; `subject` is the subject hash's
/// header value ([`SubjectHash::header_value`]), built once per session.
fn set_trust_headers(h: &mut HeaderMap, trust: DeviceTrust, client: Client, subject: &HeaderValue) {
    h.insert(H_TRUST.clone(), HeaderValue::from_static(trust.as_str()));
    h.insert(
        H_PLATFORM.clone(),
        HeaderValue::from_static(client.platform.as_str()),
    );
    h.insert(
        H_KIND.clone(),
        HeaderValue::from_static(client.kind.as_str()),
    );
    h.insert(H_SUBJECT.clone(), subject.clone());
}

fn set_cookie(resp: &mut Response<Body>, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
}
