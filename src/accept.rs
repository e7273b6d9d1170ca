//! Accepting connections: the TCP accept loop with its connection limit, the
//! TLS handshake (`accept/tls.rs`), and serving HTTP/1.1 and h2 on one
//! connection type with header, handshake and idle timeouts. What a request
//! means is the service's concern.

pub mod gather;
pub mod idle;
pub mod park;
pub mod tls;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tracing::Instrument;

use crate::config::ServerConfig;
use crate::observe::GaugeGuard;
use crate::service::{ConnInfo, Gateway};
use gather::{Gathered, Turning, Turns};
use idle::{Activity, Tracked};
use park::{Answered, Exchanges, Parkable};

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
        // One connection per turn: with per-core runtimes the other threads
        // accept from the same socket, and a burst (a load balancer's
        // reconnect) is shared among them instead of landing on the one
        // that woke first.
        tokio::task::yield_now().await;
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
    let _open = GaugeGuard::hold(gateway.metrics.open_connections.with_label_values(&[label]));
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
            // Boxed here, once: each layer of futures below would otherwise
            // keep room for the stream by value (see serve_http).
            let io = Box::new(io);
            serve_http(io, speaks, conn, gateway, activity, &server, shutdown).await;
        }
        Some(acceptor) => {
            let (io, activity) = Tracked::new(stream);
            // Boxed, as the HTTP connection below: the task then holds
            // whichever of the two is alive, not room for both. The stream
            // comes out boxed for the same reason (see serve_http).
            let handshake = Box::pin(async move { acceptor.accept(io).await.map(Box::new) });
            let handshake =
                match tokio::time::timeout(server.tls_handshake_timeout, handshake).await {
                    Ok(Ok(tls_stream)) => Ok(tls_stream),
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, "tls handshake failed");
                        Err(tls::handshake_failure_reason(&e))
                    }
                    Err(_) => Err("timeout"),
                };
            let tls_stream = match handshake {
                Ok(tls_stream) => tls_stream,
                Err(reason) => {
                    gateway
                        .metrics
                        .tls_handshake_failures
                        .with_label_values(&[reason])
                        .inc();
                    return;
                }
            };
            let conn = ConnInfo {
                peer,
                proto: "https",
            };
            // ALPN chose (the certificate store offers h2 and http/1.1); no
            // ALPN is HTTP/1.1 (RFC 9113 3.2).
            let speaks = match tls_stream.get_ref().1.alpn_protocol() {
                Some(b"h2") => Speaks::Http2,
                _ => Speaks::Http1,
            };
            serve_http(
                tls_stream, speaks, conn, gateway, activity, &server, shutdown,
            )
            .await;
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

/// Serves HTTP/1.1 or h2, as [`Speaks`] says, until the client leaves, the
/// connection idles out, or the gateway drains. On drain, requests in
/// flight finish; h2 gets a GOAWAY, HTTP/1.1 a close.
///
/// The protocol is known before hyper starts (ALPN, or a peek at the plain
/// connection's first bytes), so hyper-util's sniffing is not used: it hands
/// hyper its first 24 bytes as a prefix, after which hyper's first read
/// reservation doubles the connection's read buffer to 16 KiB for the
/// connection's life (benches/README.md, idle memory).
///
/// The stream comes boxed: a TLS stream is 1.2 KB, and every async fn it
/// passes through by value (this one, `Http1::serve`, hyper's parts) keeps
/// its own room for it in the connection task, which came to 9 KB a
/// connection when it was passed unboxed.
async fn serve_http<IO>(
    io: Box<IO>,
    speaks: Speaks,
    conn: ConnInfo,
    gateway: Arc<Gateway>,
    activity: Activity,
    server: &ServerConfig,
    shutdown: watch::Receiver<bool>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let exchanges = Arc::new(Exchanges::default());
    let parked =
        gateway
            .metrics
            .parked_connections
            .with_label_values(&[if conn.proto == "https" {
                "tls"
            } else {
                "plain"
            }]);
    let answering = exchanges.clone();
    // hyper keeps a slot for the request future on every connection, idle
    // or not: boxing it per request keeps that slot a pointer wide instead
    // of the whole request state machine (kilobytes per idle connection).
    let service = hyper::service::service_fn(move |req| {
        let gateway = gateway.clone();
        let guard = answering.answering();
        let handled: Pin<Box<dyn Future<Output = _> + Send>> = Box::pin(async move {
            let response = gateway.handle(req, conn).await;
            Ok::<_, Infallible>(response.map(|body| Answered::new(body, guard)))
        });
        handled
    });
    match speaks {
        Speaks::Http1 => {
            let http1 = Http1 {
                server,
                activity,
                exchanges,
                parked,
            };
            http1.serve(io, service, shutdown).await;
        }
        Speaks::Http2 => {
            let mut h2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
            h2.timer(TokioTimer::new())
                .max_header_list_size(u32::try_from(server.max_header_bytes).unwrap_or(u32::MAX));
            // h2 writes each answer on its own; gathered, the answers ready
            // in one turn go out in one TLS record (`accept/gather.rs`).
            let turns = Turns::default();
            let io = TokioIo::new(Gathered::new(io, turns.clone()));
            let connection = Box::pin(Turning::new(h2.serve_connection(io, service), turns));
            let no_parking = None::<fn(Pin<&mut _>) -> bool>;
            let _ended = drive(connection, &activity, server, shutdown, no_parking).await;
        }
    }
}

