//! The enforcement boundary against upstreams that would be fooled: a
//! liberal server that reads `/%61dmin`, `//admin` and `/x/../admin` as
//! `/admin`, and an upstream that speaks h2c and WebSocket. Nothing that
//! needs a session may reach either without one.

mod utils;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use trustgate::demo::idp::{Grant, Signer};
use utils::*;

const WINDOWS: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";
const ISSUER: &str = "http://idp.test/";
const KEY: &str = "test-session-key-0123456789abcdef0123456789";

/// A weak app at `/` (no enforcement) and an enforced one at `/admin` on
/// the same host and the same upstream: the layout of the finding.
fn shared_host(upstream: &str, admin_extra: &str) -> String {
    format!(
        r#"
[session]
keys = ["{KEY}"]
[apps.site]
hosts = ["localhost"]
upstream = "{upstream}"
[apps.admin]
hosts = ["localhost"]
path_prefix = "/admin"
upstream = "{upstream}"
enforce = "session"
acs_paths = ["/admin/saml/acs"]
login_path = "/admin/login"
public_paths = ["/admin/static/"]
{admin_extra}
[apps.admin.idp]
entity_id = "{ISSUER}"
certs = [{cert:?}]
[apps.admin.sp]
entity_id = "https://localhost/admin"
acs_url = "https://localhost/admin/saml/acs"
[apps.admin.policy]
default_action = "allow"
"#,
        cert = root().join("certs/demo-idp.pem"),
    )
}

/// What the upstream served, path by path.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<String>>>);

impl Seen {
    fn push(&self, what: String) {
        self.0.lock().unwrap().push(what);
    }
    fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
    fn any(&self, f: impl Fn(&str) -> bool) -> bool {
        self.all().iter().any(|s| f(s))
    }
}

/// The path as the most forgiving server reads it: every escape decoded
/// (twice), `\` as `/`, `;params` dropped, empty and `.` segments merged,
/// `..` resolved, case ignored.
fn liberal(path: &str) -> String {
    let mut p = path.to_string();
    for _ in 0..2 {
        p = percent_decode(&p);
    }
    let p = p.replace('\\', "/").to_ascii_lowercase();
    let mut out: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        let seg = seg.split(';').next().unwrap_or("");
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s.trim_end_matches(['.', ' '])),
        }
    }
    format!("/{}", out.join("/"))
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if let Some(v) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    // Overlong UTF-8 read as ASCII, as old IIS did: `%c0%af` is `/`.
    let mut folded = Vec::with_capacity(out.len());
    let mut j = 0;
    while j < out.len() {
        match (out[j], out.get(j + 1)) {
            (0xc0, Some(&0xaf)) => folded.push(b'/'),
            (0xc0, Some(&0xae)) => folded.push(b'.'),
            (c, _) => {
                folded.push(c);
                j += 1;
                continue;
            }
        }
        j += 2;
    }
    String::from_utf8_lossy(&folded).into_owned()
}

