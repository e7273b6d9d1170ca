//! End-to-end tests of the proxy core: real sockets on 127.0.0.1, real TLS
//! with the development CA, a real upstream.

mod utils;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http::{Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use utils::*;

fn get(url: &str) -> Request<Body> {
    Request::get(url).body(full("")).unwrap()
}

#[tokio::test]
async fn http1_request_reaches_the_upstream() {
    let up = Upstream::echo_headers().await;
    let gw = TestGateway::start("", &app(&up.url())).await;
    let resp = https_client(false)
        .request(get(&gw.https("/a?b=c")))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.version(), Version::HTTP_11);
    assert!(resp.headers().contains_key("x-request-id"));
    let seen: serde_json::Value = serde_json::from_str(&body_string(resp).await).unwrap();
    assert_eq!(seen["x-test-path"][0], "/a?b=c");
}

#[tokio::test]
async fn http2_request_reaches_the_upstream() {
    let up = Upstream::echo_headers().await;
    let gw = TestGateway::start("", &app(&up.url())).await;
    let resp = https_client(true)
        .request(get(&gw.https("/h2")))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.version(), Version::HTTP_2);
    let seen: serde_json::Value = serde_json::from_str(&body_string(resp).await).unwrap();
    assert_eq!(seen["x-test-path"][0], "/h2");
    // The upstream gets a Host header even though h2 carries :authority.
    assert_eq!(
        seen["host"][0],
        format!("localhost:{}", gw.tls_addr().port())
    );
}

#[tokio::test]
async fn unknown_host_gets_a_404_page() {
    let up = Upstream::echo_headers().await;
    let gw = TestGateway::start("", &app(&up.url())).await;
    let req = Request::get(gw.https("/"))
        .header("host", "evil.example")
        .body(full(""))
        .unwrap();
    let resp = https_client(false).request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert!(body_string(resp).await.contains("No application is served"));
}

#[tokio::test]
async fn hop_by_hop_headers_are_stripped_and_forwarding_headers_set() {
    let up = Upstream::echo_headers().await;
    let gw = TestGateway::start("", &app(&up.url())).await;
    let req = Request::get(gw.https("/"))
        .header("connection", "keep-alive, x-private-hop")
        .header("x-private-hop", "secret")
        .header("keep-alive", "timeout=5")
        .header("proxy-authorization", "Basic Zm9vOmJhcg==")
        .header("te", "trailers")
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-forwarded-proto", "http")
        .header("x-request-id", "client-chosen-id")
        .header("x-end-to-end", "kept")
        .body(full(""))
        .unwrap();
    let resp = https_client(false).request(req).await.unwrap();
    assert_eq!(resp.headers()["x-request-id"], "client-chosen-id");
    let seen: serde_json::Value = serde_json::from_str(&body_string(resp).await).unwrap();
    for gone in ["x-private-hop", "keep-alive", "proxy-authorization", "te"] {
        assert!(
            seen.get(gone).is_none(),
            "{gone} reached the upstream: {seen}"
        );
    }
    assert_eq!(seen["x-end-to-end"][0], "kept");
    assert_eq!(seen["x-forwarded-for"][0], "203.0.113.9, 127.0.0.1");
    assert_eq!(seen["x-forwarded-proto"][0], "https");
    let host = format!("localhost:{}", gw.tls_addr().port());
    assert_eq!(seen["x-forwarded-host"][0], host);
    assert_eq!(seen["host"][0], host);
    assert_eq!(seen["x-request-id"][0], "client-chosen-id");
}

#[tokio::test]
async fn host_header_can_be_rewritten_to_the_upstream() {
    let up = Upstream::echo_headers().await;
    let rest = format!("{}host_header = \"upstream\"\n", app(&up.url()));
    let gw = TestGateway::start("", &rest).await;
    let resp = https_client(false)
        .request(get(&gw.https("/")))
        .await
        .unwrap();
    let seen: serde_json::Value = serde_json::from_str(&body_string(resp).await).unwrap();
    assert_eq!(seen["host"][0], up.addr.to_string());
}

#[tokio::test]
async fn sni_picks_the_certificate() {
    let dir = tempfile::tempdir().unwrap();
    // A second certificate for other.test, signed by the dev CA.
    let ca_key = rcgen::KeyPair::from_pem(
        &std::fs::read_to_string(root().join("certs/dev-ca.key")).unwrap(),
    )
    .unwrap();
    // The dev CA's name as examples/gen-certs.rs writes it: the issuer of
    // the new certificate must match the root the client trusts.
    let mut ca_params = rcgen::CertificateParams::default();
    ca_params.distinguished_name = rcgen::DistinguishedName::new();
    ca_params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "trustgate TEST ONLY");
    ca_params.distinguished_name.push(
        rcgen::DnType::CommonName,
        "trustgate development CA (TEST ONLY)",
    );
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["other.test".to_string()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    std::fs::write(dir.path().join("other.pem"), cert.pem()).unwrap();
    std::fs::write(dir.path().join("other.key"), key.serialize_pem()).unwrap();

    let up = Upstream::echo_headers().await;
    let rest = format!(
        "[[tls.certificates]]\ncert = {:?}\nkey = {:?}\n{}",
        dir.path().join("other.pem"),
        dir.path().join("other.key"),
        app(&up.url())
    );
    let gw = TestGateway::start("", &rest).await;

    for (sni, expect) in [("localhost", "localhost"), ("other.test", "other.test")] {
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client_tls(&[b"http/1.1"])));
        let tcp = TcpStream::connect(gw.tls_addr()).await.unwrap();
        let name = rustls_pki_types::ServerName::try_from(sni.to_string()).unwrap();
        // The handshake verifies the chain against the dev CA and the name.
        let tls = connector.connect(name, tcp).await.unwrap();
        let leaf = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
        let (_, parsed) = x509_parser::parse_x509_certificate(leaf.as_ref()).unwrap();
        let san = parsed.subject_alternative_name().unwrap().unwrap();
        let names = format!("{:?}", san.value.general_names);
        assert!(names.contains(expect), "sni {sni} got {names}");
    }
}

