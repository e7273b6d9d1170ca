use super::*;
use crate::config::{App, HostHeader};

fn app(name: &str, hosts: &[&str], prefix: &str) -> App {
    App {
        name: Arc::from(name),
        index: 0,
        hosts: hosts.iter().map(|h| h.to_string()).collect(),
        path_prefix: prefix.into(),
        upstream_scheme: http::uri::Scheme::HTTP,
        upstream_authority: "127.0.0.1:1".parse().unwrap(),
        host_header: HostHeader::Preserve,
        upgrades: vec!["websocket".into()],
        upgrades_on_public_paths: false,
        cookies: crate::remember::CookieNames::default(),
        enforcement: None,
    }
}

fn routes() -> Routes<App> {
    Routes::new([
        app("root", &["apps.example"], "/"),
        app("mail", &["apps.example"], "/mail"),
        app("wiki", &["wiki.example", "127.0.0.1"], "/"),
    ])
}

#[test]
fn longest_prefix_wins() {
    let r = routes();
    assert_eq!(
        &*r.find("apps.example", "/mail/inbox").unwrap().name,
        "mail"
    );
    assert_eq!(&*r.find("apps.example", "/mail").unwrap().name, "mail");
    assert_eq!(&*r.find("apps.example", "/").unwrap().name, "root");
}

#[test]
fn prefix_is_a_path_segment_boundary() {
    let r = routes();
    assert_eq!(&*r.find("apps.example", "/mailbox").unwrap().name, "root");
}

#[test]
fn host_case_and_port_are_ignored() {
    let r = routes();
    assert_eq!(&*r.find("WIKI.Example:8443", "/x").unwrap().name, "wiki");
    assert_eq!(&*r.find("127.0.0.1:8443", "/").unwrap().name, "wiki");
}

#[test]
fn unknown_host_has_no_route() {
    let r = routes();
    assert_eq!(
        r.find("evil.example", "/").unwrap_err(),
        RouteError::UnknownHost
    );
    assert_eq!(r.find("", "/").unwrap_err(), RouteError::UnknownHost);
}

#[test]
fn ipv6_host_with_port() {
    assert_eq!(strip_port("[::1]:8443"), "::1");
    assert_eq!(strip_port("[::1]"), "::1");
    assert_eq!(strip_port("host"), "host");
}

#[test]
fn canonical_paths_pass_as_they_are() {
    for p in [
        "/saml/acs",
        "/a%20b/",
        "/",
        "/docs/caf%C3%A9",
        "/docs/café",
        "/q%3Fmark/%23hash",
        "/v1/projects/x:batchGet",
        "/a.b/c-d_e~f/",
        "/100%25",
        "/100%25x",
        "/docs/%C3%89t%C3%A9",
        "/%E6%97%A5%E6%9C%AC",
        "/a:b",
        "/~user/x",
    ] {
        assert_eq!(canonical_path(p), Ok(p), "{p}");
    }
}

#[test]
fn ambiguous_paths_are_refused() {
    use PathError::*;
    for (p, why) in [
        ("/saml/acs;x", Separator),
        ("/admin;jsessionid=1/x", Separator),
        ("//saml/acs", DotSegment),
        ("/saml//acs", DotSegment),
        ("/public/../admin", DotSegment),
        ("/x/../admin/", DotSegment),
        ("/./admin/", DotSegment),
        ("/a/./b", DotSegment),
        ("/public/%2e%2e/admin", NeedlessEscape),
        ("/public/%2E%2E/admin", NeedlessEscape),
        ("/%61dmin/", NeedlessEscape),
        ("/saml/%61cs", NeedlessEscape),
        ("/%7Euser", NeedlessEscape),
        ("/favicon.ico/..;/admin", Separator),
        ("/admin%2F", EncodedSeparator),
        ("/a%2fb", EncodedSeparator),
        ("/a%5Cb", EncodedSeparator),
        ("/a%3Bb", EncodedSeparator),
        ("/a%00", EncodedSeparator),
        ("/a%09/b", EncodedSeparator),
        ("/a%7f", EncodedSeparator),
        ("/a\\b", Separator),
        ("/%", BadEscape),
        ("/%zz", BadEscape),
        ("/%4", BadEscape),
        ("/%u0061dmin", BadEscape),
        ("/%2561dmin", DoubleEscape),
        ("/%252F", DoubleEscape),
        ("/admin./x", WindowsName),
        ("/admin%20/x", WindowsName),
        ("/admin /x", WindowsName),
        ("/admin::$DATA", WindowsName),
        ("/admin:$i30:$INDEX_ALLOCATION/", WindowsName),
        ("/%c0%af", BadUnicode),
        ("/%c0%ae%c0%ae/admin", BadUnicode),
        ("/%e0%80%af", BadUnicode),
        ("/%ff", BadUnicode),
        ("/%C3", BadUnicode),
        ("/%EF%BC%8Fadmin", BadUnicode),
        ("/\u{FF41}dmin", BadUnicode),
        ("/a\u{2215}b", BadUnicode),
        ("/a%E2%80%A5/b", BadUnicode),
        ("/admin%3A%3A$INDEX_ALLOCATION/x", WindowsName),
        ("/admin%3a%24i30%3a%24INDEX_ALLOCATION/x", WindowsName),
        ("/admin%3A$DATA", WindowsName),
        ("/SECURE~1/x", WindowsName),
        ("/%25u0061dmin/x", DoubleEscape),
        ("/%F0%9D%90%9Admin/x", BadUnicode),
        ("/adm%E2%85%B0n/x", BadUnicode),
        ("/%E2%84%80dmin", BadUnicode),
        ("/admin%E2%80%82/x", BadUnicode),
        ("/adm%C4%B1n/x", BadUnicode),
        ("/%E2%84%AAelvin", BadUnicode),
        ("/\u{17F}ecret", BadUnicode),
        ("relative", NotAbsolute),
        ("*", NotAbsolute),
        ("", NotAbsolute),
    ] {
        assert_eq!(canonical_path(p), Err(why), "{p}");
    }
}

