use super::*;
use crate::classify::{ClientKind, Platform};
use crate::evidence::DeviceTrust;

fn sessions() -> Sessions {
    Sessions::new(Duration::from_secs(3600), 1000)
}

fn keys() -> TokenKeys {
    TokenKeys::new([[9u8; 32]]).unwrap()
}

const IPHONE: Client = Client {
    platform: Platform::Ios,
    kind: ClientKind::Browser,
};

const IPHONE_SAFARI: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) \
    AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";
const ANDROID_CHROME: &str = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 \
    (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36";

/// Request headers with this User-Agent.
fn request(user_agent: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        http::header::USER_AGENT,
        HeaderValue::from_str(user_agent).unwrap(),
    );
    h
}

fn iphone() -> HeaderMap {
    request(IPHONE_SAFARI)
}

fn issue(s: &Sessions, subject: &str, now: SystemTime) -> (String, SessionToken) {
    let token = SessionToken::new(
        "mail",
        DeviceTrust::Trusted,
        IPHONE,
        subject,
        now,
        Duration::from_secs(600),
    )
    .unwrap();
    (s.issue(&keys(), token.clone(), &iphone()).unwrap(), token)
}

#[test]
fn issued_session_is_a_cache_hit() {
    let s = sessions();
    let now = SystemTime::now();
    let (cookie, _) = issue(&s, "alice", now);
    let v = s.check(&keys(), &cookie, "mail", &iphone(), now).unwrap();
    assert!(v.cached);
}

#[test]
fn unseen_cookie_is_verified_then_cached() {
    let issuer = sessions();
    let other_replica = sessions();
    let now = SystemTime::now();
    let (cookie, _) = issue(&issuer, "alice", now);
    assert!(
        !other_replica
            .check(&keys(), &cookie, "mail", &iphone(), now)
            .unwrap()
            .cached
    );
    assert!(
        other_replica
            .check(&keys(), &cookie, "mail", &iphone(), now)
            .unwrap()
            .cached
    );
}

#[test]
fn cached_session_still_checks_binding_and_expiry() {
    let s = sessions();
    let now = SystemTime::now();
    let (cookie, _) = issue(&s, "alice", now);
    assert_eq!(
        s.check(&keys(), &cookie, "mail", &request(ANDROID_CHROME), now)
            .unwrap_err()
            .reason(),
        "wrong_client"
    );
    assert_eq!(
        s.check(&keys(), &cookie, "wiki", &iphone(), now)
            .unwrap_err()
            .reason(),
        "wrong_app"
    );
    let later = now + Duration::from_secs(601);
    assert_eq!(
        s.check(&keys(), &cookie, "mail", &iphone(), later)
            .unwrap_err()
            .reason(),
        "expired"
    );
}

#[test]
fn revoking_a_session_or_subject_voids_cached_cookies() {
    let s = sessions();
    let now = SystemTime::now();
    let (a, ta) = issue(&s, "alice", now);
    let (b, _) = issue(&s, "bob", now);
    s.revoke_session(ta.session_id, now);
    assert_eq!(
        s.check(&keys(), &a, "mail", &iphone(), now).unwrap_err(),
        SessionReject::Revoked
    );
    assert!(s.check(&keys(), &b, "mail", &iphone(), now).is_ok());
    s.revoke_subject(SubjectHash::of("bob"), now);
    assert_eq!(
        s.check(&keys(), &b, "mail", &iphone(), now).unwrap_err(),
        SessionReject::Revoked
    );
    // A session issued after the revocation holds.
    let (b2, _) = issue(&s, "bob", now + Duration::from_secs(2));
    assert!(s
        .check(
            &keys(),
            &b2,
            "mail",
            &iphone(),
            now + Duration::from_secs(2)
        )
        .is_ok());
}

#[test]
fn tampered_cookie_is_rejected() {
    let s = sessions();
    let now = SystemTime::now();
    let (cookie, _) = issue(&sessions(), "alice", now);
    let mut bad = cookie.into_bytes();
    let last = bad.len() - 1;
    bad[last] = if bad[last] == b'A' { b'B' } else { b'A' };
    let bad = String::from_utf8(bad).unwrap();
    assert!(s.check(&keys(), &bad, "mail", &iphone(), now).is_err());
}

#[test]
fn locks_accumulate_per_subject() {
    let s = sessions();
    let alice = SubjectHash::of("alice");
    s.lock(alice, "mail");
    s.lock(alice, "wiki");
    assert_eq!(
        s.locked(&alice).into_iter().collect::<Vec<_>>(),
        ["mail", "wiki"]
    );
    assert!(s.locked(&SubjectHash::of("bob")).is_empty());
}