#[tokio::test]
async fn failed_handshakes_are_counted_and_the_listener_lives_on() {
    let up = Upstream::echo_headers().await;
    let gw = TestGateway::start("", &app(&up.url())).await;
    // Plain HTTP sent to the TLS port.
    let mut tcp = TcpStream::connect(gw.tls_addr()).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut buf)).await;
    // Counted by the serving thread as it closes: the close may reach the
    // client a moment before the count reaches /metrics.
    wait_for_metric(
        &gw,
        "trustgate_tls_handshake_failures_total{reason=\"not_tls\"}",
        1.0,
    )
    .await;
    let resp = https_client(false)
        .request(get(&gw.https("/")))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn upstream_down_gives_502() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let gw = TestGateway::start("", &app(&url)).await;
    let resp = https_client(false)
        .request(get(&gw.https("/")))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
    let page = body_string(resp).await;
    assert!(page.contains("could not be reached"), "{page}");
    assert!(
        !page.contains("127.0.0.1"),
        "page leaks the upstream: {page}"
    );
    let m = gw.metrics().await;
    assert_eq!(
        metric(
            &m,
            "trustgate_upstream_errors_total{app=\"app\",kind=\"connect\"}"
        ),
        1.0
    );
}

#[tokio::test]
async fn upstream_reset_gives_502() {
    // An upstream that accepts and closes without answering.
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            drop(s);
        }
    });
    let gw = TestGateway::start("", &app(&url)).await;
    let resp = https_client(false)
        .request(get(&gw.https("/")))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
}

#[tokio::test]
async fn slow_upstream_gives_504() {
    let up = Upstream::start(|_req| async {
        tokio::time::sleep(Duration::from_secs(5)).await;
        Response::new(full("late"))
    })
    .await;
    let rest = format!(
        "[upstream]\nresponse_timeout = \"300ms\"\n{}",
        app(&up.url())
    );
    let gw = TestGateway::start("", &rest).await;
    let resp = https_client(false)
        .request(get(&gw.https("/")))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::GATEWAY_TIMEOUT);
    let m = gw.metrics().await;
    assert_eq!(
        metric(
            &m,
            "trustgate_upstream_errors_total{app=\"app\",kind=\"timeout\"}"
        ),
        1.0
    );
}

const MB: usize = 1024 * 1024;

/// 50 MB up: the upstream must see the first megabyte before the client
/// sends the rest, which a buffering proxy could not do.
#[tokio::test]
async fn upload_streams_without_buffering() {
    let received = Arc::new(AtomicU64::new(0));
    let seen = received.clone();
    let up = Upstream::start(move |req| {
        let seen = seen.clone();
        async move {
            let mut body = req.into_body();
            while let Some(frame) = body.frame().await {
                if let Ok(data) = frame.unwrap().into_data() {
                    seen.fetch_add(data.len() as u64, Ordering::SeqCst);
                }
            }
            Response::new(full(seen.load(Ordering::SeqCst).to_string()))
        }
    })
    .await;
    let gw = TestGateway::start("", &app(&up.url())).await;

    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(4);
    let stream = tokio_stream_from(rx);
    let req = Request::post(gw.https("/upload"))
        .body(BodyExt::boxed(StreamBody::new(stream)))
        .unwrap();
    let client = https_client(false);
    let pending = tokio::spawn(async move { client.request(req).await });

    let chunk = Bytes::from(vec![7u8; MB]);
    tx.send(Ok(Frame::data(chunk.clone()))).await.unwrap();
    wait_until(|| received.load(Ordering::SeqCst) >= MB as u64).await;
    for _ in 1..50 {
        tx.send(Ok(Frame::data(chunk.clone()))).await.unwrap();
    }
    drop(tx);
    let resp = pending.await.unwrap().unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(body_string(resp).await, (50 * MB).to_string());
}

/// 50 MB down: the client must get the first megabyte before the upstream
/// sends the rest.
#[tokio::test]
async fn download_streams_without_buffering() {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(4);
    let rx = Arc::new(tokio::sync::Mutex::new(Some(rx)));
    let up = Upstream::start(move |_req| {
        let rx = rx.clone();
        async move {
            let rx = rx.lock().await.take().expect("one download");
            Response::new(BodyExt::boxed(StreamBody::new(tokio_stream_from(rx))))
        }
    })
    .await;
    let gw = TestGateway::start("", &app(&up.url())).await;
    let client = https_client(true);
    let chunk = Bytes::from(vec![9u8; MB]);
    tx.send(Ok(Frame::data(chunk.clone()))).await.unwrap();
    let resp = client.request(get(&gw.https("/download"))).await.unwrap();
    let mut body = resp.into_body();
    let mut got = 0usize;
    while got < MB {
        let frame = tokio::time::timeout(Duration::from_secs(10), body.frame())
            .await
            .expect("first megabyte arrives before the rest is sent")
            .unwrap()
            .unwrap();
        got += frame.into_data().map(|d| d.len()).unwrap_or(0);
    }
    let sender = tokio::spawn(async move {
        for _ in 1..50 {
            tx.send(Ok(Frame::data(chunk.clone()))).await.unwrap();
        }
    });
    while let Some(frame) = body.frame().await {
        got += frame.unwrap().into_data().map(|d| d.len()).unwrap_or(0);
    }
    sender.await.unwrap();
    assert_eq!(got, 50 * MB);
}

fn tokio_stream_from<T: Send + 'static>(
    rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> + Send + Sync + 'static {
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|v| (v, rx)) })
}

async fn wait_until(cond: impl Fn() -> bool) {
    for _ in 0..500 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not met within 5 s");
}

#[tokio::test]
async fn websocket_echo_through_the_proxy() {
    let up = Upstream::start(|mut req| async move {
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
                if msg.is_text() || msg.is_binary() {
                    ws.send(msg).await.unwrap();
                }
            }
        });
        Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-accept", derive_accept_key(&key))
            .body(full(""))
            .unwrap()
    })
    .await;
    let gw = TestGateway::start("", &app(&up.url())).await;

    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_tls(&[b"http/1.1"])));
    let tcp = TcpStream::connect(gw.tls_addr()).await.unwrap();
    let tls = connector
        .connect(
            rustls_pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    let url = format!("wss://localhost:{}/ws", gw.tls_addr().port());
    let (mut ws, resp) = tokio_tungstenite::client_async(url, tls).await.unwrap();
    assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
    for text in ["hello", "device trust"] {
        ws.send(tokio_tungstenite::tungstenite::Message::text(text))
            .await
            .unwrap();
        let echo = ws.next().await.unwrap().unwrap();
        assert_eq!(echo.into_text().unwrap().as_str(), text);
    }
}

/// A client that never finishes its request head is cut off.
#[tokio::test]
async fn slowloris_client_is_disconnected() {
    let up = Upstream::echo_headers().await;
    let gw = TestGateway::start("header_read_timeout = \"500ms\"", &app(&up.url())).await;
    let mut tcp = TcpStream::connect(gw.plain_addr()).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut buf)).await;
    assert!(closed.is_ok(), "connection still open after 5 s");
}

