//! Two replicas and a real `redis-server`: what an SRE running a fleet
//! expects. A session from A holds at B; an assertion used at A is a
//! replay at B; a revocation or a UEM event at one replica ends the
//! session at both within a second; with Redis down, sign-ins get a 503
//! and sessions go on; with Redis back, sign-ins work without a restart.

mod utils;

use std::time::{Duration, Instant};

use http::StatusCode;
use utils::fleet::*;
use utils::*;

struct Fleet {
    redis: RedisServer,
    a: TestGateway,
    b: TestGateway,
    _up: Upstream,
}

async fn fleet() -> Fleet {
    let redis = RedisServer::start();
    let up = Upstream::echo_headers().await;
    let cfg = fleet_config(&up.url(), Some(&redis.url()));
    let a = TestGateway::start("", &cfg).await;
    let b = TestGateway::start("", &cfg).await;
    for gw in [&a, &b] {
        wait_for(
            || async { metric(&gw.metrics().await, "trustgate_redis_up") == 1.0 },
            "redis up",
        )
        .await;
    }
    Fleet {
        redis,
        a,
        b,
        _up: up,
    }
}

/// Polls `cond` every 5 ms until it holds, for at most 15 s.
async fn wait_for<F, Fut>(cond: F, what: &str) -> Duration
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !cond().await {
        assert!(start.elapsed() < Duration::from_secs(15), "{what}: never");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    start.elapsed()
}

