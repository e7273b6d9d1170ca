use super::*;
use crate::config::{App, HostHeader};

fn app(name: &str, hosts: &[&str], prefix: &str) -> App {
    App {
        name: Arc::from(name),
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