/// A kept-alive connection with no traffic is closed after idle_timeout.
#[tokio::test]
async fn idle_keep_alive_connection_is_closed() {
    let up = Upstream::echo_headers().await;
    let gw = TestGateway::start(
        "idle_timeout = \"400ms\"\nheader_read_timeout = \"30s\"",
        &app(&up.url()),
    )
    .await;
    let mut tcp = TcpStream::connect(gw.plain_addr()).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tcp.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "idle connection still open after 5 s");
}

#[tokio::test]
async fn connections_over_the_limit_are_refused() {
    let up = Upstream::echo_headers().await;
    let gw = TestGateway::start("max_connections = 1", &app(&up.url())).await;
    let mut first = TcpStream::connect(gw.plain_addr()).await.unwrap();
    first
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    assert!(first.read(&mut buf).await.unwrap() > 0);
    let mut second = TcpStream::connect(gw.plain_addr()).await.unwrap();
    let _ = second
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await;
    let mut rest = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(5), second.read_to_end(&mut rest)).await;
    assert!(
        matches!(r, Ok(Ok(0)) | Ok(Err(_))),
        "second connection was served"
    );
    let m = gw.metrics().await;
    assert_eq!(
        metric(
            &m,
            "trustgate_connections_refused_total{listener=\"plain\"}"
        ),
        1.0
    );
}

#[tokio::test]
async fn metrics_move_with_traffic() {
    let up = Upstream::echo_headers().await;
    let gw = TestGateway::start("", &app(&up.url())).await;
    let series = "trustgate_requests_total{app=\"app\",method=\"GET\",status=\"2xx\"}";
    let before = metric(&gw.metrics().await, series);
    let client = https_client(false);
    for _ in 0..3 {
        let resp = client.request(get(&gw.https("/"))).await.unwrap();
        body_string(resp).await;
    }
    let m = gw.metrics().await;
    assert_eq!(metric(&m, series) - before, 3.0);
    assert_eq!(
        metric(&m, "trustgate_request_duration_seconds_count{app=\"app\"}"),
        3.0
    );
    assert_eq!(
        metric(&m, "trustgate_upstream_duration_seconds_count{app=\"app\"}"),
        3.0
    );
    assert!(metric(&m, "trustgate_connections_total{listener=\"tls\"}") >= 1.0);
    assert_eq!(metric(&m, "trustgate_build_info{version=\"0.1.0\"}"), 1.0);
    assert_eq!(metric(&m, "trustgate_ready"), 1.0);
}

#[tokio::test]
async fn reload_applies_good_config_and_keeps_old_on_bad() {
    let up = Upstream::echo_headers().await;
    let mut gw = TestGateway::start("", &app(&up.url())).await;
    let client = https_client(false);
    let req = |host: &str, gw: &TestGateway| {
        Request::get(gw.https("/"))
            .header("host", host)
            .body(full(""))
            .unwrap()
    };
    assert_eq!(
        client.request(req("new.test", &gw)).await.unwrap().status(),
        StatusCode::NOT_FOUND
    );

    // Good: a second app appears.
    let good = format!(
        "{}[apps.new]\nhosts = [\"new.test\"]\nupstream = {:?}\n",
        app(&up.url()),
        up.url()
    );
    std::fs::write(&gw.config_path, config_text("", &good)).unwrap();
    gw.running().reload().unwrap();
    assert_eq!(
        client.request(req("new.test", &gw)).await.unwrap().status(),
        StatusCode::OK
    );

    // Bad: refused with the key named, and the running config stays.
    std::fs::write(
        &gw.config_path,
        config_text(
            "",
            "[apps.broken]\nhosts = [\"x\"]\nupstream = \"ftp://x\"\n",
        ),
    )
    .unwrap();
    let err = gw.running().reload().unwrap_err();
    assert!(err.to_string().contains("apps.broken.upstream"), "{err}");
    assert_eq!(
        client.request(req("new.test", &gw)).await.unwrap().status(),
        StatusCode::OK
    );

    let m = gw.metrics().await;
    assert_eq!(
        metric(&m, "trustgate_config_reloads_total{result=\"success\"}"),
        1.0
    );
    assert_eq!(
        metric(&m, "trustgate_config_reloads_total{result=\"failure\"}"),
        1.0
    );
    assert!(gw.shutdown().await);
}

/// Drain: the slow request in flight completes, readiness turns off, and new
/// connections are refused.
#[tokio::test]
async fn graceful_drain_finishes_in_flight_requests() {
    graceful_drain(false).await;
}

/// The same over h2: the answer in flight reaches the client through the
/// gathered writes (`accept/gather.rs`), and the connection closes in time.
#[tokio::test]
async fn graceful_drain_finishes_in_flight_h2_requests() {
    graceful_drain(true).await;
}

async fn graceful_drain(h2: bool) {
    // The upstream says when the request reached it, and answers only when
    // the test lets it: the order of events is signalled, never slept on.
    let (arrived_tx, mut arrived) = tokio::sync::mpsc::channel::<()>(1);
    let release = Arc::new(tokio::sync::Notify::new());
    let upstream_release = release.clone();
    let up = Upstream::start(move |_req| {
        let (arrived_tx, release) = (arrived_tx.clone(), upstream_release.clone());
        async move {
            let _ = arrived_tx.send(()).await;
            release.notified().await;
            Response::new(full("finished"))
        }
    })
    .await;
    let mut gw = TestGateway::start("grace_period = \"10s\"", &app(&up.url())).await;
    let tls_addr = gw.tls_addr();
    let admin = gw.running().admin_addr;
    let client = https_client(h2);
    let url = gw.https("/slow");
    let in_flight = tokio::spawn(async move { client.request(get(&url)).await });
    tokio::time::timeout(Duration::from_secs(10), arrived.recv())
        .await
        .expect("the request reaches the upstream");

    let gateway = gw.running().gateway.clone();
    let running = gw.running.take().unwrap();
    let drain = tokio::spawn(running.shutdown());
    // Readiness turns off and the listener closes as the drain starts.
    let start = std::time::Instant::now();
    while gateway.is_ready() || TcpStream::connect(tls_addr).await.is_ok() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "still ready, or still accepting, while draining"
        );
        tokio::task::yield_now().await;
    }
    let ready = plain_client()
        .request(get(&format!("http://{admin}/readyz")))
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(!drain.is_finished(), "the drain waits for the request");

    release.notify_one();
    let resp = in_flight.await.unwrap().unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let version = if h2 {
        hyper::Version::HTTP_2
    } else {
        hyper::Version::HTTP_11
    };
    assert_eq!(resp.version(), version);
    assert_eq!(body_string(resp).await, "finished");
    assert!(
        drain.await.unwrap(),
        "drain did not finish in the grace period"
    );
}

