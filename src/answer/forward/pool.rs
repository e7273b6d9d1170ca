//! Upstream connections: one pool per upstream, driven from the request's
//! own task.
//!
//! A request takes an idle HTTP/1 connection (the most recently used first,
//! as pingora and nginx do, so the warm ones stay warm), or shares the
//! upstream's HTTP/2 connection, or opens a new one; it sends on it and gives
//! it back when the response body has been read to its end. Nothing is
//! handed to a pool task and back, nothing is hashed per request: each app
//! holds its upstream's pool, found once per config generation.
//!
//! An HTTP/1 connection has no task of its own. hyper's connection (what
//! writes the request and reads the response) is held beside its sender
//! and polled by the task of the request that took it: while it waits for
//! the response head, and from the response body as the proxy reads it.
//! Between requests the reaper's checks poll it, with a waker that does
//! nothing. So the request is not handed to a connection task through a
//! channel and the response back through another: the upstream socket
//! wakes the request's task itself, through a [`Relay`] that drops the one
//! wake that would only poll it for nothing (hyper's body channel waking
//! the connection as the task takes from it). The one exception is a
//! connection opened for an upgrade: hyper's upgradeable connection runs
//! in a task of its own, as the tunnel it may become. This leans on how
//! hyper 1.12 completes a response: only from the connection's poll (or
//! its drop), through a tokio oneshot for the head and a channel of
//! hyper's own, without a cooperative budget, for the body; the tests
//! below hold it (a spent budget, a long body).
//!
//! The idle connections are kept per worker thread, as HAProxy keeps them
//! per thread: a connection goes back to the list of the thread whose
//! request read its response to its end, and the next request on that
//! thread takes it. On the shared runtime a worker with none idle takes
//! another worker's before it opens one; per-core runtimes open their own
//! (nginx's way: a connection belongs to its thread, whose runtime
//! watches its socket, even when more threads than shards share a list).
//!
//! An idle connection unused for `park_after` is parked, as the listener
//! parks its own idle keep-alive connections: hyper's connection (its
//! buffers and its channel) is taken apart and only the socket, with its
//! TLS state, waits in the idle list. The next request to take it starts a
//! new hyper connection on it, once a read that would block has shown it
//! still open with nothing unasked in it. An upgrade request goes on a
//! connection of its own, never a pooled one: hyper can hand a connection's
//! socket back, or splice it into a tunnel, not both.
//!
//! A request goes out at most twice, and the second time only when hyper
//! hands it back unsent because the reused connection closed first. A request
//! that may have reached the upstream is never sent again.

use std::cell::Cell;
use std::future::Future as _;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{ready, Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::uri::{Authority, Scheme};
use http::{Request, Response, Uri};
use http_body::{Body as _, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::{Connection as _, HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tower_service::Service as _;

use super::super::{Body, BoxError};
use crate::observe::GaugeGuard;

/// The connector every pool dials with: TCP (connect timeout, no Nagle,
/// keep-alive probes) and, for `https`, TLS with ALPN `h2` and `http/1.1`.
pub type Connector = HttpsConnector<HttpConnector>;

/// An upstream's h2 connection, if open, and when a request last took it.
type SharedH2 = Mutex<Option<(http2::SendRequest<Body>, Instant)>>;

/// An upstream connection's socket, what [`Connector`] opens.
type Io = hyper_rustls::MaybeHttpsStream<hyper_util::rt::TokioIo<tokio::net::TcpStream>>;

/// Why a request got no response from its upstream.
#[derive(Debug)]
pub enum SendError {
    /// No connection could be opened: refused, unreachable, timed out, or
    /// the TLS or HTTP/2 handshake failed.
    Connect(BoxError),
    /// The connection failed while the request was sent or its response
    /// head read.
    Http(hyper::Error),
    /// A new connection closed before it took the request.
    Closed,
}

/// A request one connection did not take.
enum Unsent {
    /// Handed back unwritten: it may go on another connection.
    Back(Box<Request<Body>>),
    /// It may have reached the upstream: it goes nowhere else.
    Failed(SendError),
}

/// The idle connections of one upstream and its shared HTTP/2 connection.
pub struct Pool {
    /// `scheme://authority/`, what the connector dials.
    target: Uri,
    scheme: Scheme,
    authority: Authority,
    connector: Connector,
    /// Idle HTTP/1 connections per worker thread ([`shard`]), the most
    /// recently returned last in each: the parked ones first, oldest
    /// first, then the live ones.
    idle: Box<[Mutex<Vec<Idle>>]>,
    /// Idle connections over all shards, held to `max_idle`.
    idle_count: AtomicUsize,
    /// The HTTP/2 connection, when the upstream chose h2 by ALPN, and when
    /// a request last took it: one on the shared runtime, one per thread's
    /// shard with per-core runtimes (each thread drives its own, as it
    /// does its HTTP/1 connections).
    h2: Box<[SharedH2]>,
    /// The upstream has chosen h2 before: a request that finds no h2
    /// connection waits for one being opened instead of opening its own.
    h2_seen: AtomicBool,
    /// Held while an h2 connection is opened, per `h2` slot.
    h2_connecting: Box<[tokio::sync::Mutex<()>]>,
    max_idle: usize,
    idle_timeout: Duration,
    park_after: Duration,
    /// Whether a thread with no idle connection takes another thread's
    /// (the shared runtime) rather than open one (per-core runtimes).
    steal: bool,
    /// Counts the parked connections.
    parked: prometheus::IntGauge,
    /// The task that closes expired idle connections, once started;
    /// stopped with the pool.
    reaper: std::sync::OnceLock<tokio::task::AbortHandle>,
}

impl Drop for Pool {
    fn drop(&mut self) {
        if let Some(reaper) = self.reaper.get() {
            reaper.abort();
        }
    }
}

/// How long a pooled connection may take to become ready for its next
/// request before it is closed instead.
const READY_GRACE: Duration = Duration::from_millis(250);

/// hyper's HTTP/1 client connection: the request, its response and the
/// response body move on it only when it is polled.
type Conn = http1::Connection<Io, Body>;

/// A connection polled from the tasks that use it, through a [`Relay`].
struct Driven {
    conn: Conn,
    relay: Arc<Relay>,
    /// The relay as a waker, made once.
    waker: Waker,
}

impl Driven {
    fn new(conn: Conn) -> Box<Driven> {
        let relay = Arc::new(Relay {
            task: futures_util::task::AtomicWaker::new(),
        });
        Box::new(Driven {
            conn,
            waker: Waker::from(relay.clone()),
            relay,
        })
    }
}

/// The waker a connection is polled with: it wakes the task that polled it
/// last, except from inside that task's own taking of the response body
/// ([`Taking`]). hyper's body channel, taken from, wakes the connection so
/// that it may pass on more; the body's next poll does that anyway (it
/// polls the connection whenever the channel is empty), and the wake would
/// only have the whole task polled again for nothing.
struct Relay {
    task: futures_util::task::AtomicWaker,
}

impl std::task::Wake for Relay {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // Quiet only for this relay, and only while this thread takes from
        // its body: a wake from another thread (a multi-threaded runtime's
        // I/O driver), or for another connection, always goes through.
        if TAKING.with(Cell::get) != relay_key(self) {
            self.task.wake();
        }
    }
}

/// A relay's address, what [`TAKING`] holds: compared, never followed.
fn relay_key(relay: &Arc<Relay>) -> usize {
    Arc::as_ptr(relay) as usize
}

thread_local! {
    /// The relay whose body this thread is taking from ([`Taking`]), or 0.
    static TAKING: Cell<usize> = const { Cell::new(0) };
}

/// Marks this thread as taking from one connection's response body until
/// dropped, then puts back what was marked before (a guard: a panic does
/// not leave the relay quiet).
struct Taking {
    before: usize,
}

impl Taking {
    fn start(key: usize) -> Taking {
        Taking {
            before: TAKING.with(|t| t.replace(key)),
        }
    }
}

impl Drop for Taking {
    fn drop(&mut self) {
        TAKING.with(|t| t.set(self.before));
    }
}

/// An HTTP/1 connection.
struct H1 {
    sender: http1::SendRequest<Body>,
    /// hyper's connection, polled by the task of the request that holds it
    /// (while its response head and body are read) and by the pool's checks
    /// while idle: no task of its own, no hand-off of a request to one and
    /// of its response back. Boxed: it holds the TLS stream and buffers,
    /// and an `H1` moves in and out of the idle lists. `None` for one with
    /// upgrades, which its own task drives (it may become a tunnel), or one
    /// that has ended.
    conn: Option<Box<Driven>>,
    /// The number of the thread that last gave it back ([`thread_number`]):
    /// its idle list is that thread's shard. With per-core runtimes it is
    /// the thread that opened it, whose runtime watches its socket, and
    /// only that thread takes it.
    owner: usize,
}

impl H1 {
    /// Polls hyper's connection, if this holds it: it writes the request
    /// and its body, reads the response and passes its body on. Dropped
    /// once it has ended (which closes the sender and hands back any
    /// request not yet written).
    fn poll_conn(&mut self, cx: &mut Context<'_>) {
        if let Some(driven) = self.conn.as_deref_mut() {
            // Never polled while its own taking is quiet: hyper's own wakes
            // (a yield after a long turn) would be lost.
            debug_assert_ne!(TAKING.with(Cell::get), relay_key(&driven.relay));
            driven.relay.task.register(cx.waker());
            let mut relayed = Context::from_waker(&driven.waker);
            if let Poll::Ready(end) = Pin::new(&mut driven.conn).poll(&mut relayed) {
                if let Err(e) = end {
                    tracing::debug!(error = %e, "upstream connection ended");
                }
                self.conn = None;
            }
        }
    }

    /// Whether it can take a request now, polling its connection first:
    /// an error when it has closed.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), hyper::Error>> {
        self.poll_conn(cx);
        self.sender.poll_ready(cx)
    }

    /// Sends `req` and waits for the response head, driving the
    /// connection from this task. With the head comes whether hyper had the
    /// whole request body before it read the head (`body_done`, set as the
    /// body ends; `None` for a request without one): only then may the
    /// connection be reused.
    async fn exchange(
        &mut self,
        req: Request<Body>,
        body_done: Option<&AtomicBool>,
    ) -> Result<(Response<Incoming>, bool), hyper::client::conn::TrySendError<Request<Body>>> {
        let whole = || body_done.map_or(true, |done| done.load(Ordering::Acquire));
        // With the connection here, only its poll (just before) completes
        // the response: polled with a waker that does nothing, it does not
        // wake this task a second time. A task-driven one wakes this task.
        // Unconstrained: hyper's response is a tokio oneshot, which on a
        // spent cooperative budget gives `Pending` and wakes only the waker
        // it was polled with (here, none), however ready it is.
        let mut response = std::pin::pin!(tokio::task::unconstrained(
            self.sender.try_send_request(req)
        ));
        let here = self.conn.is_some();
        std::future::poll_fn(|cx| {
            if here {
                // Read before the poll: hyper reads before it writes, so the
                // poll that reads the head may also take the body's end,
                // which the upstream did not have when it answered.
                let whole = whole();
                self.poll_conn(cx);
                let response = ready!(response.as_mut().poll(&mut noop_context()));
                Poll::Ready(response.map(|r| (r, whole)))
            } else {
                // Another task writes the body and reads the head, in an
                // order this task cannot see: reused only without a body.
                let response = ready!(response.as_mut().poll(cx));
                Poll::Ready(response.map(|r| (r, body_done.is_none())))
            }
        })
        .await
    }

    /// Lets go of a connection whose response is still to be read but which
    /// will not be reused: a task of its own drives it to its end.
    fn detach(self) {
        if let Some(driven) = self.conn {
            run_to_end(driven.conn);
        }
    }

    /// The key of its relay ([`relay_key`]) when this task drives it.
    fn relay_key(&self) -> Option<usize> {
        self.conn.as_deref().map(|driven| relay_key(&driven.relay))
    }
}

/// Drives a connection no request will poll to its end, in a task of its
/// own.
fn run_to_end(conn: impl std::future::Future<Output = hyper::Result<()>> + Send + 'static) {
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "upstream connection ended");
        }
    });
}

