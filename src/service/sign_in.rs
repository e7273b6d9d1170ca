//! The ACS POST, phase by phase:
//!
//! 1. **read**: one urlencoded UTF-8 form, within the size and time limits
//!    ([`check_assertion_post`], [`read_limited`]);
//! 2. **evidence**: the verified assertion, its replay checked by this
//!    replica and the fleet ([`verify`]);
//! 3. **decide**: the app's ordered policy over the client and the claims
//!    ([`decide`]), recorded as a metric and an audit event;
//! 4. **remember** and **answer**: a session and the form forwarded
//!    ([`allow`]), the app locked and a 403 ([`deny`]), or a detour to the
//!    enrollment link ([`enroll`]).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::request::Parts;
use http::Request;
use http_body_util::{BodyExt, Limited};
use hyper::body::{Body as _, Incoming};

use super::handoff::{Outcome, Pass, Seen};
use super::{Enforced, Gateway, RunningApp, State, Verification};
use crate::answer::{full, is_local_target, set_cookie, trust, Answer, GatewayError};
use crate::config::Enforcement;
use crate::decide::{Action, Decision, Facts};
use crate::evidence::assertion::{AssertionError, Delivery, Protocol, ProtocolSelector, Verifier};
use crate::evidence::DeviceTrust;
use crate::observe::Metrics;
use crate::remember::detour::{self, Detours, Return};
use crate::remember::locks;
use crate::remember::seal::{cookie, Sealer};
use crate::remember::sessions::{unix, Sessions};
use crate::remember::shared::Shared;
use crate::remember::token::{self, SessionToken, SubjectHash, TokenKeys};

/// The longest RelayState or wctx a detour remembers.
const MAX_TARGET_BYTES: usize = 2048;

/// The form fields of an assertion delivery (SAML POST binding, WS-Fed
/// `wsignin1.0`); nothing else is forwarded from an assertion POST.
const ASSERTION_FIELDS: [&str; 5] = ["SAMLResponse", "RelayState", "wa", "wresult", "wctx"];

/// The fields that bring an app an assertion: the two deliveries, and a
/// SAML artifact, which an app resolves into an assertion at the IdP
/// without the gateway seeing it.
const CARRIERS: [&str; 3] = ["SAMLResponse", "wresult", "SAMLart"];

/// The ACS path from the POST to its answer: the phases above, in order.
pub(super) async fn sign_in(
    gw: &Gateway,
    state: &State,
    run: &RunningApp,
    enf: &Enforced,
    parts: Parts,
    body: Incoming,
    seen: Seen<'_>,
) -> Result<Outcome, GatewayError> {
    // 1. Read.
    check_assertion_post(&parts)?;
    let server = &state.config.server;
    let body = read_limited(body, server.max_assertion_bytes, server.body_read_timeout).await?;

    // 2. Evidence.
    let delivery = match verify(
        &gw.verification,
        &gw.shared,
        &gw.metrics,
        run,
        enf,
        &body,
        seen.now,
    )
    .await
    {
        Ok(d) => d,
        Err(refused) => return Ok(refused.answer(&gw.metrics, run, enf, &seen)),
    };
    let a = &delivery.assertion;
    let subject = SubjectHash::of(&a.subject());
    // A revocation (an admin's, or a UEM event's) voids what the IdP said
    // before it, not only the sessions made of it: an unused assertion
    // issued earlier would otherwise sign the subject in again.
    if gw
        .sessions
        .subject_revoked_since(&subject, unix(a.issue_instant()))
    {
        let refused = Refused::Rejected(AssertionError::IssuedBeforeRevocation);
        return Ok(refused.answer(&gw.metrics, run, enf, &seen));
    }
    // A detour resumes only the sign-in of the subject that began it.
    let detour = cookie(&parts.headers, &run.app.cookies.detour).and_then(|c| {
        gw.detours.check(
            &state.sealer,
            c,
            run.name(),
            Some(&subject),
            enf.rules.enrollment_window,
            seen.now,
        )
    });
    if let Some(Return::Expired { .. }) = detour {
        return Ok(expired_detour(&gw.metrics, run, enf, seen.request_id));
    }

    // 3. Decide.
    let decision = decide(&enf.rules, &seen, &delivery);
    record(
        &gw.metrics,
        run.name(),
        &seen,
        &decision,
        a.device_trust(),
        Some(&subject),
        Some(a.issuer()),
    );

    // 4. Remember, and answer.
    let stores = Stores {
        sessions: &gw.sessions,
        detours: &gw.detours,
        metrics: &gw.metrics,
        keys: &state.keys,
        sealer: &state.sealer,
    };
    Ok(match decision.action {
        Action::Allow => Outcome::Forward(allow(
            &stores, run, &enf.rules, &seen, parts, &body, &delivery, &decision, detour,
        )),
        Action::Deny => deny(&stores, run, &enf.rules, &seen, subject),
        Action::Enroll => enroll(
            &stores,
            run,
            &enf.rules,
            &seen,
            subject,
            delivery.relay_state,
            detour,
        ),
    })
}

