//! What an SRE expects of a proxy they run: a reload applies what it can
//! (the connection limit, the log filter) and names what needs a restart;
//! logs are plain values without colour codes; the access log is there when
//! asked for.

mod utils;

use std::process::Stdio;
use std::time::{Duration, Instant};

use http::{Request, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use utils::*;

/// A kept-alive connection that has been served once.
async fn held_connection(gw: &TestGateway) -> TcpStream {
    let mut tcp = TcpStream::connect(gw.plain_addr()).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tcp.read(&mut buf).await.unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    tcp
}

/// Whether a new connection is served (true) or closed unserved.
async fn served(gw: &TestGateway) -> bool {
    let mut tcp = TcpStream::connect(gw.plain_addr()).await.unwrap();
    let _ = tcp
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut buf)).await;
    String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 200")
}

#[tokio::test]
async fn a_reload_applies_the_connection_limit_and_names_restart_keys() {
    let up = Upstream::echo_headers().await;
    let rest = app(&up.url());
    let gw = TestGateway::start("max_connections = 2", &rest).await;
    let _a = held_connection(&gw).await;
    let _b = held_connection(&gw).await;
    assert!(!served(&gw).await, "the third connection is over the limit");
    let m = gw.metrics().await;
    assert_eq!(
        metric(
            &m,
            "trustgate_connections_refused_total{listener=\"plain\"}"
        ),
        1.0
    );

    // Raised live, with a restart-only key changed beside it.
    std::fs::write(
        &gw.config_path,
        config_text(
            "max_connections = 4\nworker_threads = 1\nruntime = \"shared\"",
            &rest,
        ),
    )
    .unwrap();
    gw.running().reload().unwrap();
    let _c = held_connection(&gw).await;
    assert!(served(&gw).await, "a fourth connection fits the new limit");
    let m = gw.metrics().await;
    assert_eq!(
        metric(
            &m,
            "trustgate_config_reload_warnings_total{key=\"server.worker_threads\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(
            &m,
            "trustgate_config_reload_warnings_total{key=\"server.runtime\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(
            &m,
            "trustgate_config_reload_warnings_total{key=\"server.listen\"}"
        ),
        0.0
    );

    // Lowered live: three are open, the limit is three, a fourth is refused.
    std::fs::write(
        &gw.config_path,
        config_text(
            "max_connections = 3\nworker_threads = 1\nruntime = \"shared\"",
            &rest,
        ),
    )
    .unwrap();
    gw.running().reload().unwrap();
    assert!(!served(&gw).await, "over the lowered limit");
    drop(_c);
    // A closed connection frees its slot for the next.
    let start = Instant::now();
    while !served(&gw).await {
        assert!(start.elapsed() < Duration::from_secs(5), "slot never freed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The gateway's own stderr, from start to a clean stop.
async fn run_and_collect_stderr(log: &str, traffic: bool) -> String {
    run_reload_and_collect_stderr(log, traffic, None).await
}

/// As [`run_and_collect_stderr`], with a SIGHUP to `[log] reload_log` first.
async fn run_reload_and_collect_stderr(
    log: &str,
    traffic: bool,
    reload_log: Option<&str>,
) -> String {
    let up = Upstream::echo_headers().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    let (plain, admin) = (free_port(), free_port());
    let write = |log: &str| {
        std::fs::write(
            &path,
            format!(
                "[server]\nplain_listen = \"127.0.0.1:{plain}\"\n\
                 [admin]\nlisten = \"127.0.0.1:{admin}\"\n[log]\n{log}\n{}",
                app(&up.url())
            ),
        )
        .unwrap();
    };
    write(log);
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_trustgate"))
        .args(["run", "--config"])
        .arg(&path)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let ready = format!("http://127.0.0.1:{admin}/readyz");
    let start = Instant::now();
    loop {
        let ok = plain_client()
            .request(Request::get(&ready).body(full("")).unwrap())
            .await
            .is_ok_and(|r| r.status() == StatusCode::OK);
        if ok {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "never ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if traffic {
        let resp = plain_client()
            .request(
                Request::get(format!("http://127.0.0.1:{plain}/some/path?secret=1"))
                    .header("host", "localhost")
                    .header("x-request-id", "access-log-test")
                    .body(full(""))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        body_string(resp).await;
    }
    let pid = child.id().unwrap();
    if let Some(next) = reload_log {
        write(next);
        std::process::Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap();
        let url = format!("http://127.0.0.1:{admin}/metrics");
        let start = Instant::now();
        loop {
            let resp = plain_client()
                .request(Request::get(&url).body(full("")).unwrap())
                .await
                .unwrap();
            let m = body_string(resp).await;
            if metric(&m, "trustgate_config_reloads_total{result=\"success\"}") >= 1.0 {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(10), "no reload");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .await
        .unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(15), child.wait()).await;
    stderr
}

#[tokio::test]
async fn json_logs_carry_values_and_text_logs_no_colour_when_piped() {
    let json = run_and_collect_stderr("format = \"json\"", false).await;
    let ready = json
        .lines()
        .find(|l| l.contains("trustgate ready"))
        .unwrap_or_else(|| panic!("no ready line in {json}"));
    let v: serde_json::Value = serde_json::from_str(ready).unwrap();
    assert!(
        v["plain"]
            .as_str()
            .is_some_and(|p| p.starts_with("127.0.0.1:")),
        "{ready}"
    );
    assert!(
        v.get("tls").is_none(),
        "an absent listener is no field: {ready}"
    );
    assert!(!json.contains("Some("), "{json}");
    assert!(!json.contains("None"), "{json}");

    let text = run_and_collect_stderr("format = \"text\"", false).await;
    assert!(text.contains("trustgate ready"), "{text}");
    assert!(
        !text.contains('\u{1b}'),
        "ANSI escapes in piped logs: {text:?}"
    );
}

#[tokio::test]
async fn the_access_log_is_off_by_default_and_one_line_per_request_when_on() {
    let off = run_and_collect_stderr("format = \"json\"", true).await;
    assert!(!off.contains("trustgate::access"), "{off}");
    let on = run_and_collect_stderr("format = \"json\"\naccess = true", true).await;
    let line = on
        .lines()
        .find(|l| l.contains("trustgate::access"))
        .unwrap_or_else(|| panic!("no access line in {on}"));
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["method"], "GET", "{line}");
    assert_eq!(v["host"], "localhost", "{line}");
    assert_eq!(v["path"], "/some/path", "the query stays out: {line}");
    assert_eq!(v["status"], 200, "{line}");
    assert_eq!(v["request_id"], "access-log-test", "{line}");
    assert!(v["duration_ms"].as_f64().is_some(), "{line}");
    assert!(!line.contains("secret"), "{line}");
}

#[tokio::test]
async fn a_reload_changes_the_log_level_live() {
    let log =
        run_reload_and_collect_stderr("level = \"warn\"", false, Some("level = \"info\"")).await;
    assert!(
        !log.contains("trustgate ready"),
        "info before the reload: {log}"
    );
    assert!(
        log.contains("config reloaded"),
        "info after the reload: {log}"
    );
}