/// A context whose waker does nothing, to poll what this task's own
/// polling of a connection completes.
fn noop_context() -> Context<'static> {
    Context::from_waker(futures_util::task::noop_waker_ref())
}

/// An idle HTTP/1 connection, since its last response ended.
enum Idle {
    Live {
        conn: H1,
        since: Instant,
    },
    /// Boxed: a TLS stream is over a kilobyte, and every slot of the idle
    /// list would be as large.
    Parked {
        io: Box<Io>,
        since: Instant,
        /// As [`H1::owner`].
        owner: usize,
        _counted: GaugeGuard,
    },
}

impl Idle {
    fn since(&self) -> Instant {
        match self {
            Idle::Live { since, .. } | Idle::Parked { since, .. } => *since,
        }
    }

    /// The thread it belongs to ([`H1::owner`]).
    fn owner(&self) -> usize {
        match self {
            Idle::Live { conn, .. } => conn.owner,
            Idle::Parked { owner, .. } => *owner,
        }
    }

    /// Still worth keeping: open and within the idle timeout. A live
    /// connection's close is seen by a poll of it: [`Idle::check`] by the
    /// reaper, or the one that readies it for its next request.
    fn keep(&mut self, idle_timeout: Duration) -> bool {
        if self.since().elapsed() >= idle_timeout {
            return false;
        }
        match self {
            Idle::Live { conn, .. } => !conn.sender.is_closed(),
            Idle::Parked { io, .. } => still_open(io),
        }
    }

    /// Polls a live connection that no request holds, so that it reads a
    /// close, or bytes no one asked for (an error), and readies itself for
    /// its next request. Nothing is woken by what it finds: the pool looks
    /// again on its next round.
    fn check(&mut self) {
        if let Idle::Live { conn, .. } = self {
            conn.poll_conn(&mut noop_context());
        }
    }
}

/// A connection to send one request on.
enum Sender {
    H1(H1),
    H2(http2::SendRequest<Body>),
}

/// What the upstream answered.
pub struct Sent {
    /// The response, its body giving the connection back at its end.
    pub response: Response<Body>,
}

/// How a pool keeps its idle connections.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Idle HTTP/1 connections kept, over all threads; 0 turns pooling off.
    pub max_idle: usize,
    /// An idle connection (or the shared h2 one) closes after this.
    pub idle_timeout: Duration,
    /// An idle HTTP/1 connection unused this long is parked.
    pub park_after: Duration,
    /// A thread with none idle takes another thread's (the shared runtime)
    /// rather than open one (per-core runtimes).
    pub steal: bool,
    /// Counts the parked connections.
    pub parked: prometheus::IntGauge,
}

impl Pool {
    /// A pool for `scheme://authority`, empty until the first request.
    pub fn new(
        scheme: Scheme,
        authority: Authority,
        connector: Connector,
        settings: Settings,
    ) -> Pool {
        let Settings {
            max_idle,
            idle_timeout,
            park_after,
            steal,
            parked,
        } = settings;
        let target = Uri::builder()
            .scheme(scheme.clone())
            .authority(authority.clone())
            .path_and_query("/")
            .build()
            .expect("a scheme and an authority make a URI");
        let h2_slots = if steal { 1 } else { shards() };
        Pool {
            target,
            scheme,
            authority,
            connector,
            idle: (0..shards()).map(|_| Mutex::new(Vec::new())).collect(),
            idle_count: AtomicUsize::new(0),
            h2: (0..h2_slots).map(|_| Mutex::new(None)).collect(),
            h2_seen: AtomicBool::new(false),
            h2_connecting: (0..h2_slots).map(|_| tokio::sync::Mutex::new(())).collect(),
            max_idle,
            idle_timeout,
            park_after,
            steal,
            parked,
            reaper: std::sync::OnceLock::new(),
        }
    }

