//! The enforcement phases for an app with device trust, and which of them
//! a request meets: the lock-state page, the ACS POST (`sign_in.rs`: read,
//! verify, decide, remember, answer), a path that needs a session (check
//! it, or send the client to sign in), or a public path (forwarded as it
//! is). Each phase takes what it needs and hands the next a plain value
//! (`service/handoff.rs`).

use std::time::SystemTime;

use http::header::{self, HeaderMap, HeaderValue};
use http::request::Parts;
use http::{Method, Response};
use hyper::body::Incoming;

use super::handoff::{Origin, Outcome, Pass, Seen};
use super::sign_in::{self, expired_detour};
use super::{Enforced, Gateway, RunningApp, State};
use crate::answer::{full, trust, Answer, Body, GatewayError};
use crate::config::EnforceMode;
use crate::observe::Metrics;
use crate::remember::detour::{Detours, Return};
use crate::remember::locks;
use crate::remember::seal::{cookie, Sealer};
use crate::remember::sessions::{Sessions, Valid};
use crate::remember::token::{self, TokenKeys};
use crate::route::{canonical_path, may_reach, prefix_matches, same_path, PathError};

/// Runs the enforcement phases for one request to an enforced app:
/// `Forward` with what may reach the app, `Answer` with the gateway's own
/// page or redirect, `Err` for a request the gateway cannot take.
pub(super) async fn enforce(
    gw: &Gateway,
    state: &State,
    run: &RunningApp,
    enf: &Enforced,
    parts: Parts,
    body: Incoming,
    origin: Origin<'_>,
) -> Result<Outcome, GatewayError> {
    let rules = &*enf.rules;
    let now = gw.now();
    let hops = state.config.server.trusted_proxy_hops;
    // Routing held the path to `canonical_path` (the host has an enforced
    // app), so the ACS, login and public matching below read the same bytes
    // as the routing and the upstream.
    let path = parts.uri.path();
    debug_assert!(canonical_path(path).is_ok());
    if path == "/.trustgate/apps.json" || path == "/.trustgate/apps" {
        let subject = who(&gw.sessions, state, run, &parts.headers, now);
        return Ok(Outcome::Answer(apps_page(
            &gw.sessions,
            state,
            subject,
            &parts,
            origin.request_id,
        )));
    }
    // The gateway answers for the app's ACS in every form some server
    // would take for it: the exact path is verified, other forms (another
    // case, an NTFS stream name) are refused, and no method but POST
    // brings the app an assertion there, in any mode.
    if let Some(acs) = rules.acs_paths.iter().find(|p| may_reach(path, p)) {
        if !same_path(path, acs) {
            return Err(GatewayError::BadPath(PathError::OtherFormOfAcs));
        }
        match parts.method {
            Method::POST => {
                let seen = Seen::of(&parts.headers, origin, hops, now);
                // Boxed: this once-per-session path is the largest state of
                // the request future, which every pass-through request would
                // otherwise allocate and move.
                return Box::pin(sign_in::sign_in(gw, state, run, enf, parts, body, seen)).await;
            }
            Method::GET | Method::HEAD => sign_in::check_not_an_assertion(&parts, &body)?,
            _ => return Err(GatewayError::AcsMethod(parts.method)),
        }
    } else if parts.uri.query().is_some() {
        sign_in::check_no_assertion_in_query(&parts)?;
    }
    // The login path must be reachable without a session, or sign-in could
    // never start.
    let public = same_path(path, &rules.login_path)
        || rules.public_paths.iter().any(|p| prefix_matches(p, path));
    if rules.mode == EnforceMode::Session && !public {
        // A valid session classifies the client itself, from what its cache
        // entry remembers; the full classification is for the rest.
        return Ok(
            match session(&gw.sessions, &gw.metrics, &state.keys, run, &parts, now) {
                Some(v) => {
                    Outcome::Forward(forward_in_session(rules.trust_headers, parts, body, &v))
                }
                None => {
                    let seen = Seen::of(&parts.headers, origin, hops, now);
                    no_session(
                        &gw.detours,
                        &state.sealer,
                        &gw.metrics,
                        run,
                        enf,
                        &parts,
                        &seen,
                    )
                }
            },
        );
    }
    Ok(Outcome::Forward(Pass::unchecked(
        parts,
        body,
        run.app.upgrades_on_public_paths,
    )))
}

