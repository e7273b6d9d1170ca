//! The `trustgate` binary: `check` on good and bad configs, and the real
//! signal path (SIGHUP reload, SIGTERM drain) of `run`.

mod utils;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use http::{Request, Response, StatusCode};
use utils::*;

fn trustgate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_trustgate"))
}

#[test]
fn check_accepts_the_shipped_config() {
    let out = trustgate()
        .args(["check", "--config"])
        .arg(root().join("config.toml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn check_lists_every_error_with_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[server]\nplain_listen = \"127.0.0.1:0\"\nmax_connections = 0\n\
         [apps.mail]\nhosts = [\"mail.example\"]\nupstream = \"gopher://mail\"\n",
    )
    .unwrap();
    let out = trustgate()
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("error: server.max_connections:"), "{text}");
    assert!(text.contains("error: apps.mail.upstream:"), "{text}");
    assert!(text.contains("2 error(s)"), "{text}");
}

#[test]
fn check_names_a_missing_file() {
    let out = trustgate()
        .args(["check", "--config", "/nonexistent/trustgate.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("cannot read config file"));
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn kill(pid: u32, signal: &str) {
    let ok = Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{signal} failed");
}

async fn get_status(url: &str, host: &str) -> Option<StatusCode> {
    let req = Request::get(url)
        .header("host", host)
        .body(full(""))
        .unwrap();
    plain_client().request(req).await.ok().map(|r| r.status())
}

/// Real signals: SIGHUP reloads the file, SIGTERM drains and exits 0 after
/// the request in flight has completed.
#[tokio::test]
async fn run_reloads_on_sighup_and_drains_on_sigterm() {
    let up = Upstream::start(|req: Request<hyper::body::Incoming>| async move {
        if req.uri().path() == "/slow" {
            tokio::time::sleep(Duration::from_millis(1500)).await;
        }
        Response::new(full("done"))
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    let (plain, admin) = (free_port(), free_port());
    let write = |extra: &str| {
        let text = format!(
            "[server]\nplain_listen = \"127.0.0.1:{plain}\"\ngrace_period = \"10s\"\n\
             [admin]\nlisten = \"127.0.0.1:{admin}\"\n{}{extra}",
            app(&up.url())
        );
        std::fs::write(&path, text).unwrap();
    };
    write("");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_trustgate"))
        .args(["run", "--config"])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();

    let ready = format!("http://127.0.0.1:{admin}/readyz");
    let start = Instant::now();
    while get_status(&ready, "admin").await != Some(StatusCode::OK) {
        assert!(start.elapsed() < Duration::from_secs(20), "never ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let base = format!("http://127.0.0.1:{plain}");
    assert_eq!(
        get_status(&format!("{base}/"), "new.test").await,
        Some(StatusCode::NOT_FOUND)
    );

    write(&format!(
        "[apps.new]\nhosts = [\"new.test\"]\nupstream = {:?}\n",
        up.url()
    ));
    kill(pid, "HUP");
    let start = Instant::now();
    while get_status(&format!("{base}/"), "new.test").await != Some(StatusCode::OK) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "reload not applied"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let slow_url = format!("{base}/slow");
    let in_flight = tokio::spawn(async move {
        let req = Request::get(slow_url)
            .header("host", "localhost")
            .body(full(""))
            .unwrap();
        plain_client().request(req).await.map(|r| r.status())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    kill(pid, "TERM");
    assert_eq!(in_flight.await.unwrap().unwrap(), StatusCode::OK);
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .expect("exits after draining")
        .unwrap();
    assert!(status.success(), "exit status {status:?}");
}