/// What the remember phase writes to: sessions, locks and detours, with the
/// keys that seal their cookies.
struct Stores<'a> {
    sessions: &'a Sessions,
    detours: &'a Detours,
    metrics: &'a Metrics,
    keys: &'a TokenKeys,
    sealer: &'a Sealer,
}

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
    let assertion_field = |k: &str| {
        ASSERTION_FIELDS
            .iter()
            .chain(&CARRIERS)
            .any(|f| f.eq_ignore_ascii_case(k))
    };
    if query_names(parts, assertion_field) {
        return Err(GatewayError::AssertionNotPosted(
            "assertion fields belong in the body, not the query",
        ));
    }
    Ok(())
}

/// A `GET` or `HEAD` on an ACS path goes to the app (WS-Federation sends
/// `wa=wsignoutcleanup1.0` so) unless it brings an assertion: in its query,
/// or in a body, which some frameworks read as a form whatever the method.
pub(super) fn check_not_an_assertion(parts: &Parts, body: &Incoming) -> Result<(), GatewayError> {
    if !body.is_end_stream() {
        return Err(GatewayError::AssertionNotPosted(
            "a GET to the sign-in path has no body",
        ));
    }
    check_no_assertion_in_query(parts)
}

/// No request to an enforced app carries an assertion in its query, on any
/// path: frameworks that merge query and form fields (ASP.NET's
/// `Request[...]`) would read it on a path the gateway did not take for an
/// ACS.
pub(super) fn check_no_assertion_in_query(parts: &Parts) -> Result<(), GatewayError> {
    if query_names(parts, |k| {
        CARRIERS.iter().any(|f| f.eq_ignore_ascii_case(k))
    }) {
        return Err(GatewayError::AssertionNotPosted(
            "an assertion in the query",
        ));
    }
    Ok(())
}

/// Whether a query field name is one `is_field` takes, as the most liberal
/// parser reads it: percent-decoded, `+` as a space, and IIS's `%uXXXX`
/// decoded too; case is left to `is_field`.
fn query_names(parts: &Parts, is_field: impl Fn(&str) -> bool) -> bool {
    let Some(q) = parts.uri.query() else {
        return false;
    };
    form_urlencoded::parse(q.as_bytes()).any(|(k, _)| is_field(&decode_percent_u(&k)))
}