/// How [`drive`] left a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Driven {
    /// hyper finished: the client left, or the connection was closed.
    Ended,
    /// hyper finished because `park` asked it to, and the IO is still open.
    Parked,
}

/// The one connection future of hyper's that [`drive`] runs: h2, or
/// HTTP/1.1 with upgrades.
trait Served: Future<Output = hyper::Result<()>> {
    fn graceful_shutdown(self: Pin<&mut Self>);
}

impl<I, S, B> Served for hyper::server::conn::http1::UpgradeableConnection<I, S>
where
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn graceful_shutdown(self: Pin<&mut Self>) {
        hyper::server::conn::http1::UpgradeableConnection::graceful_shutdown(self)
    }
}

impl<I, S, B, E> Served for hyper::server::conn::http2::Connection<I, S, E>
where
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    E: hyper::rt::bounds::Http2ServerConnExec<S::Future, B>,
{
    fn graceful_shutdown(self: Pin<&mut Self>) {
        hyper::server::conn::http2::Connection::graceful_shutdown(self)
    }
}

impl<C: Served> Served for Turning<C> {
    fn graceful_shutdown(self: Pin<&mut Self>) {
        self.inner().graceful_shutdown()
    }
}

/// Runs a hyper connection until it finishes. It is asked to close when the
/// gateway drains, when it has moved no byte for `server.idle_timeout`, and
/// when `park` says so (asked once it has been quiet for
/// `server.park_after`, and again every `park_after` while it stays quiet).
/// The connection comes back with how it ended.
async fn drive<C: Served>(
    mut connection: Pin<Box<C>>,
    activity: &Activity,
    server: &ServerConfig,
    mut shutdown: watch::Receiver<bool>,
    mut park: Option<impl FnMut(Pin<&mut C>) -> bool>,
) -> (Driven, Pin<Box<C>>) {
    let mut closing = false;
    let mut parking = false;
    loop {
        let quiet = activity.quiet_for();
        let idle_left = server.idle_timeout.saturating_sub(quiet);
        // Quiet past park_after but not parked (a request in flight): look
        // again park_after later, never in a spin.
        let park_left = match server.park_after.saturating_sub(quiet) {
            left if left.is_zero() => server.park_after,
            left => left,
        };
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                    return (Driven::Ended, connection);
                }
                let driven = if parking { Driven::Parked } else { Driven::Ended };
                return (driven, connection);
            }
            _ = shutdown.wait_for(|stop| *stop), if !closing => {
                closing = true;
                connection.as_mut().graceful_shutdown();
            }
            _ = tokio::time::sleep(if park.is_some() { idle_left.min(park_left) } else { idle_left }), if !closing => {
                let quiet = activity.quiet_for();
                if quiet >= server.idle_timeout {
                    tracing::debug!("closing idle connection");
                    closing = true;
                    connection.as_mut().graceful_shutdown();
                } else if quiet >= server.park_after
                    && park.as_mut().is_some_and(|park| park(connection.as_mut()))
                {
                    closing = true;
                    parking = true;
                }
            }
        }
    }
}

/// Serving one HTTP/1.1 connection, parked between requests when it idles
/// (`accept/park.rs`).
struct Http1<'a> {
    server: &'a ServerConfig,
    activity: Activity,
    exchanges: Arc<Exchanges>,
    parked: prometheus::IntGauge,
}

