//! Accepting connections: the TCP accept loop with its connection limit, the
//! TLS handshake (`accept/tls.rs`), and serving HTTP/1.1 and h2 on one
//! connection type with header, handshake and idle timeouts. What a request
//! means is the service's concern.

pub mod idle;
pub mod tls;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tracing::Instrument;

use crate::config::ServerConfig;
use crate::service::{ConnInfo, Gateway};
use idle::{Activity, Tracked};

/// A bound traffic listener.
pub struct Listener {
    /// The socket.
    pub tcp: TcpListener,
    /// Present on the TLS listener.
    pub tls: Option<TlsAcceptor>,
}

impl Listener {
    fn label(&self) -> &'static str {
        if self.tls.is_some() {
            "tls"
        } else {
            "plain"
        }
    }
}

/// How long a failed accept waits before the next.
const ACCEPT_BACKOFF: std::time::Duration = std::time::Duration::from_millis(50);

/// The next connection on `listener`, or `None` once `stop` turns true. A
/// failed accept (out of file descriptors and the like) is logged and
/// retried after [`ACCEPT_BACKOFF`], so that it neither spins nor ends the
/// loop. Every listener (traffic, admin, demo) accepts through this.
pub async fn next_connection(
    listener: &TcpListener,
    stop: &mut watch::Receiver<bool>,
) -> Option<(TcpStream, SocketAddr)> {
    loop {
        let accepted = tokio::select! {
            _ = stop.wait_for(|s| *s) => return None,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok(a) => return Some(a),
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::select! {
                    _ = stop.wait_for(|s| *s) => return None,
                    _ = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                }
            }
        }
    }
}

/// Accepts until `shutdown` turns true, then drops the socket so that new
/// connections are refused. Connections already open drain on their own.
pub async fn accept_loop(
    listener: Listener,
    gateway: Arc<Gateway>,
    slots: Arc<Semaphore>,
    mut shutdown: watch::Receiver<bool>,
) {
    let label = listener.label();
    while let Some((stream, peer)) = next_connection(&listener.tcp, &mut shutdown).await {
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            gateway
                .metrics
                .connections_refused
                .with_label_values(&[label])
                .inc();
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        gateway
            .metrics
            .connections
            .with_label_values(&[label])
            .inc();
        let span = tracing::debug_span!("conn", %peer, listener = label);
        tokio::spawn(
            serve_connection(
                stream,
                peer,
                listener.tls.clone(),
                gateway.clone(),
                permit,
                shutdown.clone(),
            )
            .instrument(span),
        );
    }
}

/// Decrements the open-connections gauge when the connection ends.
struct OpenGuard(prometheus::IntGauge);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    gateway: Arc<Gateway>,
    _permit: OwnedSemaphorePermit,
    mut shutdown: watch::Receiver<bool>,
) {
    let label = if tls.is_some() { "tls" } else { "plain" };
    let gauge = gateway.metrics.open_connections.with_label_values(&[label]);
    gauge.inc();
    let _open = OpenGuard(gauge);
    let server = gateway.state().config.server.clone();
    match tls {
        None => {
            // h2c with prior knowledge, or HTTP/1.1: told apart by peeking
            // at the first bytes, which stay in the socket for hyper.
            let sniffed = tokio::select! {
                sniffed = tokio::time::timeout(server.header_read_timeout, sniff_h2c(&stream)) => sniffed,
                _ = shutdown.wait_for(|stop| *stop) => return,
            };
            let speaks = match sniffed {
                Ok(Ok(true)) => Speaks::Http2,
                Ok(Ok(false)) => Speaks::Http1,
                // Gone, or silent past the header timeout.
                Ok(Err(_)) | Err(_) => return,
            };
            let (io, activity) = Tracked::new(stream);
            let conn = ConnInfo {
                peer,
                proto: "http",
            };
            serve_http(io, speaks, conn, gateway, activity, &server, shutdown).await;
        }
        Some(acceptor) => {
            let (io, activity) = Tracked::new(stream);
            // Boxed, as the HTTP connection below: the task then holds
            // whichever of the two is alive, not room for both.
            let handshake =
                tokio::time::timeout(server.tls_handshake_timeout, Box::pin(acceptor.accept(io)));
            let reason = match handshake.await {
                Ok(Ok(tls_stream)) => {
                    let conn = ConnInfo {
                        peer,
                        proto: "https",
                    };
                    // ALPN chose (the certificate store offers h2 and
                    // http/1.1); no ALPN is HTTP/1.1 (RFC 9113 3.2).
                    let speaks = match tls_stream.get_ref().1.alpn_protocol() {
                        Some(b"h2") => Speaks::Http2,
                        _ => Speaks::Http1,
                    };
                    serve_http(
                        tls_stream, speaks, conn, gateway, activity, &server, shutdown,
                    )
                    .await;
                    return;
                }
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "tls handshake failed");
                    tls::handshake_failure_reason(&e)
                }
                Err(_) => "timeout",
            };
            gateway
                .metrics
                .tls_handshake_failures
                .with_label_values(&[reason])
                .inc();
        }
    }
}