#[test]
fn tampering_before_the_tag_misses_the_cache() {
    // The cache hashes only a key's tail; equality still takes all of it.
    let s = sessions();
    let now = SystemTime::now();
    let (cookie, _) = issue(&s, "alice", now);
    let mut bad = cookie.into_bytes();
    bad[0] = if bad[0] == b'A' { b'B' } else { b'A' };
    let bad = String::from_utf8(bad).unwrap();
    assert_eq!(
        s.check(&keys(), &bad, "mail", &iphone(), now)
            .unwrap_err()
            .reason(),
        "bad_mac"
    );
}

#[test]
fn cache_entry_prebuilds_the_subject_header() {
    let issuer = sessions();
    let other_replica = sessions();
    let now = SystemTime::now();
    let (cookie, token) = issue(&issuer, "alice@example.com", now);
    // Built by `issue`, and by a miss that verified the HMAC.
    for (s, cached) in [(&issuer, true), (&other_replica, false)] {
        let v = s.check(&keys(), &cookie, "mail", &iphone(), now).unwrap();
        assert_eq!(v.cached, cached);
        assert_eq!(v.entry.token, token);
        assert_eq!(
            v.entry.subject_header.to_str().unwrap(),
            SubjectHash::of("alice@example.com").to_string()
        );
    }
}

#[test]
fn remembered_user_agent_classifies_as_classify_does() {
    let s = sessions();
    let now = SystemTime::now();
    let (cookie, _) = issue(&s, "alice", now);
    let long = format!("{IPHONE_SAFARI} {}", "x".repeat(600));
    let mut android_app = request(ANDROID_CHROME);
    android_app.insert(
        "x-requested-with",
        HeaderValue::from_static("com.example.mail"),
    );
    let no_ua = HeaderMap::new();
    for (headers, holds) in [
        (iphone(), true),
        (request(&long), true),
        (request(ANDROID_CHROME), false),
        (android_app, false),
        (no_ua, false),
        (iphone(), true),
    ] {
        let want = crate::classify::classify(&headers);
        match s.check(&keys(), &cookie, "mail", &headers, now) {
            Ok(v) => {
                assert!(holds);
                assert_eq!(v.client, want);
                assert_eq!(v.client, IPHONE);
            }
            Err(e) => {
                assert!(!holds);
                assert_ne!(want, IPHONE);
                assert_eq!(e.reason(), "wrong_client");
            }
        }
    }
}

#[test]
fn requested_with_still_refines_a_remembered_android_user_agent() {
    let s = sessions();
    let now = SystemTime::now();
    let android = Client {
        platform: Platform::Android,
        kind: ClientKind::Browser,
    };
    let token = SessionToken::new(
        "mail",
        DeviceTrust::Trusted,
        android,
        "alice",
        now,
        Duration::from_secs(600),
    )
    .unwrap();
    let cookie = s.issue(&keys(), token, &request(ANDROID_CHROME)).unwrap();
    let v = s
        .check(&keys(), &cookie, "mail", &request(ANDROID_CHROME), now)
        .unwrap();
    assert_eq!(v.client, android);
    let mut webview = request(ANDROID_CHROME);
    webview.insert(
        "x-requested-with",
        HeaderValue::from_static("com.example.mail"),
    );
    assert_eq!(
        s.check(&keys(), &cookie, "mail", &webview, now)
            .unwrap_err()
            .reason(),
        "wrong_client"
    );
}

/// A decision cached under keys that were since replaced (a request that
/// read the old keys while a reload cleared the cache) is not taken from
/// the cache: the cookie is verified again under the keys of the request.
#[test]
fn a_decision_cached_under_replaced_keys_is_checked_again() {
    let s = sessions();
    let now = SystemTime::now();
    let (cookie, _) = issue(&s, "alice", now);
    s.clear_cache();
    // The late request, still on the old keys, caches the cookie again.
    assert!(
        !s.check(&keys(), &cookie, "mail", &iphone(), now)
            .unwrap()
            .cached
    );
    let rotated = TokenKeys::new([[7u8; 32]]).unwrap();
    assert_ne!(rotated.generation(), keys().generation());
    assert!(matches!(
        s.check(&rotated, &cookie, "mail", &iphone(), now),
        Err(SessionReject::Token(_))
    ));
    // A key set that still holds the old key verifies it again, once.
    let both = TokenKeys::new([[7u8; 32], [9u8; 32]]).unwrap();
    assert!(
        !s.check(&both, &cookie, "mail", &iphone(), now)
            .unwrap()
            .cached
    );
    assert!(
        s.check(&both, &cookie, "mail", &iphone(), now)
            .unwrap()
            .cached
    );
}
