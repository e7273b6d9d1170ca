use super::*;

fn sealer() -> Sealer {
    Sealer::new(&[[7u8; 32]])
}

const WINDOW: Duration = Duration::from_secs(600);

fn jo() -> SubjectHash {
    SubjectHash::of("jo@corp.example")
}

fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

#[test]
fn back_within_the_window_resumes() {
    let d = Detours::new(WINDOW);
    let (detour, cookie) = d
        .start(&sealer(), "mail", jo(), Some("/inbox".into()), "ios", t0())
        .unwrap();
    let back = d.check(
        &sealer(),
        &cookie,
        "mail",
        Some(&jo()),
        WINDOW,
        t0() + Duration::from_secs(599),
    );
    assert_eq!(back, Some(Return::Alive(Some(detour))));
}

#[test]
fn back_after_the_window_is_expired() {
    let d = Detours::new(WINDOW);
    let (_, cookie) = d
        .start(&sealer(), "mail", jo(), None, "android", t0())
        .unwrap();
    let back = d.check(
        &sealer(),
        &cookie,
        "mail",
        Some(&jo()),
        WINDOW,
        t0() + WINDOW,
    );
    assert_eq!(back, Some(Return::Expired { app: "mail".into() }));
    // Without a subject (a request with no assertion) it reads the same.
    let back = d.check(&sealer(), &cookie, "mail", None, WINDOW, t0() + WINDOW);
    assert_eq!(back, Some(Return::Expired { app: "mail".into() }));
}

#[test]
fn another_subjects_sign_in_does_not_inherit_the_detour() {
    let d = Detours::new(WINDOW);
    let (_, cookie) = d
        .start(&sealer(), "mail", jo(), Some("/inbox".into()), "ios", t0())
        .unwrap();
    let eve = SubjectHash::of("eve@corp.example");
    for at in [t0(), t0() + WINDOW] {
        let back = d.check(&sealer(), &cookie, "mail", Some(&eve), WINDOW, at);
        assert_eq!(back, Some(Return::Foreign));
    }
    // The detour is still there for its own subject.
    assert!(matches!(
        d.check(&sealer(), &cookie, "mail", Some(&jo()), WINDOW, t0()),
        Some(Return::Alive(Some(_)))
    ));
}

#[test]
fn another_replica_resumes_without_the_target() {
    let here = Detours::new(WINDOW);
    let there = Detours::new(WINDOW);
    let (_, cookie) = here
        .start(&sealer(), "mail", jo(), None, "ios", t0())
        .unwrap();
    let back = there.check(&sealer(), &cookie, "mail", Some(&jo()), WINDOW, t0());
    assert_eq!(back, Some(Return::Alive(None)));
}

#[test]
fn foreign_or_other_app_cookie_is_ignored() {
    let d = Detours::new(WINDOW);
    let (_, cookie) = d.start(&sealer(), "mail", jo(), None, "ios", t0()).unwrap();
    assert_eq!(
        d.check(&sealer(), &cookie, "wiki", Some(&jo()), WINDOW, t0()),
        None
    );
    let other_key = Sealer::new(&[[8u8; 32]]);
    assert_eq!(
        d.check(&other_key, &cookie, "mail", Some(&jo()), WINDOW, t0()),
        None
    );
    assert_eq!(
        d.check(&sealer(), "garbage", "mail", Some(&jo()), WINDOW, t0()),
        None
    );
}

#[test]
fn cookie_lines_carry_the_given_name() {
    assert_eq!(
        set_cookie("__Host-trustgate-detour.mail", "v"),
        "__Host-trustgate-detour.mail=v; Path=/; Secure; HttpOnly; SameSite=None; Max-Age=86400"
    );
    assert_eq!(
        clear_cookie(COOKIE_NAME),
        "__Host-trustgate-detour=; Path=/; Secure; HttpOnly; SameSite=None; Max-Age=0"
    );
}