/// An https upstream on a free port, with `localhost`'s certificate and
/// `alpn`, that answers every request with its HTTP version; it counts the
/// TCP connections it accepts.
async fn tls_upstream(alpn: &[&[u8]]) -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
    use rustls_pki_types::pem::PemObject;
    let certs: Vec<_> =
        rustls_pki_types::CertificateDer::pem_file_iter(root().join("certs/localhost.pem"))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
    let key =
        rustls_pki_types::PrivateKeyDer::from_pem_file(root().join("certs/localhost.key")).unwrap();
    let mut tls = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    tls.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc =
                    hyper::service::service_fn(|req: Request<hyper::body::Incoming>| async move {
                        Ok::<_, std::convert::Infallible>(Response::new(full(format!(
                            "{:?}",
                            req.version()
                        ))))
                    });
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                .await;
            });
        }
    });
    (port, accepted)
}

/// An https upstream, trusted through `upstream.ca_file`, with HTTP/2 by ALPN.
#[tokio::test]
async fn https_upstream_with_configured_roots() {
    let (port, _) = tls_upstream(&[b"h2", b"http/1.1"]).await;
    let rest = format!(
        "[upstream]\nca_file = {:?}\n{}",
        root().join("certs/dev-ca.pem"),
        app(&format!("https://localhost:{port}"))
    );
    let gw = TestGateway::start("", &rest).await;
    let client = https_client(false);
    for _ in 0..3 {
        let resp = client.request(get(&gw.https("/"))).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(body_string(resp).await, "HTTP/2.0");
    }
}

/// An h2 upstream gets one connection on the shared runtime and at most one
/// per serving thread with per-core runtimes (each thread drives its own),
/// however many requests come at once once it is known to speak h2.
#[tokio::test]
async fn an_h2_upstream_gets_a_connection_per_serving_thread_at_most() {
    let (port, accepted) = tls_upstream(&[b"h2", b"http/1.1"]).await;
    for (runtime, most) in [("shared", 1), ("per_core", 2)] {
        let before = accepted.load(std::sync::atomic::Ordering::SeqCst);
        let rest = format!(
            "[upstream]\nca_file = {:?}\n{}",
            root().join("certs/dev-ca.pem"),
            app(&format!("https://localhost:{port}"))
        );
        let server = format!("runtime = \"{runtime}\"\nworker_threads = 2\n");
        let gw = TestGateway::start(&server, &rest).await;
        // The first request learns that the upstream speaks h2 (a burst
        // on a cold pool may open a few before anyone knows).
        let resp = https_client(false)
            .request(get(&gw.https("/")))
            .await
            .unwrap();
        assert_eq!(body_string(resp).await, "HTTP/2.0");
        let requests: Vec<_> = (0..20)
            .map(|_| {
                let url = gw.https("/");
                tokio::spawn(async move {
                    let resp = https_client(false).request(get(&url)).await.unwrap();
                    assert_eq!(resp.status(), StatusCode::OK);
                    body_string(resp).await
                })
            })
            .collect();
        for r in requests {
            assert_eq!(r.await.unwrap(), "HTTP/2.0", "{runtime}");
        }
        let opened = accepted.load(std::sync::atomic::Ordering::SeqCst) - before;
        assert!(
            (1..=most).contains(&opened),
            "{runtime}: {opened} upstream connections"
        );
    }
}

/// The TLS listener serves what ALPN chose: HTTP/1.1 without ALPN (RFC 9113
/// 3.2: h2 over TLS needs ALPN), and an h2 preface sent over a connection
/// that chose HTTP/1.1 is not taken for h2.
#[tokio::test]
async fn tls_serves_the_protocol_alpn_chose() {
    let up = Upstream::echo_headers().await;
    let gw = TestGateway::start("", &app(&up.url())).await;
    for (alpn, request, expect) in [
        (
            &[][..],
            &b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"[..],
            "HTTP/1.1 200",
        ),
        (
            &[&b"http/1.1"[..]][..],
            &b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"[..],
            // hyper closes an HTTP/1.1 connection that sends the h2
            // preface; an h2 server would have answered with SETTINGS.
            "",
        ),
    ] {
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client_tls(alpn)));
        let tcp = TcpStream::connect(gw.tls_addr()).await.unwrap();
        let mut tls = connector
            .connect(
                rustls_pki_types::ServerName::try_from("localhost").unwrap(),
                tcp,
            )
            .await
            .unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), alpn.first().copied());
        tls.write_all(request).await.unwrap();
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut answer)).await;
        let answer = String::from_utf8_lossy(&answer);
        if expect.is_empty() {
            assert!(
                answer.is_empty() || answer.starts_with("HTTP/1.1 4"),
                "ALPN {alpn:?}: {answer:?}"
            );
        } else {
            assert!(answer.starts_with(expect), "ALPN {alpn:?}: {answer}");
        }
    }
    // h2 where ALPN chose it.
    let resp = https_client(true)
        .request(get(&gw.https("/")))
        .await
        .unwrap();
    assert_eq!(resp.version(), http::Version::HTTP_2);
    assert_eq!(resp.status(), StatusCode::OK);
}

/// The plain listener tells h2 with prior knowledge from HTTP/1.1 by the
/// first bytes, also when the preface arrives a byte at a time.
#[tokio::test]
async fn plain_listener_serves_h2_with_prior_knowledge_and_http1() {
    let up = Upstream::echo_headers().await;
    let gw = TestGateway::start("", &app(&up.url())).await;
    let url = format!("http://localhost:{}/", gw.plain_addr().port());
    let mut h2 = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new());
    h2.http2_only(true);
    let h2 = h2.build(hyper_util::client::legacy::connect::HttpConnector::new());
    let resp = h2.request(get(&url)).await.unwrap();
    assert_eq!(
        (resp.version(), resp.status()),
        (Version::HTTP_2, StatusCode::OK)
    );
    let resp = plain_client().request(get(&url)).await.unwrap();
    assert_eq!(
        (resp.version(), resp.status()),
        (Version::HTTP_11, StatusCode::OK)
    );

    // The preface a byte at a time, then a SETTINGS frame: the answer is
    // the server's own SETTINGS (type 4), so it was taken for h2.
    let mut tcp = TcpStream::connect(gw.plain_addr()).await.unwrap();
    for b in b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" {
        tcp.write_all(&[*b]).await.unwrap();
        tcp.flush().await.unwrap();
        tokio::task::yield_now().await;
    }
    tcp.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await.unwrap();
    let mut head = [0u8; 9];
    tokio::time::timeout(Duration::from_secs(10), tcp.read_exact(&mut head))
        .await
        .expect("an answer")
        .unwrap();
    assert_eq!(head[3], 4, "a SETTINGS frame: {head:?}");
}

