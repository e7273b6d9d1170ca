//! End-to-end device-trust enforcement through TLS with a real client: the
//! demo IdP's signer makes assertions, the gateway verifies and decides, a
//! real upstream sees what the gateway lets through.

mod utils;

use std::time::{Duration, SystemTime};

use http::{Request, Response, StatusCode};
use trustgate::demo::idp::{Grant, Signer};
use utils::*;

const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";
const ANDROID: &str = "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/123.0.6312.40 Mobile Safari/537.36";
const WINDOWS: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";
const ISSUER: &str = "http://idp.test/";
const KEY: &str = "test-session-key-0123456789abcdef0123456789";

fn signer() -> Signer {
    Signer::from_pem(
        &std::fs::read(root().join("certs/demo-idp.key")).unwrap(),
        &std::fs::read(root().join("certs/demo-idp.pem")).unwrap(),
    )
    .unwrap()
}

/// The enforced app `app`, with a policy that exercises every action.
fn enforced(upstream: &str, extra_app: &str) -> String {
    format!(
        r#"
[session]
keys = ["{KEY}"]
[zones]
office = ["10.1.0.0/16"]
[apps.app]
hosts = ["localhost", "127.0.0.1"]
upstream = "{upstream}"
enforce = "session"
login_path = "/login"
public_paths = ["/public/"]
enrollment_url = "https://uem.example/enroll/welcome?app={{app}}&detour={{detour}}"
{extra_app}
[apps.app.idp]
entity_id = "{ISSUER}"
certs = [{cert:?}]
[apps.app.sp]
entity_id = "https://localhost/sp"
acs_url = "https://localhost/saml/acs"
[apps.app.policy]
default_action = "deny"
[[apps.app.policy.rules]]
name = "admins-anywhere"
groups = ["admins"]
action = "allow"
[[apps.app.policy.rules]]
name = "office-zone"
zones = ["office"]
action = "allow"
[[apps.app.policy.rules]]
name = "trusted-mobile"
platforms = ["ios", "ipados", "android"]
trust = "trusted"
action = "allow"
max_session_age = "1h"
[[apps.app.policy.rules]]
name = "ios-enrolls"
platforms = ["ios", "ipados"]
action = "enroll"
[[apps.app.policy.rules]]
name = "android-denied"
platforms = ["android"]
client_kinds = ["browser", "webview"]
action = "deny"
[[apps.app.policy.rules]]
name = "desktop"
platforms = ["macos", "windows", "linux", "chromeos"]
action = "allow"
"#,
        cert = root().join("certs/demo-idp.pem"),
    )
}

struct Env {
    gw: TestGateway,
    _up: Upstream,
    signer: Signer,
    client: HttpsClient,
}

impl Env {
    async fn start() -> Env {
        Env::start_with("", "").await
    }

    async fn start_with(server: &str, extra_app: &str) -> Env {
        Env::start_edited(server, extra_app, |_| {}).await
    }

    async fn start_edited(
        server: &str,
        extra_app: &str,
        edit: impl FnOnce(&mut trustgate::config::Config),
    ) -> Env {
        let up = Upstream::echo_headers().await;
        let gw = TestGateway::start_edited(server, &enforced(&up.url(), extra_app), edit).await;
        Env {
            gw,
            _up: up,
            signer: signer(),
            client: https_client(false),
        }
    }

    fn now(&self) -> SystemTime {
        self.gw.running().gateway.now()
    }

    /// A signed SAMLResponse form body.
    fn assertion(&self, user: &str, trust: &str, groups: &[&str], relay: Option<&str>) -> String {
        let attrs = vec![
            ("DeviceTrustSignal", vec![trust.to_string()]),
            ("groups", groups.iter().map(|g| g.to_string()).collect()),
        ];
        let b64 = self.signer.response_b64(&Grant {
            issuer: ISSUER,
            audience: "https://localhost/sp",
            acs_url: "https://localhost/saml/acs",
            name_id: user,
            attributes: &attrs,
            now: self.now(),
            lifetime: Duration::from_secs(300),
        });
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("SAMLResponse", &b64);
        if let Some(r) = relay {
            form.append_pair("RelayState", r);
        }
        form.finish()
    }

    async fn send(&self, req: Request<Body>) -> Response<hyper::body::Incoming> {
        self.client.request(req).await.unwrap()
    }

    async fn post_acs(
        &self,
        ua: &str,
        body: String,
        cookies: &[String],
    ) -> Response<hyper::body::Incoming> {
        let mut req = Request::post(self.gw.https("/saml/acs"))
            .header("user-agent", ua)
            .header("content-type", "application/x-www-form-urlencoded");
        if !cookies.is_empty() {
            req = req.header("cookie", cookies.join("; "));
        }
        self.send(req.body(full(body)).unwrap()).await
    }

    async fn get(
        &self,
        path: &str,
        ua: &str,
        cookies: &[String],
    ) -> Response<hyper::body::Incoming> {
        let mut req = Request::get(self.gw.https(path)).header("user-agent", ua);
        if !cookies.is_empty() {
            req = req.header("cookie", cookies.join("; "));
        }
        self.send(req.body(full("")).unwrap()).await
    }

    async fn metric(&self, series: &str) -> f64 {
        metric(&self.gw.metrics().await, series)
    }
}

/// `name=value` pairs from a response's Set-Cookie headers.
fn cookies<B>(resp: &Response<B>) -> Vec<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
        .filter(|c| !c.ends_with('='))
        .collect()
}

fn cookie_named(all: &[String], name: &str) -> String {
    all.iter()
        .find(|c| c.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} in {all:?}"))
        .clone()
}

