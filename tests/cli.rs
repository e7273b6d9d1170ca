//! The `trustgate` binary: `check` on good and bad configs, and the real
//! signal path (SIGHUP reload, SIGTERM drain) of `run`.

mod utils;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use http::{Request, Response, StatusCode};
use utils::*;

/// The binary, without the environment that changes what `check` says
/// (a CI runner in a Kubernetes pod, a configured replica count).
fn trustgate() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_trustgate"));
    cmd.env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("TRUSTGATE_REPLICAS")
        .env_remove("TRUSTGATE_CONFIG");
    cmd
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
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "no config file at /nonexistent/trustgate.toml: pass -c FILE, or set TRUSTGATE_CONFIG"
        ),
        "{err}"
    );
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

/// Starts `trustgate run --config path` and waits until its admin port
/// (`admin`) says ready; returns the child and its pid.
async fn run_until_ready(path: &std::path::Path, admin: u16) -> (tokio::process::Child, u32) {
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_trustgate"))
        .args(["run", "--config"])
        .arg(path)
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
    (child, pid)
}

/// Real signals: SIGHUP reloads the file, SIGTERM drains and exits 0 after
/// the request in flight has completed.
#[tokio::test]
async fn run_reloads_on_sighup_and_drains_on_sigterm() {
    // `/slow` says when it arrived and answers when the test lets it, so
    // that SIGTERM lands while it is in flight, by signal, not by sleep.
    let (arrived_tx, mut arrived) = tokio::sync::mpsc::channel::<()>(1);
    let release = std::sync::Arc::new(tokio::sync::Notify::new());
    let upstream_release = release.clone();
    let up = Upstream::start(move |req: Request<hyper::body::Incoming>| {
        let (arrived_tx, release) = (arrived_tx.clone(), upstream_release.clone());
        async move {
            if req.uri().path() == "/slow" {
                let _ = arrived_tx.send(()).await;
                release.notified().await;
            }
            Response::new(full("done"))
        }
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
    let (mut child, pid) = run_until_ready(&path, admin).await;
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
    tokio::time::timeout(Duration::from_secs(10), arrived.recv())
        .await
        .expect("/slow reaches the upstream");
    kill(pid, "TERM");
    // Draining: the listener closes while the request is still in flight.
    let start = Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", plain))
        .await
        .is_ok()
    {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "still accepting after SIGTERM"
        );
        tokio::task::yield_now().await;
    }
    assert!(
        !in_flight.is_finished(),
        "the request waits for its upstream"
    );
    release.notify_one();
    assert_eq!(in_flight.await.unwrap().unwrap(), StatusCode::OK);
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .expect("exits after draining")
        .unwrap();
    assert!(status.success(), "exit status {status:?}");
}

/// `server.worker_threads` sizes the serving threads of the real binary:
/// per-core threads of its own (the control runtime on the main thread), or
/// the shared runtime's workers.
#[tokio::test]
async fn run_starts_the_configured_number_of_workers() {
    for (runtime, workers, named) in [
        ("per_core", 3, "trustgate-serve"),
        ("shared", 3, "tokio-rt-worker"),
        ("shared", 1, "tokio-rt-worker"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        let (plain, admin) = (free_port(), free_port());
        std::fs::write(
            &path,
            format!(
                "[server]\nplain_listen = \"127.0.0.1:{plain}\"\nworker_threads = {workers}\n\
                 runtime = \"{runtime}\"\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n{}",
                app("http://127.0.0.1:9")
            ),
        )
        .unwrap();
        let (mut child, pid) = run_until_ready(&path, admin).await;
        // Threads by name (comm keeps 15 bytes: "trustgate-serve-0" reads
        // "trustgate-serve"); blocking-pool threads are not started until
        // something blocks.
        let names: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
            .unwrap()
            .filter_map(|t| std::fs::read_to_string(t.unwrap().path().join("comm")).ok())
            .map(|comm| comm.trim().to_string())
            .collect();
        let count = |name: &str| names.iter().filter(|n| *n == name).count();
        assert_eq!(count(named), workers, "{runtime}: {names:?}");
        if runtime == "per_core" {
            assert_eq!(count("tokio-rt-worker"), 0, "{names:?}");
        }
        kill(pid, "TERM");
        let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
            .await
            .expect("exits on SIGTERM")
            .unwrap();
        assert!(status.success(), "{runtime}: exit status {status:?}");
    }
}

const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";

#[test]
fn explain_prints_the_rules_considered_as_json() {
    let out = trustgate()
        .args(["explain", "--config"])
        .arg(root().join("config.toml"))
        .args([
            "--app",
            "demo",
            "--user-agent",
            IPHONE,
            "--trust",
            "not_trusted",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["platform"], "ios");
    assert_eq!(v["client_kind"], "browser");
    assert_eq!(v["trust"], "not_trusted");
    assert_eq!(v["rule"], "untrusted-mobile-enrolls");
    assert_eq!(v["action"], "enroll");
    let considered = v["considered"].as_array().unwrap();
    assert_eq!(considered[0]["rule"], "trusted-mobile");
    assert_eq!(considered[0]["matched"], false);
    assert!(considered[0]["why"]
        .as_str()
        .unwrap()
        .contains("not trusted"));
    assert_eq!(considered[1]["matched"], true);
}

#[test]
fn explain_reads_trust_from_a_verified_assertion() {
    let signer = trustgate::demo::idp::Signer::from_pem(
        &std::fs::read(root().join("certs/demo-idp.key")).unwrap(),
        &std::fs::read(root().join("certs/demo-idp.pem")).unwrap(),
    )
    .unwrap();
    let attrs = vec![("DeviceTrustSignal", vec!["TRUSTED".to_string()])];
    let xml = signer.response(&trustgate::demo::idp::Grant {
        issuer: "http://127.0.0.2:8082/idp",
        audience: "https://127.0.0.1:8443/saml/metadata",
        acs_url: "https://127.0.0.1:8443/saml/acs",
        name_id: "alice@corp.example",
        attributes: &attrs,
        now: std::time::SystemTime::now(),
        lifetime: Duration::from_secs(300),
    });
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("response.xml");
    std::fs::write(&file, xml).unwrap();
    let out = trustgate()
        .args(["explain", "--config"])
        .arg(root().join("config.toml"))
        .args(["--app", "demo", "--user-agent", IPHONE, "--assertion"])
        .arg(&file)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("trust:       trusted"), "{text}");
    assert!(
        text.contains("action:      allow (rule \"trusted-mobile\")"),
        "{text}"
    );

    // A forged copy is refused, exit 1.
    std::fs::write(
        &file,
        std::fs::read_to_string(&file)
            .unwrap()
            .replace("TRUSTED", "UNKNOWN"),
    )
    .unwrap();
    let out = trustgate()
        .args(["explain", "--config"])
        .arg(root().join("config.toml"))
        .args(["--app", "demo", "--user-agent", IPHONE, "--assertion"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad_digest"));
}

fn policy_config(dir: &std::path::Path, rules: &str, enrollment: &str) -> std::path::PathBuf {
    let path = dir.join("c.toml");
    std::fs::write(
        &path,
        format!(
            "[server]\nplain_listen = \"127.0.0.1:0\"\n[session]\nkeys = [\"0123456789abcdef0123456789abcdef\"]\n\
             [apps.mail]\nhosts = [\"mail.corp.example\"]\nupstream = \"http://127.0.0.1:1\"\n\
             enrollment_url = \"{enrollment}\"\n\
             [apps.mail.idp]\nentity_id = \"http://idp/\"\ncerts = [{:?}]\n\
             [apps.mail.sp]\nentity_id = \"https://mail/sp\"\nacs_url = \"https://mail.corp.example/saml/acs\"\n{rules}",
            root().join("certs/demo-idp.pem")
        ),
    )
    .unwrap();
    path
}

#[test]
fn check_warns_about_the_ipados_desktop_mode_bypass() {
    let dir = tempfile::tempdir().unwrap();
    let path = policy_config(
        dir.path(),
        "[[apps.mail.policy.rules]]\nname = \"trusted-mobile\"\nplatforms = [\"ios\", \"ipados\"]\ntrust = \"trusted\"\naction = \"allow\"\n",
        "https://uem.example/enroll/welcome",
    );
    let out = trustgate()
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("warning: apps.mail.policy"), "{text}");
    assert!(text.contains("macos"), "{text}");
}

#[test]
fn check_refuses_protecting_the_enrollment_host_and_unreachable_rules() {
    let dir = tempfile::tempdir().unwrap();
    let path = policy_config(
        dir.path(),
        "[[apps.mail.policy.rules]]\nname = \"all\"\naction = \"allow\"\n\
         [[apps.mail.policy.rules]]\nname = \"never\"\nplatforms = [\"ios\"]\naction = \"deny\"\n",
        "https://mail.corp.example/enroll/welcome",
    );
    let out = trustgate()
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("apps.mail.enrollment_url"), "{text}");
    assert!(text.contains("do not protect Workspace ONE"), "{text}");
    assert!(text.contains("apps.mail.policy.rules[1]"), "{text}");
}

#[test]
fn check_warns_when_an_enforced_app_shares_its_host_with_a_weaker_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = policy_config(
        dir.path(),
        "[apps.site]\nhosts = [\"MAIL.corp.example\"]\nupstream = \"http://127.0.0.1:1\"\n",
        "https://uem.example/enroll/welcome",
    );
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace(
            "enrollment_url =",
            "path_prefix = \"/mail\"\nlogin_path = \"/mail/login\"\nenrollment_url =",
        )
        .replace(
            "https://mail.corp.example/saml/acs",
            "https://mail.corp.example/mail/saml/acs",
        );
    std::fs::write(&path, text).unwrap();
    let out = trustgate()
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("warning: apps.mail.path_prefix: mail.corp.example is shared with apps.site, which does not enforce device trust"),
        "{text}"
    );
}

