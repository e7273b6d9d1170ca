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
            GatewayError::AcsMethod(http::Method::PUT),
            405,
            "acs_method_not_allowed",
        ),
        (
            GatewayError::AssertionNotPosted("in the query"),
            400,
            "assertion_not_posted",
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

/// One of every answer the gateway writes itself that is not an error.
fn pages() -> Vec<Answer<'static>> {
    static LIST: [(String, bool); 0] = [];
    vec![
        Answer::Denied {
            app: "mail",
            enrollment: Some("https://enroll.example/?x=1"),
        },
        Answer::EnrollmentExpired {
            app: "mail",
            restart: "/login",
        },
        Answer::AssertionRejected {
            app: "mail",
            reason: "bad_signature",
            restart: "/login",
        },
        Answer::ReplayCacheFull {
            app: "mail",
            restart: "/login",
        },
        Answer::SessionRequired,
        Answer::SignIn { location: "/login" },
        Answer::Enroll {
            location: "https://enroll.example/",
        },
        Answer::Apps { list: &LIST },
    ]
}

/// The pages' rows: status, reason and headers, and what the response is.
#[tokio::test]
async fn page_rows() {
    let expect = [
        (403, "denied", None),
        (200, "enrollment_expired", None),
        (403, "assertion_rejected", None),
        (503, "replay_cache_full", Some("60")),
        (401, "session_required", None),
        (302, "sign_in", None),
        (302, "enroll", None),
        (200, "apps", None),
    ];
    for (answer, (status, reason, retry_after)) in pages().iter().zip(expect) {
        let row = answer.row();
        assert_eq!((row.status.as_u16(), row.reason), (status, reason));
        let resp = answer.response("rid-2");
        assert_eq!(resp.status().as_u16(), status, "{answer:?}");
        assert_eq!(
            resp.headers()
                .get(header::RETRY_AFTER)
                .map(|v| v.to_str().unwrap()),
            retry_after,
            "{answer:?}"
        );
        assert_eq!(resp.headers()[header::CACHE_CONTROL], "no-store");
        if status == 302 {
            assert!(resp.headers().contains_key(header::LOCATION));
        } else {
            let html = body_text(resp).await;
            assert!(html.contains("rid-2"), "{html}");
            assert!(html.contains(&escape_html(row.title)), "{html}");
        }
    }
}

/// The README's table of answers lists every row, with its status, and no
/// row the code does not have.
#[test]
fn the_readme_lists_every_answer() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let start = readme
        .find("| situation | status | reason label |")
        .expect("the README has the answer table");
    let table: Vec<(u16, String)> = readme[start..]
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let n = cells.len();
            (
                cells[n - 3].parse().expect("a status"),
                cells[n - 2].trim_matches('`').to_string(),
            )
        })
        .collect();
    let errors = [
        GatewayError::MissingHost,
        GatewayError::BadPath(crate::route::PathError::DotSegment),
        GatewayError::MethodNotAllowed(http::Method::CONNECT),
        GatewayError::AcsMethod(http::Method::PUT),
        GatewayError::AssertionNotPosted(""),
        GatewayError::UnknownHost,
        GatewayError::ClientBody(String::new()),
        GatewayError::Internal(String::new()),
        GatewayError::BodyTimeout(Duration::ZERO),
        GatewayError::BodyTooLarge { limit: 1 },
        GatewayError::UpstreamConnect(String::new()),
        GatewayError::UpstreamReset(String::new()),
        GatewayError::UpstreamProtocol(String::new()),
        GatewayError::UpstreamTimeout(Duration::ZERO),
        GatewayError::SharedStateUnavailable(String::new()),
    ];
    let mut rows: Vec<(u16, String)> = errors
        .iter()
        .map(Answer::Error)
        .chain(pages())
        .map(|a| {
            let r = a.row();
            (r.status.as_u16(), r.reason.to_string())
        })
        .collect();
    let mut table = table;
    rows.sort();
    table.sort();
    table.dedup();
    assert_eq!(table, rows, "README answer table vs Answer::row");
}