/// An upstream that serves `/admin...` (as the liberal reading has it) to
/// anyone who reaches it, upgrades to h2c or WebSocket whenever asked, and
/// answers 101 unasked on `/evil-101`.
async fn fooled_upstream(seen: Seen) -> Upstream {
    Upstream::start(move |mut req: Request<Incoming>| {
        let seen = seen.clone();
        async move {
            let path = req.uri().path().to_string();
            let read = liberal(&path);
            let upgrade = req
                .headers()
                .get("upgrade")
                .and_then(|v| v.to_str().ok())
                .map(str::to_ascii_lowercase);
            seen.push(format!("{read} upgrade={upgrade:?}"));
            if upgrade.as_deref() == Some("h2c") || path == "/evil-101" {
                let on_upgrade = hyper::upgrade::on(&mut req);
                let seen = seen.clone();
                tokio::spawn(async move {
                    let Ok(io) = on_upgrade.await else { return };
                    let svc = hyper::service::service_fn(move |r: Request<Incoming>| {
                        let seen = seen.clone();
                        async move {
                            seen.push(format!("h2 stream {}", r.uri().path()));
                            Ok::<_, std::convert::Infallible>(Response::new(full("secret over h2")))
                        }
                    });
                    let _ = hyper::server::conn::http2::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(io, svc)
                    .await;
                });
                return Response::builder()
                    .status(StatusCode::SWITCHING_PROTOCOLS)
                    .header("connection", "upgrade")
                    .header("upgrade", "h2c")
                    .body(full(""))
                    .unwrap();
            }
            if upgrade.as_deref() == Some("websocket") {
                use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
                let key = req.headers()["sec-websocket-key"].as_bytes().to_vec();
                let on_upgrade = hyper::upgrade::on(&mut req);
                tokio::spawn(async move {
                    let io = hyper_util::rt::TokioIo::new(on_upgrade.await.unwrap());
                    let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
                        io,
                        tokio_tungstenite::tungstenite::protocol::Role::Server,
                        None,
                    )
                    .await;
                    while let Some(Ok(msg)) = ws.next().await {
                        if msg.is_text() {
                            let _ = ws.send(msg).await;
                        }
                    }
                });
                return Response::builder()
                    .status(StatusCode::SWITCHING_PROTOCOLS)
                    .header("connection", "upgrade")
                    .header("upgrade", "websocket")
                    .header("sec-websocket-accept", derive_accept_key(&key))
                    .body(full(""))
                    .unwrap();
            }
            let body = if read.starts_with("/admin") {
                "admin secret"
            } else {
                "public site"
            };
            Response::new(full(body))
        }
    })
    .await
}

/// One raw HTTP/1.1 exchange over TLS: the request bytes as written, the
/// status and the whole answer as read until the gateway closes.
async fn raw_https(gw: &TestGateway, request: &str) -> (u16, String) {
    let mut tls = tls_h1(gw.tls_addr()).await;
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    // Until the gateway closes, or the head and a little of a body came.
    let _ = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            match tls.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

fn get_raw(path: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: {WINDOWS}\r\n{extra}Connection: close\r\n\r\n")
}

#[tokio::test]
async fn paths_that_a_liberal_upstream_reads_as_the_enforced_app_are_refused() {
    let seen = Seen::default();
    let up = fooled_upstream(seen.clone()).await;
    let gw = TestGateway::start("", &shared_host(&up.url(), "")).await;

    // Controls: the weak app serves its own paths; the enforced one wants a
    // session.
    let (status, body) = raw_https(&gw, &get_raw("/about", "")).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("public site"), "{body}");
    let (status, body) = raw_https(&gw, &get_raw("/admin/users", "")).await;
    assert_eq!(status, 302, "{body}");

    for path in [
        "/%61dmin/users",
        "/%41dmin/users",
        "//admin/users",
        "/./admin/users",
        "/x/../admin/users",
        "/admin;x/users",
        "/admin%2Fusers",
        "/admin%2fusers",
        "/%2561dmin/users",
        "/admin%5Cusers",
        "/x\\..\\admin/users",
        "/ADMIN/users",
        "/Admin/users",
        "/admin./users",
        "/admin%20/users",
        "/%c0%afadmin/users",
        "/x/%2e%2e/admin/users",
    ] {
        assert!(
            liberal(path).starts_with("/admin"),
            "the upstream would read {path} as /admin"
        );
        let (status, body) = raw_https(&gw, &get_raw(path, "")).await;
        assert_eq!(status, 400, "{path}: {body}");
        if status == 400 && body.contains("text/html") {
            assert!(
                body.contains("not in a form this gateway accepts"),
                "{path}: {body}"
            );
        }
    }
    assert!(
        !seen.any(|s| s.starts_with("/admin")),
        "the upstream served the enforced app: {:?}",
        seen.all()
    );

    // HTTP/2 `:path` goes through the same check.
    let h2 = https_client(true);
    for path in [
        "/%61dmin/users",
        "//admin/users",
        "/x/../admin/users",
        "/admin;x/users",
    ] {
        let uri = format!("https://localhost:{}{path}", gw.tls_addr().port());
        let resp = h2
            .request(Request::get(uri).body(full("")).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.version(), http::Version::HTTP_2);
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "h2 {path}");
    }
    assert!(!seen.any(|s| s.starts_with("/admin")), "{:?}", seen.all());
    let m = gw.metrics().await;
    assert!(
        metric(&m, "trustgate_gateway_errors_total{reason=\"bad_path\"}") >= 21.0,
        "{m}"
    );
}