/// What a [`RawUpstream`] saw, in order.
#[derive(Debug, PartialEq)]
enum Seen {
    Accepted(usize),
    Request(usize),
    Closed(usize),
}

/// An HTTP/1.1 upstream written on the socket, so that a test sees every
/// connection open and close: it answers each request head with `200 ok`
/// (without reading a body), after `release` lets it when `hold` is set,
/// and closes its side after each answer when `close_after` is set. With
/// `silent_from` = n, the n-th request of a connection (from 0) gets no
/// answer: the upstream reads it and closes.
struct RawUpstream {
    addr: std::net::SocketAddr,
    seen: tokio::sync::mpsc::UnboundedReceiver<Seen>,
    release: Arc<tokio::sync::Semaphore>,
    task: tokio::task::JoinHandle<()>,
}

impl RawUpstream {
    async fn start(hold: bool, close_after: bool) -> RawUpstream {
        Self::start_with(hold, close_after, usize::MAX).await
    }

    async fn start_with(hold: bool, close_after: bool, silent_from: usize) -> RawUpstream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, seen) = tokio::sync::mpsc::unbounded_channel();
        let release = Arc::new(tokio::sync::Semaphore::new(0));
        let gate = release.clone();
        let task = tokio::spawn(async move {
            for id in 0.. {
                let (mut s, _) = listener.accept().await.unwrap();
                let _ = tx.send(Seen::Accepted(id));
                let (tx, gate) = (tx.clone(), gate.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut served = 0;
                    loop {
                        let mut chunk = [0u8; 4096];
                        let n = s.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            let _ = tx.send(Seen::Closed(id));
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            buf.drain(..end + 4);
                            let _ = tx.send(Seen::Request(id));
                            if served == silent_from {
                                drop(s);
                                let _ = tx.send(Seen::Closed(id));
                                return;
                            }
                            served += 1;
                            if hold {
                                gate.acquire().await.unwrap().forget();
                            }
                            s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                                .await
                                .unwrap();
                            if close_after {
                                drop(s);
                                let _ = tx.send(Seen::Closed(id));
                                return;
                            }
                        }
                    }
                });
            }
        });
        RawUpstream {
            addr,
            seen,
            release,
            task,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The next thing seen, within ten seconds.
    async fn next(&mut self) -> Seen {
        tokio::time::timeout(Duration::from_secs(10), self.seen.recv())
            .await
            .expect("the upstream saw nothing within 10 s")
            .expect("the upstream stopped")
    }
}