/// `%uXXXX` escapes (IIS, ASP.NET's `UrlDecode`) decoded; anything else as
/// it is.
fn decode_percent_u(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains("%u") && !s.contains("%U") {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        let unit = tail
            .get(2..6)
            .filter(|_| matches!(tail.as_bytes().get(1), Some(b'u' | b'U')))
            .and_then(|hex| u32::from_str_radix(hex, 16).ok())
            .and_then(char::from_u32);
        match unit {
            Some(c) => {
                out.push(c);
                rest = &tail[6..];
            }
            None => {
                out.push('%');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    std::borrow::Cow::Owned(out)
}

/// Reads a body that a later phase must parse, up to `limit` bytes and
/// within `deadline` for the whole of it: a client that drips a byte every
/// few seconds keeps the idle timer from firing, but not this one.
async fn read_limited(
    body: Incoming,
    limit: usize,
    deadline: Duration,
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

/// Why the evidence phase gave no assertion.
enum Refused {
    /// The assertion failed a check (a replay included).
    Rejected(AssertionError),
    /// The fleet's replay memory could not be asked: not a decision.
    SharedStateUnavailable(String),
    /// The gateway could not run the check.
    Internal(&'static str),
}

/// Evidence: verifies the POSTed form with the app's verifier, a bounded
/// number at a time (see [`Verification`] for where), then asks the fleet
/// whether the assertion is a replay. Counts the verification's time and,
/// for an accepted assertion, its protocol.
async fn verify(
    verification: &Verification,
    shared: &Shared,
    metrics: &Metrics,
    run: &RunningApp,
    enf: &Enforced,
    body: &Bytes,
    now: SystemTime,
) -> Result<Delivery, Refused> {
    let app = run.name();
    let start = Instant::now();
    let verifier = &enf.verifier;
    // CPU work, a bounded number at a time, so that a burst of assertions
    // cannot stall every other connection (or /healthz).
    let Ok(slot) = verification.slots.acquire().await else {
        return Err(Refused::Internal("verification slots closed"));
    };
    let verified = if verification.on_worker(body.len()) {
        verifier.verify_post(body, now)
    } else {
        let input = body.clone();
        let task = verifier.clone();
        tokio::task::spawn_blocking(move || task.verify_post(&input, now))
            .await
            .map_err(|_| Refused::Internal("verification task failed"))?
    };
    // The CPU work is done; the fleet's check below only waits.
    drop(slot);
    metrics
        .assertion_duration
        .with_label_values(&[app])
        .observe(start.elapsed().as_secs_f64());
    let d = verified.map_err(Refused::Rejected)?;
    // The fleet decides replays: this replica's cache only filtered.
    if shared.is_fleet() {
        let a = &d.assertion;
        let until = verifier.replay_until(a.not_on_or_after(), now);
        match shared.first_use(&Verifier::replay_key(a), until, now).await {
            Ok(true) => {}
            Ok(false) => {
                return Err(Refused::Rejected(AssertionError::Replay {
                    id: a.id().chars().take(64).collect(),
                }))
            }
            Err(e) => {
                // Not a decision: the sign-in did not happen, and its
                // retry must not count as a replay here.
                verifier.forget(a);
                return Err(Refused::SharedStateUnavailable(e.0));
            }
        }
    }
    metrics
        .assertions
        .with_label_values(&[app, d.assertion.protocol().as_str(), "accept"])
        .inc();
    Ok(d)
}

impl Refused {
    /// The answer to a sign-in without evidence, counted and logged: the
    /// rejected assertion is a recorded deny; a full replay cache or an
    /// unreachable fleet is a pause, not the user's fault.
    fn answer(
        self,
        metrics: &Metrics,
        run: &RunningApp,
        enf: &Enforced,
        seen: &Seen<'_>,
    ) -> Outcome {
        let app = run.name();
        let rules = &*enf.rules;
        let e = match self {
            Refused::Internal(why) => {
                return Outcome::Answer(
                    GatewayError::Internal(why.into()).response(seen.request_id),
                )
            }
            Refused::SharedStateUnavailable(e) => {
                tracing::warn!(app, error = %e, "sign-in refused: the fleet's replay memory is unreachable");
                metrics
                    .gateway_errors
                    .with_label_values(&["shared_state_unavailable"])
                    .inc();
                return Outcome::Answer(
                    GatewayError::SharedStateUnavailable(e).response(seen.request_id),
                );
            }
            Refused::Rejected(e) => e,
        };
        metrics
            .assertions
            .with_label_values(&[app, rejected_protocol(rules), e.reason()])
            .inc();
        if let AssertionError::ReplayCacheFull { .. } = e {
            // Not a policy decision and not the user's fault: no deny is
            // recorded, and the log says so at warn.
            tracing::warn!(app, error = %e, "sign-in paused: replay cache full");
            let answer = Answer::ReplayCacheFull {
                app,
                restart: &rules.login_path,
            };
            return Outcome::Answer(answer.response(seen.request_id));
        }
        let decision = Decision {
            action: Action::Deny,
            rule: Arc::from("assertion_rejected"),
            max_session_age: None,
            reason: e.reason(),
        };
        record(
            metrics,
            app,
            seen,
            &decision,
            DeviceTrust::Unknown,
            None,
            None,
        );
        tracing::info!(app, reason = e.reason(), error = %e, "assertion rejected");
        let answer = Answer::AssertionRejected {
            app,
            reason: e.reason(),
            restart: &rules.login_path,
        };
        Outcome::Answer(answer.response(seen.request_id))
    }
}

/// Decide: the app's ordered policy over what was seen of the client and
/// what the verified assertion says.
fn decide(rules: &Enforcement, seen: &Seen<'_>, delivery: &Delivery) -> Decision {
    let a = &delivery.assertion;
    rules.policy.decide(&Facts {
        client: seen.client,
        trust: a.device_trust(),
        groups: a.groups(),
        ip: seen.ip,
    })
}

/// One decision: its metric and its audit event.
fn record(
    metrics: &Metrics,
    app: &str,
    seen: &Seen<'_>,
    d: &Decision,
    trust: DeviceTrust,
    subject: Option<&SubjectHash>,
    issuer: Option<&str>,
) {
    let platform = seen.client.platform.as_str();
    metrics
        .decisions
        .with_label_values(&[app, platform, d.action.as_str(), &d.rule])
        .inc();
    tracing::info!(
        target: "trustgate::audit",
        app,
        subject = subject.map(tracing::field::display),
        issuer,
        client = %seen.ip,
        host = seen.host,
        user_agent = seen.user_agent.as_str(),
        platform,
        kind = seen.client.kind.as_str(),
        trust = trust.as_str(),
        rule = &*d.rule,
        action = d.action.as_str(),
        reason = d.reason,
        request_id = seen.request_id,
        "decision"
    );
}

/// Allow: a session cookie, then the assertion POST goes on to the app,
/// resuming a detour's original target when there was one.
#[allow(clippy::too_many_arguments)]
fn allow(
    stores: &Stores<'_>,
    run: &RunningApp,
    rules: &Enforcement,
    seen: &Seen<'_>,
    mut parts: Parts,
    body: &[u8],
    delivery: &Delivery,
    decision: &Decision,
    detour: Option<Return>,
) -> Pass {
    let app = run.name();
    let a = &delivery.assertion;
    let lifetime = decision
        .max_session_age
        .map_or(rules.session_lifetime, |m| m.min(rules.session_lifetime));
    let mut cookies = Vec::new();
    let token = SessionToken::new(
        app,
        a.device_trust(),
        seen.client,
        &a.subject(),
        seen.now,
        lifetime,
    );
    match token.and_then(|t| {
        let subject = t.subject;
        stores
            .sessions
            .issue(stores.keys, t, &parts.headers)
            .map(|v| (v, subject))
    }) {
        Ok((value, subject)) => {
            cookies.push(token::set_cookie(
                &run.app.cookies.session,
                &value,
                lifetime,
            ));
            if rules.trust_headers {
                trust::set(
                    &mut parts.headers,
                    a.device_trust(),
                    seen.client,
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
                stores.detours.finish(&d.id);
            }
            stores
                .metrics
                .detours
                .with_label_values(&[app, "resumed"])
                .inc();
            cookies.push(detour::clear_cookie(&run.app.cookies.detour));
        }
        // Another subject's detour: it lends nothing, and goes.
        Some(Return::Foreign) => cookies.push(detour::clear_cookie(&run.app.cookies.detour)),
        Some(Return::Expired { .. }) | None => {}
    }
    // The app gets the fields the gateway read, written anew: no other
    // field, no second spelling of one (`samlresponse`), nothing the app
    // could decode differently.
    let relay_field = match a.protocol() {
        Protocol::Saml2 => "RelayState",
        Protocol::WsFed => "wctx",
    };
    let replace = relay_state
        .as_deref()
        .filter(|t| Some(*t) != delivery.relay_state.as_deref())
        .map(|t| (relay_field, t));
    let body = forwarded_form(body, replace);
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    Pass {
        request: Request::from_parts(parts, full(body)),
        cookies,
        tunnel: false,
    }
}

/// Deny: a 403 page, and the app joins the subject's locked set.
fn deny(
    stores: &Stores<'_>,
    run: &RunningApp,
    rules: &Enforcement,
    seen: &Seen<'_>,
    subject: SubjectHash,
) -> Outcome {
    let app = run.name();
    stores.sessions.lock(subject, app);
    let link = rules
        .enrollment
        .as_ref()
        .filter(|_| seen.client.platform.is_mobile())
        .map(|e| e.render(app, seen.client.platform.as_str(), ""));
    let mut resp = Answer::Denied {
        app,
        enrollment: link.as_deref(),
    }
    .response(seen.request_id);
    if let Some(c) = locks::set_cookie(stores.sealer, &subject, rules.session_lifetime) {
        set_cookie(&mut resp, &c);
    }
    Outcome::Answer(resp)
}

/// Enroll: record the detour and send the device to the enrollment link.
fn enroll(
    stores: &Stores<'_>,
    run: &RunningApp,
    rules: &Enforcement,
    seen: &Seen<'_>,
    subject: SubjectHash,
    relay_state: Option<String>,
    detour: Option<Return>,
) -> Outcome {
    let app = run.name();
    let Some(link) = &rules.enrollment else {
        // Config refuses an enroll action without a link.
        return deny(stores, run, rules, seen, subject);
    };
    // A device that comes back still untrusted keeps its first target. An
    // outsized RelayState is not worth remembering, nor one that could not
    // be restored (only a path on this origin is).
    let relay_state = relay_state.filter(|r| r.len() <= MAX_TARGET_BYTES && is_local_target(r));
    let target = match detour {
        Some(Return::Alive(Some(d))) => d.target.clone().or(relay_state),
        _ => relay_state,
    };
    let platform = seen.client.platform.as_str();
    let Some((d, value)) =
        stores
            .detours
            .start(stores.sealer, app, subject, target, platform, seen.now)
    else {
        return Outcome::Answer(
            GatewayError::Internal("cannot start a detour".into()).response(seen.request_id),
        );
    };
    stores
        .metrics
        .detours
        .with_label_values(&[app, "started"])
        .inc();
    let location = link.render(app, platform, &d.id);
    let mut resp = Answer::Enroll {
        location: &location,
    }
    .response(seen.request_id);
    set_cookie(
        &mut resp,
        &detour::set_cookie(&run.app.cookies.detour, &value),
    );
    Outcome::Answer(resp)
}

/// A detour that outlived its window: the page that restarts the sign-in,
/// and the detour cookie cleared.
pub(super) fn expired_detour(
    metrics: &Metrics,
    run: &RunningApp,
    enf: &Enforced,
    request_id: &str,
) -> Outcome {
    metrics
        .detours
        .with_label_values(&[run.name(), "expired"])
        .inc();
    let mut resp = Answer::EnrollmentExpired {
        app: run.name(),
        restart: &enf.rules.login_path,
    }
    .response(request_id);
    set_cookie(&mut resp, &detour::clear_cookie(&run.app.cookies.detour));
    Outcome::Answer(resp)
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
