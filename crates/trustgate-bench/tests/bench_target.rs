//! `trustgate-bench --target` against a gateway the user runs. A file of
//! its own: it picks free ports for that gateway, and the harness tests
//! beside it pick theirs at the same time.

use std::process::Command;

mod common;
use common::gateway_bin;

/// Against a gateway the user runs (`--target`), the expected statuses come
/// from the target: an app that answers its ACS POST with 303, as the
/// shipped demo does, is no error; `--expect-status` can say so too.
#[tokio::test(flavor = "multi_thread")]
async fn a_target_sets_the_expected_statuses() {
    use std::convert::Infallible;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    |req: http::Request<hyper::body::Incoming>| async move {
                        let mut resp = http::Response::new(http_body_util::Full::new(
                            bytes::Bytes::from_static(b"ok"),
                        ));
                        if req.method() == http::Method::POST {
                            *resp.status_mut() = http::StatusCode::SEE_OTHER;
                            resp.headers_mut()
                                .insert("location", http::HeaderValue::from_static("/"));
                        }
                        Ok::<_, Infallible>(resp)
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    let port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let (tls, plain, admin) = (port(), port(), port());
    let config = Command::new(env!("CARGO_BIN_EXE_trustgate-bench"))
        .args(["config", "--upstream", &upstream.to_string()])
        .args(["--tls", &format!("127.0.0.1:{tls}")])
        .args(["--plain", &format!("127.0.0.1:{plain}")])
        .args(["--admin", &format!("127.0.0.1:{admin}")])
        .output()
        .unwrap();
    assert!(config.status.success());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.toml");
    std::fs::write(&path, &config.stdout).unwrap();
    let mut gw = tokio::process::Command::new(gateway_bin())
        .args(["run", "--config"])
        .arg(&path)
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", tls)).is_err() {
        assert!(start.elapsed().as_secs() < 20, "gateway never listened");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let target = format!("https://localhost:{tls}");
    let run = |extra: Vec<String>| {
        let target = target.clone();
        tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_trustgate-bench"))
                .args([
                    "--target",
                    &target,
                    "--scenario",
                    "acs-trusted",
                    "--requests",
                    "50",
                    "--json",
                ])
                .args(extra)
                .output()
                .unwrap()
        })
    };
    // Learned from the first answer.
    let out = run(vec![]).await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["summary"][0]["errors"], 0, "{report}");
    // Given, and wrong: every answer counts against it.
    let out = run(vec!["--expect-status".into(), "acs-trusted=200".into()])
        .await
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["summary"][0]["errors"], 50, "{report}");
    // Nonsense is a usage error.
    let out = run(vec!["--expect-status".into(), "acs-trusted=abc".into()])
        .await
        .unwrap();
    assert!(!out.status.success());
    let _ = gw.kill().await;
}
