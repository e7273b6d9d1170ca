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
        enforcement: None,
    }
}

fn routes() -> Routes {
    Routes::new(&[
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
    assert!(r.find("evil.example", "/").is_none());
    assert!(r.find("", "/").is_none());
}

#[test]
fn ipv6_host_with_port() {
    assert_eq!(strip_port("[::1]:8443"), "::1");
    assert_eq!(strip_port("[::1]"), "::1");
    assert_eq!(strip_port("host"), "host");
}

#[test]
fn canonical_paths_pass_and_decode_unreserved() {
    assert_eq!(canonical_path("/saml/acs").unwrap(), "/saml/acs");
    assert_eq!(canonical_path("/saml/%61cs").unwrap(), "/saml/acs");
    assert_eq!(canonical_path("/a%20b/").unwrap(), "/a%20b/");
    assert_eq!(canonical_path("/").unwrap(), "/");
}

#[test]
fn ambiguous_paths_are_refused() {
    for p in [
        "/saml/acs;x",
        "//saml/acs",
        "/saml//acs",
        "/public/../admin",
        "/public/%2e%2e/admin",
        "/public/%2E%2E/admin",
        "/favicon.ico/..;/admin",
        "/a%2fb",
        "/a%5Cb",
        "/a\\b",
        "/a%00",
        "/a/./b",
        "/%",
        "/%zz",
        "relative",
    ] {
        assert_eq!(canonical_path(p), Err(PathError), "{p}");
    }
}

#[test]
fn same_path_ignores_one_trailing_slash() {
    assert!(same_path("/saml/acs/", "/saml/acs"));
    assert!(same_path("/saml/acs", "/saml/acs/"));
    assert!(!same_path("/saml/acs2", "/saml/acs"));
    assert!(same_path("/", "/"));
}

#[test]
fn public_prefixes_respect_segments() {
    assert!(prefix_matches("/favicon.ico", "/favicon.ico"));
    assert!(!prefix_matches("/favicon.ico", "/favicon.icoX"));
    assert!(prefix_matches("/public/", "/public/logo.png"));
    assert!(!prefix_matches("/public/", "/publicity"));
}