/// Evidence from a cookie: the first session cookie that holds for this app
/// and client at `now`, counted as a cache hit or miss; rejected ones are
/// counted by reason.
fn session(
    sessions: &Sessions,
    metrics: &Metrics,
    keys: &TokenKeys,
    run: &RunningApp,
    parts: &Parts,
    now: SystemTime,
) -> Option<Valid> {
    for value in token::cookie_values(&parts.headers, &run.app.cookies.session) {
        match sessions.check(keys, value, run.name(), &parts.headers, now) {
            Ok(v) => {
                if v.cached {
                    run.metrics.cache_hits.inc();
                } else {
                    run.metrics.cache_misses.inc();
                }
                return Some(v);
            }
            Err(e) => {
                metrics
                    .cookies_rejected
                    .with_label_values(&[e.reason()])
                    .inc();
            }
        }
    }
    None
}

/// Forwards a request that came with a valid session, with the trust headers
/// prebuilt in its cache entry.
fn forward_in_session(trust_headers: bool, mut parts: Parts, body: Incoming, v: &Valid) -> Pass {
    if trust_headers {
        let t = &v.entry.token;
        trust::set(
            &mut parts.headers,
            t.trust,
            t.client,
            &v.entry.subject_header,
        );
    }
    Pass::unchecked(parts, body, true)
}

/// No valid session: resume an expired detour's page, else back to sign-in
/// (a redirect for a page load, 401 for the rest).
fn no_session(
    detours: &Detours,
    sealer: &Sealer,
    metrics: &Metrics,
    run: &RunningApp,
    enf: &Enforced,
    parts: &Parts,
    seen: &Seen<'_>,
) -> Outcome {
    let app = run.name();
    let rules = &*enf.rules;
    let detour = cookie(&parts.headers, &run.app.cookies.detour)
        .and_then(|c| detours.check(sealer, c, app, None, rules.enrollment_window, seen.now));
    if let Some(Return::Expired { .. }) = detour {
        return expired_detour(metrics, run, enf, seen.request_id);
    }
    metrics
        .decisions
        .with_label_values(&[
            app,
            seen.client.platform.as_str(),
            "reauthenticate",
            "no_session",
        ])
        .inc();
    if parts.method == Method::GET || parts.method == Method::HEAD {
        Outcome::Answer(
            Answer::SignIn {
                location: &rules.login_path,
            }
            .response(seen.request_id),
        )
    } else {
        Outcome::Answer(Answer::SessionRequired.response(seen.request_id))
    }
}

/// Whose lock state `/.trustgate/apps` shows: the subject of a session that
/// holds for this app, else of a lock cookie this gateway sealed.
fn who(
    sessions: &Sessions,
    state: &State,
    run: &RunningApp,
    headers: &HeaderMap,
    now: SystemTime,
) -> Option<token::SubjectHash> {
    token::cookie_values(headers, &run.app.cookies.session)
        .find_map(|v| {
            sessions
                .check(&state.keys, v, run.name(), headers, now)
                .ok()
        })
        .map(|v| v.entry.token.subject)
        .or_else(|| locks::subject(&state.sealer, headers))
}

/// `/.trustgate/apps(.json)`: every enforced app and whether it is locked
/// for `subject`.
fn apps_page(
    sessions: &Sessions,
    state: &State,
    subject: Option<token::SubjectHash>,
    parts: &Parts,
    request_id: &str,
) -> Response<Body> {
    let locked = subject.map(|s| sessions.locked(&s)).unwrap_or_default();
    let list: Vec<(String, bool)> = state
        .apps
        .iter()
        .filter(|a| a.enforced.is_some())
        .map(|a| (a.name().to_string(), locked.contains(a.name())))
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
        Answer::Apps { list: &list }.response(request_id)
    }
}
