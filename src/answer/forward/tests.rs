use super::*;
use http_body_util::BodyExt;

#[test]
fn hop_by_hop_headers_are_removed() {
    let mut h = HeaderMap::new();
    h.insert("connection", "keep-alive, x-secret-hop".parse().unwrap());
    h.insert("keep-alive", "timeout=5".parse().unwrap());
    h.insert("x-secret-hop", "1".parse().unwrap());
    h.insert("te", "trailers".parse().unwrap());
    h.insert("transfer-encoding", "chunked".parse().unwrap());
    h.insert("proxy-authorization", "Basic Zm9vOmJhcg==".parse().unwrap());
    h.insert("upgrade", "h2c".parse().unwrap());
    h.insert("x-end-to-end", "kept".parse().unwrap());
    strip_hop_by_hop(&mut h, false);
    assert_eq!(h.len(), 1, "{h:?}");
    assert_eq!(h["x-end-to-end"], "kept");
}

#[test]
fn upgrade_kept_on_101() {
    let mut h = HeaderMap::new();
    h.insert("connection", "Upgrade".parse().unwrap());
    h.insert("upgrade", "websocket".parse().unwrap());
    strip_hop_by_hop(&mut h, true);
    assert_eq!(h["upgrade"], "websocket");
    assert_eq!(h["connection"], "Upgrade");
}

#[test]
fn upgrade_needs_connection_upgrade() {
    let mut h = HeaderMap::new();
    h.insert("upgrade", "websocket".parse().unwrap());
    assert!(upgrade_protocol(&h).is_none());
    h.insert("connection", "keep-alive, Upgrade".parse().unwrap());
    assert_eq!(upgrade_protocol(&h).unwrap(), "websocket");
}

#[test]
fn each_hop_by_hop_header_goes_without_a_connection_header() {
    for name in [
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "connection",
        "http2-settings",
    ] {
        let mut h = HeaderMap::new();
        h.insert("x-end-to-end", "kept".parse().unwrap());
        h.insert(HeaderName::from_static(name), "1".parse().unwrap());
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1, "{name} stayed: {h:?}");
        assert_eq!(h["x-end-to-end"], "kept");
    }
}

#[test]
fn end_to_end_headers_are_left_alone() {
    let mut h = HeaderMap::new();
    h.insert("host", "apps.example".parse().unwrap());
    h.append("cookie", "a=1".parse().unwrap());
    h.append("cookie", "b=2".parse().unwrap());
    h.insert("x-keep-alive-ish", "kept".parse().unwrap());
    let before = h.clone();
    strip_hop_by_hop(&mut h, false);
    assert_eq!(h, before);
}

#[test]
fn connection_cannot_name_a_trust_header_away() {
    let mut h = HeaderMap::new();
    h.insert(
        "connection",
        "X-Trustgate-Device-Trust, x_trustgate_subject, x-other"
            .parse()
            .unwrap(),
    );
    h.insert("x-trustgate-device-trust", "trusted".parse().unwrap());
    h.insert("x_trustgate_subject", "s".parse().unwrap());
    h.insert("x-other", "1".parse().unwrap());
    strip_hop_by_hop(&mut h, false);
    assert_eq!(h.len(), 2, "{h:?}");
    assert_eq!(h["x-trustgate-device-trust"], "trusted");
    assert_eq!(h["x_trustgate_subject"], "s");

    // On a 101 too, where Connection and Upgrade stay.
    let mut h = HeaderMap::new();
    h.insert(
        "connection",
        "Upgrade, x-trustgate-device-trust, x-other"
            .parse()
            .unwrap(),
    );
    h.insert("upgrade", "websocket".parse().unwrap());
    h.insert("x-trustgate-device-trust", "trusted".parse().unwrap());
    h.insert("x-other", "1".parse().unwrap());
    strip_hop_by_hop(&mut h, true);
    assert_eq!(h.len(), 3, "{h:?}");
    assert!(h.contains_key("connection"));
    assert_eq!(h["upgrade"], "websocket");
    assert_eq!(h["x-trustgate-device-trust"], "trusted");
}

#[test]
fn upgrade_named_in_connection_is_kept_on_101_only() {
    let mut h = HeaderMap::new();
    h.insert("connection", "upgrade, keep-alive".parse().unwrap());
    h.insert("upgrade", "websocket".parse().unwrap());
    h.insert("keep-alive", "timeout=5".parse().unwrap());
    let mut on_101 = h.clone();
    strip_hop_by_hop(&mut on_101, true);
    assert_eq!(on_101.len(), 2, "{on_101:?}");
    assert_eq!(on_101["connection"], "upgrade, keep-alive");
    assert_eq!(on_101["upgrade"], "websocket");
    strip_hop_by_hop(&mut h, false);
    assert!(h.is_empty(), "{h:?}");
}

