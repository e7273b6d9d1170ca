//! Test helpers: a real upstream, the gateway started from a config file on
//! port 0, and TLS clients that trust the development CA.
#![allow(dead_code)]

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use trustgate::config::Config;
use trustgate::lifecycle::Running;

pub mod fleet;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type Body = BoxBody<Bytes, BoxError>;

pub fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|e| match e {}).boxed()
}

/// A loopback port free right now; see [`free_port_on`].
pub fn free_port() -> u16 {
    free_port_on("127.0.0.1")
}

/// A port free on `ip` right now, for a program that binds it itself
/// (trustgate run, redis-server, Prometheus, chromedriver); callers that
/// can should bind port 0 instead.
///
/// Not one that port 0 would give: those come from the kernel's ephemeral
/// range, which it also hands to every outgoing connection, so a test
/// connecting anywhere could take the port before the program binds it
/// (CI saw `trustgate run` fail to start so). Ports just below that range
/// are handed to no one: this takes the next of those that binds, a
/// different one on each call, starting from an offset of the process id
/// so that test binaries start apart.
pub fn free_port_on(ip: &str) -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const SPAN: u32 = 10_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32_768);
    if low > SPAN + 1_024 {
        let base = low - SPAN;
        let start = std::process::id().wrapping_mul(7_919) % SPAN;
        for _ in 0..SPAN {
            let port = base + (start + NEXT.fetch_add(1, Ordering::Relaxed)) % SPAN;
            let port = u16::try_from(port).expect("below the ephemeral range");
            if std::net::TcpListener::bind((ip, port)).is_ok() {
                return port;
            }
        }
    }
    std::net::TcpListener::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The repository's root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A handler for the test upstream.
pub type Handler = Arc<
    dyn Fn(Request<Incoming>) -> Pin<Box<dyn Future<Output = Response<Body>> + Send>> + Send + Sync,
>;

/// A real HTTP/1.1 + h2c upstream on 127.0.0.1:0.
pub struct Upstream {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    pub async fn start<F, Fut>(f: F) -> Upstream
    where
        F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<Body>> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |req| Box::pin(f(req)));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let handler = handler.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let handler = handler.clone();
                        async move { Ok::<_, Infallible>(handler(req).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Upstream { addr, task }
    }

    /// An upstream that answers every request with the headers it got, as
    /// JSON (name -> [values]).
    pub async fn echo_headers() -> Upstream {
        Upstream::start(|req: Request<Incoming>| async move {
            let mut map = std::collections::BTreeMap::<String, Vec<String>>::new();
            for (k, v) in req.headers() {
                map.entry(k.as_str().to_string())
                    .or_default()
                    .push(v.to_str().unwrap_or("").to_string());
            }
            map.insert("x-test-path".into(), vec![req.uri().to_string()]);
            Response::new(full(serde_json::to_vec(&map).unwrap()))
        })
        .await
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Writes a config around `extra` (apps and overrides) and starts the
/// gateway on port 0: TLS, plain and admin listeners.
pub struct TestGateway {
    pub running: Option<Running>,
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
}

pub fn cert_block() -> String {
    format!(
        "[[tls.certificates]]\ncert = {:?}\nkey = {:?}\n",
        root().join("certs/localhost.pem"),
        root().join("certs/localhost.key")
    )
}

/// The config text: `server` lines go into `[server]`, `rest` follows.
pub fn config_text(server: &str, rest: &str) -> String {
    format!(
        "{}\n[server]\nlisten = \"127.0.0.1:0\"\nplain_listen = \"127.0.0.1:0\"\n{server}\n\
         [admin]\nlisten = \"127.0.0.1:0\"\n{rest}\n",
        cert_block()
    )
}

/// One app named `app` on hosts localhost and 127.0.0.1.
pub fn app(upstream: &str) -> String {
    format!("[apps.app]\nhosts = [\"localhost\", \"127.0.0.1\"]\nupstream = {upstream:?}\n")
}

impl TestGateway {
    pub async fn start(server: &str, rest: &str) -> TestGateway {
        Self::start_edited(server, rest, |_| {}).await
    }

    /// Starts with the loaded config changed by `edit`, for settings the
    /// config file refuses (a replay cache of one entry, say).
    pub async fn start_edited(
        server: &str,
        rest: &str,
        edit: impl FnOnce(&mut Config),
    ) -> TestGateway {
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("config.toml");
        std::fs::write(&config_path, config_text(server, rest)).unwrap();
        let mut config = Config::load(&config_path).unwrap_or_else(|e| panic!("test config: {e}"));
        edit(&mut config);
        let running = trustgate::lifecycle::start(config).await.unwrap();
        TestGateway {
            running: Some(running),
            dir,
            config_path,
        }
    }

    pub fn running(&self) -> &Running {
        self.running.as_ref().unwrap()
    }

    pub fn tls_addr(&self) -> SocketAddr {
        self.running().tls_addr.unwrap()
    }

    pub fn plain_addr(&self) -> SocketAddr {
        self.running().plain_addr.unwrap()
    }

    pub fn https(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.tls_addr().port())
    }

    /// The admin `/metrics` text.
    pub async fn metrics(&self) -> String {
        let url = format!("http://{}/metrics", self.running().admin_addr);
        let resp = plain_client()
            .request(Request::get(url).body(full("")).unwrap())
            .await
            .unwrap();
        body_string(resp).await
    }

    pub async fn shutdown(&mut self) -> bool {
        self.running.take().unwrap().shutdown().await
    }
}

/// The value of one sample line of `/metrics`, or 0 when absent.
pub fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

pub fn dev_ca_roots() -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(root().join("certs/dev-ca.pem")).unwrap();
    use rustls_pki_types::pem::PemObject;
    for c in rustls_pki_types::CertificateDer::pem_slice_iter(&pem) {
        roots.add(c.unwrap()).unwrap();
    }
    roots
}

pub fn client_tls(alpn: &[&[u8]]) -> rustls::ClientConfig {
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(dev_ca_roots())
    .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    cfg
}

/// A TLS connection to `addr` for `localhost`, ALPN http/1.1, trusting
/// the dev CA: for raw requests and WebSocket handshakes.
pub async fn tls_h1(addr: SocketAddr) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_tls(&[b"http/1.1"])));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    connector
        .connect(
            rustls_pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .unwrap()
}

pub type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Body>;

/// An https client that trusts the dev CA; `h2` picks HTTP/2 only.
pub fn https_client(h2: bool) -> HttpsClient {
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(client_tls(&[]))
        .https_only();
    let connector = if h2 {
        builder.enable_http2().build()
    } else {
        builder.enable_http1().build()
    };
    let mut b = Client::builder(TokioExecutor::new());
    b.http2_only(h2);
    b.build(connector)
}

pub fn plain_client() -> Client<HttpConnector, Body> {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

pub async fn body_string<B>(resp: Response<B>) -> String
where
    B: hyper::body::Body,
    B::Error: std::fmt::Debug,
{
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8_lossy(&bytes).into_owned()
}

pub fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}
