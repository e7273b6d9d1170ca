use super::*;

fn sealer() -> Sealer {
    Sealer::new(&[[7u8; 32]])
}

const WINDOW: Duration = Duration::from_secs(600);

#[test]
fn back_within_the_window_resumes() {
    let d = Detours::new(WINDOW);
    let t0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let (detour, cookie) = d
        .start(&sealer(), "mail", Some("/inbox".into()), "ios", t0)
        .unwrap();
    let back = d.check(
        &sealer(),
        &cookie,
        "mail",
        WINDOW,
        t0 + Duration::from_secs(599),
    );
    assert_eq!(back, Some(Return::Alive(Some(detour))));
}

#[test]
fn back_after_the_window_is_expired() {
    let d = Detours::new(WINDOW);
    let t0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let (_, cookie) = d.start(&sealer(), "mail", None, "android", t0).unwrap();
    let back = d.check(&sealer(), &cookie, "mail", WINDOW, t0 + WINDOW);
    assert_eq!(back, Some(Return::Expired { app: "mail".into() }));
}

#[test]
fn another_replica_resumes_without_the_target() {
    let here = Detours::new(WINDOW);
    let there = Detours::new(WINDOW);
    let t0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let (_, cookie) = here.start(&sealer(), "mail", None, "ios", t0).unwrap();
    let back = there.check(&sealer(), &cookie, "mail", WINDOW, t0);
    assert_eq!(back, Some(Return::Alive(None)));
}

#[test]
fn foreign_or_other_app_cookie_is_ignored() {
    let d = Detours::new(WINDOW);
    let t0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let (_, cookie) = d.start(&sealer(), "mail", None, "ios", t0).unwrap();
    assert_eq!(d.check(&sealer(), &cookie, "wiki", WINDOW, t0), None);
    let other_key = Sealer::new(&[[8u8; 32]]);
    assert_eq!(d.check(&other_key, &cookie, "mail", WINDOW, t0), None);
    assert_eq!(d.check(&sealer(), "garbage", "mail", WINDOW, t0), None);
}
