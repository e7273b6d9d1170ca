//! Fleet test helpers: a real `redis-server` on a free loopback port, and
//! an enforced app whose assertions the demo IdP's signer makes.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use http::{Request, Response, StatusCode};
use trustgate::demo::idp::{Grant, Signer};

use super::*;

/// A `redis-server` of this test, stopped when dropped.
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts one on a free loopback port and waits for its PONG.
    pub fn start() -> RedisServer {
        let port = super::free_port();
        let mut r = RedisServer { port, child: None };
        r.resume();
        r
    }

    /// Starts (again) on the same port, empty.
    pub fn resume(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs (apt-get install redis-server)");
        self.child = Some(child);
        let start = Instant::now();
        while !self.pong() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "redis-server never answered"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills it (SIGKILL: no goodbye to the clients).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn pong(&self) -> bool {
        let Ok(mut tcp) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = tcp.set_read_timeout(Some(Duration::from_millis(500)));
        let mut buf = [0u8; 7];
        tcp.write_all(b"PING\r\n").is_ok()
            && tcp.read_exact(&mut buf).is_ok()
            && &buf == b"+PONG\r\n"
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

pub const ISSUER: &str = "http://idp.test/";
pub const WINDOWS: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";
pub const UEM_USER: &str = "uem-notifier";
pub const UEM_PASSWORD: &str = "uem-password-0123456789";

/// An enforced app `app` (desktop allowed) with `[uem]`, and `[redis]`
/// when `redis` is given.
pub fn fleet_config(upstream: &str, redis: Option<&str>) -> String {
    let redis = redis
        .map(|url| format!("[redis]\nurl = {url:?}\nkey_prefix = \"test:\"\ntimeout = \"300ms\"\n"))
        .unwrap_or_default();
    format!(
        "[session]\nkeys = [\"fleet-test-session-key-0123456789abcdef\"]\n{redis}\
         [uem]\nusername = {UEM_USER:?}\npassword = {UEM_PASSWORD:?}\nsubject_template = \"{{user}}@corp.example\"\n\
         {}\
         [apps.app.idp]\nentity_id = \"{ISSUER}\"\ncerts = [{:?}]\n\
         [apps.app.sp]\nentity_id = \"https://localhost/sp\"\nacs_url = \"https://localhost/saml/acs\"\n\
         [apps.app.policy]\ndefault_action = \"allow\"\n",
        app(upstream),
        root().join("certs/demo-idp.pem")
    )
}

pub fn signer() -> Signer {
    Signer::from_pem(
        &std::fs::read(root().join("certs/demo-idp.key")).unwrap(),
        &std::fs::read(root().join("certs/demo-idp.pem")).unwrap(),
    )
    .unwrap()
}

/// A signed SAMLResponse form for `user`, valid from `now`.
pub fn assertion_form(signer: &Signer, user: &str, now: SystemTime) -> String {
    let attrs = vec![("DeviceTrustSignal", vec!["TRUSTED".to_string()])];
    let b64 = signer.response_b64(&Grant {
        issuer: ISSUER,
        audience: "https://localhost/sp",
        acs_url: "https://localhost/saml/acs",
        name_id: user,
        attributes: &attrs,
        now,
        lifetime: Duration::from_secs(300),
    });
    form_urlencoded::Serializer::new(String::new())
        .append_pair("SAMLResponse", &b64)
        .finish()
}

/// Posts an assertion form to `gw`'s ACS.
pub async fn post_acs(gw: &TestGateway, form: &str) -> Response<hyper::body::Incoming> {
    https_client(false)
        .request(
            Request::post(gw.https("/saml/acs"))
                .header("user-agent", WINDOWS)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(full(form.to_string()))
                .unwrap(),
        )
        .await
        .unwrap()
}

/// Signs `user` in at `gw`; the session cookie pair.
pub async fn sign_in(gw: &TestGateway, signer: &Signer, user: &str) -> String {
    let resp = post_acs(
        gw,
        &assertion_form(signer, user, gw.running().gateway.now()),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK, "sign-in of {user}");
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
        .find(|c| c.starts_with("__Host-trustgate="))
        .expect("a session cookie")
}

/// The status of a session request with `cookie` at `gw` (not the login
/// path `/`, which needs no session).
pub async fn session_status(gw: &TestGateway, cookie: &str) -> StatusCode {
    https_client(false)
        .request(
            Request::get(gw.https("/inbox"))
                .header("user-agent", WINDOWS)
                .header("cookie", cookie)
                .body(full(""))
                .unwrap(),
        )
        .await
        .unwrap()
        .status()
}

/// POSTs a UEM event to `gw` with the given Basic credentials.
pub async fn post_event(
    gw: &TestGateway,
    credentials: Option<(&str, &str)>,
    content_type: &str,
    body: String,
) -> (StatusCode, http::HeaderMap, String) {
    use base64::Engine as _;
    let mut req =
        Request::post(gw.https("/.trustgate/uem/events")).header("content-type", content_type);
    if let Some((u, p)) = credentials {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
        req = req.header("authorization", format!("Basic {token}"));
    }
    let resp = https_client(false)
        .request(req.body(full(body)).unwrap())
        .await
        .unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    (status, headers, body_string(resp).await)
}

/// A UEM event in JSON.
pub fn event_json(id: &str, kind: &str, user: &str, compliance: &str) -> String {
    serde_json::json!({
        "EventId": id,
        "EventType": kind,
        "DeviceId": 42,
        "EnrollmentUserName": user,
        "ComplianceStatus": compliance,
        "EventTime": "/Date(1764806700123)/",
    })
    .to_string()
}

/// Revokes through `gw`'s admin listener.
pub async fn admin_revoke(gw: &TestGateway, body: &str) -> serde_json::Value {
    let url = format!("http://{}/sessions/revoke", gw.running().admin_addr);
    let resp = plain_client()
        .request(
            Request::post(url)
                .header("content-type", "application/json")
                .body(full(body.to_string()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    serde_json::from_str(&body_string(resp).await).unwrap()
}