fn app(host_header: HostHeader) -> App {
    App {
        name: Arc::from("app"),
        index: 0,
        hosts: vec!["apps.example".into()],
        path_prefix: "/".into(),
        upstream_scheme: http::uri::Scheme::HTTPS,
        upstream_authority: "10.9.8.7:8443".parse().unwrap(),
        host_header,
        upgrades: vec!["websocket".into()],
        upgrades_on_public_paths: false,
        cookies: crate::remember::CookieNames::default(),
        enforcement: None,
    }
}

fn upgrade_request(method: &str, upgrade: &str) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri("/ws")
        .header("connection", "Upgrade, HTTP2-Settings")
        .header("upgrade", upgrade)
        .header("http2-settings", "AAMAAABkAAQCAAAAAAIAAAAA")
        .body(http_body_util::Empty::new().map_err(Into::into).boxed())
        .unwrap()
}

#[test]
fn only_allowed_upgrade_tokens_are_offered() {
    let a = app(HostHeader::Preserve);
    let offered =
        |method: &str, upgrade: &str| offered_upgrade(&a, &upgrade_request(method, upgrade));
    assert_eq!(offered("GET", "websocket").unwrap(), "websocket");
    assert_eq!(offered("GET", "WebSocket").unwrap(), "WebSocket");
    assert!(offered("GET", "h2c").is_none());
    assert_eq!(offered("GET", "h2c, websocket").unwrap(), "websocket");
    assert!(offered("GET", "TLS/1.2, h2c").is_none());
    // WebSocket is a GET; an upgrade on a POST is served as a plain POST.
    assert!(offered("POST", "websocket").is_none());
    let mut h2 = upgrade_request("GET", "websocket");
    *h2.version_mut() = Version::HTTP_2;
    assert!(offered_upgrade(&a, &h2).is_none());
}

#[test]
fn a_refused_upgrade_leaves_a_plain_request() {
    let mut req = upgrade_request("GET", "h2c");
    let id = HeaderValue::from_static("rid-1");
    let down = Downstream {
        client_ip: IpAddr::from([192, 0, 2, 1]),
        proto: "https",
        host: "apps.example",
        trusted_forwarded: false,
        request_id: &id,
    };
    rewrite_request(&app(HostHeader::Preserve), &mut req, &down, None).unwrap();
    for gone in ["connection", "upgrade", "http2-settings"] {
        assert!(
            !req.headers().contains_key(gone),
            "{gone}: {:?}",
            req.headers()
        );
    }
}

fn rewritten(
    target: &str,
    host_header: HostHeader,
    ip: IpAddr,
    xff: Option<&str>,
) -> Request<Body> {
    let mut b = Request::get(target);
    if let Some(v) = xff {
        b = b.header("x-forwarded-for", v);
    }
    let mut req = b
        .body(http_body_util::Empty::new().map_err(Into::into).boxed())
        .unwrap();
    let id = HeaderValue::from_static("rid-1");
    let down = Downstream {
        client_ip: ip,
        proto: "https",
        host: "apps.example",
        trusted_forwarded: false,
        request_id: &id,
    };
    rewrite_request(&app(host_header), &mut req, &down, None).unwrap();
    req
}

fn forwarded_by(trusted: bool, proto: &str, host: Option<&str>) -> Request<Body> {
    let mut b = Request::get("/").header("x-forwarded-proto", proto);
    if let Some(h) = host {
        b = b.header("x-forwarded-host", h);
    }
    let mut req = b
        .body(http_body_util::Empty::new().map_err(Into::into).boxed())
        .unwrap();
    let id = HeaderValue::from_static("rid-1");
    let down = Downstream {
        client_ip: IpAddr::from([10, 0, 0, 2]),
        proto: "http",
        host: "sidecar.local",
        trusted_forwarded: trusted,
        request_id: &id,
    };
    rewrite_request(&app(HostHeader::Preserve), &mut req, &down, None).unwrap();
    req
}

#[test]
fn forwarded_proto_and_host_are_kept_only_from_a_trusted_proxy() {
    let r = forwarded_by(true, "https", Some("apps.example"));
    assert_eq!(r.headers()["x-forwarded-proto"], "https");
    assert_eq!(r.headers()["x-forwarded-host"], "apps.example");
    let r = forwarded_by(true, "https, http", None);
    assert_eq!(r.headers()["x-forwarded-proto"], "https, http");
    assert_eq!(r.headers()["x-forwarded-host"], "sidecar.local");
    // Not a scheme: the gateway's own value.
    let r = forwarded_by(true, "javascript", None);
    assert_eq!(r.headers()["x-forwarded-proto"], "http");
    // From an untrusted client, the gateway's own values win.
    let r = forwarded_by(false, "https", Some("evil.example"));
    assert_eq!(r.headers()["x-forwarded-proto"], "http");
    assert_eq!(r.headers()["x-forwarded-host"], "sidecar.local");
}