impl Drop for RawUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn get_ok(client: &HttpsClient, url: &str) {
    let resp = client.request(get(url)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(body_string(resp).await, "ok");
}

#[tokio::test]
async fn sequential_requests_share_one_upstream_connection() {
    let mut up = RawUpstream::start(false, false).await;
    let gw = TestGateway::start("", &app(&up.url())).await;
    let client = https_client(false);
    for _ in 0..5 {
        get_ok(&client, &gw.https("/")).await;
    }
    one_connection_took(&mut up, &gw, 5, "a second connection was opened").await;
}

/// The upstream saw one connection and `requests` requests on it, nothing
/// more, and the gateway counted one connection opened.
async fn one_connection_took(up: &mut RawUpstream, gw: &TestGateway, requests: usize, why: &str) {
    assert_eq!(up.next().await, Seen::Accepted(0));
    for _ in 0..requests {
        assert_eq!(up.next().await, Seen::Request(0));
    }
    assert!(up.seen.try_recv().is_err(), "{why}");
    let m = gw.metrics().await;
    assert_eq!(
        metric(
            &m,
            "trustgate_upstream_connections_opened_total{app=\"app\"}"
        ),
        1.0
    );
}

/// A pooled connection unused for `pool_park_after` is parked (hyper's
/// connection dropped, the socket kept) and its socket serves the next
/// request: no new connection, the upstream sees one.
#[tokio::test]
async fn a_parked_upstream_connection_serves_the_next_request() {
    let mut up = RawUpstream::start(false, false).await;
    let rest = format!(
        "[upstream]\npool_park_after = \"100ms\"\n{}",
        app(&up.url())
    );
    let gw = TestGateway::start("", &rest).await;
    let client = https_client(false);
    for _ in 0..3 {
        get_ok(&client, &gw.https("/")).await;
        wait_for_metric(&gw, "trustgate_upstream_parked_connections", 1.0).await;
    }
    one_connection_took(
        &mut up,
        &gw,
        3,
        "a second connection was opened, or the first closed",
    )
    .await;
}

/// The same over TLS to an upstream that speaks only HTTP/1.1: the parked
/// socket keeps its TLS session, and the read that checks it before the
/// restart (through rustls) finds it open.
#[tokio::test]
async fn a_parked_tls_upstream_connection_serves_the_next_request() {
    let (port, accepted) = tls_upstream(&[b"http/1.1"]).await;
    let rest = format!(
        "[upstream]\nca_file = {:?}\npool_park_after = \"100ms\"\n{}",
        root().join("certs/dev-ca.pem"),
        app(&format!("https://localhost:{port}"))
    );
    let gw = TestGateway::start("", &rest).await;
    let client = https_client(false);
    for _ in 0..3 {
        let resp = client.request(get(&gw.https("/"))).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(body_string(resp).await, "HTTP/1.1");
        wait_for_metric(&gw, "trustgate_upstream_parked_connections", 1.0).await;
    }
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
    let m = gw.metrics().await;
    assert_eq!(
        metric(
            &m,
            "trustgate_upstream_connections_opened_total{app=\"app\"}"
        ),
        1.0
    );
}

/// Both runtimes serve both listeners, h1 and h2, many connections at
/// once; per-core threads share the connections among them.
#[tokio::test]
async fn both_runtimes_serve_many_connections_on_both_listeners() {
    let up = Upstream::echo_headers().await;
    for runtime in ["shared", "per_core"] {
        let server = format!("runtime = \"{runtime}\"\nworker_threads = 2\n");
        let gw = TestGateway::start(&server, &app(&up.url())).await;
        let requests: Vec<_> = (0..40)
            .map(|i| {
                let (https, plain) = (
                    gw.https("/"),
                    format!(
                        "http://127.0.0.1:{}/",
                        gw.running().plain_addr.unwrap().port()
                    ),
                );
                tokio::spawn(async move {
                    // A client each: a connection each.
                    let resp = if i % 2 == 0 {
                        https_client(i % 4 == 0).request(get(&https)).await.unwrap()
                    } else {
                        plain_client().request(get(&plain)).await.unwrap()
                    };
                    resp.status()
                })
            })
            .collect();
        for r in requests {
            assert_eq!(r.await.unwrap(), StatusCode::OK, "{runtime}");
        }
        let m = gw.metrics().await;
        assert_eq!(
            metric(&m, "trustgate_connections_total{listener=\"tls\"}")
                + metric(&m, "trustgate_connections_total{listener=\"plain\"}"),
            40.0,
            "{runtime}"
        );
    }
}

/// Per-core serving threads end with their gateway: dropped without a
/// drain, it stops accepting (the listening socket closes with the last
/// thread's copy of it), and a kept-alive connection closes with the
/// runtime that served it.
#[tokio::test]
async fn per_core_threads_end_when_the_gateway_is_dropped() {
    let up = Upstream::echo_headers().await;
    let gw = TestGateway::start("runtime = \"per_core\"\n", &app(&up.url())).await;
    let addr = gw.running().plain_addr.unwrap();
    let mut kept = TcpStream::connect(addr).await.unwrap();
    kept.write_all(b"GET / HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .unwrap();
    assert!(read_response(&mut kept).await.starts_with("HTTP/1.1 200"));
    drop(gw);
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), kept.read_to_end(&mut rest)).await;
    assert!(
        matches!(read, Ok(Ok(_)) | Ok(Err(_))),
        "the kept-alive connection outlived its serving thread"
    );
    for _ in 0..200 {
        if TcpStream::connect(addr).await.is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{addr} still accepts connections after the gateway was dropped");
}

/// An upstream that closes its side after every answer (its keep-alive
/// timeout, say): the next request goes on a new connection, not to a 502.
#[tokio::test]
async fn a_pooled_connection_the_upstream_closed_is_not_reused() {
    let mut up = RawUpstream::start(false, true).await;
    let gw = TestGateway::start("", &app(&up.url())).await;
    let client = https_client(false);
    for id in 0..3 {
        get_ok(&client, &gw.https("/")).await;
        assert_eq!(up.next().await, Seen::Accepted(id));
        assert_eq!(up.next().await, Seen::Request(id));
        assert_eq!(up.next().await, Seen::Closed(id));
    }
    let m = gw.metrics().await;
    assert_eq!(
        metric(
            &m,
            "trustgate_upstream_errors_total{app=\"app\",kind=\"reset\"}"
        ),
        0.0
    );
}

#[tokio::test]
async fn idle_upstream_connections_close_after_the_idle_timeout() {
    let mut up = RawUpstream::start(false, false).await;
    let rest = format!(
        "[upstream]\npool_idle_timeout = \"300ms\"\n{}",
        app(&up.url())
    );
    let gw = TestGateway::start("", &rest).await;
    get_ok(&https_client(false), &gw.https("/")).await;
    assert_eq!(up.next().await, Seen::Accepted(0));
    assert_eq!(up.next().await, Seen::Request(0));
    // The gateway closes it; nothing else does.
    assert_eq!(up.next().await, Seen::Closed(0));
}

/// Three requests at once open three connections; with one idle connection
/// allowed, the pool closes the two it cannot keep. One serving thread: with
/// more, per-core threads do not take each other's idle connections, and
/// the next request could land on a thread with none.
#[tokio::test]
async fn idle_connections_over_the_cap_are_closed() {
    let mut up = RawUpstream::start(true, false).await;
    let rest = format!("[upstream]\npool_max_idle_per_host = 1\n{}", app(&up.url()));
    let gw = TestGateway::start("worker_threads = 1\n", &rest).await;
    let url = gw.https("/");
    let client = https_client(false);
    let requests: Vec<_> = (0..3)
        .map(|_| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move { get_ok(&client, &url).await })
        })
        .collect();
    let mut held = 0;
    while held < 3 {
        if let Seen::Request(_) = up.next().await {
            held += 1;
        }
    }
    up.release.add_permits(3);
    for r in requests {
        r.await.unwrap();
    }
    let mut closed = 0;
    while closed < 2 {
        if let Seen::Closed(_) = up.next().await {
            closed += 1;
        }
    }
    // The one kept serves the next request.
    up.release.add_permits(1);
    get_ok(&client, &url).await;
    assert!(matches!(up.next().await, Seen::Request(_)));
    let m = gw.metrics().await;
    assert_eq!(
        metric(
            &m,
            "trustgate_upstream_connections_opened_total{app=\"app\"}"
        ),
        3.0
    );
}

/// A reused connection that takes the request and closes without an
/// answer: the request may have been acted on, so it is not sent again.
#[tokio::test]
async fn a_request_the_upstream_took_is_not_sent_again() {
    let mut up = RawUpstream::start_with(false, false, 1).await;
    let gw = TestGateway::start("", &app(&up.url())).await;
    let client = https_client(false);
    get_ok(&client, &gw.https("/")).await;
    let resp = client.request(get(&gw.https("/twice"))).await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(up.next().await, Seen::Accepted(0));
    assert_eq!(up.next().await, Seen::Request(0));
    assert_eq!(up.next().await, Seen::Request(0));
    assert_eq!(up.next().await, Seen::Closed(0));
    // No second copy: the next thing the upstream sees is the next
    // request, on a new connection.
    let resp = client.request(get(&gw.https("/"))).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(up.next().await, Seen::Accepted(1));
    assert_eq!(up.next().await, Seen::Request(1));
    let m = gw.metrics().await;
    assert_eq!(
        metric(
            &m,
            "trustgate_upstream_errors_total{app=\"app\",kind=\"reset\"}"
        ),
        1.0
    );
}