/// `a` with the enforcement of the shipped demo app.
fn enforced(mut a: App) -> App {
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml");
    let config = crate::config::Config::load(&shipped).expect("the shipped config loads");
    a.enforcement = config.apps[0].enforcement.clone();
    a
}

fn shared_host() -> Routes<App> {
    Routes::new([
        app("site", &["apps.example"], "/"),
        enforced(app("admin", &["apps.example"], "/admin")),
        app("plain", &["plain.example"], "/"),
        app("plain-x", &["plain.example"], "/x"),
    ])
}

#[test]
fn a_host_with_an_enforced_app_routes_only_canonical_paths() {
    let r = shared_host();
    assert_eq!(
        &*r.find("apps.example", "/admin/users").unwrap().name,
        "admin"
    );
    assert_eq!(&*r.find("apps.example", "/about").unwrap().name, "site");
    for p in [
        "/%61dmin/users",
        "//admin/users",
        "/./admin/users",
        "/x/../admin/users",
        "/admin;x/users",
        "/admin%2Fusers",
        "/site;x",
    ] {
        assert!(
            matches!(r.find("apps.example", p), Err(RouteError::BadPath(_))),
            "{p}"
        );
    }
}

#[test]
fn another_app_in_another_case_is_refused() {
    let r = shared_host();
    for p in ["/ADMIN/users", "/Admin", "/aDmIn/"] {
        assert_eq!(
            r.find("apps.example", p).unwrap_err(),
            RouteError::BadPath(PathError::CaseSensitiveRoute),
            "{p}"
        );
    }
    // An NTFS stream of another app's directory.
    for p in ["/admin:x/users", "/Admin:$DATA"] {
        assert!(
            matches!(r.find("apps.example", p), Err(RouteError::BadPath(_))),
            "{p}"
        );
    }
    assert_eq!(
        &*r.find("apps.example", "/v1/x:batchGet").unwrap().name,
        "site"
    );
    assert_eq!(
        &*r.find("apps.example", "/admin/x:y").unwrap().name,
        "admin"
    );
    // A case that reaches no other app is the app's own business.
    assert_eq!(&*r.find("apps.example", "/About").unwrap().name, "site");
}

#[test]
fn a_host_without_enforcement_is_a_plain_proxy() {
    let r = shared_host();
    assert_eq!(
        &*r.find("plain.example", "//x/../y;z").unwrap().name,
        "plain"
    );
    assert_eq!(&*r.find("plain.example", "/x/y").unwrap().name, "plain-x");
}

#[test]
fn same_path_ignores_one_trailing_slash() {
    assert!(same_path("/saml/acs/", "/saml/acs"));
    assert!(same_path("/saml/acs", "/saml/acs/"));
    assert!(!same_path("/saml/acs2", "/saml/acs"));
    assert!(same_path("/", "/"));
}

#[test]
fn the_acs_is_reached_in_any_case_and_through_a_stream_name() {
    for path in [
        "/saml/acs",
        "/saml/acs/",
        "/SAML/ACS",
        "/saml/Acs/",
        "/saml/acs:x",
        "/SAML:y/acs:x/",
    ] {
        assert!(may_reach(path, "/saml/acs"), "{path}");
        assert!(may_reach(path, "/saml/acs/"), "{path}");
    }
    for path in [
        "/saml/acs2",
        "/saml/acs/x",
        "/saml",
        "/saml/ac",
        "/",
        "/saml/x:acs",
    ] {
        assert!(!may_reach(path, "/saml/acs"), "{path}");
    }
    assert!(may_reach("/", "/"));
}

proptest::proptest! {
    /// Whatever reaches a path exactly also reaches it loosely, so the
    /// ACS check never lets an exact match go by.
    #[test]
    fn same_path_implies_may_reach(a in "/[a-zA-Z:/]{0,12}", b in "/[a-zA-Z/]{0,12}") {
        if same_path(&a, &b) {
            proptest::prop_assert!(may_reach(&a, &b));
        }
        proptest::prop_assert!(may_reach(&b.to_ascii_uppercase(), &b));
    }
}

#[test]
fn public_prefixes_respect_segments() {
    assert!(prefix_matches("/favicon.ico", "/favicon.ico"));
    assert!(!prefix_matches("/favicon.ico", "/favicon.icoX"));
    assert!(prefix_matches("/public/", "/public/logo.png"));
    assert!(!prefix_matches("/public/", "/publicity"));
}