#[test]
fn rewrite_keeps_path_and_query_byte_for_byte() {
    let ip = IpAddr::from([192, 0, 2, 1]);
    for (target, want) in [
        ("/", "/"),
        ("/a/b%2Fc?x=1&y=%20&z", "/a/b%2Fc?x=1&y=%20&z"),
        ("/~user/file.txt?", "/~user/file.txt?"),
        (
            "https://apps.example/deep/path?q=%E2%9C%93",
            "/deep/path?q=%E2%9C%93",
        ),
        ("https://apps.example", "/"),
    ] {
        let req = rewritten(target, HostHeader::Preserve, ip, None);
        assert_eq!(req.uri().scheme_str(), Some("https"));
        assert_eq!(req.uri().authority().unwrap(), "10.9.8.7:8443");
        assert_eq!(req.uri().path_and_query().unwrap().as_str(), want);
        assert_eq!(req.headers()["host"], "apps.example");
        assert_eq!(req.headers()["x-forwarded-proto"], "https");
        assert_eq!(req.headers()["x-forwarded-host"], "apps.example");
        assert_eq!(req.headers()["x-request-id"], "rid-1");
    }
    let req = rewritten("/", HostHeader::Upstream, ip, None);
    assert_eq!(req.headers()["host"], "10.9.8.7:8443");
}

#[test]
fn forwarded_for_names_the_peer_after_any_prior_hops() {
    let v4 = IpAddr::from([10, 0, 100, 9]);
    let req = rewritten("/", HostHeader::Preserve, v4, None);
    assert_eq!(req.headers()["x-forwarded-for"], "10.0.100.9");
    let req = rewritten("/", HostHeader::Preserve, v4, Some("203.0.113.9"));
    assert_eq!(req.headers()["x-forwarded-for"], "203.0.113.9, 10.0.100.9");
    let req = rewritten("/", HostHeader::Preserve, v4, Some("  "));
    assert_eq!(req.headers()["x-forwarded-for"], "10.0.100.9");
    let v6: IpAddr = "2001:db8::1".parse().unwrap();
    let req = rewritten("/", HostHeader::Preserve, v6, None);
    assert_eq!(req.headers()["x-forwarded-for"], "2001:db8::1");
}

#[test]
fn address_text_matches_display_at_the_edges() {
    for ip in [
        "0.0.0.0",
        "255.255.255.255",
        "1.20.100.9",
        "::",
        "::ffff:255.255.255.255",
        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        "fe80::1",
    ] {
        let ip: IpAddr = ip.parse().unwrap();
        assert_eq!(IpText::new(ip).as_str(), ip.to_string());
    }
}

proptest::proptest! {
    #[test]
    fn address_text_matches_display(v4: u32, v6: u128) {
        let a = IpAddr::from(std::net::Ipv4Addr::from(v4));
        proptest::prop_assert_eq!(IpText::new(a).as_str().to_string(), a.to_string());
        let b = IpAddr::from(std::net::Ipv6Addr::from(v6));
        proptest::prop_assert_eq!(IpText::new(b).as_str().to_string(), b.to_string());
    }
}

#[test]
fn gateway_cookies_stay_with_the_gateway() {
    let mut h = HeaderMap::new();
    h.append(
        "cookie",
        "a=1; __Host-trustgate=s.t; b=2; __Host-trustgate.mail=m"
            .parse()
            .unwrap(),
    );
    h.append("cookie", "__Host-trustgate-detour=d".parse().unwrap());
    h.append("cookie", "c=3".parse().unwrap());
    strip_gateway_cookies(&mut h);
    let lines: Vec<&str> = h
        .get_all("cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(lines, ["a=1; b=2", "c=3"]);

    let mut r = HeaderMap::new();
    r.append("set-cookie", "app=1; Path=/".parse().unwrap());
    r.append(
        "set-cookie",
        "__Host-trustgate.admin=planted; Path=/; Secure"
            .parse()
            .unwrap(),
    );
    r.append("set-cookie", " __Host-trustgate=x".parse().unwrap());
    drop_gateway_set_cookies(&mut r);
    let lines: Vec<&str> = r
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(lines, ["app=1; Path=/"]);
}
