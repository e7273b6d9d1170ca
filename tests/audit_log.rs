//! The audit event, read as a log shipper would: one JSON object per
//! decision that says who, from where, with what, and whose assertion. A
//! file of its own: the capturing subscriber is this thread's default, and
//! no other test may race it for the callsites' interest.

mod utils;

use std::time::Duration;

use http::{Request, StatusCode};
use trustgate::demo::idp::{Grant, Signer};
use utils::*;

const WINDOWS: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";
const ISSUER: &str = "http://idp.test/";

/// A `MakeWriter` into a shared buffer.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

#[tokio::test]
async fn the_audit_event_names_client_agent_host_and_issuer() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_writer(captured.clone())
        .with_max_level(tracing::Level::INFO)
        .finish();
    // The test runtime runs the gateway's tasks on this thread: the shared
    // runtime, not per-core threads (which have no subscriber of this one).
    let _guard = tracing::subscriber::set_default(subscriber);

    let up = Upstream::echo_headers().await;
    let rest = format!(
        "[session]\nkeys = [\"audit-test-session-key-0123456789abcdef\"]\n{}\
         [apps.app.idp]\nentity_id = \"{ISSUER}\"\ncerts = [{:?}]\n\
         [apps.app.sp]\nentity_id = \"https://localhost/sp\"\nacs_url = \"https://localhost/saml/acs\"\n\
         [apps.app.policy]\ndefault_action = \"allow\"\n",
        app(&up.url()),
        root().join("certs/demo-idp.pem")
    );
    let gw = TestGateway::start("runtime = \"shared\"\n", &rest).await;
    let signer = Signer::from_pem(
        &std::fs::read(root().join("certs/demo-idp.key")).unwrap(),
        &std::fs::read(root().join("certs/demo-idp.pem")).unwrap(),
    )
    .unwrap();
    let attrs = vec![("DeviceTrustSignal", vec!["NOT_TRUSTED".to_string()])];
    let b64 = signer.response_b64(&Grant {
        issuer: ISSUER,
        audience: "https://localhost/sp",
        acs_url: "https://localhost/saml/acs",
        name_id: "audit@corp.example",
        attributes: &attrs,
        now: gw.running().gateway.now(),
        lifetime: Duration::from_secs(300),
    });
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("SAMLResponse", &b64)
        .finish();
    let long_agent = format!("{WINDOWS} {}", "x".repeat(600));
    let resp = https_client(false)
        .request(
            Request::post(gw.https("/saml/acs"))
                .header("user-agent", &long_agent)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(full(body))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("trustgate::audit") && l.contains("\"decision\""))
        .unwrap_or_else(|| panic!("no audit event in {text}"));
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["client"], "127.0.0.1", "{line}");
    assert_eq!(
        v["host"],
        format!("localhost:{}", gw.tls_addr().port()),
        "{line}"
    );
    assert_eq!(v["issuer"], ISSUER, "{line}");
    let agent = v["user_agent"].as_str().unwrap();
    assert!(agent.starts_with("Mozilla/5.0 (Windows"), "{line}");
    assert_eq!(agent.len(), 256, "bounded: {line}");
    assert_eq!(v["subject"].as_str().unwrap().len(), 32, "{line}");
    assert!(
        !line.contains("audit@corp.example"),
        "no raw subject: {line}"
    );
    assert!(!text.contains("SAMLResponse"), "no assertion in logs");
}