async fn upstream_saw(resp: Response<hyper::body::Incoming>) -> serde_json::Value {
    assert_eq!(resp.status(), StatusCode::OK);
    serde_json::from_str(&body_string(resp).await).unwrap()
}

#[tokio::test]
async fn desktop_is_allowed_and_the_app_sees_trust_headers() {
    let env = Env::start().await;
    let resp = env
        .post_acs(
            WINDOWS,
            env.assertion("alice@corp.example", "NOT_TRUSTED", &[], Some("/inbox")),
            &[],
        )
        .await;
    let jar = cookies(&resp);
    let session = cookie_named(&jar, "__Host-trustgate");
    let set = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .next()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    for attr in ["Secure", "HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(set.contains(attr), "{set}");
    }
    let seen = upstream_saw(resp).await;
    assert_eq!(seen["x-test-path"][0], "/saml/acs");
    assert_eq!(seen["x-trustgate-device-trust"][0], "not_trusted");
    assert_eq!(seen["x-trustgate-platform"][0], "windows");
    assert_eq!(seen["x-trustgate-client-kind"][0], "browser");
    assert_eq!(seen["x-trustgate-subject"][0].as_str().unwrap().len(), 32);

    // The session carries the decision to later requests.
    let seen = upstream_saw(env.get("/inbox", WINDOWS, &[session]).await).await;
    assert_eq!(seen["x-trustgate-platform"][0], "windows");
    assert_eq!(
        env.metric("trustgate_decisions_total{action=\"allow\",app=\"app\",platform=\"windows\",rule=\"desktop\"}").await,
        1.0
    );
    assert_eq!(
        env.metric("trustgate_decision_cache_hits_total{app=\"app\"}")
            .await,
        1.0
    );
}

#[tokio::test]
async fn client_sent_trust_headers_are_stripped() {
    let env = Env::start().await;
    let body = env.assertion("alice@corp.example", "NOT_TRUSTED", &[], None);
    let req = Request::post(env.gw.https("/saml/acs"))
        .header("user-agent", WINDOWS)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-trustgate-device-trust", "trusted")
        .header("X-Trustgate-Admin", "yes")
        .body(full(body))
        .unwrap();
    let seen = upstream_saw(env.send(req).await).await;
    assert_eq!(seen["x-trustgate-device-trust"][0], "not_trusted");
    assert!(seen.get("x-trustgate-admin").is_none(), "{seen}");

    // On a public path, with no evidence at all, none reach the app.
    let req = Request::get(env.gw.https("/public/logo.png"))
        .header("x-trustgate-device-trust", "trusted")
        .body(full(""))
        .unwrap();
    let seen = upstream_saw(env.send(req).await).await;
    assert!(seen.get("x-trustgate-device-trust").is_none(), "{seen}");
}

