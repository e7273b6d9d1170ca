//! Workspace ONE UEM Event Notifications on one replica (no Redis): an
//! event that says a device is no longer trusted ends its user's open
//! session within the request; the endpoint refuses what it must.

mod utils;

use http::StatusCode;
use utils::fleet::*;
use utils::*;

async fn gateway() -> (TestGateway, Upstream) {
    let up = Upstream::echo_headers().await;
    let gw = TestGateway::start("", &fleet_config(&up.url(), None)).await;
    (gw, up)
}

#[tokio::test]
async fn a_non_compliant_device_loses_its_session_at_once() {
    let (gw, _up) = gateway().await;
    let signer = signer();
    let bob = sign_in(&gw, &signer, "bob@corp.example").await;
    let ann = sign_in(&gw, &signer, "ann@corp.example").await;
    assert_eq!(session_status(&gw, &bob).await, StatusCode::OK);

    let (status, _, body) = post_event(
        &gw,
        Some((UEM_USER, UEM_PASSWORD)),
        "application/json",
        event_json(
            "9001",
            "Compliance Status Changed",
            "CORP\\bob",
            "NonCompliant",
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["result"], "revoked");
    assert_eq!(session_status(&gw, &bob).await, StatusCode::FOUND);
    assert_eq!(session_status(&gw, &ann).await, StatusCode::OK, "only bob");

    // The same delivery again changes nothing: bob signs in anew (a second
    // later: revocation holds for sessions issued up to its second) and
    // stays.
    gw.running()
        .gateway
        .advance_clock(std::time::Duration::from_secs(2));
    let bob2 = sign_in(&gw, &signer, "bob@corp.example").await;
    let (status, _, body) = post_event(
        &gw,
        Some((UEM_USER, UEM_PASSWORD)),
        "application/json",
        event_json(
            "9001",
            "Compliance Status Changed",
            "CORP\\bob",
            "NonCompliant",
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("duplicate"), "{body}");
    assert_eq!(session_status(&gw, &bob2).await, StatusCode::OK);

    // Good news and unknown types are acknowledged and counted.
    for (id, kind, compliance) in [
        ("9002", "Compliance Status Changed", "Compliant"),
        ("9003", "MDM Enrollment Complete", ""),
        ("9004", "Device Renamed", ""),
    ] {
        let (status, _, body) = post_event(
            &gw,
            Some((UEM_USER, UEM_PASSWORD)),
            "application/json",
            event_json(id, kind, "bob", compliance),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body.contains("acknowledged"), "{body}");
    }
    assert_eq!(session_status(&gw, &bob2).await, StatusCode::OK);

    // The XML form, a device wipe.
    let xml = "<Eventlog><EventId>9005</EventId><EventType>Enterprise Wipe</EventType>\
               <EnrollmentUserName>ann</EnrollmentUserName>\
               <EventTime>2026-12-03T09:05:00Z</EventTime></Eventlog>";
    let (status, _, body) = post_event(
        &gw,
        Some((UEM_USER, UEM_PASSWORD)),
        "application/xml",
        xml.into(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(session_status(&gw, &ann).await, StatusCode::FOUND);

    let m = gw.metrics().await;
    for (series, want) in [
        (
            "trustgate_uem_events_total{result=\"revoked\",type=\"untrusted\"}",
            2.0,
        ),
        (
            "trustgate_uem_events_total{result=\"duplicate\",type=\"untrusted\"}",
            1.0,
        ),
        (
            "trustgate_uem_events_total{result=\"acknowledged\",type=\"trusted\"}",
            2.0,
        ),
        (
            "trustgate_uem_events_total{result=\"acknowledged\",type=\"ignored\"}",
            1.0,
        ),
        ("trustgate_revocations_total{scope=\"subject\"}", 2.0),
    ] {
        assert_eq!(metric(&m, series), want, "{series}\n{m}");
    }
}

#[tokio::test]
async fn the_endpoint_refuses_what_it_must() {
    let (gw, _up) = gateway().await;
    let good = event_json("1", "Device Wipe", "bob", "");
    // No or wrong credentials: 401 with a Basic challenge.
    for creds in [
        None,
        Some((UEM_USER, "wrong-password-000")),
        Some(("other", UEM_PASSWORD)),
    ] {
        let (status, headers, _) = post_event(&gw, creds, "application/json", good.clone()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{creds:?}");
        assert!(headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic realm="));
    }
    // Malformed bodies: 400 naming the problem.
    for (body, says) in [
        ("{\"EventId\": 1,".to_string(), "not valid JSON"),
        ("{\"EventType\": \"Device Wipe\"}".to_string(), "no EventId"),
        ("<Other/>".to_string(), "Eventlog"),
        ("<Eventlog><EventId>1</Event".to_string(), "Eventlog XML"),
        ("hello".to_string(), "neither a JSON object"),
    ] {
        let (status, _, text) = post_event(
            &gw,
            Some((UEM_USER, UEM_PASSWORD)),
            "application/json",
            body.clone(),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(text.contains(says), "{body}: {text}");
    }
    let (status, _, _) = post_event(
        &gw,
        Some((UEM_USER, UEM_PASSWORD)),
        "application/json",
        " ".repeat(70 * 1024),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let resp = https_client(false)
        .request(
            http::Request::get(gw.https("/.trustgate/uem/events"))
                .body(full(""))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(resp.headers()["allow"], "POST");
    let m = gw.metrics().await;
    assert_eq!(
        metric(
            &m,
            "trustgate_uem_events_total{result=\"unauthorized\",type=\"unreadable\"}"
        ),
        3.0
    );
}

/// The shipped demo, on free ports: the portal's "Mark this device
/// non-compliant" sends a real event notification, and the open session
/// ends.
#[tokio::test]
async fn the_demo_portal_ends_a_session_with_a_real_event() {
    let port = |ip: &str| {
        std::net::TcpListener::bind((ip, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let (gw, app, portal, admin) = (
        port("127.0.0.1"),
        port("127.0.0.1"),
        port("127.0.0.2"),
        port("127.0.0.1"),
    );
    let text = std::fs::read_to_string(root().join("config.toml"))
        .unwrap()
        .replace("127.0.0.1:8443", &format!("127.0.0.1:{gw}"))
        .replace("127.0.0.1:8081", &format!("127.0.0.1:{app}"))
        .replace("127.0.0.2:8082", &format!("127.0.0.2:{portal}"))
        .replace("127.0.0.1:9901", &format!("127.0.0.1:{admin}"))
        .replace("\"certs/", &format!("\"{}/certs/", root().display()));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, text).unwrap();
    let running = trustgate::lifecycle::start(trustgate::config::Config::load(&path).unwrap())
        .await
        .unwrap();

    // Alice signs in from a desktop (the demo policy allows it).
    let attrs = vec![("DeviceTrustSignal", vec!["TRUSTED".to_string()])];
    let b64 = signer().response_b64(&trustgate::demo::idp::Grant {
        issuer: &format!("http://127.0.0.2:{portal}/idp"),
        audience: &format!("https://127.0.0.1:{gw}/saml/metadata"),
        acs_url: &format!("https://127.0.0.1:{gw}/saml/acs"),
        name_id: "alice@corp.example",
        attributes: &attrs,
        now: running.gateway.now(),
        lifetime: std::time::Duration::from_secs(300),
    });
    let form = form_urlencoded::Serializer::new(String::new())
        .append_pair("SAMLResponse", &b64)
        .finish();
    let client = https_client(false);
    let resp = client
        .request(
            http::Request::post(format!("https://localhost:{gw}/saml/acs"))
                .header("user-agent", WINDOWS)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(full(form))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::SEE_OTHER,
        "the demo app follows RelayState"
    );
    let cookie = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
        .find(|c| c.starts_with("__Host-trustgate="))
        .unwrap();
    let home = |cookie: String| {
        let client = client.clone();
        async move {
            client
                .request(
                    http::Request::get(format!("https://localhost:{gw}/headers"))
                        .header("user-agent", WINDOWS)
                        .header("cookie", cookie)
                        .body(full(""))
                        .unwrap(),
                )
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(home(cookie.clone()).await, StatusCode::OK);

    let resp = plain_client()
        .request(
            http::Request::post(format!("http://127.0.0.2:{portal}/enroll/noncompliant"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(full("user=alice%40corp.example"))
                .unwrap(),
        )
        .await
        .unwrap();
    let page = body_string(resp).await;
    assert!(page.contains("The gateway answered 200"), "{page}");
    assert!(page.contains("revoked"), "{page}");
    assert_eq!(home(cookie).await, StatusCode::FOUND, "the session ended");
    running.shutdown().await;
}