#[test]
fn check_refuses_a_path_prefix_no_request_could_match() {
    let dir = tempfile::tempdir().unwrap();
    let path = policy_config(dir.path(), "", "https://uem.example/enroll/welcome");
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "enrollment_url =",
        "path_prefix = \"/%61dmin\"\nenrollment_url =",
    );
    std::fs::write(&path, text).unwrap();
    let out = trustgate()
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("apps.mail.path_prefix"), "{text}");
}

/// A config whose enforced paths would never reach the app is refused;
/// one that makes the app public is warned about.
#[test]
fn check_refuses_enforced_paths_that_reach_another_app() {
    let dir = tempfile::tempdir().unwrap();
    let run = |replace: &[(&str, &str)]| {
        let path = policy_config(
            dir.path(),
            "[apps.site]\nhosts = [\"mail.corp.example\"]\nupstream = \"http://127.0.0.1:1\"\n",
            "https://uem.example/enroll/welcome",
        );
        let mut text = std::fs::read_to_string(&path).unwrap();
        for (from, to) in replace {
            text = text.replace(from, to);
        }
        std::fs::write(&path, text).unwrap();
        let out = trustgate()
            .args(["check", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, text) = run(&[(
        "enrollment_url =",
        "path_prefix = \"/mail/*\"\nenrollment_url =",
    )]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("apps.mail.path_prefix: must be a literal path"),
        "{text}"
    );
    // The ACS (from sp.acs_url, /saml/acs) is outside /mail: the neighbour
    // would get the POST unverified.
    let (code, text) = run(&[(
        "enrollment_url =",
        "path_prefix = \"/mail\"\nlogin_path = \"/mail/login\"\nenrollment_url =",
    )]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("apps.mail.acs_paths[0]: mail.corp.example/saml/acs is routed to apps.site"),
        "{text}"
    );
    let (code, text) = run(&[
        (
            "enrollment_url =",
            "public_paths = [\"/\"]\nenrollment_url =",
        ),
        (
            "[apps.site]\nhosts = [\"mail.corp.example\"]",
            "[apps.site]\nhosts = [\"site.corp.example\"]",
        ),
    ]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("warning: apps.mail.public_paths[0]"),
        "{text}"
    );
}

/// A demo-IdP assertion for the shipped demo app, signed at `now`, in a
/// file.
fn demo_assertion(dir: &std::path::Path, now: std::time::SystemTime) -> std::path::PathBuf {
    let signer = trustgate::demo::idp::Signer::from_pem(
        &std::fs::read(root().join("certs/demo-idp.key")).unwrap(),
        &std::fs::read(root().join("certs/demo-idp.pem")).unwrap(),
    )
    .unwrap();
    let attrs = vec![("DeviceTrustSignal", vec!["TRUSTED".to_string()])];
    let xml = signer.response(&trustgate::demo::idp::Grant {
        issuer: "http://127.0.0.2:8082/idp",
        audience: "https://127.0.0.1:8443/saml/metadata",
        acs_url: "https://127.0.0.1:8443/saml/acs",
        name_id: "alice@corp.example",
        attributes: &attrs,
        now,
        lifetime: Duration::from_secs(300),
    });
    let file = dir.join("captured.xml");
    std::fs::write(&file, xml).unwrap();
    file
}

#[test]
fn explain_judges_a_captured_assertion_at_the_given_time() {
    let dir = tempfile::tempdir().unwrap();
    // Captured a day ago: expired now, valid at its own time.
    let then = std::time::SystemTime::now() - Duration::from_secs(86_400);
    let file = demo_assertion(dir.path(), then);
    let at = time::OffsetDateTime::from(then + Duration::from_secs(60))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let explain = |extra: &[&str]| {
        trustgate()
            .args(["explain", "-c"])
            .arg(root().join("config.toml"))
            .args(["--app", "demo", "--user-agent", IPHONE, "--assertion"])
            .arg(&file)
            .args(extra)
            .output()
            .unwrap()
    };
    let out = explain(&[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("expired"));
    let out = explain(&["--now", &at]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = explain(&["--now", "yesterday"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn verify_takes_its_settings_from_an_app_and_lists_the_checks() {
    let dir = tempfile::tempdir().unwrap();
    let file = demo_assertion(dir.path(), std::time::SystemTime::now());
    let out = trustgate()
        .args(["verify", "--app", "demo", "--config"])
        .arg(root().join("config.toml"))
        .arg(&file)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    assert!(out.status.success(), "{v}");
    assert_eq!(v["verdict"], "accept");
    let ran: Vec<&str> = v["checks"]["ran"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    for check in [
        "signature",
        "issuer",
        "audience",
        "destination_and_recipient",
    ] {
        assert!(ran.contains(&check), "{check} in {v}");
    }
    assert_eq!(v["checks"]["skipped"][0], "replay");
    // Without an app, what is not given is not checked, and says so.
    let out = trustgate()
        .args(["verify", "--idp-cert"])
        .arg(root().join("certs/demo-idp.pem"))
        .args(["--protocol", "saml2"])
        .arg(&file)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let skipped = v["checks"]["skipped"].to_string();
    assert!(
        skipped.contains("audience") && skipped.contains("issuer"),
        "{v}"
    );
    // An app that does not exist is a usage error.
    let out = trustgate()
        .args(["verify", "--app", "nope", "--config"])
        .arg(root().join("config.toml"))
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no app \"nope\""));
}

#[test]
fn check_speaks_json_fails_warnings_under_strict_and_reads_trustgate_config() {
    let dir = tempfile::tempdir().unwrap();
    let path = policy_config(
        dir.path(),
        "[[apps.mail.policy.rules]]\nname = \"trusted-mobile\"\nplatforms = [\"ios\", \"ipados\"]\ntrust = \"trusted\"\naction = \"allow\"\n",
        "https://uem.example/enroll/welcome",
    );
    let out = trustgate()
        .args(["check", "--json"])
        .env("TRUSTGATE_CONFIG", &path)
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], true);
    assert!(
        v["warnings"][0]["path"]
            .as_str()
            .unwrap()
            .starts_with("apps.mail.policy"),
        "{v}"
    );
    assert_eq!(v["warnings"][0]["code"], "ipados_desktop_mode");
    let out = trustgate()
        .args(["check", "--strict", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let out = trustgate()
        .args(["check", "--json", "--config", "/nonexistent.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    std::fs::write(&path, "[server]\nlisten = 1\n").unwrap();
    let out = trustgate()
        .args(["check", "--json", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["errors"][0]["path"], "server.listen");
}

#[test]
fn help_lists_values_and_completions_and_subject_hashes_print() {
    let out = trustgate().args(["explain", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("trusted") && help.contains("not_trusted"),
        "{help}"
    );
    let out = trustgate().args(["verify", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("saml2") && help.contains("wsfed"), "{help}");
    // TRUSTED in capitals, as the attribute carries it.
    let out = trustgate()
        .args(["explain", "-c"])
        .arg(root().join("config.toml"))
        .args([
            "--app",
            "demo",
            "--user-agent",
            IPHONE,
            "--trust",
            "TRUSTED",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = trustgate().args(["completions", "bash"]).output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("_trustgate()"));

    let out = trustgate()
        .args(["subject-hash", " Bob@Corp.example\n"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let plain = trustgate::remember::token::SubjectHash::of("Bob@Corp.example").to_string();
    let email = trustgate::remember::token::SubjectHash::of("bob@corp.example").to_string();
    assert!(text.contains(&plain) && text.contains(&email), "{text}");
}

#[tokio::test]
async fn healthcheck_probes_the_admin_listener() {
    let up = Upstream::echo_headers().await;
    let gw = TestGateway::start("", &app(&up.url())).await;
    let url = format!("http://{}/readyz", gw.running().admin_addr);
    let probe = |url: String| {
        tokio::task::spawn_blocking(move || {
            trustgate()
                .args(["healthcheck", "--url", &url])
                .output()
                .unwrap()
        })
    };
    let ok = probe(url).await.unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let missing = probe(format!("http://{}/nothing", gw.running().admin_addr))
        .await
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    let closed = probe(format!("http://127.0.0.1:{}/readyz", free_port()))
        .await
        .unwrap();
    assert_eq!(closed.status.code(), Some(1));
}

#[test]
fn check_warns_when_replicas_would_not_share_replay() {
    let dir = tempfile::tempdir().unwrap();
    let path = policy_config(dir.path(), "", "https://uem.example/enroll/welcome");
    let run = |env: &[(&str, &str)]| {
        let mut cmd = trustgate();
        cmd.args(["check", "-c"])
            .arg(&path)
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env_remove("TRUSTGATE_REPLICAS");
        for (k, v) in env {
            cmd.env(k, v);
        }
        String::from_utf8_lossy(&cmd.output().unwrap().stdout).into_owned()
    };
    assert!(!run(&[]).contains("no [redis]"));
    for env in [
        &[("KUBERNETES_SERVICE_HOST", "10.0.0.1")][..],
        &[("TRUSTGATE_REPLICAS", "3")][..],
    ] {
        let text = run(env);
        assert!(
            text.contains("warning: redis:") && text.contains("no [redis]"),
            "{env:?}: {text}"
        );
    }
    // With Redis, no warning.
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        format!("[redis]\nurl = \"redis://127.0.0.1:6379/\"\n{text}"),
    )
    .unwrap();
    assert!(!run(&[("TRUSTGATE_REPLICAS", "3")]).contains("no [redis]"));
}

#[tokio::test]
async fn revoke_calls_the_admin_api_and_says_what_it_did() {
    let up = Upstream::echo_headers().await;
    let gw = TestGateway::start("", &app(&up.url())).await;
    let admin = format!("http://{}", gw.running().admin_addr);
    let run = move |args: Vec<String>| {
        tokio::task::spawn_blocking(move || trustgate().arg("revoke").args(args).output().unwrap())
    };
    let out = run(vec![
        "--admin".into(),
        admin.clone(),
        "--subject".into(),
        "bob@corp.example".into(),
    ])
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("revoked (subject) on this replica"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = run(vec![
        "--admin".into(),
        admin.clone(),
        "--session".into(),
        "xyz".into(),
    ])
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("answered 400: session must be 32 hex digits"));
    // Exactly one of the three.
    let out = run(vec![
        "--admin".into(),
        admin,
        "--subject".into(),
        "a".into(),
        "--session".into(),
        "b".into(),
    ])
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        metric(
            &gw.metrics().await,
            "trustgate_revocations_total{scope=\"subject\"}"
        ),
        1.0
    );
}