#[tokio::test]
async fn untrusted_iphone_enrolls_then_resumes_within_the_window() {
    let env = Env::start().await;
    let resp = env
        .post_acs(
            IPHONE,
            env.assertion(
                "bob@corp.example",
                "NOT_TRUSTED",
                &[],
                Some("/original/target"),
            ),
            &[],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    assert!(
        location.starts_with("https://uem.example/enroll/welcome?app=app&detour="),
        "{location}"
    );
    let jar = cookies(&resp);
    let detour = cookie_named(&jar, "__Host-trustgate-detour");
    assert!(resp.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("SameSite=None"));
    assert!(
        !jar.iter().any(|c| c.starts_with("__Host-trustgate=")),
        "no session on enroll"
    );

    // Nine minutes later the device is trusted; the IdP's new sign-in has
    // its own RelayState, and the gateway resumes the original target.
    env.gw
        .running()
        .gateway
        .advance_clock(Duration::from_secs(9 * 60));
    let resp = env
        .post_acs(
            IPHONE,
            env.assertion("bob@corp.example", "TRUSTED", &[], Some("/")),
            &[detour],
        )
        .await;
    let set: Vec<_> = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert!(
        set.iter()
            .any(|c| c.starts_with("__Host-trustgate-detour=;") && c.contains("Max-Age=0")),
        "{set:?}"
    );
    let session = cookie_named(&cookies(&resp), "__Host-trustgate");
    let seen = upstream_saw(resp).await;
    assert_eq!(seen["x-trustgate-device-trust"][0], "trusted");
    // The app received the original RelayState in the forwarded form body.
    let length: usize = seen["content-length"][0].as_str().unwrap().parse().unwrap();
    assert!(length > 100);
    assert!(!session.is_empty());
    assert_eq!(
        env.metric("trustgate_enrollment_detours_total{app=\"app\",event=\"started\"}")
            .await,
        1.0
    );
    assert_eq!(
        env.metric("trustgate_enrollment_detours_total{app=\"app\",event=\"resumed\"}")
            .await,
        1.0
    );
}

/// The resumed POST carries the original RelayState to the app.
#[tokio::test]
async fn resumed_post_carries_the_original_relay_state() {
    let up = Upstream::start(|req: Request<hyper::body::Incoming>| async move {
        use http_body_util::BodyExt;
        let body = req.into_body().collect().await.unwrap().to_bytes();
        let relay = form_urlencoded::parse(&body)
            .find(|(k, _)| k == "RelayState")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        Response::new(full(relay))
    })
    .await;
    let gw = TestGateway::start("", &enforced(&up.url(), "")).await;
    let env = Env {
        gw,
        _up: up,
        signer: signer(),
        client: https_client(false),
    };
    let resp = env
        .post_acs(
            IPHONE,
            env.assertion(
                "bob@corp.example",
                "NOT_TRUSTED",
                &[],
                Some("/deep/link?x=1"),
            ),
            &[],
        )
        .await;
    let detour = cookie_named(&cookies(&resp), "__Host-trustgate-detour");
    let resp = env
        .post_acs(
            IPHONE,
            env.assertion("bob@corp.example", "TRUSTED", &[], Some("/")),
            &[detour],
        )
        .await;
    assert_eq!(body_string(resp).await, "/deep/link?x=1");
}

/// An upstream that answers with the RelayState it was posted.
async fn relay_echo() -> Env {
    let up = Upstream::start(|req: Request<hyper::body::Incoming>| async move {
        use http_body_util::BodyExt;
        let body = req.into_body().collect().await.unwrap().to_bytes();
        let relay = form_urlencoded::parse(&body)
            .find(|(k, _)| k == "RelayState")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        Response::new(full(relay))
    })
    .await;
    let gw = TestGateway::start("", &enforced(&up.url(), "")).await;
    Env {
        gw,
        _up: up,
        signer: signer(),
        client: https_client(false),
    }
}

/// A detour left (or planted, it is `SameSite=None`) in a browser belongs to
/// the sign-in that began it: another subject's trusted sign-in keeps its
/// own RelayState and clears the detour.
#[tokio::test]
async fn another_subjects_sign_in_does_not_inherit_a_detour() {
    let env = relay_echo().await;
    let resp = env
        .post_acs(
            IPHONE,
            env.assertion(
                "mallory@corp.example",
                "NOT_TRUSTED",
                &[],
                Some("/mallorys/choice"),
            ),
            &[],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    let detour = cookie_named(&cookies(&resp), "__Host-trustgate-detour");
    let resp = env
        .post_acs(
            IPHONE,
            env.assertion("victim@corp.example", "TRUSTED", &[], Some("/own/target")),
            std::slice::from_ref(&detour),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let cleared = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .any(|v| v.to_str().unwrap().starts_with("__Host-trustgate-detour=;"));
    assert!(cleared, "the foreign detour cookie is cleared");
    assert_eq!(body_string(resp).await, "/own/target");
    assert_eq!(
        env.metric("trustgate_enrollment_detours_total{app=\"app\",event=\"resumed\"}")
            .await,
        0.0
    );
    // Its own subject still resumes it.
    let resp = env
        .post_acs(
            IPHONE,
            env.assertion("mallory@corp.example", "TRUSTED", &[], Some("/")),
            &[detour],
        )
        .await;
    assert_eq!(body_string(resp).await, "/mallorys/choice");
}

/// A detour only ever restores a path on this origin.
#[tokio::test]
async fn a_detour_never_restores_a_target_off_this_origin() {
    let env = relay_echo().await;
    for target in [
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example/",
        "/\t/evil.example/",
    ] {
        let resp = env
            .post_acs(
                IPHONE,
                env.assertion("dan@corp.example", "NOT_TRUSTED", &[], Some(target)),
                &[],
            )
            .await;
        let detour = cookie_named(&cookies(&resp), "__Host-trustgate-detour");
        let resp = env
            .post_acs(
                IPHONE,
                env.assertion("dan@corp.example", "TRUSTED", &[], Some("/safe")),
                &[detour],
            )
            .await;
        assert_eq!(body_string(resp).await, "/safe", "{target:?}");
    }
}

#[tokio::test]
async fn return_after_the_window_shows_the_expired_page() {
    let env = Env::start().await;
    let resp = env
        .post_acs(
            IPHONE,
            env.assertion("carol@corp.example", "NOT_TRUSTED", &[], Some("/x")),
            &[],
        )
        .await;
    let detour = cookie_named(&cookies(&resp), "__Host-trustgate-detour");
    env.gw
        .running()
        .gateway
        .advance_clock(Duration::from_secs(10 * 60 + 1));
    let resp = env
        .post_acs(
            IPHONE,
            env.assertion("carol@corp.example", "TRUSTED", &[], Some("/x")),
            std::slice::from_ref(&detour),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    let page = body_string(resp).await;
    assert!(
        page.contains("expired while this device was being enrolled"),
        "{page}"
    );
    assert!(page.contains("href=\"/login\""), "{page}");
    assert!(page.contains("width=device-width"), "readable in a webview");
    assert_eq!(
        env.metric("trustgate_enrollment_detours_total{app=\"app\",event=\"expired\"}")
            .await,
        1.0
    );

    // A session-less page load with the stale cookie gets the same page.
    let resp = env.get("/x", IPHONE, &[detour]).await;
    assert!(body_string(resp)
        .await
        .contains("expired while this device"));
}

#[tokio::test]
async fn android_browser_is_denied_and_the_app_locks() {
    let env = Env::start().await;
    let resp = env
        .post_acs(
            ANDROID,
            env.assertion("dave@corp.example", "NOT_TRUSTED", &[], None),
            &[],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let lock = cookie_named(&cookies(&resp), "__Host-trustgate-locks");
    let page = body_string(resp).await;
    assert!(page.contains("does not allow"), "{page}");
    assert!(
        page.contains("https://uem.example/enroll/welcome?app=app"),
        "enrollment link: {page}"
    );

    let resp = env
        .get(
            "/.trustgate/apps.json",
            ANDROID,
            std::slice::from_ref(&lock),
        )
        .await;
    let json: serde_json::Value = serde_json::from_str(&body_string(resp).await).unwrap();
    assert_eq!(
        json["apps"][0],
        serde_json::json!({"app": "app", "locked": true})
    );
    let html = body_string(env.get("/.trustgate/apps", ANDROID, &[lock]).await).await;
    assert!(html.contains("locked on this device"), "{html}");

    // Someone else is not locked.
    let resp = env.get("/.trustgate/apps.json", ANDROID, &[]).await;
    let json: serde_json::Value = serde_json::from_str(&body_string(resp).await).unwrap();
    assert_eq!(json["apps"][0]["locked"], false);
}

#[tokio::test]
async fn group_and_zone_conditions() {
    // Android is denied unless a group or zone rule comes first.
    let env = Env::start().await;
    let resp = env
        .post_acs(
            ANDROID,
            env.assertion("erin@corp.example", "NOT_TRUSTED", &["admins"], None),
            &[],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        env.metric("trustgate_decisions_total{action=\"allow\",app=\"app\",platform=\"android\",rule=\"admins-anywhere\"}").await,
        1.0
    );

    let env = Env::start_with("trusted_proxy_hops = 1", "").await;
    let req = Request::post(env.gw.https("/saml/acs"))
        .header("user-agent", ANDROID)
        .header("x-forwarded-for", "10.1.2.3")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(full(env.assertion(
            "erin@corp.example",
            "NOT_TRUSTED",
            &[],
            None,
        )))
        .unwrap();
    assert_eq!(env.send(req).await.status(), StatusCode::OK);
    assert_eq!(
        env.metric("trustgate_decisions_total{action=\"allow\",app=\"app\",platform=\"android\",rule=\"office-zone\"}").await,
        1.0
    );
}

#[tokio::test]
async fn no_session_redirects_to_login_and_posts_get_401() {
    let env = Env::start().await;
    let resp = env.get("/inbox", WINDOWS, &[]).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(resp.headers()["location"], "/login");
    let req = Request::post(env.gw.https("/api/save"))
        .header("user-agent", WINDOWS)
        .body(full("x"))
        .unwrap();
    assert_eq!(env.send(req).await.status(), StatusCode::UNAUTHORIZED);
    // The login path itself is reachable without a session.
    assert_eq!(
        env.get("/login", WINDOWS, &[]).await.status(),
        StatusCode::OK
    );
}

async fn desktop_session(env: &Env, ua: &str) -> String {
    let resp = env
        .post_acs(
            ua,
            env.assertion("frank@corp.example", "NOT_TRUSTED", &[], None),
            &[],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    cookie_named(&cookies(&resp), "__Host-trustgate")
}

#[tokio::test]
async fn tampered_foreign_and_expired_cookies_count_as_absent() {
    let env = Env::start().await;
    let session = desktop_session(&env, WINDOWS).await;

    // One byte changed.
    let mut bytes = session.clone().into_bytes();
    let i = "__Host-trustgate=".len() + 5;
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(bytes).unwrap();
    assert_eq!(
        env.get("/", WINDOWS, &[tampered]).await.status(),
        StatusCode::FOUND
    );
    assert_eq!(
        env.metric("trustgate_session_cookies_rejected_total{reason=\"bad_mac\"}")
            .await,
        1.0
    );

    // Signed by another deployment's key.
    let foreign = {
        let up = Upstream::echo_headers().await;
        let text = enforced(&up.url(), "").replace(KEY, "another-deployment-key-0123456789abcdef");
        let gw = TestGateway::start("", &text).await;
        let e = Env {
            gw,
            _up: up,
            signer: signer(),
            client: https_client(false),
        };
        desktop_session(&e, WINDOWS).await
    };
    assert_eq!(
        env.get("/", WINDOWS, &[foreign]).await.status(),
        StatusCode::FOUND
    );
    assert_eq!(
        env.metric("trustgate_session_cookies_rejected_total{reason=\"bad_mac\"}")
            .await,
        2.0
    );

    // Still good now; past the session lifetime (8h default) it is not.
    assert_eq!(
        env.get("/", WINDOWS, std::slice::from_ref(&session))
            .await
            .status(),
        StatusCode::OK
    );
    env.gw
        .running()
        .gateway
        .advance_clock(Duration::from_secs(8 * 3600 + 1));
    assert_eq!(
        env.get("/", WINDOWS, &[session]).await.status(),
        StatusCode::FOUND
    );
    assert_eq!(
        env.metric("trustgate_session_cookies_rejected_total{reason=\"expired\"}")
            .await,
        1.0
    );
}

#[tokio::test]
async fn cookie_replayed_from_another_platform_is_void() {
    let env = Env::start().await;
    let session = desktop_session(&env, WINDOWS).await;
    assert_eq!(
        env.get("/", WINDOWS, std::slice::from_ref(&session))
            .await
            .status(),
        StatusCode::OK
    );
    let resp = env.get("/", IPHONE, &[session]).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(
        env.metric("trustgate_session_cookies_rejected_total{reason=\"wrong_client\"}")
            .await,
        1.0
    );
}

#[tokio::test]
async fn max_session_age_caps_the_session() {
    let env = Env::start().await;
    let resp = env
        .post_acs(
            IPHONE,
            env.assertion("gina@corp.example", "TRUSTED", &[], None),
            &[],
        )
        .await;
    let set = resp.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(set.contains("Max-Age=3600"), "{set}");
}

#[tokio::test]
async fn replayed_assertion_is_refused() {
    let env = Env::start().await;
    let body = env.assertion("hank@corp.example", "NOT_TRUSTED", &[], None);
    assert_eq!(
        env.post_acs(WINDOWS, body.clone(), &[]).await.status(),
        StatusCode::OK
    );
    let resp = env.post_acs(WINDOWS, body, &[]).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(body_string(resp)
        .await
        .contains("could not be verified (replay)"));
    assert_eq!(
        env.metric("trustgate_assertions_total{app=\"app\",protocol=\"saml2\",result=\"replay\"}")
            .await,
        1.0
    );
}

#[tokio::test]
async fn full_replay_cache_pauses_new_sign_ins_and_still_refuses_replays() {
    let env = Env::start_edited("", "", |c| c.server.replay_cache_entries = 1).await;
    // The series the alert watches exists before the first refusal.
    let series =
        "trustgate_assertions_total{app=\"app\",protocol=\"saml2\",result=\"replay_cache_full\"}";
    assert!(env
        .gw
        .metrics()
        .await
        .lines()
        .any(|l| l == format!("{series} 0")));
    let first = env.assertion("ida@corp.example", "NOT_TRUSTED", &[], None);
    assert_eq!(
        env.post_acs(WINDOWS, first.clone(), &[]).await.status(),
        StatusCode::OK
    );
    assert_eq!(env.metric("trustgate_replay_cache_entries").await, 1.0);

    // A genuine new sign-in waits: remembering it would mean forgetting one
    // that could still be replayed.
    let second = env.assertion("joe@corp.example", "NOT_TRUSTED", &[], None);
    let resp = env.post_acs(WINDOWS, second, &[]).await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(resp.headers()["retry-after"], "60");
    assert!(cookies(&resp).is_empty());
    let page = body_string(resp).await;
    assert!(page.contains("Try again in a few minutes"), "{page}");
    assert!(page.contains("href=\"/login\""), "{page}");
    let metrics = env.gw.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            "trustgate_assertions_total{app=\"app\",protocol=\"saml2\",result=\"replay_cache_full\"}"
        ),
        1.0
    );
    assert_eq!(metric(&metrics, "trustgate_replay_cache_capacity"), 1.0);
    // A paused sign-in is not a policy decision.
    assert!(
        !metrics.contains("rule=\"assertion_rejected\"} 1"),
        "{metrics}"
    );

    // The one it remembers is still refused as a replay.
    let resp = env.post_acs(WINDOWS, first, &[]).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(body_string(resp)
        .await
        .contains("could not be verified (replay)"));
}

#[tokio::test]
async fn forged_assertion_is_refused() {
    let env = Env::start().await;
    let body = env.assertion("ivan@corp.example", "NOT_TRUSTED", &[], None);
    let resp = env.post_acs(IPHONE, forge(&body), &[]).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(body_string(resp).await.contains("could not be verified"));
    assert_eq!(
        env.metric(
            "trustgate_assertions_total{app=\"app\",protocol=\"saml2\",result=\"bad_digest\"}"
        )
        .await,
        1.0
    );
}

/// Flips the trust value inside the signed assertion of a form body.
fn forge(body: &str) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut pairs: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let xml = String::from_utf8(b64.decode(&pairs[0].1).unwrap()).unwrap();
    pairs[0].1 = b64.encode(xml.replace("NOT_TRUSTED", "TRUSTED"));
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// With workers to spare, a usual body is verified on the async worker and
/// a large one on the blocking pool (`service::Verification`): both accept
/// what is signed and refuse what was forged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assertions_are_judged_alike_on_the_worker_and_on_the_blocking_pool() {
    let env = Env::start().await;
    let many: Vec<String> = (0..4000).map(|i| format!("group-{i:05}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    for (user, groups) in [
        ("alice@corp.example", &[][..]),
        ("bob@corp.example", &many[..]),
    ] {
        let body = env.assertion(user, "NOT_TRUSTED", groups, None);
        let large = body.len() > trustgate::service::INLINE_VERIFY_BYTES;
        assert_eq!(large, !groups.is_empty(), "{} bytes", body.len());

        let resp = env.post_acs(WINDOWS, forge(&body), &[]).await;
        assert_eq!(
            resp.status(),
            StatusCode::FORBIDDEN,
            "forged, large: {large}"
        );
        let seen = upstream_saw(env.post_acs(WINDOWS, body, &[]).await).await;
        assert_eq!(
            seen["x-trustgate-device-trust"][0], "not_trusted",
            "large: {large}"
        );
    }
    assert_eq!(
        env.metric(
            "trustgate_assertions_total{app=\"app\",protocol=\"saml2\",result=\"bad_digest\"}"
        )
        .await,
        2.0
    );
}

#[tokio::test]
async fn oversized_assertion_post_gets_413() {
    let env = Env::start_with("max_assertion_bytes = 1024", "").await;
    let resp = env
        .post_acs(
            WINDOWS,
            "SAMLResponse=".to_string() + &"A".repeat(4096),
            &[],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn revoked_session_is_void_everywhere() {
    let env = Env::start().await;
    let session = desktop_session(&env, WINDOWS).await;
    assert_eq!(
        env.get("/", WINDOWS, std::slice::from_ref(&session))
            .await
            .status(),
        StatusCode::OK
    );
    let url = format!("http://{}/sessions/revoke", env.gw.running().admin_addr);
    let resp = plain_client()
        .request(
            Request::post(url.clone())
                .header("content-type", "application/json")
                .body(full(r#"{"subject": "frank@corp.example"}"#))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        env.get("/", WINDOWS, &[session]).await.status(),
        StatusCode::FOUND
    );
    assert_eq!(
        env.metric("trustgate_session_cookies_rejected_total{reason=\"revoked\"}")
            .await,
        1.0
    );
    assert_eq!(
        env.metric("trustgate_revocations_total{scope=\"subject\"}")
            .await,
        1.0
    );

    let bad = plain_client()
        .request(
            Request::post(url)
                .header("content-type", "application/json")
                .body(full("{}"))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
}

/// A pretty-printing IdP's NameID, with whitespace around it and another
/// case: revoking the plain address still finds the session.
#[tokio::test]
async fn revoking_a_subject_finds_a_padded_and_recased_name_id() {
    let env = Env::start().await;
    let resp = env
        .post_acs(
            WINDOWS,
            env.assertion("\n    Bob@Corp.Example\n  ", "NOT_TRUSTED", &[], None),
            &[],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let session = cookie_named(&cookies(&resp), "__Host-trustgate");
    let seen = upstream_saw(env.get("/", WINDOWS, std::slice::from_ref(&session)).await).await;
    let hash = seen["x-trustgate-subject"][0].as_str().unwrap().to_string();
    let url = format!("http://{}/sessions/revoke", env.gw.running().admin_addr);
    let resp = plain_client()
        .request(
            Request::post(url)
                .header("content-type", "application/json")
                .body(full(r#"{"subject": "bob@corp.example"}"#))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        env.get("/", WINDOWS, &[session]).await.status(),
        StatusCode::FOUND
    );
    // The hash is the trimmed, lowercased address's.
    assert_eq!(
        hash,
        trustgate::remember::token::SubjectHash::of("bob@corp.example").to_string()
    );
}

/// Without a token, a page in a browser on the gateway's host could post to
/// the admin listener: only JSON, and nothing from another site.
#[tokio::test]
async fn revoking_refuses_cross_site_and_non_json_requests() {
    let env = Env::start().await;
    let session = desktop_session(&env, WINDOWS).await;
    let url = format!("http://{}/sessions/revoke", env.gw.running().admin_addr);
    let host = env.gw.running().admin_addr.to_string();
    let send = |headers: &[(&str, &str)]| {
        let mut req = Request::post(url.clone());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        plain_client().request(
            req.body(full(r#"{"subject": "frank@corp.example"}"#))
                .unwrap(),
        )
    };
    for headers in [
        vec![("content-type", "text/plain")],
        vec![],
        vec![
            ("content-type", "application/json"),
            ("origin", "https://evil.example"),
        ],
        vec![("content-type", "application/json"), ("origin", "null")],
        vec![
            ("content-type", "application/json"),
            ("sec-fetch-site", "cross-site"),
        ],
        vec![
            ("content-type", "application/json"),
            ("sec-fetch-site", "same-site"),
        ],
    ] {
        let resp = send(&headers).await.unwrap();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{headers:?}");
    }
    // Nothing was revoked by those.
    assert_eq!(
        env.get("/", WINDOWS, std::slice::from_ref(&session))
            .await
            .status(),
        StatusCode::OK
    );
    let own_origin = format!("http://{host}");
    let resp = send(&[
        ("content-type", "application/json; charset=utf-8"),
        ("origin", &own_origin),
        ("sec-fetch-site", "same-origin"),
    ])
    .await
    .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        env.get("/", WINDOWS, &[session]).await.status(),
        StatusCode::FOUND
    );
}

#[tokio::test]
async fn revoking_needs_the_admin_token_when_one_is_set() {
    let up = Upstream::echo_headers().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    let body = config_text("", &enforced(&up.url(), "")).replace(
        "[admin]\nlisten = \"127.0.0.1:0\"\n",
        "[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"admin-token-0123456789\"\n",
    );
    std::fs::write(&path, body).unwrap();
    let running = trustgate::lifecycle::start(trustgate::config::Config::load(&path).unwrap())
        .await
        .unwrap();
    let url = format!("http://{}/sessions/revoke", running.admin_addr);
    let send = |auth: Option<&str>| {
        let mut req = Request::post(url.clone());
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        plain_client().request(
            req.header("content-type", "application/json")
                .body(full(r#"{"subject": "x@y"}"#))
                .unwrap(),
        )
    };
    assert_eq!(send(None).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        send(Some("Bearer wrong-token-0123456789"))
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(Some("Bearer admin-token-0123456789"))
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    running.shutdown().await;
}

#[tokio::test]
async fn acs_and_public_paths_match_only_in_canonical_form() {
    let env = Env::start().await;
    // Variants that some apps would still route to their ACS are refused
    // instead of being forwarded unverified.
    for path in [
        "/saml/acs;jsessionid=1",
        "//saml/acs",
        "/saml/./acs",
        "/saml/%2e/acs",
        // An escaped letter that needs no escape: refused, not decoded, so
        // that no upstream can read a path the gateway did not route.
        "/saml/%61cs",
    ] {
        let req = Request::post(format!(
            "https://localhost:{}{path}",
            env.gw.tls_addr().port()
        ))
        .header("user-agent", IPHONE)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(full(env.assertion(
            "jo@corp.example",
            "NOT_TRUSTED",
            &[],
            None,
        )))
        .unwrap();
        assert_eq!(
            env.send(req).await.status(),
            StatusCode::BAD_REQUEST,
            "{path}"
        );
    }
    // A trailing slash is still the ACS: verified.
    for path in ["/saml/acs/"] {
        let req = Request::post(format!(
            "https://localhost:{}{path}",
            env.gw.tls_addr().port()
        ))
        .header("user-agent", IPHONE)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(full(env.assertion(
            "jo@corp.example",
            "NOT_TRUSTED",
            &[],
            None,
        )))
        .unwrap();
        assert_eq!(
            env.send(req).await.status(),
            StatusCode::FOUND,
            "{path} enrolls"
        );
    }
    // Public prefixes hold at segment boundaries only.
    assert_eq!(
        env.get("/public/a.css", WINDOWS, &[]).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        env.get("/publicity", WINDOWS, &[]).await.status(),
        StatusCode::FOUND
    );
    assert_eq!(
        env.get("/public/..;/secret", WINDOWS, &[]).await.status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        env.get("/public/%2e%2e/secret", WINDOWS, &[])
            .await
            .status(),
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn trust_headers_cannot_be_deleted_or_spoofed_by_other_spellings() {
    let env = Env::start().await;
    let session = desktop_session(&env, WINDOWS).await;
    let req = Request::get(env.gw.https("/"))
        .header("user-agent", WINDOWS)
        .header("cookie", session)
        .header(
            "connection",
            "keep-alive, X-Trustgate-Device-Trust, x-trustgate-subject",
        )
        .header("x_trustgate_device_trust", "trusted")
        .header("X_TRUSTGATE_PLATFORM", "ios")
        .body(full(""))
        .unwrap();
    let seen = upstream_saw(env.send(req).await).await;
    assert_eq!(seen["x-trustgate-device-trust"][0], "not_trusted");
    assert_eq!(seen["x-trustgate-subject"][0].as_str().unwrap().len(), 32);
    assert!(seen.get("x_trustgate_device_trust").is_none(), "{seen}");
    assert!(seen.get("x_trustgate_platform").is_none(), "{seen}");
}

#[tokio::test]
async fn assertion_posts_must_be_forms_without_smuggled_query_fields() {
    let env = Env::start().await;
    let body = env.assertion("kim@corp.example", "NOT_TRUSTED", &[], None);
    let req = Request::post(env.gw.https("/saml/acs"))
        .header("user-agent", WINDOWS)
        .header("content-type", "text/plain")
        .body(full(body.clone()))
        .unwrap();
    assert_eq!(env.send(req).await.status(), StatusCode::BAD_REQUEST);
    let req = Request::post(env.gw.https("/saml/acs?SAMLResponse=other"))
        .header("user-agent", WINDOWS)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(full(body))
        .unwrap();
    assert_eq!(env.send(req).await.status(), StatusCode::BAD_REQUEST);
}

/// Apps opened from an Okta Mobile chiclet skip Okta's own device-trust
/// check, but the IdP-initiated POST still comes to the ACS through the
/// gateway: the policy applies there, and UNKNOWN counts as not trusted.
#[tokio::test]
async fn okta_mobile_chiclet_launches_meet_the_policy_at_the_acs() {
    const OKTA_MOBILE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 OktaMobile/9.12.0";
    let env = Env::start().await;
    for trust in ["UNKNOWN", "NOT_TRUSTED", ""] {
        // IdP-initiated: no RelayState, as a chiclet launch sends it.
        let resp = env
            .post_acs(
                OKTA_MOBILE,
                env.assertion("chiclet@corp.example", trust, &[], None),
                &[],
            )
            .await;
        assert_eq!(resp.status(), StatusCode::FOUND, "{trust:?}");
        let location = resp.headers()["location"].to_str().unwrap();
        assert!(
            location.starts_with("https://uem.example/enroll/welcome"),
            "{trust:?}: {location}"
        );
        assert!(cookies(&resp)
            .iter()
            .all(|c| !c.starts_with("__Host-trustgate=")));
    }
    let resp = env
        .post_acs(
            OKTA_MOBILE,
            env.assertion("chiclet@corp.example", "TRUSTED", &[], None),
            &[],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let seen = upstream_saw(resp).await;
    assert_eq!(seen["x-trustgate-platform"][0], "ios");
    assert_eq!(seen["x-trustgate-client-kind"][0], "native");
    assert_eq!(
        env.metric("trustgate_decisions_total{action=\"enroll\",app=\"app\",platform=\"ios\",rule=\"ios-enrolls\"}")
            .await,
        3.0
    );
}

/// An app whose gateway gates only the assertion POST (`enforce =
/// "assertion"`): every other request passes, so the ACS must be found in
/// every form an upstream would take for it.
async fn assertion_mode() -> Env {
    Env::start_edited("", "", |c| {
        let enf = c.apps[0].enforcement.as_mut().unwrap();
        std::sync::Arc::make_mut(enf).mode = trustgate::config::EnforceMode::Assertion;
    })
    .await
}

async fn acs_request(
    env: &Env,
    method: &str,
    path: &str,
    body: &str,
    h2: bool,
) -> Response<hyper::body::Incoming> {
    let mut req = Request::builder()
        .method(method)
        .uri(env.gw.https(path))
        .header("user-agent", ANDROID);
    if !body.is_empty() {
        req = req.header("content-type", "application/x-www-form-urlencoded");
    }
    let req = req.body(full(body.to_string())).unwrap();
    if h2 {
        https_client(true).request(req).await.unwrap()
    } else {
        env.send(req).await
    }
}

#[tokio::test]
async fn the_acs_is_answered_for_in_every_form_an_upstream_would_take_for_it() {
    let env = assertion_mode().await;
    // The exact path is verified: an untrusted Android browser is denied
    // there, never forwarded.
    let denied = env.assertion("ann@corp.example", "NOT_TRUSTED", &[], None);
    let resp = acs_request(&env, "POST", "/saml/acs", &denied, false).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    // Another case or a stream name is the same file to IIS: refused, with
    // a fresh assertion each time so that no replay refusal hides a pass.
    for path in ["/SAML/ACS", "/saml/Acs/", "/saml/acs:x", "/Saml/ACS:x/"] {
        let body = env.assertion("ann@corp.example", "NOT_TRUSTED", &[], None);
        for h2 in [false, true] {
            let resp = acs_request(&env, "POST", path, &body, h2).await;
            assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{path} h2={h2}");
            let page = body_string(resp).await;
            assert!(
                page.contains("sign-in (ACS) path in another form"),
                "{path}: {page}"
            );
        }
    }
    // No assertion reaches the app outside a POST body: not in a GET's
    // query (however its name is spelled), not in a GET's body, not as an
    // artifact the app would resolve itself, and not by another method.
    let b64 = "PHNhbWxwOlJlc3BvbnNlLz4=";
    for path in [
        format!("/saml/acs?SAMLResponse={b64}"),
        format!("/saml/acs?samlresponse={b64}"),
        format!("/saml/acs?%53AMLResponse={b64}"),
        format!("/saml/acs?%u0053AMLResponse={b64}"),
        format!("/saml/acs?x=1&wresult={b64}"),
        "/saml/acs?SAMLart=AAQAAMh48%2FaL".to_string(),
    ] {
        for (method, h2) in [("GET", false), ("HEAD", false), ("GET", true)] {
            let resp = acs_request(&env, method, &path, "", h2).await;
            assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{method} {path}");
        }
    }
    let form = env.assertion("ann@corp.example", "NOT_TRUSTED", &[], None);
    for h2 in [false, true] {
        let resp = acs_request(&env, "GET", "/saml/acs", &form, h2).await;
        assert_eq!(
            resp.status(),
            StatusCode::BAD_REQUEST,
            "GET with a body, h2={h2}"
        );
    }
    let resp = acs_request(&env, "POST", "/saml/acs?SAMLart=AAQ", &form, false).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    for method in ["PUT", "PATCH", "DELETE", "OPTIONS"] {
        let resp = acs_request(&env, method, "/saml/acs", &form, false).await;
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED, "{method}");
        assert_eq!(resp.headers()["allow"], "GET, HEAD, POST");
    }
    // Nor on any other path: an app that merges query and form fields, or
    // takes a sign-in on any URL (WIF), would read it there.
    for path in [
        format!("/inbox?SAMLResponse={b64}"),
        format!("/login?wresult={b64}"),
        "/public/x?samlart=AAQ".to_string(),
    ] {
        let resp = acs_request(&env, "GET", &path, "", false).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{path}");
    }
    // What brings no assertion still reaches the app: WS-Federation's
    // sign-out cleanup, and the rest of the app in this mode.
    for path in ["/saml/acs?wa=wsignoutcleanup1.0", "/saml/acs", "/inbox"] {
        let resp = acs_request(&env, "GET", path, "", false).await;
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
    }
    assert_eq!(
        env.metric("trustgate_gateway_errors_total{reason=\"acs_method_not_allowed\"}")
            .await,
        4.0
    );
    assert_eq!(
        env.metric("trustgate_gateway_errors_total{reason=\"assertion_not_posted\"}")
            .await,
        6.0 * 3.0 + 3.0 + 3.0
    );
}

/// In session mode a client with a session could otherwise hand the app a
/// captured assertion under another case of the ACS, past the replay check.
#[tokio::test]
async fn a_session_does_not_carry_an_assertion_past_the_acs() {
    let env = Env::start().await;
    let session = desktop_session(&env, WINDOWS).await;
    let body = env.assertion("mallory@corp.example", "TRUSTED", &["admins"], None);
    let req = Request::post(env.gw.https("/SAML/acs"))
        .header("user-agent", WINDOWS)
        .header("cookie", session)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(full(body))
        .unwrap();
    assert_eq!(env.send(req).await.status(), StatusCode::BAD_REQUEST);
}

/// A revocation voids what the IdP said before it: an unused assertion
/// issued before a subject was revoked does not sign the subject in again,
/// and one issued after it does.
#[tokio::test]
async fn an_assertion_issued_before_a_revocation_does_not_undo_it() {
    let env = Env::start().await;
    let kept = env.assertion("carol@corp.example", "TRUSTED", &[], None);
    env.gw
        .running()
        .gateway
        .advance_clock(Duration::from_secs(2));
    let url = format!("http://{}/sessions/revoke", env.gw.running().admin_addr);
    let resp = plain_client()
        .request(
            Request::post(url)
                .header("content-type", "application/json")
                .body(full(r#"{"subject": "Carol@corp.example"}"#))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = env.post_acs(WINDOWS, kept, &[]).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(cookies(&resp)
        .iter()
        .all(|c| !c.starts_with("__Host-trustgate=")));
    let page = body_string(resp).await;
    assert!(page.contains("(issued before revocation)"), "{page}");
    assert_eq!(
        env.metric("trustgate_assertions_total{app=\"app\",protocol=\"saml2\",result=\"issued_before_revocation\"}")
            .await,
        1.0
    );
    // Another subject is not touched, and a fresh assertion (issued after
    // the revocation) signs Carol in.
    let other = env.assertion("dan@corp.example", "TRUSTED", &[], None);
    env.gw
        .running()
        .gateway
        .advance_clock(Duration::from_secs(1));
    assert_eq!(
        env.post_acs(WINDOWS, other, &[]).await.status(),
        StatusCode::OK
    );
    let fresh = env.assertion("carol@corp.example", "TRUSTED", &[], None);
    assert_eq!(
        env.post_acs(WINDOWS, fresh, &[]).await.status(),
        StatusCode::OK
    );
}