/// The HTTP/2 connection preface (RFC 9113 3.4).
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Whether a plain connection opens with the h2 preface, by peeking: the
/// bytes stay in the socket. Decided at the first byte that differs (an
/// HTTP/1.1 request line never starts `PRI * HTTP/2.0`); a preface cut
/// short waits for the rest, a millisecond at a time. `Ok(false)` at EOF.
async fn sniff_h2c(stream: &TcpStream) -> std::io::Result<bool> {
    let mut buf = [0u8; 24];
    let mut seen = 0;
    loop {
        let n = stream.peek(&mut buf).await?;
        if n == 0 || buf[..n] != H2_PREFACE[..n] {
            return Ok(false);
        }
        if n == H2_PREFACE.len() {
            return Ok(true);
        }
        if n == seen {
            // The same partial preface again: peek does not wait for more.
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        seen = n;
    }
}

/// The protocol a connection speaks, known before hyper reads its first
/// byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Speaks {
    /// HTTP/1.1: TLS with ALPN `http/1.1` or none; plain, without the h2
    /// preface.
    Http1,
    /// HTTP/2: TLS with ALPN `h2`; plain, opening with the h2 preface
    /// (prior knowledge).
    Http2,
}

/// One served connection, of whichever kind [`Speaks`] chose. Each kind is
/// boxed: the task holds a pointer, not room for the larger.
enum Serving<H1, H2> {
    Http1(Pin<Box<H1>>),
    Http2(Pin<Box<H2>>),
}

/// Serves HTTP/1.1 or h2, as [`Speaks`] says, until the client leaves, the
/// connection idles out, or the gateway drains. On drain, requests in
/// flight finish; h2 gets a GOAWAY, HTTP/1.1 a close.
///
/// The protocol is known before hyper starts (ALPN, or a peek at the plain
/// connection's first bytes), so hyper-util's sniffing is not used: it hands
/// hyper its first 24 bytes as a prefix, after which hyper's first read
/// reservation doubles the connection's read buffer to 16 KiB for the
/// connection's life (benches/README.md, idle memory).
async fn serve_http<IO>(
    io: IO,
    speaks: Speaks,
    conn: ConnInfo,
    gateway: Arc<Gateway>,
    activity: Activity,
    server: &ServerConfig,
    mut shutdown: watch::Receiver<bool>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let max_header_list = u32::try_from(server.max_header_bytes).unwrap_or(u32::MAX);
    // hyper keeps a slot for the request future on every connection, idle
    // or not: boxing it per request keeps that slot a pointer wide instead
    // of the whole request state machine (kilobytes per idle connection).
    let service = hyper::service::service_fn(move |req| {
        let gateway = gateway.clone();
        let handled: Pin<Box<dyn Future<Output = _> + Send>> =
            Box::pin(async move { Ok::<_, Infallible>(gateway.handle(req, conn).await) });
        handled
    });
    let io = TokioIo::new(io);
    let mut connection = match speaks {
        Speaks::Http1 => {
            let mut h1 = hyper::server::conn::http1::Builder::new();
            h1.timer(TokioTimer::new())
                .header_read_timeout(server.header_read_timeout)
                .max_buf_size(server.max_header_bytes)
                .keep_alive(true);
            Serving::Http1(Box::pin(h1.serve_connection(io, service).with_upgrades()))
        }
        Speaks::Http2 => {
            let mut h2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
            h2.timer(TokioTimer::new())
                .max_header_list_size(max_header_list);
            Serving::Http2(Box::pin(h2.serve_connection(io, service)))
        }
    };
    // The same code for each kind of connection.
    macro_rules! each {
        ($conn:expr, $c:ident => $e:expr) => {
            match $conn {
                Serving::Http1($c) => $e,
                Serving::Http2($c) => $e,
            }
        };
    }
    let mut closing = false;
    loop {
        let idle_left = server.idle_timeout.saturating_sub(activity.quiet_for());
        tokio::select! {
            result = std::future::poll_fn(|cx| each!(&mut connection, c => {
                c.as_mut().poll(cx).map_err(|e| e.to_string())
            })) => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                break;
            }
            _ = shutdown.wait_for(|stop| *stop), if !closing => {
                closing = true;
                each!(&mut connection, c => c.as_mut().graceful_shutdown());
            }
            _ = tokio::time::sleep(idle_left), if !closing => {
                if activity.quiet_for() >= server.idle_timeout {
                    tracing::debug!("closing idle connection");
                    closing = true;
                    each!(&mut connection, c => c.as_mut().graceful_shutdown());
                }
            }
        }
    }
}