impl Http1<'_> {
    async fn serve<IO, S, B>(
        self,
        mut io: Box<IO>,
        mut service: S,
        mut shutdown: watch::Receiver<bool>,
    ) where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B> + Unpin,
        S::Future: Unpin,
        S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
        B: hyper::body::Body + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let mut prefix = Bytes::new();
        loop {
            self.exchanges.begin();
            let parkable = Parkable::new(io, prefix, self.exchanges.clone());
            let connection = {
                let mut h1 = hyper::server::conn::http1::Builder::new();
                h1.timer(TokioTimer::new())
                    .header_read_timeout(self.server.header_read_timeout)
                    .max_buf_size(self.server.max_header_bytes)
                    .keep_alive(true);
                Box::pin(
                    h1.serve_connection(TokioIo::new(parkable), service)
                        .with_upgrades(),
                )
            };
            let exchanges = &self.exchanges;
            let (driven, connection) = drive(
                connection,
                &self.activity,
                self.server,
                shutdown.clone(),
                Some(|c: Pin<&mut _>| {
                    if !exchanges.may_park() {
                        return false;
                    }
                    exchanges.start_parking();
                    Served::graceful_shutdown(c);
                    true
                }),
            )
            .await;
            if driven == Driven::Ended {
                return;
            }
            // Parked: hyper closed without shutting the IO down. An upgraded
            // connection has no parts, but an upgrade is a request in flight
            // and never parks.
            let Some((inner, taken_back, unread)) = take_back(connection) else {
                return;
            };
            (io, service, prefix) = (inner, taken_back, unread);
            if !prefix.is_empty() {
                // A head begun and left unfinished since the last answer:
                // hyper takes it again at once, under a new header timer, and
                // this connection parks only after it answers.
                continue;
            }
            self.parked.inc();
            let woken = self.wait_parked(&mut io, &mut shutdown).await;
            self.parked.dec();
            match woken {
                Some(first) => prefix = Bytes::copy_from_slice(&[first]),
                None => {
                    // hyper's own close: TLS close_notify, then FIN. Parked
                    // means flushed, so this does not wait on the client.
                    let _ = tokio::time::timeout(PARKED_SHUTDOWN, io.shutdown()).await;
                    return;
                }
            }
        }
    }

    /// Holds a parked connection until its next byte comes (returned), or
    /// it ends: EOF or an error, `server.idle_timeout` without a byte, or
    /// the gateway draining (`None`).
    async fn wait_parked<IO: AsyncRead + Unpin>(
        &self,
        io: &mut IO,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Option<u8> {
        let mut first = [0u8; 1];
        loop {
            let idle_left = self
                .server
                .idle_timeout
                .saturating_sub(self.activity.quiet_for());
            tokio::select! {
                read = io.read(&mut first) => {
                    return match read {
                        Ok(1) => Some(first[0]),
                        _ => None,
                    };
                }
                _ = shutdown.wait_for(|stop| *stop) => return None,
                _ = tokio::time::sleep(idle_left) => {
                    if self.activity.quiet_for() >= self.server.idle_timeout {
                        tracing::debug!("closing idle connection");
                        return None;
                    }
                }
            }
        }
    }
}

/// The IO, the service and the bytes read but not used, from a hyper
/// HTTP/1.1 connection that finished without shutting its IO down; `None`
/// for one that was upgraded.
#[allow(clippy::type_complexity)]
fn take_back<IO, S, B>(
    connection: Pin<
        Box<hyper::server::conn::http1::UpgradeableConnection<TokioIo<Parkable<Box<IO>>>, S>>,
    >,
) -> Option<(Box<IO>, S, Bytes)>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B> + Unpin,
    S::Future: Unpin,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let parts = Pin::into_inner(connection).into_parts()?;
    let (io, unread) = parts.io.into_inner().into_parts();
    // What hyper read and did not use, then what it did not read; copied,
    // since hyper's `read_buf` is a view that holds its whole read buffer
    // (8 KiB or more) alive.
    let prefix = if parts.read_buf.is_empty() && unread.is_empty() {
        Bytes::new()
    } else {
        Bytes::from([&parts.read_buf[..], &unread[..]].concat())
    };
    Some((io, parts.service, prefix))
}

/// How long closing a parked connection may take.
const PARKED_SHUTDOWN: std::time::Duration = std::time::Duration::from_secs(1);