    /// How many idle HTTP/1 connections the pool holds.
    pub fn idle_len(&self) -> usize {
        self.idle_count.load(Ordering::Relaxed)
    }

    /// How many of them are parked.
    #[cfg(test)]
    fn parked_len(&self) -> usize {
        self.idle
            .iter()
            .map(|shard| {
                let idle = shard.lock().expect("pool lock");
                idle.iter()
                    .filter(|i| matches!(i, Idle::Parked { .. }))
                    .count()
            })
            .sum()
    }

    /// Sends `req` (its URI in absolute form) and returns the response
    /// head. The URI is sent in origin form on HTTP/1 and as `:scheme`,
    /// `:authority` and `:path` on HTTP/2. `opened` counts the connections
    /// opened for it. An `upgrade` request goes on a new connection that
    /// can become its tunnel.
    pub async fn send(
        self: &Arc<Self>,
        req: Request<Body>,
        opened: &prometheus::IntCounter,
        upgrade: bool,
    ) -> Result<Sent, SendError> {
        let (req, body_done) = track_body(req);
        let taken = if upgrade {
            // Never a pooled HTTP/1 connection; an h2 upstream's shared
            // connection, as any request (it cannot upgrade either).
            self.shared_h2().ok_or(None)
        } else {
            self.take().await
        };
        let (req, connecting) = match taken {
            Ok(sender) => match self.send_on(sender, req, body_done.clone()).await {
                Err(Unsent::Back(req)) => {
                    // The reused connection closed before a byte of the
                    // request was written: once more, on a new connection.
                    tracing::debug!(
                        "a pooled upstream connection had closed; sending on a new one"
                    );
                    self.drain_idle(false);
                    (*req, None)
                }
                Err(Unsent::Failed(e)) => return Err(e),
                Ok(sent) => return Ok(sent),
            },
            Err(connecting) => (req, connecting),
        };
        opened.inc();
        // Boxed: the connect future is large and rarely run, and inline it
        // would grow every request's future (and the copies of it) by its
        // size.
        let sender = Box::pin(self.connect(upgrade)).await;
        if connecting.is_some() && !matches!(sender, Ok(Sender::H2(_))) {
            // Failed, or the upstream speaks HTTP/1 now: the requests
            // waiting behind this one connect on their own.
            self.h2_seen.store(false, Ordering::Relaxed);
        }
        drop(connecting);
        match self.send_on(sender?, req, body_done).await {
            Ok(sent) => Ok(sent),
            Err(Unsent::Failed(e)) => Err(e),
            Err(Unsent::Back(_)) => Err(SendError::Closed),
        }
    }

    /// Sends on one connection; a request hyper hands back unsent comes back
    /// in absolute form, for another connection of either protocol.
    async fn send_on(
        self: &Arc<Self>,
        sender: Sender,
        mut req: Request<Body>,
        body_done: Option<Arc<AtomicBool>>,
    ) -> Result<Sent, Unsent> {
        match sender {
            Sender::H2(mut h2) => match h2.try_send_request(req).await {
                Ok(resp) => Ok(Sent {
                    response: resp.map(|b| b.map_err(Into::into).boxed()),
                }),
                Err(mut e) => match e.take_message() {
                    Some(back) => {
                        self.forget_closed_h2();
                        Err(Unsent::Back(Box::new(back)))
                    }
                    None => Err(Unsent::Failed(SendError::Http(e.into_error()))),
                },
            },
            Sender::H1(mut h1) => {
                origin_form(&mut req);
                match h1.exchange(req, body_done.as_deref()).await {
                    Ok((resp, whole)) => {
                        // Reusable only if hyper had the whole request body
                        // before the response head came (nginx's rule): an
                        // upstream that answered first may read the rest as
                        // a request of its own, and its answer to it would
                        // go to the next client.
                        let response = if whole {
                            self.lease(h1, resp)
                        } else {
                            tracing::debug!("the upstream answered before it had the request body; its connection is not reused");
                            h1.detach();
                            resp.map(|b| b.map_err(Into::into).boxed())
                        };
                        Ok(Sent { response })
                    }
                    Err(mut e) => match e.take_message() {
                        Some(mut back) => {
                            self.absolute_form(&mut back);
                            Err(Unsent::Back(Box::new(back)))
                        }
                        None => Err(Unsent::Failed(SendError::Http(e.into_error()))),
                    },
                }
            }
        }
    }

    /// Gives an origin-form request its scheme and authority back.
    fn absolute_form(&self, req: &mut Request<Body>) {
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(self.scheme.clone());
        parts.authority = Some(self.authority.clone());
        parts.path_and_query = req.uri().path_and_query().cloned();
        if let Ok(uri) = Uri::from_parts(parts) {
            *req.uri_mut() = uri;
        }
    }

