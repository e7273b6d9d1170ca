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
    (s.issue(&keys(), token.clone()).unwrap(), token)
}

#[test]
fn issued_session_is_a_cache_hit() {
    let s = sessions();
    let now = SystemTime::now();
    let (cookie, _) = issue(&s, "alice", now);
    let v = s.check(&keys(), &cookie, "mail", IPHONE, now).unwrap();
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
            .check(&keys(), &cookie, "mail", IPHONE, now)
            .unwrap()
            .cached
    );
    assert!(
        other_replica
            .check(&keys(), &cookie, "mail", IPHONE, now)
            .unwrap()
            .cached
    );
}

#[test]
fn cached_session_still_checks_binding_and_expiry() {
    let s = sessions();
    let now = SystemTime::now();
    let (cookie, _) = issue(&s, "alice", now);
    let android = Client {
        platform: Platform::Android,
        kind: ClientKind::Browser,
    };
    assert_eq!(
        s.check(&keys(), &cookie, "mail", android, now)
            .unwrap_err()
            .reason(),
        "wrong_client"
    );
    assert_eq!(
        s.check(&keys(), &cookie, "wiki", IPHONE, now)
            .unwrap_err()
            .reason(),
        "wrong_app"
    );
    let later = now + Duration::from_secs(601);
    assert_eq!(
        s.check(&keys(), &cookie, "mail", IPHONE, later)
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
        s.check(&keys(), &a, "mail", IPHONE, now).unwrap_err(),
        SessionReject::Revoked
    );
    assert!(s.check(&keys(), &b, "mail", IPHONE, now).is_ok());
    s.revoke_subject(SubjectHash::of("bob"), now);
    assert_eq!(
        s.check(&keys(), &b, "mail", IPHONE, now).unwrap_err(),
        SessionReject::Revoked
    );
    // A session issued after the revocation holds.
    let (b2, _) = issue(&s, "bob", now + Duration::from_secs(2));
    assert!(s
        .check(&keys(), &b2, "mail", IPHONE, now + Duration::from_secs(2))
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
    assert!(s.check(&keys(), &bad, "mail", IPHONE, now).is_err());
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