#[tokio::test]
#[ignore = "needs redis-server"]
async fn replicas_share_sessions_replays_and_revocations() {
    let f = fleet().await;
    let signer = signer();
    let bob = sign_in(&f.a, &signer, "bob@corp.example").await;
    assert_eq!(
        session_status(&f.b, &bob).await,
        StatusCode::OK,
        "A's session at B"
    );

    // One assertion, two replicas: the second use is a replay.
    let form = assertion_form(&signer, "eve@corp.example", f.a.running().gateway.now());
    assert_eq!(post_acs(&f.a, &form).await.status(), StatusCode::OK);
    let again = post_acs(&f.b, &form).await;
    assert_eq!(again.status(), StatusCode::FORBIDDEN);
    let m = f.b.metrics().await;
    assert_eq!(
        metric(
            &m,
            "trustgate_assertions_total{app=\"app\",protocol=\"saml2\",result=\"replay\"}"
        ),
        1.0,
        "{m}"
    );

    // A revocation at A ends the session at B within a second.
    let said = admin_revoke(&f.a, r#"{"subject": "bob@corp.example"}"#).await;
    assert_eq!(said["fleet"], "published");
    let took = wait_for(
        || async { session_status(&f.b, &bob).await == StatusCode::FOUND },
        "revoked at B",
    )
    .await;
    assert!(took < Duration::from_secs(1), "{took:?}");
    assert_eq!(session_status(&f.a, &bob).await, StatusCode::FOUND);
}

/// The revocation latency across replicas, 100 times: printed (run with
/// --nocapture for the figures), each held to a second.
#[tokio::test]
#[ignore = "needs redis-server"]
async fn revocation_reaches_the_other_replica_within_a_second() {
    let f = fleet().await;
    let signer = signer();
    let mut sessions = Vec::new();
    for i in 0..100 {
        sessions.push(sign_in(&f.a, &signer, &format!("user{i}@corp.example")).await);
    }
    let mut took = Vec::new();
    for (i, s) in sessions.iter().enumerate() {
        assert_eq!(session_status(&f.b, s).await, StatusCode::OK);
        let start = Instant::now();
        admin_revoke(&f.a, &format!("{{\"subject\": \"user{i}@corp.example\"}}")).await;
        while session_status(&f.b, s).await != StatusCode::FOUND {
            assert!(
                start.elapsed() < Duration::from_secs(1),
                "revocation {i} took over a second"
            );
        }
        took.push(start.elapsed());
    }
    took.sort();
    println!(
        "revocation A -> B over 100: median {:.2} ms, worst {:.2} ms (admin POST at A until B refuses, on loopback)",
        took[49].as_secs_f64() * 1e3,
        took[99].as_secs_f64() * 1e3
    );
}

#[tokio::test]
#[ignore = "needs redis-server"]
async fn a_uem_event_at_b_ends_the_session_at_a_and_b_once() {
    let f = fleet().await;
    let signer = signer();
    let bob = sign_in(&f.a, &signer, "bob@corp.example").await;
    let event = event_json("77", "Compromised Status Changed", "bob", "");
    let event = event.replace(
        "\"ComplianceStatus\":\"\"",
        "\"CompromisedStatus\":\"Compromised\"",
    );
    let (status, _, body) = post_event(
        &f.b,
        Some((UEM_USER, UEM_PASSWORD)),
        "application/json",
        event.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("revoked"), "{body}");
    assert_eq!(session_status(&f.b, &bob).await, StatusCode::FOUND);
    wait_for(
        || async { session_status(&f.a, &bob).await == StatusCode::FOUND },
        "revoked at A",
    )
    .await;

    // The same EventId at the other replica: a duplicate, nothing revoked.
    for gw in [&f.a, &f.b] {
        gw.running().gateway.advance_clock(Duration::from_secs(2));
    }
    let bob2 = sign_in(&f.a, &signer, "bob@corp.example").await;
    let (status, _, body) = post_event(
        &f.a,
        Some((UEM_USER, UEM_PASSWORD)),
        "application/json",
        event,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("duplicate"), "{body}");
    // Nothing to wait for but an absence: a revocation published after the
    // duplicate (carol's, at A) has reached B once B refuses carol, and the
    // channel keeps order, so any revocation of bob's would be there first.
    let carol = sign_in(&f.a, &signer, "carol@corp.example").await;
    admin_revoke(&f.a, "{\"subject\": \"carol@corp.example\"}").await;
    wait_for(
        || async { session_status(&f.b, &carol).await == StatusCode::FOUND },
        "carol revoked at B",
    )
    .await;
    assert_eq!(session_status(&f.b, &bob2).await, StatusCode::OK);
    // Wrong credentials and a malformed body, at a fleet replica too.
    let (status, _, _) = post_event(
        &f.a,
        Some((UEM_USER, "nope-nope-nope")),
        "application/json",
        "{}".into(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = post_event(
        &f.a,
        Some((UEM_USER, UEM_PASSWORD)),
        "application/xml",
        "<Eventlog>".into(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
#[ignore = "needs redis-server"]
async fn redis_down_fails_sign_ins_closed_and_sessions_go_on_until_it_is_back() {
    let mut f = fleet().await;
    let signer = signer();
    let bob = sign_in(&f.a, &signer, "bob@corp.example").await;
    let ann = sign_in(&f.a, &signer, "ann@corp.example").await;
    f.redis.kill();

    // New sign-ins: 503, Retry-After, the reason in the metric.
    let resp = post_acs(
        &f.a,
        &assertion_form(&signer, "cid@corp.example", f.a.running().gateway.now()),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(resp.headers().contains_key("retry-after"));
    let page = body_string(resp).await;
    assert!(page.contains("Sign-in paused"), "{page}");
    // Sessions go on, at both replicas.
    assert_eq!(session_status(&f.a, &bob).await, StatusCode::OK);
    assert_eq!(session_status(&f.b, &bob).await, StatusCode::OK);
    let m = f.a.metrics().await;
    assert_eq!(metric(&m, "trustgate_redis_up"), 0.0, "{m}");
    assert!(
        metric(&m, "trustgate_redis_errors_total{op=\"replay\"}") >= 1.0,
        "{m}"
    );
    assert_eq!(
        metric(
            &m,
            "trustgate_gateway_errors_total{reason=\"shared_state_unavailable\"}"
        ),
        1.0
    );
    // A UEM event that cannot reach the fleet: 503, so the UEM retries.
    let (status, _, _) = post_event(
        &f.a,
        Some((UEM_USER, UEM_PASSWORD)),
        "application/json",
        event_json("88", "Device Wipe", "bob", ""),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    // A revocation made while Redis is down holds here at once and is
    // published when Redis is back.
    let said = admin_revoke(&f.a, r#"{"subject": "ann@corp.example"}"#).await;
    assert_eq!(said["fleet"], "pending");
    assert_eq!(session_status(&f.a, &ann).await, StatusCode::FOUND);

    f.redis.resume();
    for gw in [&f.a, &f.b] {
        wait_for(
            || async { metric(&gw.metrics().await, "trustgate_redis_up") == 1.0 },
            "redis back",
        )
        .await;
    }
    // Without a restart: sign-ins work, and B heard of ann's revocation.
    let resp = post_acs(
        &f.a,
        &assertion_form(&signer, "cid@corp.example", f.a.running().gateway.now()),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    wait_for(
        || async { session_status(&f.b, &ann).await == StatusCode::FOUND },
        "pending revocation at B",
    )
    .await;
    assert_eq!(session_status(&f.b, &bob).await, StatusCode::OK);
    // The UEM's retry goes through now.
    let (status, _, body) = post_event(
        &f.a,
        Some((UEM_USER, UEM_PASSWORD)),
        "application/json",
        event_json("88", "Device Wipe", "bob", ""),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    wait_for(
        || async { session_status(&f.b, &bob).await == StatusCode::FOUND },
        "bob at B",
    )
    .await;
}

#[tokio::test]
#[ignore = "needs redis-server"]
async fn a_replica_started_later_knows_the_earlier_revocations() {
    let f = fleet().await;
    let signer = signer();
    let bob = sign_in(&f.a, &signer, "bob@corp.example").await;
    admin_revoke(&f.a, r#"{"subject": "bob@corp.example"}"#).await;
    let up = Upstream::echo_headers().await;
    let c = TestGateway::start("", &fleet_config(&up.url(), Some(&f.redis.url()))).await;
    wait_for(
        || async { metric(&c.metrics().await, "trustgate_redis_up") == 1.0 },
        "redis up at C",
    )
    .await;
    assert_eq!(session_status(&c, &bob).await, StatusCode::FOUND);
    drop(f.b);
}