/// A signed SAMLResponse form for the admin app.
fn assertion_form(gw: &TestGateway) -> String {
    assertion_form_for(gw, "https://localhost/admin/saml/acs")
}

/// A signed SAMLResponse form for the ACS URL `acs`.
fn assertion_form_for(gw: &TestGateway, acs: &str) -> String {
    let signer = Signer::from_pem(
        &std::fs::read(root().join("certs/demo-idp.key")).unwrap(),
        &std::fs::read(root().join("certs/demo-idp.pem")).unwrap(),
    )
    .unwrap();
    let attrs = vec![("DeviceTrustSignal", vec!["TRUSTED".to_string()])];
    let b64 = signer.response_b64(&Grant {
        issuer: ISSUER,
        audience: "https://localhost/admin",
        acs_url: acs,
        name_id: "ada@corp.example",
        attributes: &attrs,
        now: gw.running().gateway.now(),
        lifetime: Duration::from_secs(300),
    });
    form_urlencoded::Serializer::new(String::new())
        .append_pair("SAMLResponse", &b64)
        .finish()
}

/// Signs in to the admin app; the session cookie pair.
async fn admin_session(gw: &TestGateway) -> String {
    let body = assertion_form(gw);
    let req = Request::post(gw.https("/admin/saml/acs"))
        .header("user-agent", WINDOWS)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(full(body))
        .unwrap();
    let resp = https_client(false).request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
        .find(|c| c.starts_with("__Host-trustgate"))
        .expect("a session cookie")
}

const H2C: &str = "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n";
const WEBSOCKET: &str = "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";

#[tokio::test]
async fn h2c_is_never_forwarded_and_a_stray_101_is_refused() {
    let seen = Seen::default();
    let up = fooled_upstream(seen.clone()).await;
    let gw = TestGateway::start("", &shared_host(&up.url(), "")).await;
    let session = admin_session(&gw).await;

    // On the login path, on the weak app and even with a session: served as
    // plain requests, so the upstream never switches.
    for (path, cookie) in [
        ("/admin/login", String::new()),
        ("/admin/static/a.css", String::new()),
        ("/about", String::new()),
        ("/admin/users", format!("Cookie: {session}\r\n")),
    ] {
        let (status, body) = raw_https(&gw, &get_raw(path, &format!("{cookie}{H2C}"))).await;
        assert_ne!(status, 101, "{path}: {body}");
        assert_eq!(status, 200, "{path}: {body}");
    }
    assert!(
        !seen.any(|s| s.contains("upgrade=Some")),
        "{:?}",
        seen.all()
    );
    assert!(
        !seen.any(|s| s.starts_with("h2 stream")),
        "{:?}",
        seen.all()
    );

    // An upstream that switches protocols unasked gets no tunnel.
    let (status, body) = raw_https(&gw, &get_raw("/evil-101", H2C)).await;
    assert_eq!(status, 502, "{body}");
    assert!(
        !seen.any(|s| s.starts_with("h2 stream")),
        "{:?}",
        seen.all()
    );
}

#[tokio::test]
async fn websocket_needs_the_session_and_public_paths_need_the_opt_in() {
    let seen = Seen::default();
    let up = fooled_upstream(seen.clone()).await;
    let gw = TestGateway::start("", &shared_host(&up.url(), "")).await;

    // No session: back to sign-in, the upstream never asked.
    let (status, body) = raw_https(&gw, &get_raw("/admin/ws", WEBSOCKET)).await;
    assert_eq!(status, 302, "{body}");
    // The login path is reachable, but not as a tunnel.
    let (status, body) = raw_https(&gw, &get_raw("/admin/login", WEBSOCKET)).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        !seen.any(|s| s.contains("upgrade=Some")),
        "{:?}",
        seen.all()
    );

    // With a session the WebSocket opens and carries frames.
    let session = admin_session(&gw).await;
    let tls = tls_h1(gw.tls_addr()).await;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = format!("wss://localhost:{}/admin/ws", gw.tls_addr().port())
        .into_client_request()
        .unwrap();
    req.headers_mut().insert("cookie", session.parse().unwrap());
    req.headers_mut()
        .insert("user-agent", WINDOWS.parse().unwrap());
    let (mut ws, resp) = tokio_tungstenite::client_async(req, tls).await.unwrap();
    assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
    ws.send(tokio_tungstenite::tungstenite::Message::text("hi"))
        .await
        .unwrap();
    let echo = ws.next().await.unwrap().unwrap();
    assert_eq!(echo.into_text().unwrap().as_str(), "hi");
}

