use std::time::Duration;

use http_body_util::BodyExt;

use super::*;

async fn body_text(resp: Response<Body>) -> String {
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// Every row of the error table: status, reason, and a page that hides the
/// internal detail carried by the error.
#[tokio::test]
async fn error_table() {
    let secret_detail = "10.1.2.3:8080 connection refused";
    let rows = [
        (GatewayError::MissingHost, 400, "missing_host"),
        (GatewayError::UnknownHost, 404, "unknown_host"),
        (
            GatewayError::BadPath(crate::route::PathError::DotSegment),
            400,
            "bad_path",
        ),
        (
            GatewayError::BodyTimeout(std::time::Duration::from_secs(1)),
            408,
            "body_timeout",
        ),
        (
            GatewayError::MethodNotAllowed(http::Method::CONNECT),
            405,
            "method_not_allowed",
        ),
        (
            GatewayError::BodyTooLarge { limit: 10 },
            413,
            "body_too_large",
        ),
        (
            GatewayError::UpstreamConnect(secret_detail.into()),
            502,
            "upstream_connect",
        ),
        (
            GatewayError::UpstreamReset(secret_detail.into()),
            502,
            "upstream_reset",
        ),
        (
            GatewayError::UpstreamProtocol(secret_detail.into()),
            502,
            "upstream_protocol",
        ),
        (
            GatewayError::UpstreamTimeout(Duration::from_secs(3)),
            504,
            "upstream_timeout",
        ),
        (
            GatewayError::ClientBody(secret_detail.into()),
            400,
            "bad_request_body",
        ),
        (
            GatewayError::Internal(secret_detail.into()),
            500,
            "internal",
        ),
        (
            GatewayError::SharedStateUnavailable(secret_detail.into()),
            503,
            "shared_state_unavailable",
        ),
    ];
    let mut listed: Vec<&str> = rows.iter().map(|r| r.2).collect();
    listed.sort_unstable();
    let mut reasons = GatewayError::REASONS.to_vec();
    reasons.sort_unstable();
    assert_eq!(listed, reasons, "REASONS lists every row, once");
    for (err, status, reason) in rows {
        assert_eq!(err.status().as_u16(), status, "{err:?}");
        assert_eq!(err.reason(), reason);
        let resp = err.response("rid-1");
        assert_eq!(resp.status().as_u16(), status);
        assert_eq!(
            resp.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
        let html = body_text(resp).await;
        assert!(html.contains("rid-1"), "{html}");
        assert!(!html.contains("10.1.2.3"), "page leaks internals: {html}");
    }
}

#[test]
fn html_is_escaped() {
    assert_eq!(
        escape_html("<a href=\"x\">'&'</a>"),
        "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
    );
}

#[tokio::test]
async fn request_id_is_escaped_in_pages() {
    let html = body_text(GatewayError::UnknownHost.response("<script>")).await;
    assert!(html.contains("&lt;script&gt;"));
    assert!(!html.contains("<script>"));
}

#[test]
fn local_targets_stay_on_this_origin() {
    for ok in [
        "/",
        "/inbox",
        "/a/b?c=d#e",
        "/caf%C3%A9",
        "/x//y",
        "/x\u{e9}",
    ] {
        assert!(is_local_target(ok), "{ok:?}");
    }
    for bad in [
        "",
        "inbox",
        "//evil.example/",
        "/\\evil.example/",
        "/\t/evil.example/",
        "/\n/evil.example",
        "/\r//evil.example",
        "\t//evil.example",
        " /x",
        "/x y",
        "/a\\b",
        "https://evil.example/",
        "javascript:alert(1)",
        "/\u{0}",
        "/x\u{7f}",
    ] {
        assert!(!is_local_target(bad), "{bad:?}");
    }
}