/// The upstream answers before it has read the request body: the body's
/// rest, still to be sent, could be read there as a request of its own, so
/// that connection never serves another client.
#[tokio::test]
async fn a_connection_answered_before_its_body_was_sent_is_not_reused() {
    let mut up = RawUpstream::start(false, false).await;
    let gw = TestGateway::start("", &app(&up.url())).await;
    let client = https_client(false);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(4);
    let req = Request::post(gw.https("/upload"))
        .body(BodyExt::boxed(StreamBody::new(tokio_stream_from(rx))))
        .unwrap();
    tx.send(Ok(Frame::data(Bytes::from_static(b"first part"))))
        .await
        .unwrap();
    let resp = client.request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(body_string(resp).await, "ok");
    // The rest of the body: a request of its own, to an upstream that
    // reads it as one.
    tx.send(Ok(Frame::data(Bytes::from_static(
        b"GET /smuggled HTTP/1.1\r\nhost: x\r\n\r\n",
    ))))
    .await
    .unwrap();
    drop(tx);
    assert_eq!(up.next().await, Seen::Accepted(0));
    assert_eq!(up.next().await, Seen::Request(0));
    // The next request goes on a new connection.
    get_ok(&https_client(false), &gw.https("/")).await;
    let mut fresh = false;
    while !fresh {
        match up.next().await {
            Seen::Accepted(1) => fresh = true,
            Seen::Request(0) | Seen::Closed(0) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(up.next().await, Seen::Request(1));
}

// Parking idle HTTP/1.1 connections (src/accept/park.rs).

/// Reads one response with a Content-Length body off `io`: its head and
/// body, as text.
async fn read_response<IO: tokio::io::AsyncRead + Unpin>(io: &mut IO) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&got).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().unwrap())
                })
                .expect("a Content-Length response");
            if got.len() >= end + 4 + length {
                return text;
            }
        }
        let n = tokio::time::timeout(Duration::from_secs(10), io.read(&mut buf))
            .await
            .expect("a response within 10 s")
            .unwrap();
        assert!(n > 0, "closed mid-response after {text:?}");
        got.extend_from_slice(&buf[..n]);
    }
}

const GET_LOCALHOST: &[u8] = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";

/// Waits until `series` reads `value` on the gateway's /metrics.
async fn wait_for_metric(gw: &TestGateway, series: &str, value: f64) {
    for _ in 0..200 {
        if metric(&gw.metrics().await, series) == value {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{series} never read {value}");
}

/// A kept-alive connection waits for its next request under idle_timeout,
/// parked, and not under header_read_timeout (hyper's header timer runs
/// between requests): over plain HTTP and over TLS.
#[tokio::test]
async fn a_parked_connection_outlives_the_header_timeout_and_serves_again() {
    let up = Upstream::echo_headers().await;
    let gw = TestGateway::start(
        "header_read_timeout = \"1s\"\npark_after = \"100ms\"\nidle_timeout = \"30s\"",
        &app(&up.url()),
    )
    .await;
    let mut plain = TcpStream::connect(gw.plain_addr()).await.unwrap();
    let mut tls = tls_h1(gw.tls_addr()).await;
    plain.write_all(GET_LOCALHOST).await.unwrap();
    assert!(read_response(&mut plain).await.starts_with("HTTP/1.1 200"));
    tls.write_all(GET_LOCALHOST).await.unwrap();
    assert!(read_response(&mut tls).await.starts_with("HTTP/1.1 200"));
    wait_for_metric(&gw, "trustgate_parked_connections{listener=\"plain\"}", 1.0).await;
    wait_for_metric(&gw, "trustgate_parked_connections{listener=\"tls\"}", 1.0).await;
    // Past the header timeout, twice over.
    tokio::time::sleep(Duration::from_millis(2200)).await;
    for _ in 0..3 {
        plain.write_all(GET_LOCALHOST).await.unwrap();
        let answer = read_response(&mut plain).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(!answer.to_ascii_lowercase().contains("connection: close"));
        tls.write_all(GET_LOCALHOST).await.unwrap();
        let answer = read_response(&mut tls).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        // Parked again in between.
        wait_for_metric(&gw, "trustgate_parked_connections{listener=\"tls\"}", 1.0).await;
    }
    assert_eq!(
        metric(
            &gw.metrics().await,
            "trustgate_open_connections{listener=\"tls\"}"
        ),
        1.0
    );
}

/// Requests pipelined in one write, the second split across the park: none
/// is lost and the answers come in order.
#[tokio::test]
async fn pipelined_and_split_requests_survive_parking() {
    let up = Upstream::echo_headers().await;
    let gw = TestGateway::start(
        "header_read_timeout = \"5s\"\npark_after = \"100ms\"",
        &app(&up.url()),
    )
    .await;
    let mut tcp = TcpStream::connect(gw.plain_addr()).await.unwrap();
    tcp.write_all(
        b"GET /one HTTP/1.1\r\nHost: localhost\r\n\r\nGET /two HTTP/1.1\r\nHost: localhost\r\n\r\n",
    )
    .await
    .unwrap();
    assert!(read_response(&mut tcp).await.contains("/one"));
    assert!(read_response(&mut tcp).await.contains("/two"));
    wait_for_metric(&gw, "trustgate_parked_connections{listener=\"plain\"}", 1.0).await;
    // A head begun, then a pause past park_after, then its end.
    tcp.write_all(b"GET /three HTTP/1.1\r\nHo").await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    tcp.write_all(b"st: localhost\r\n\r\n").await.unwrap();
    let answer = read_response(&mut tcp).await;
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.contains("/three"),
        "{answer}"
    );
}

/// Parking does not extend the time a client has to finish a head: one
/// begun after an answer and never finished is cut off near
/// header_read_timeout, not after idle_timeout.
#[tokio::test]
async fn an_unfinished_head_after_an_answer_still_times_out() {
    let up = Upstream::echo_headers().await;
    let gw = TestGateway::start(
        "header_read_timeout = \"1s\"\npark_after = \"100ms\"\nidle_timeout = \"60s\"",
        &app(&up.url()),
    )
    .await;
    let mut tcp = TcpStream::connect(gw.plain_addr()).await.unwrap();
    tcp.write_all(GET_LOCALHOST).await.unwrap();
    assert!(read_response(&mut tcp).await.starts_with("HTTP/1.1 200"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        .await
        .unwrap();
    let start = std::time::Instant::now();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "unfinished head still open after 10 s");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
}

/// A fresh connection that never sends a byte is not parked: it stays under
/// the header timer.
#[tokio::test]
async fn a_silent_new_connection_is_not_parked() {
    let up = Upstream::echo_headers().await;
    let gw = TestGateway::start(
        "header_read_timeout = \"1s\"\npark_after = \"100ms\"\nidle_timeout = \"60s\"",
        &app(&up.url()),
    )
    .await;
    let mut tcp = TcpStream::connect(gw.plain_addr()).await.unwrap();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "silent connection still open after 5 s");
    assert_eq!(
        metric(
            &gw.metrics().await,
            "trustgate_parked_connections{listener=\"plain\"}"
        ),
        0.0
    );
}

/// A parked connection closes after idle_timeout, with close_notify on TLS,
/// and the gauge comes back down.
#[tokio::test]
async fn a_parked_connection_closes_after_the_idle_timeout() {
    let up = Upstream::echo_headers().await;
    let gw = TestGateway::start(
        "header_read_timeout = \"30s\"\npark_after = \"100ms\"\nidle_timeout = \"1s\"",
        &app(&up.url()),
    )
    .await;
    let mut tls = tls_h1(gw.tls_addr()).await;
    tls.write_all(GET_LOCALHOST).await.unwrap();
    assert!(read_response(&mut tls).await.starts_with("HTTP/1.1 200"));
    wait_for_metric(&gw, "trustgate_parked_connections{listener=\"tls\"}", 1.0).await;
    let mut rest = Vec::new();
    // A clean TLS EOF: read_to_end fails on a close without close_notify.
    let closed = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut rest))
        .await
        .expect("parked connection still open after 10 s");
    assert!(closed.is_ok(), "not a clean TLS close: {closed:?}");
    wait_for_metric(&gw, "trustgate_parked_connections{listener=\"tls\"}", 0.0).await;
    wait_for_metric(&gw, "trustgate_open_connections{listener=\"tls\"}", 0.0).await;
}