#[tokio::test]
async fn public_paths_upgrade_only_when_the_app_opts_in() {
    let seen = Seen::default();
    let up = fooled_upstream(seen.clone()).await;
    let gw = TestGateway::start(
        "",
        &shared_host(&up.url(), "upgrades_on_public_paths = true"),
    )
    .await;
    let (status, body) = raw_https(&gw, &get_raw("/admin/static/live", WEBSOCKET)).await;
    assert_eq!(status, 101, "{body}");
    // h2c stays refused whatever the opt-in.
    let (status, body) = raw_https(&gw, &get_raw("/admin/static/live", H2C)).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        !seen.any(|s| s.starts_with("h2 stream")),
        "{:?}",
        seen.all()
    );
}

/// A body dripped a byte at a time keeps the idle timer from firing; the
/// body deadline still ends it with a 408.
#[tokio::test]
async fn a_dripped_assertion_body_gets_408_at_the_deadline() {
    let seen = Seen::default();
    let up = fooled_upstream(seen.clone()).await;
    let gw = TestGateway::start(
        "body_read_timeout = \"1s\"\nidle_timeout = \"60s\"",
        &shared_host(&up.url(), ""),
    )
    .await;
    let tls = tls_h1(gw.tls_addr()).await;
    let (mut rd, mut wr) = tokio::io::split(tls);
    wr.write_all(
        b"POST /admin/saml/acs HTTP/1.1\r\nHost: localhost\r\n\
          Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\nSAML",
    )
    .await
    .unwrap();
    let drip = tokio::spawn(async move {
        for _ in 0..40 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if wr.write_all(b"A").await.is_err() {
                break;
            }
        }
    });
    let started = std::time::Instant::now();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(6), rd.read(&mut buf))
        .await
        .expect("an answer before the drip ends")
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(5));
    drip.abort();
    let m = gw.metrics().await;
    assert_eq!(
        metric(
            &m,
            "trustgate_gateway_errors_total{reason=\"body_timeout\"}"
        ),
        1.0,
        "{m}"
    );
}

#[tokio::test]
async fn hsts_is_sent_on_gateway_pages_and_forwarded_responses() {
    let seen = Seen::default();
    let up = fooled_upstream(seen.clone()).await;
    let gw = TestGateway::start(
        "hsts = \"max-age=31536000; includeSubDomains\"",
        &shared_host(&up.url(), ""),
    )
    .await;
    for path in ["/about", "/admin/users", "/a;b"] {
        let (status, text) = raw_https(&gw, &get_raw(path, "")).await;
        assert!(matches!(status, 200 | 302 | 400), "{path}: {text}");
        assert!(
            text.to_ascii_lowercase()
                .contains("strict-transport-security: max-age=31536000; includesubdomains"),
            "{path}: {text}"
        );
    }
}

#[tokio::test]
async fn a_bad_hsts_value_is_refused_with_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        config_text("hsts = \"includeSubDomains\"", &app("http://127.0.0.1:1")),
    )
    .unwrap();
    let e = trustgate::config::Config::load(&path)
        .unwrap_err()
        .to_string();
    assert!(e.contains("server.hsts"), "{e}");
}