    /// An idle connection that is still open, or the HTTP/2 one; or, for
    /// a new connection to be opened, the h2 connecting lock when the
    /// upstream speaks h2 (held until that connection is shared).
    async fn take(self: &Arc<Self>) -> Result<Sender, Option<tokio::sync::MutexGuard<'_, ()>>> {
        if let Some(h2) = self.shared_h2() {
            return Ok(h2);
        }
        if self.h2_seen.load(Ordering::Relaxed) && self.max_idle > 0 {
            // Wait for an h2 connection another request is opening, rather
            // than open one each (a burst on a cold pool, after a reload).
            let connecting = self.h2_connecting[self.h2_slot()].lock().await;
            if let Some(h2) = self.shared_h2() {
                return Ok(h2);
            }
            // Still h2 and none shared: this request opens it, the lock
            // held. Otherwise the one before failed or found HTTP/1: on to
            // the idle HTTP/1 connections, and a connect of its own.
            if self.h2_seen.load(Ordering::Relaxed) {
                return Err(Some(connecting));
            }
        }
        let me = thread_number();
        let home = me % self.idle.len();
        // Per-core runtimes take only their own thread's connections: one
        // of another thread's has its socket watched by that thread's
        // runtime, and every read on it would wait for that thread's turn.
        let shards = if self.steal { self.idle.len() } else { 1 };
        loop {
            // This worker's own first, then (shared runtime) the others',
            // newest first.
            let mut idle = (0..shards)
                .find_map(|i| {
                    let mut idle = self.idle[(home + i) % self.idle.len()]
                        .lock()
                        .expect("pool lock");
                    if self.steal {
                        return idle.pop();
                    }
                    // A thread sharing this shard (more threads than
                    // shards) leaves the others' alone.
                    let at = idle.iter().rposition(|i| i.owner() == me)?;
                    Some(idle.remove(at))
                })
                .ok_or(None)?;
            self.idle_count.fetch_sub(1, Ordering::Relaxed);
            if !idle.keep(self.idle_timeout) {
                continue;
            }
            let mut conn = match idle {
                Idle::Live { conn, .. } => conn,
                // Boxed, as `connect` in `send`: restarting a parked
                // connection is rare, and inline its future would grow
                // every request's by two kilobytes.
                Idle::Parked { io, .. } => match Box::pin(self.drive(*io, false)).await {
                    Ok(conn) => return Ok(Sender::H1(conn)),
                    Err(e) => {
                        tracing::debug!(error = %e, "a parked upstream connection did not restart");
                        continue;
                    }
                },
            };
            // A connection comes back when its request body was sent and
            // its response read to their ends, a poll before hyper marks it
            // ready; this poll finds a close, too. One not ready within the
            // grace is closed.
            match std::future::poll_fn(|cx| Poll::Ready(conn.poll_ready(cx))).await {
                Poll::Ready(Ok(())) => return Ok(Sender::H1(conn)),
                Poll::Ready(Err(_)) => continue,
                Poll::Pending => {}
            }
            let ready = std::future::poll_fn(|cx| conn.poll_ready(cx));
            if let Ok(Ok(())) = tokio::time::timeout(READY_GRACE, ready).await {
                return Ok(Sender::H1(conn));
            }
        }
    }

    /// Opens a connection, HTTP/2 when the upstream's ALPN chose it; an
    /// HTTP/1 one driven with upgrades when `upgrade`.
    async fn connect(self: &Arc<Self>, upgrade: bool) -> Result<Sender, SendError> {
        self.reaper
            .get_or_init(|| reap(Arc::downgrade(self), self.idle_timeout.min(self.park_after)));
        let mut connector = self.connector.clone();
        std::future::poll_fn(|cx| connector.poll_ready(cx))
            .await
            .map_err(SendError::Connect)?;
        let io = connector
            .call(self.target.clone())
            .await
            .map_err(SendError::Connect)?;
        if io.connected().is_negotiated_h2() {
            let (sender, conn) = http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .handshake(io)
                .await
                .map_err(|e| SendError::Connect(e.into()))?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "upstream h2 connection ended");
                }
            });
            self.h2_seen.store(true, Ordering::Relaxed);
            if self.max_idle > 0 {
                let mut shared = self.h2[self.h2_slot()].lock().expect("pool lock");
                // A healthy shared connection stays: this one serves its
                // request and closes.
                if shared.as_ref().map_or(true, |(s, _)| s.is_closed()) {
                    *shared = Some((sender.clone(), Instant::now()));
                }
            }
            Ok(Sender::H2(sender))
        } else {
            self.drive(io, upgrade)
                .await
                .map(Sender::H1)
                .map_err(|e| SendError::Connect(e.into()))
        }
    }

    /// Starts a hyper HTTP/1 connection on `io`: driven by the requests
    /// that take it, or, with upgrades, by a task of its own.
    async fn drive(self: &Arc<Self>, io: Io, upgrade: bool) -> Result<H1, hyper::Error> {
        let (sender, conn) = http1::Builder::new().handshake(io).await?;
        let conn = if upgrade {
            run_to_end(conn.with_upgrades());
            None
        } else {
            Some(Driven::new(conn))
        };
        let mut h1 = H1 {
            sender,
            conn,
            owner: thread_number(),
        };
        // A fresh connection is ready once polled; this orders the
        // handshake's state before the first send.
        std::future::poll_fn(|cx| h1.poll_ready(cx)).await?;
        Ok(h1)
    }

    /// Wraps the response so that its body gives the connection back at its
    /// end. A 101 keeps the connection: it becomes the tunnel.
    fn lease(self: &Arc<Self>, conn: H1, resp: Response<Incoming>) -> Response<Body> {
        if resp.status() == http::StatusCode::SWITCHING_PROTOCOLS {
            return resp.map(|b| b.map_err(Into::into).boxed());
        }
        let lease = Lease {
            pool: Arc::downgrade(self),
            conn,
        };
        resp.map(|inner| {
            if inner.is_end_stream() {
                lease.give_back();
                inner.map_err(Into::into).boxed()
            } else {
                Leased {
                    inner,
                    lease: Some(lease),
                }
                .map_err(Into::into)
                .boxed()
            }
        })
    }

    /// Takes back a connection whose last response was read to its end.
    fn put(&self, mut conn: H1) {
        if conn.sender.is_closed() || self.max_idle == 0 {
            return;
        }
        // This thread's list: the next request on this thread takes it,
        // and with per-core runtimes it is the thread that opened it.
        conn.owner = thread_number();
        let mut idle = self.idle[conn.owner % self.idle.len()]
            .lock()
            .expect("pool lock");
        if self.idle_count.fetch_add(1, Ordering::Relaxed) >= self.max_idle {
            self.idle_count.fetch_sub(1, Ordering::Relaxed);
            if idle.is_empty() {
                // The others' hold the cap: this one goes.
                return;
            }
            // This worker's oldest goes: it is the likeliest to be closed
            // by the upstream's own idle timeout.
            idle.remove(0);
        }
        idle.push(Idle::Live {
            conn,
            since: Instant::now(),
        });
    }

    /// Takes back the socket of a connection it parked, unused since
    /// `since`, unless the idle connections are at their cap (then it is
    /// handed back to be closed: the others are newer).
    fn put_parked(&self, io: Box<Io>, since: Instant, owner: usize) -> Option<Box<Io>> {
        let mut idle = self.idle[owner % self.idle.len()]
            .lock()
            .expect("pool lock");
        if self.idle_count.fetch_add(1, Ordering::Relaxed) >= self.max_idle {
            self.idle_count.fetch_sub(1, Ordering::Relaxed);
            return Some(io);
        }
        // Before the live ones, among the parked ones by age: a request
        // takes the live ones first, then the newest parked (the farthest
        // from the upstream's own idle timeout), and the cap evicts the
        // oldest.
        let at = idle
            .iter()
            .take_while(|i| matches!(i, Idle::Parked { .. }) && i.since() <= since)
            .count();
        idle.insert(
            at,
            Idle::Parked {
                io,
                since,
                owner,
                _counted: GaugeGuard::hold(self.parked.clone()),
            },
        );
        None
    }

    /// The shared HTTP/2 connection, if open and used within the idle
    /// timeout; marked as used now.
    fn shared_h2(&self) -> Option<Sender> {
        let mut shared = self.h2[self.h2_slot()].lock().expect("pool lock");
        let (h2, used) = shared.as_mut()?;
        if h2.is_closed() || used.elapsed() >= self.idle_timeout {
            // Dropping the last sender closes it once its streams end.
            *shared = None;
            return None;
        }
        *used = Instant::now();
        Some(Sender::H2(h2.clone()))
    }

    /// Drops the shared HTTP/2 connection if it has closed (not a newer one
    /// that replaced it).
    fn forget_closed_h2(&self) {
        for slot in self.h2.iter() {
            let mut shared = slot.lock().expect("pool lock");
            if shared.as_ref().is_some_and(|(h2, _)| h2.is_closed()) {
                *shared = None;
            }
        }
    }

    /// The calling thread's `h2` slot.
    fn h2_slot(&self) -> usize {
        if self.h2.len() == 1 {
            0
        } else {
            shard(self.h2.len())
        }
    }

    /// Drops the idle connections that are closed or past the idle timeout;
    /// `check`, polling the live ones first to see a close ([`Idle::check`]:
    /// the reaper's round, not a request's, whose cooperative budget could
    /// leave the polls blind).
    fn drain_idle(&self, check: bool) {
        let timeout = self.idle_timeout;
        for shard in self.idle.iter() {
            let mut idle = shard.lock().expect("pool lock");
            let before = idle.len();
            idle.retain_mut(|i| {
                if check {
                    i.check();
                }
                i.keep(timeout)
            });
            self.idle_count
                .fetch_sub(before - idle.len(), Ordering::Relaxed);
        }
        for slot in self.h2.iter() {
            let mut h2 = slot.lock().expect("pool lock");
            if h2
                .as_ref()
                .is_some_and(|(s, used)| s.is_closed() || used.elapsed() >= timeout)
            {
                *h2 = None;
            }
        }
    }

    /// Parks the live idle connections unused for `park_after`: each is
    /// taken out of the idle list, its hyper connection taken apart, and
    /// its socket put back (unless hyper had read something ahead, bytes
    /// no one asked for: then it is closed).
    fn park_idle(&self) {
        let mut parking = Vec::new();
        for shard in self.idle.iter() {
            let mut idle = shard.lock().expect("pool lock");
            let before = idle.len();
            let mut i = 0;
            while i < idle.len() {
                match &idle[i] {
                    // Only one hyper holds ready for its next request: a
                    // connection hyper is closing (the upstream's
                    // `Connection: close`, its end of stream) is not
                    // wanting one, and closes instead.
                    Idle::Live { conn, since }
                        if conn.conn.is_some()
                            && since.elapsed() >= self.park_after
                            && conn.sender.is_ready() =>
                    {
                        if let Idle::Live { conn, since } = idle.remove(i) {
                            parking.push((conn, since));
                        }
                    }
                    _ => i += 1,
                }
            }
            self.idle_count
                .fetch_sub(before - idle.len(), Ordering::Relaxed);
        }
        // Outside the locks: a socket that does not go back is shut down.
        for (
            H1 {
                sender,
                conn,
                owner,
            },
            since,
        ) in parking
        {
            drop(sender);
            let Some(driven) = conn else { continue };
            let parts = driven.conn.into_parts();
            if !parts.read_buf.is_empty() {
                tracing::debug!("an idle upstream connection had bytes no one asked for; closed");
                continue;
            }
            if let Some(io) = self.put_parked(Box::new(parts.io), since, owner) {
                close(io);
            }
        }
    }
}