/// Draining closes parked connections at once, without waiting out the grace
/// period.
#[tokio::test]
async fn draining_closes_parked_connections() {
    let up = Upstream::echo_headers().await;
    let mut gw = TestGateway::start(
        "park_after = \"100ms\"\ngrace_period = \"30s\"",
        &app(&up.url()),
    )
    .await;
    let mut tcp = TcpStream::connect(gw.plain_addr()).await.unwrap();
    tcp.write_all(GET_LOCALHOST).await.unwrap();
    assert!(read_response(&mut tcp).await.starts_with("HTTP/1.1 200"));
    wait_for_metric(&gw, "trustgate_parked_connections{listener=\"plain\"}", 1.0).await;
    let drained = tokio::time::timeout(Duration::from_secs(10), gw.shutdown())
        .await
        .expect("drain waits on a parked connection");
    assert!(drained);
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut rest)).await;
    assert!(matches!(closed, Ok(Ok(0))), "{closed:?}");
}

/// A response slower than park_after, head and body, neither parks the
/// connection under it nor closes it after.
#[tokio::test]
async fn a_slow_response_is_not_cut_by_parking() {
    let up = Upstream::start(|_req| async {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let chunks = futures::stream::unfold(0u8, |i| async move {
            if i == 3 {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
            Some((
                Ok::<_, BoxError>(Frame::data(Bytes::from_static(b"chunk "))),
                i + 1,
            ))
        });
        Response::builder()
            .header("content-length", "18")
            .body(BodyExt::boxed(StreamBody::new(chunks)))
            .unwrap()
    })
    .await;
    let gw = TestGateway::start("park_after = \"100ms\"", &app(&up.url())).await;
    let mut tcp = TcpStream::connect(gw.plain_addr()).await.unwrap();
    for _ in 0..2 {
        tcp.write_all(GET_LOCALHOST).await.unwrap();
        let answer = read_response(&mut tcp).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("chunk chunk chunk "), "{answer}");
        assert!(
            !answer.to_ascii_lowercase().contains("connection: close"),
            "{answer}"
        );
    }
}

/// Headers that make an upstream act on another path, method or client
/// than the gateway decided on never reach it; what only a trusted ingress
/// may say is dropped from anyone else, and `_` spellings of the headers
/// the gateway sets (one header to CGI and ASGI servers) are dropped too.
#[tokio::test]
async fn rewrite_and_override_headers_never_reach_the_upstream() {
    let up = Upstream::echo_headers().await;
    let gw = TestGateway::start("", &app(&up.url())).await;
    let spoofed = [
        ("x-original-url", "/admin/users"),
        ("x-rewrite-url", "/admin/users"),
        ("x-original-uri", "/admin"),
        ("x-forwarded-uri", "/admin"),
        ("x-forwarded-path", "/admin"),
        ("x-http-method-override", "DELETE"),
        ("x-http-method", "DELETE"),
        ("x-method-override", "DELETE"),
        ("x-real-ip", "10.9.9.9"),
        ("true-client-ip", "10.9.9.9"),
        ("x-client-ip", "10.9.9.9"),
        ("forwarded", "for=10.9.9.9;host=evil.example;proto=https"),
        ("x-forwarded-prefix", "/admin"),
        ("x-forwarded-port", "8443"),
        ("x_forwarded_host", "evil.example"),
        ("x_forwarded_for", "10.9.9.9"),
        ("x_request_id", "forged"),
        ("x_original_url", "/admin"),
    ];
    let mut req = Request::get(gw.https("/")).header("x-end-to-end", "kept");
    for (k, v) in spoofed {
        req = req.header(k, v);
    }
    let resp = https_client(false)
        .request(req.body(full("")).unwrap())
        .await
        .unwrap();
    let seen: serde_json::Value = serde_json::from_str(&body_string(resp).await).unwrap();
    for (k, _) in spoofed {
        assert!(seen.get(k).is_none(), "{k} reached the upstream: {seen}");
    }
    assert_eq!(seen["x-end-to-end"][0], "kept");
    assert_eq!(seen["x-forwarded-for"][0], "127.0.0.1");

    // Behind a trusted ingress (the plain listener with trusted hops), what
    // the ingress says of the user's request is kept; rewrites are not.
    let gw = TestGateway::start("trusted_proxy_hops = 1", &app(&up.url())).await;
    let req = Request::get(format!("http://{}/", gw.running().plain_addr.unwrap()))
        .header("host", "localhost")
        .header("forwarded", "for=203.0.113.9;proto=https")
        .header("x-forwarded-prefix", "/app")
        .header("x-original-url", "/admin")
        .body(full(""))
        .unwrap();
    let resp = plain_client().request(req).await.unwrap();
    let seen: serde_json::Value = serde_json::from_str(&body_string(resp).await).unwrap();
    assert_eq!(seen["forwarded"][0], "for=203.0.113.9;proto=https");
    assert_eq!(seen["x-forwarded-prefix"][0], "/app");
    assert!(seen.get("x-original-url").is_none(), "{seen}");
}