/// The server's cipher order wins over the client's.
#[tokio::test]
async fn the_server_chooses_the_cipher_suite() {
    let up = Upstream::echo_headers().await;
    let gw = TestGateway::start("", &app(&up.url())).await;
    use rustls::crypto::aws_lc_rs::{cipher_suite, default_provider};
    let provider = rustls::crypto::CryptoProvider {
        cipher_suites: vec![
            cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
            cipher_suite::TLS13_AES_128_GCM_SHA256,
        ],
        ..default_provider()
    };
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(dev_ca_roots())
        .with_no_client_auth();
    let tcp = TcpStream::connect(gw.tls_addr()).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(
            rustls_pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    let suite = tls.get_ref().1.negotiated_cipher_suite().unwrap().suite();
    assert_eq!(suite, rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
}

/// Two enforced apps on one host: each keeps its own session.
#[tokio::test]
async fn two_apps_on_one_host_keep_their_own_sessions() {
    let seen = Seen::default();
    let up = fooled_upstream(seen.clone()).await;
    let mail = format!(
        r#"
[apps.mail]
hosts = ["localhost"]
path_prefix = "/mail"
upstream = "{up}"
enforce = "session"
acs_paths = ["/mail/saml/acs"]
login_path = "/mail/login"
[apps.mail.idp]
entity_id = "{ISSUER}"
certs = [{cert:?}]
[apps.mail.sp]
entity_id = "https://localhost/admin"
acs_url = "https://localhost/mail/saml/acs"
[apps.mail.policy]
default_action = "allow"
"#,
        up = up.url(),
        cert = root().join("certs/demo-idp.pem"),
    );
    let gw = TestGateway::start("", &(shared_host(&up.url(), "") + &mail)).await;
    let admin = admin_session(&gw).await;
    assert!(admin.starts_with("__Host-trustgate.admin="), "{admin}");
    let req = Request::post(gw.https("/mail/saml/acs"))
        .header("user-agent", WINDOWS)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", &admin)
        .body(full(assertion_form_for(
            &gw,
            "https://localhost/mail/saml/acs",
        )))
        .unwrap();
    let resp = https_client(false).request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mail_cookie = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
        .find(|c| c.starts_with("__Host-trustgate"))
        .unwrap();
    assert!(
        mail_cookie.starts_with("__Host-trustgate.mail="),
        "{mail_cookie}"
    );
    let both = format!("{admin}; {mail_cookie}");
    for path in ["/admin/x", "/mail/x"] {
        let (status, text) = raw_https(&gw, &get_raw(path, &format!("Cookie: {both}\r\n"))).await;
        assert_eq!(status, 200, "{path}: {text}");
    }
    // One app's cookie is no session for the other.
    let (status, _) = raw_https(&gw, &get_raw("/mail/x", &format!("Cookie: {admin}\r\n"))).await;
    assert_eq!(status, 302);
}

/// The demo app, which `cargo run --release` starts, follows RelayState
/// only to its own paths.
#[tokio::test]
async fn the_demo_app_redirects_only_to_its_own_paths() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let cfg = Arc::new(trustgate::config::DemoConfig {
        app_listen: addr,
        portal_listen: "127.0.0.1:1".parse().unwrap(),
        idp_key: Vec::new(),
        idp_cert: Vec::new(),
        idp_entity_id: ISSUER.into(),
        sp_entity_id: "https://localhost/sp".into(),
        acs_url: "https://localhost/saml/acs".into(),
        app_url: "https://localhost/".into(),
        gateway_ca: Vec::new(),
        uem: None,
    });
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(trustgate::demo::serve(listener, stop, move |req| {
        trustgate::demo::app::handle(cfg.clone(), req)
    }));
    let client = plain_client();
    for (relay, want) in [
        ("/inbox", "/inbox"),
        ("/\\evil.example/", "/"),
        ("/\t/evil.example/", "/"),
        ("//evil.example/", "/"),
        ("https://evil.example/", "/"),
    ] {
        let body = form_urlencoded::Serializer::new(String::new())
            .append_pair("RelayState", relay)
            .finish();
        let resp = client
            .request(
                Request::post(format!("http://{addr}/saml/acs"))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(full(body))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::SEE_OTHER);
        assert_eq!(resp.headers()["location"], want, "{relay:?}");
    }
    let _ = stop_tx.send(true);
    server.abort();
}

/// The gateway's pages answer on a protected host even where `/` belongs
/// to an unenforced app, and gateway cookies never reach an upstream.
#[tokio::test]
async fn gateway_pages_and_cookies_stay_with_the_gateway() {
    let seen = Seen::default();
    let up = fooled_upstream(seen.clone()).await;
    let gw = TestGateway::start("", &shared_host(&up.url(), "")).await;
    let (status, text) = raw_https(&gw, &get_raw("/.trustgate/apps.json", "")).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("\"apps\""), "{text}");
    assert!(!seen.any(|s| s.contains(".trustgate")), "{:?}", seen.all());

    let session = admin_session(&gw).await;
    let echo = Upstream::echo_headers().await;
    let gw2 = TestGateway::start("", &shared_host(&echo.url(), "")).await;
    let session2 = admin_session(&gw2).await;
    for path in ["/about", "/admin/users"] {
        let (status, text) = raw_https(
            &gw2,
            &get_raw(path, &format!("Cookie: app=1; {session2}; {session}\r\n")),
        )
        .await;
        assert_eq!(status, 200, "{path}: {text}");
        assert!(!text.contains("__Host-trustgate"), "{path}: {text}");
        assert!(text.contains("app=1"), "{path}: {text}");
    }
}