/// Shuts a socket down (TLS `close_notify`, then FIN) from a task of its
/// own, so that whoever lets go of it does not wait.
fn close(mut io: Box<Io>) {
    tokio::spawn(async move {
        let _ =
            std::future::poll_fn(|cx| hyper::rt::Write::poll_shutdown(Pin::new(&mut io), cx)).await;
    });
}

/// Whether a parked socket is open with nothing unasked in it: a read of it
/// would block. (A closed one reads its end, one the upstream wrote to
/// unasked has bytes to read; either is closed. A TLS record with no data
/// in it, a session ticket, is taken in and the read goes on.)
fn still_open(io: &mut Io) -> bool {
    let mut byte = [std::mem::MaybeUninit::uninit(); 1];
    let mut buf = hyper::rt::ReadBuf::uninit(&mut byte);
    let mut cx = Context::from_waker(futures_util::task::noop_waker_ref());
    hyper::rt::Read::poll_read(Pin::new(io), &mut cx, buf.unfilled()).is_pending()
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("scheme", &self.scheme)
            .field("authority", &self.authority)
            .finish_non_exhaustive()
    }
}

/// How many shards of idle connections a pool keeps: one per CPU, which is
/// one per worker thread by default.
fn shards() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().clamp(1, 64))
}

/// The calling thread's number: threads are numbered as they first
/// forward, so the workers of a runtime get one each.
fn thread_number() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static MINE: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    MINE.with(|m| {
        if m.get() == usize::MAX {
            m.set(NEXT.fetch_add(1, Ordering::Relaxed));
        }
        m.get()
    })
}

/// The shard of the calling thread among `n`. More threads than shards
/// (`worker_threads` above the CPUs) share one; [`Idle::owner`] keeps
/// their connections apart where that matters.
fn shard(n: usize) -> usize {
    thread_number() % n
}

/// Closes expired idle connections of `pool` and parks the quiet ones every
/// half of `period` (the shorter of the idle timeout and `park_after`),
/// until the pool is dropped (its config generation replaced and its
/// requests done), which aborts it.
fn reap(pool: Weak<Pool>, period: Duration) -> tokio::task::AbortHandle {
    let every = (period / 2).max(Duration::from_millis(100));
    // Unconstrained: a socket's read readiness is checked even after the
    // task's cooperative budget is spent (many idle connections at once).
    tokio::spawn(tokio::task::unconstrained(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(pool) = pool.upgrade() else { return };
            pool.drain_idle(true);
            pool.park_idle();
        }
    }))
    .abort_handle()
}

/// Marks when a request body has been sent to its end, so that a connection
/// whose response ended first (the upstream answered without reading the
/// body, which is still being written) is not pooled: the bytes still to
/// come could be read by that upstream as a request of its own, and its
/// answer to them given to the next client. A request without a body needs
/// no mark.
fn track_body(req: Request<Body>) -> (Request<Body>, Option<Arc<AtomicBool>>) {
    if req.body().is_end_stream() {
        return (req, None);
    }
    let done = Arc::new(AtomicBool::new(false));
    let mark = done.clone();
    let req = req.map(|inner| Tracked { inner, done: mark }.boxed());
    (req, Some(done))
}

