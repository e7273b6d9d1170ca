use super::*;

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