/// One ACS body, two readings: a charset, a second Content-Type, a field
/// in another case. The app gets exactly the fields the gateway verified.
#[tokio::test]
async fn the_app_reads_the_assertion_the_gateway_verified() {
    let up = Upstream::start(|req: Request<Incoming>| async move {
        use http_body_util::BodyExt;
        let ct = req.headers()["content-type"].to_str().unwrap().to_string();
        let body = req.into_body().collect().await.unwrap().to_bytes();
        Response::new(full(format!("{ct}\n{}", String::from_utf8_lossy(&body))))
    })
    .await;
    let gw = TestGateway::start("", &shared_host(&up.url(), "")).await;
    let post = |content_types: &[&str], body: String| {
        let mut req = Request::post(gw.https("/admin/saml/acs")).header("user-agent", WINDOWS);
        for ct in content_types {
            req = req.header("content-type", *ct);
        }
        https_client(false).request(req.body(full(body)).unwrap())
    };
    for (types, why) in [
        (
            vec!["application/x-www-form-urlencoded; charset=utf-16le"],
            "charset",
        ),
        (
            vec!["application/x-www-form-urlencoded", "multipart/form-data"],
            "two content types",
        ),
    ] {
        let resp = post(&types, assertion_form(&gw)).await.unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{why}");
    }
    let body = format!(
        "samlresponse=other&{}&RelayState=%2Fhome&extra=%00x",
        assertion_form(&gw)
    );
    let resp = post(&["application/x-www-form-urlencoded; charset=UTF-8"], body)
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let seen = body_string(resp).await;
    let (ct, form) = seen.split_once('\n').unwrap();
    assert_eq!(ct, "application/x-www-form-urlencoded");
    let keys: Vec<String> = form_urlencoded::parse(form.as_bytes())
        .map(|(k, _)| k.into_owned())
        .collect();
    assert_eq!(keys, ["SAMLResponse", "RelayState"], "{form}");
}

/// Without a token, revoking needs a loopback peer and a Host that no
/// rebound DNS name can give.
#[tokio::test]
async fn revoking_refuses_a_rebound_host_name() {
    let up = Upstream::echo_headers().await;
    let gw = TestGateway::start("", &shared_host(&up.url(), "")).await;
    let url = format!("http://{}/sessions/revoke", gw.running().admin_addr);
    let send = |host: String| {
        plain_client().request(
            Request::post(url.clone())
                .header("host", host)
                .header("content-type", "application/json")
                .body(full(
                    r#"{"subject_hash": "00000000000000000000000000000000"}"#,
                ))
                .unwrap(),
        )
    };
    let port = gw.running().admin_addr.port();
    let resp = send(format!("evil.example:{port}")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    for host in [format!("127.0.0.1:{port}"), format!("localhost:{port}")] {
        let resp = send(host.clone()).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{host}");
    }
}