pin_project_lite::pin_project! {
    /// A request body that marks its end.
    struct Tracked {
        #[pin]
        inner: Body,
        done: Arc<AtomicBool>,
    }
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        let frame = ready!(this.inner.as_mut().poll_frame(cx));
        let end = match &frame {
            None => true,
            Some(Ok(f)) => f.is_trailers() || this.inner.is_end_stream(),
            Some(Err(_)) => false,
        };
        if end {
            this.done.store(true, Ordering::Release);
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Sends an HTTP/1 request in origin form (`/path?query`), as RFC 9112
/// section 3.2.1 asks of a request to an origin server.
fn origin_form(req: &mut Request<Body>) {
    if req.uri().scheme().is_some() {
        let path = req
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
        *req.uri_mut() = Uri::from(path);
    }
}

/// An HTTP/1 connection lent to one response whose request body hyper had
/// whole before the response head came.
struct Lease {
    pool: Weak<Pool>,
    conn: H1,
}

impl Lease {
    fn give_back(self) {
        if let Some(pool) = self.pool.upgrade() {
            pool.put(self.conn);
        }
    }
}

pin_project_lite::pin_project! {
    /// A response body that gives its connection back once read to its end.
    /// Dropped before that, the connection goes with it: hyper closes a
    /// connection whose response was not read.
    struct Leased {
        #[pin]
        inner: Incoming,
        lease: Option<Lease>,
    }
}

impl http_body::Body for Leased {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let mut this = self.project();
        let here = this
            .lease
            .as_mut()
            .and_then(|l| Some((l.conn.relay_key()?, &mut l.conn)));
        let frame = match here {
            // The connection is driven here: polled when the body has
            // nothing ready, and the body polled again after it. Only that
            // poll passes the body on, so the body's own waker does
            // nothing; the connection's socket wakes it, through the
            // relay, quiet while this takes ([`Taking`]). (hyper's body
            // channel is its own, a lock and an atomic waker: no
            // cooperative budget that could make it `Pending` with data in
            // it.)
            Some((key, conn)) => {
                let taking = Taking::start(key);
                match this.inner.as_mut().poll_frame(&mut noop_context()) {
                    Poll::Ready(frame) => frame,
                    Poll::Pending => {
                        drop(taking);
                        conn.poll_conn(cx);
                        let _taking = Taking::start(key);
                        ready!(this.inner.as_mut().poll_frame(&mut noop_context()))
                    }
                }
            }
            None => ready!(this.inner.as_mut().poll_frame(cx)),
        };
        match &frame {
            // Trailers end a body, whatever `is_end_stream` says.
            Some(Ok(f)) if !f.is_trailers() && !this.inner.is_end_stream() => {}
            Some(Err(_)) => drop(this.lease.take()),
            Some(Ok(_)) | None => {
                if let Some(lease) = this.lease.take() {
                    lease.give_back();
                }
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn pool(addr: std::net::SocketAddr) -> Arc<Pool> {
        pool_parking_after(addr, Duration::from_secs(90))
    }

    fn pool_parking_after(addr: std::net::SocketAddr, park_after: Duration) -> Arc<Pool> {
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .wrap_connector(HttpConnector::new());
        Arc::new(Pool::new(
            Scheme::HTTP,
            addr.to_string().parse().unwrap(),
            connector,
            Settings {
                max_idle: 8,
                idle_timeout: Duration::from_secs(90),
                park_after,
                steal: true,
                parked: prometheus::IntGauge::new("p", "p").unwrap(),
            },
        ))
    }

    fn request(addr: std::net::SocketAddr, body: Body) -> Request<Body> {
        Request::post(format!("http://{addr}/"))
            .header("host", "x")
            .body(body)
            .unwrap()
    }

    #[tokio::test]
    async fn a_connection_comes_back_when_request_and_response_have_ended() {
        let (addr, _, _) = upstream(Then::Serve).await;
        let pool = pool(addr);
        let opened = prometheus::IntCounter::new("t", "t").unwrap();
        for _ in 0..3 {
            let sent = pool
                .send(request(addr, crate::answer::full("done")), &opened, false)
                .await
                .unwrap();
            let body = sent.response.into_body().collect().await.unwrap();
            assert_eq!(&body.to_bytes()[..], b"ok");
            assert_eq!(pool.idle_len(), 1);
        }
        assert_eq!(opened.get(), 1);
    }

    /// A request body whose first frame is ready and whose rest the test
    /// sends (dropping the sender ends it).
    async fn streamed_body() -> (
        tokio::sync::mpsc::Sender<Result<Frame<Bytes>, BoxError>>,
        Body,
    ) {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(2);
        let stream =
            futures_util::stream::unfold(
                rx,
                |mut rx| async move { rx.recv().await.map(|v| (v, rx)) },
            );
        tx.send(Ok(Frame::data(Bytes::from_static(b"first"))))
            .await
            .unwrap();
        (tx, http_body_util::StreamBody::new(stream).boxed())
    }

    #[tokio::test]
    async fn a_connection_answered_before_its_request_body_ended_is_not_pooled() {
        let (addr, _, _) = upstream(Then::Serve).await;
        let pool = pool(addr);
        let opened = prometheus::IntCounter::new("t", "t").unwrap();
        let (tx, body) = streamed_body().await;
        let sent = pool
            .send(request(addr, body), &opened, false)
            .await
            .unwrap();
        // The response head came before the request body's end. The client
        // sends the rest before it reads the response: still never pooled.
        // hyper 1.12 closes such a connection itself as well (seen here
        // with the pool's own check taken out), so this test holds the
        // behaviour, whichever of the two keeps it.
        tx.send(Ok(Frame::data(Bytes::from_static(b"the rest of the body"))))
            .await
            .unwrap();
        drop(tx);
        for _ in 0..64 {
            tokio::task::yield_now().await;
        }
        let body = sent.response.into_body().collect().await.unwrap();
        assert_eq!(&body.to_bytes()[..], b"ok");
        assert_eq!(pool.idle_len(), 0);
        // The next request opens its own connection.
        let sent = pool
            .send(request(addr, crate::answer::full("")), &opened, false)
            .await
            .unwrap();
        sent.response.into_body().collect().await.unwrap();
        assert_eq!(opened.get(), 2);
    }

    #[tokio::test]
    async fn a_head_read_in_the_poll_that_ends_the_request_body_is_not_pooled() {
        // An upstream on a thread of its own answers the request head when
        // told (an empty 200) and never reads the body.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let (answer, told) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            use std::io::{Read, Write};
            let Ok((mut s, _)) = l.accept() else { return };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                let Ok(n @ 1..) = s.read(&mut chunk) else {
                    return;
                };
                buf.extend_from_slice(&chunk[..n]);
            }
            let Ok(()) = told.recv() else { return };
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
            while let Ok(1..) = s.read(&mut chunk) {}
        });
        let pool = pool(addr);
        let opened = prometheus::IntCounter::new("t", "t").unwrap();
        let (tx, body) = streamed_body().await;
        let mut send = std::pin::pin!(pool.send(request(addr, body), &opened, false));
        // Head and first frame written, the upstream answers; the runtime
        // sees the answer come in (its turn of the I/O driver, in the
        // yield) and only then is the body's end made ready: the next poll
        // reads the head, then takes the end.
        for _ in 0..16 {
            assert!(futures_util::poll!(send.as_mut()).is_pending());
            tokio::task::yield_now().await;
        }
        answer.send(()).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        tokio::task::yield_now().await;
        tx.try_send(Ok(Frame::data(Bytes::from_static(b"the end"))))
            .unwrap();
        drop(tx);
        let sent = send.await.unwrap();
        sent.response.into_body().collect().await.unwrap();
        assert_eq!(pool.idle_len(), 0, "pooled a connection answered early");
    }

    /// What an upstream does after its first response on a connection.
    #[derive(Clone, Copy)]
    enum Then {
        Serve,
        Close,
        Write,
    }

    /// An upstream that answers each request head with `200 ok` (without
    /// reading a body) and, after the first response on a connection,
    /// `then` does something when the test says so. Counts the connections it accepts.
    async fn upstream(
        then: Then,
    ) -> (
        std::net::SocketAddr,
        Arc<AtomicUsize>,
        Arc<tokio::sync::Notify>,
    ) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        let act = Arc::new(tokio::sync::Notify::new());
        let told = act.clone();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                count.fetch_add(1, Ordering::SeqCst);
                let told = told.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let mut answered = 0;
                    loop {
                        let read = if answered == 1 && !matches!(then, Then::Serve) {
                            tokio::select! {
                                r = s.read(&mut chunk) => r,
                                () = told.notified() => {
                                    if let Then::Write = then {
                                        let _ = s.write_all(b"HTTP/1.1 200 OK\r\n").await;
                                        answered += 1;
                                        continue;
                                    }
                                    return;
                                }
                            }
                        } else {
                            s.read(&mut chunk).await
                        };
                        let Ok(n @ 1..) = read else { return };
                        buf.extend_from_slice(&chunk[..n]);
                        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            buf.drain(..end + 4);
                            let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                            if s.write_all(ok).await.is_err() {
                                return;
                            }
                            answered += 1;
                        }
                    }
                });
            }
        });
        (addr, accepted, act)
    }

    async fn get(pool: &Arc<Pool>, addr: std::net::SocketAddr, opened: &prometheus::IntCounter) {
        let sent = pool
            .send(request(addr, crate::answer::full("")), opened, false)
            .await
            .unwrap();
        let body = sent.response.into_body().collect().await.unwrap();
        assert_eq!(&body.to_bytes()[..], b"ok");
    }

    /// Waits up to 2 s for `what` of the pool.
    async fn until(pool: &Arc<Pool>, what: impl Fn(&Pool) -> bool) {
        for _ in 0..200 {
            if what(pool) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "the pool did not get there: {} idle, {} parked",
            pool.idle_len(),
            pool.parked_len()
        );
    }

    #[tokio::test]
    async fn a_quiet_connection_is_parked_and_its_socket_serves_the_next_request() {
        let (addr, accepted, _) = upstream(Then::Serve).await;
        let pool = pool_parking_after(addr, Duration::from_millis(200));
        let opened = prometheus::IntCounter::new("t", "t").unwrap();
        get(&pool, addr, &opened).await;
        assert_eq!((pool.idle_len(), pool.parked_len()), (1, 0));
        until(&pool, |p| p.parked_len() == 1).await;
        assert_eq!(pool.idle_len(), 1);
        for _ in 0..3 {
            get(&pool, addr, &opened).await;
        }
        assert_eq!((pool.idle_len(), pool.parked_len()), (1, 0));
        // Parked and taken again: one connection all along.
        until(&pool, |p| p.parked_len() == 1).await;
        assert_eq!(pool.parked.get(), 1);
        get(&pool, addr, &opened).await;
        assert_eq!(pool.parked.get(), 0);
        assert_eq!(opened.get(), 1);
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    /// A pool whose one connection to an upstream that does `then` has
    /// served a request and is parked, the upstream told to act.
    async fn parked_then_acted_on(
        then: Then,
    ) -> (
        std::net::SocketAddr,
        Arc<Pool>,
        prometheus::IntCounter,
        Arc<AtomicUsize>,
        Arc<tokio::sync::Notify>,
    ) {
        let (addr, accepted, act) = upstream(then).await;
        let pool = pool_parking_after(addr, Duration::from_millis(100));
        let opened = prometheus::IntCounter::new("t", "t").unwrap();
        get(&pool, addr, &opened).await;
        until(&pool, |p| p.parked_len() == 1).await;
        act.notify_one();
        (addr, pool, opened, accepted, act)
    }

    #[tokio::test]
    async fn a_parked_connection_the_upstream_closed_is_dropped_not_sent_on() {
        let (addr, pool, opened, accepted, act) = parked_then_acted_on(Then::Close).await;
        // The upstream closes it while parked; whichever finds the close
        // first, the reaper's read or the one before the restart, the
        // request goes on a new connection.
        tokio::time::sleep(Duration::from_millis(20)).await;
        get(&pool, addr, &opened).await;
        assert_eq!(opened.get(), 2, "a new connection, not the closed one");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        // The reaper finds a closed parked socket on its own, too.
        until(&pool, |p| p.parked_len() == 1).await;
        act.notify_one();
        until(&pool, |p| p.idle_len() == 0).await;
    }

    #[tokio::test]
    async fn a_parked_connection_with_unasked_bytes_is_never_sent_on() {
        let (addr, pool, opened, accepted, _) = parked_then_acted_on(Then::Write).await;
        // The upstream writes the start of a response no one asked for,
        // while parked: the reaper's read finds it and closes the
        // connection. (Were it taken first, the read
        // before the restart would find it; past both, hyper's connection
        // would refuse bytes that came before its request, so the next
        // request never reads them as its own either way.)
        until(&pool, |p| p.idle_len() == 0).await;
        get(&pool, addr, &opened).await;
        assert_eq!(opened.get(), 2);
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn parked_connections_line_up_oldest_first_and_the_cap_holds() {
        let (addr, accepted, _) = upstream(Then::Serve).await;
        let pool = pool(addr);
        let now = Instant::now();
        let ago = |s: u64| now.checked_sub(Duration::from_secs(s)).unwrap();
        let dial = || pool.connector.clone().call(pool.target.clone());
        let home = thread_number();
        for age in [2, 3, 1, 5, 4, 7, 6, 8] {
            let io = dial().await.unwrap();
            assert!(pool.put_parked(Box::new(io), ago(age), home).is_none());
        }
        let io = dial().await.unwrap();
        assert!(
            pool.put_parked(Box::new(io), ago(9), home).is_some(),
            "over max_idle (8): handed back to be closed"
        );
        assert_eq!((pool.idle_len(), pool.parked_len()), (8, 8));
        assert_eq!(pool.parked.get(), 8);
        let ages: Vec<u64> = pool.idle[shard(pool.idle.len())]
            .lock()
            .unwrap()
            .iter()
            .map(|i| (now - i.since()).as_secs())
            .collect();
        assert_eq!(ages, [8, 7, 6, 5, 4, 3, 2, 1]);
        // The newest is taken first; the rest wait.
        let opened = prometheus::IntCounter::new("t", "t").unwrap();
        get(&pool, addr, &opened).await;
        assert_eq!(opened.get(), 0);
        assert_eq!(pool.parked.get(), 7);
        let ages: Vec<u64> = pool.idle[shard(pool.idle.len())]
            .lock()
            .unwrap()
            .iter()
            .filter(|i| matches!(i, Idle::Parked { .. }))
            .map(|i| (now - i.since()).as_secs())
            .collect();
        assert_eq!(ages, [8, 7, 6, 5, 4, 3, 2]);
        assert_eq!(accepted.load(Ordering::SeqCst), 9);
    }

    #[tokio::test]
    async fn an_idle_connection_the_upstream_closed_is_seen_without_a_request() {
        let (addr, accepted, act) = upstream(Then::Close).await;
        let pool = pool(addr);
        let opened = prometheus::IntCounter::new("t", "t").unwrap();
        get(&pool, addr, &opened).await;
        assert_eq!(pool.idle_len(), 1);
        // No task drives an idle connection: the reaper's round polls it,
        // reads the upstream's close and drops it.
        act.notify_one();
        for _ in 0..200 {
            pool.drain_idle(true);
            if pool.idle_len() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(pool.idle_len(), 0, "the closed connection is still idle");
        get(&pool, addr, &opened).await;
        assert_eq!(opened.get(), 2);
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    /// An upstream that answers every request on a connection with a
    /// chunked body of `chunks` chunks of 10,000 bytes, pausing after every
    /// tenth: the body comes over many reads and wake-ups.
    async fn chunked_upstream(chunks: usize) -> std::net::SocketAddr {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        let Ok(n @ 1..) = s.read(&mut chunk).await else {
                            return;
                        };
                        buf.extend_from_slice(&chunk[..n]);
                        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            buf.drain(..end + 4);
                            let head = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
                            if s.write_all(head).await.is_err() {
                                return;
                            }
                            let piece = format!("2710\r\n{}\r\n", "x".repeat(10_000));
                            for i in 0..chunks {
                                if s.write_all(piece.as_bytes()).await.is_err() {
                                    return;
                                }
                                if i % 10 == 9 {
                                    tokio::time::sleep(Duration::from_millis(2)).await;
                                }
                            }
                            if s.write_all(b"0\r\n\r\n").await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn a_long_body_comes_whole_through_a_connection_its_request_drives() {
        let addr = chunked_upstream(100).await;
        let pool = pool(addr);
        let opened = prometheus::IntCounter::new("t", "t").unwrap();
        for _ in 0..3 {
            let sent = tokio::time::timeout(
                Duration::from_secs(10),
                pool.send(request(addr, crate::answer::full("")), &opened, false),
            )
            .await
            .expect("no response head")
            .unwrap();
            let body =
                tokio::time::timeout(Duration::from_secs(10), sent.response.into_body().collect())
                    .await
                    .expect("the body stalled")
                    .unwrap()
                    .to_bytes();
            assert_eq!(body.len(), 1_000_000);
            assert!(body.iter().all(|&b| b == b'x'));
            assert_eq!(pool.idle_len(), 1);
        }
        assert_eq!(opened.get(), 1, "one connection, reused");
    }

    #[tokio::test]
    async fn a_request_does_not_hang_when_its_task_has_spent_its_budget() {
        // tokio gives each poll of a task a budget of operations; a spent
        // one makes its resources `Pending`. Whatever the task spent
        // before the pool's turn in the same poll (here, `spend` units of a
        // channel's, every poll), the response still comes.
        // Twice: a body that comes with its head, and one that comes over
        // many reads (the connection polled from the body).
        let (short, _, _) = upstream(Then::Serve).await;
        spend_then_get(short, 1, 2).await;
        spend_then_get(chunked_upstream(20).await, 3, 200_000).await;
    }

    async fn spend_then_get(addr: std::net::SocketAddr, step: usize, len: usize) {
        let pool = pool(addr);
        let opened = prometheus::IntCounter::new("t", "t").unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        for spend in (0..=130).step_by(step) {
            for _ in 0..spend * 64 {
                tx.send(()).unwrap();
            }
            let mut burn = std::future::poll_fn(|cx| {
                for _ in 0..spend {
                    if rx.poll_recv(cx).is_pending() {
                        break;
                    }
                }
                Poll::<()>::Pending
            });
            let get = async {
                let sent = pool
                    .send(request(addr, crate::answer::full("")), &opened, false)
                    .await
                    .unwrap();
                sent.response.into_body().collect().await.unwrap()
            };
            let both = async {
                tokio::select! {
                    biased;
                    () = &mut burn => unreachable!(),
                    body = get => body,
                }
            };
            let body = tokio::time::timeout(Duration::from_secs(5), both)
                .await
                .unwrap_or_else(|_| panic!("hung with {spend} units spent before"));
            assert_eq!(body.to_bytes().len(), len);
            while rx.try_recv().is_ok() {}
        }
        assert_eq!(opened.get(), 1);
    }

    #[test]
    fn per_core_threads_sharing_a_shard_keep_to_their_own_connections() {
        // More serving threads than shards, each with a runtime of its own,
        // as `worker_threads` above the CPUs makes them: two share a shard.
        // One taking the other's connection would wait on a socket only
        // the other's (here, stopped) runtime watches.
        let up = tokio::runtime::Runtime::new().unwrap();
        let (addr, accepted, _) = up.block_on(upstream(Then::Serve));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .wrap_connector(HttpConnector::new());
        let pool = Arc::new(Pool::new(
            Scheme::HTTP,
            addr.to_string().parse().unwrap(),
            connector,
            Settings {
                max_idle: 256,
                idle_timeout: Duration::from_secs(90),
                park_after: Duration::from_secs(90),
                steal: false,
                parked: prometheus::IntGauge::new("p", "p").unwrap(),
            },
        ));
        let opened = Arc::new(prometheus::IntCounter::new("t", "t").unwrap());
        let threads = pool.idle.len() + 1;
        let finish = Arc::new(std::sync::Barrier::new(threads + 1));
        let mut joins = Vec::new();
        for _ in 0..threads {
            let (pool, opened, finish) = (pool.clone(), opened.clone(), finish.clone());
            let (done, got) = std::sync::mpsc::channel();
            joins.push(std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                let ok = rt.block_on(async {
                    tokio::time::timeout(Duration::from_secs(5), get(&pool, addr, &opened))
                        .await
                        .is_ok()
                });
                done.send(ok).unwrap();
                // Held, its runtime not turning, until every thread is done.
                finish.wait();
            }));
            assert!(got.recv().unwrap(), "a request hung");
        }
        finish.wait();
        for join in joins {
            join.join().unwrap();
        }
        assert_eq!(opened.get() as usize, threads, "one connection per thread");
        assert_eq!(accepted.load(Ordering::SeqCst), threads);
    }

    /// Counts its wakes.
    struct Counting(AtomicUsize, tokio::sync::Notify);

    impl std::task::Wake for Counting {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }

        fn wake_by_ref(self: &Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
            self.1.notify_one();
        }
    }

    /// Reads a long response body frame by frame with a counting waker:
    /// its length, and how often the waker was woken from inside a poll
    /// that gave a frame (a wake for nothing).
    async fn read_counting(pool: &Arc<Pool>, addr: std::net::SocketAddr) -> (usize, usize) {
        let opened = prometheus::IntCounter::new("t", "t").unwrap();
        let sent = pool
            .send(request(addr, crate::answer::full("")), &opened, false)
            .await
            .unwrap();
        let mut body = sent.response.into_body();
        let count = Arc::new(Counting(AtomicUsize::new(0), tokio::sync::Notify::new()));
        let waker = Waker::from(count.clone());
        let (mut len, mut for_nothing) = (0, 0);
        loop {
            let before = count.0.load(Ordering::SeqCst);
            let polled = Pin::new(&mut body).poll_frame(&mut Context::from_waker(&waker));
            let during = count.0.load(Ordering::SeqCst) - before;
            match polled {
                Poll::Ready(Some(frame)) => {
                    for_nothing += during;
                    len += frame.unwrap().data_ref().map_or(0, Bytes::len);
                }
                Poll::Ready(None) => {
                    for_nothing += during;
                    return (len, for_nothing);
                }
                Poll::Pending if during == 0 => {
                    tokio::time::timeout(Duration::from_secs(5), count.1.notified())
                        .await
                        .expect("the body stalled: no wake after Pending");
                }
                Poll::Pending => {}
            }
        }
    }

    #[tokio::test]
    async fn a_body_wakes_its_reader_only_when_there_is_more_to_read() {
        let addr = chunked_upstream(100).await;
        let pool = pool(addr);
        for _ in 0..3 {
            let (len, for_nothing) = read_counting(&pool, addr).await;
            assert_eq!(len, 1_000_000);
            assert_eq!(for_nothing, 0, "woken from inside polls that gave a frame");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_body_read_by_hand_on_two_workers_comes_whole() {
        let addr = chunked_upstream(100).await;
        let pool = pool(addr);
        for _ in 0..3 {
            let (len, _) = read_counting(&pool, addr).await;
            assert_eq!(len, 1_000_000);
        }
    }

    /// Runs `n` clients at once, each a task of its own, and waits (30 s at
    /// most, else fails with `hung`) until every one has finished.
    async fn all_finish<F, C>(
        pool: &Arc<Pool>,
        opened: &Arc<prometheus::IntCounter>,
        n: usize,
        client: F,
        hung: &str,
    ) where
        F: Fn(Arc<Pool>, Arc<prometheus::IntCounter>) -> C,
        C: std::future::Future<Output = ()> + Send + 'static,
    {
        let clients: Vec<_> = (0..n)
            .map(|_| tokio::spawn(client(pool.clone(), opened.clone())))
            .collect();
        let all = futures_util::future::join_all(clients);
        for done in tokio::time::timeout(Duration::from_secs(30), all)
            .await
            .expect(hung)
        {
            done.unwrap();
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn long_bodies_read_at_once_on_two_workers_all_come_whole() {
        // The I/O driver wakes the reading tasks from the other worker as
        // often as from their own: no wake is lost to the relay's quiet.
        let addr = chunked_upstream(20).await;
        let pool = pool(addr);
        let opened = Arc::new(prometheus::IntCounter::new("t", "t").unwrap());
        let client = |pool: Arc<Pool>, opened: Arc<prometheus::IntCounter>| async move {
            for _ in 0..5 {
                let sent = pool
                    .send(request(addr, crate::answer::full("")), &opened, false)
                    .await
                    .unwrap();
                let body = sent.response.into_body().collect().await.unwrap();
                assert_eq!(body.to_bytes().len(), 200_000);
            }
        };
        all_finish(&pool, &opened, 8, client, "a body stalled").await;
        assert!(opened.get() <= 8 + 40 / 8, "opened {}", opened.get());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_requests_on_two_workers_all_finish_and_share_connections() {
        let (addr, accepted, _) = upstream(Then::Serve).await;
        let pool = pool(addr);
        let opened = Arc::new(prometheus::IntCounter::new("t", "t").unwrap());
        let client = |pool: Arc<Pool>, opened: Arc<prometheus::IntCounter>| async move {
            for _ in 0..50 {
                get(&pool, addr, &opened).await;
            }
        };
        all_finish(&pool, &opened, 32, client, "a request hung").await;
        // 1,600 requests; at most one connection per client at a time,
        // and the idle ones kept to max_idle (8).
        assert!(opened.get() <= 32 + 1_600 / 8, "opened {}", opened.get());
        assert!(pool.idle_len() <= 8);
        assert_eq!(accepted.load(Ordering::SeqCst), opened.get() as usize);
    }

    #[tokio::test]
    async fn an_upgrade_request_goes_on_a_connection_of_its_own() {
        let (addr, accepted, _) = upstream(Then::Serve).await;
        let pool = pool(addr);
        let opened = prometheus::IntCounter::new("t", "t").unwrap();
        get(&pool, addr, &opened).await;
        assert_eq!(pool.idle_len(), 1);
        let sent = pool
            .send(request(addr, crate::answer::full("")), &opened, true)
            .await
            .unwrap();
        sent.response.into_body().collect().await.unwrap();
        assert_eq!(opened.get(), 2);
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        // Refused (a 200), it is pooled as an unparkable connection.
        assert_eq!(pool.idle_len(), 2);
    }
}
