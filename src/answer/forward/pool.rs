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
//! The idle connections are kept per worker thread, as HAProxy keeps them
//! per thread: a connection's task runs on the worker that opened it, and a
//! request on that worker wakes it without crossing to another core. A
//! worker with none idle takes another worker's before it opens one.
//!
//! A request goes out at most twice, and the second time only when hyper
//! hands it back unsent because the reused connection closed first. A request
//! that may have reached the upstream is never sent again.

use std::cell::Cell;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{ready, Context, Poll};
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

/// The connector every pool dials with: TCP (connect timeout, no Nagle,
/// keep-alive probes) and, for `https`, TLS with ALPN `h2` and `http/1.1`.
pub type Connector = HttpsConnector<HttpConnector>;

/// Why a request got no response from its upstream.
#[derive(Debug)]
pub enum SendError {
    /// No connection could be opened: refused, unreachable, timed out, or
    /// the TLS or HTTP/2 handshake failed.
    Connect(BoxError),
    /// The connection failed while the request was sent or its response
    /// head read.
    Http(hyper::Error),
}

/// The idle connections of one upstream and its shared HTTP/2 connection.
pub struct Pool {
    /// `scheme://authority/`, what the connector dials.
    target: Uri,
    scheme: Scheme,
    authority: Authority,
    connector: Connector,
    /// Idle HTTP/1 connections per worker thread ([`shard`]), the most
    /// recently returned last in each.
    idle: Box<[Mutex<Vec<Idle>>]>,
    /// Idle connections over all shards, held to `max_idle`.
    idle_count: AtomicUsize,
    /// The HTTP/2 connection, when the upstream chose h2 by ALPN.
    h2: Mutex<Option<http2::SendRequest<Body>>>,
    max_idle: usize,
    idle_timeout: Duration,
    /// Whether the task that closes expired idle connections runs.
    reaper: std::sync::Once,
}

/// How long a pooled connection may take to become ready for its next
/// request before it is closed instead.
const READY_GRACE: Duration = Duration::from_millis(50);

struct Idle {
    sender: http1::SendRequest<Body>,
    since: Instant,
}

/// A connection to send one request on.
enum Sender {
    H1(http1::SendRequest<Body>),
    H2(http2::SendRequest<Body>),
}

/// What the upstream answered, and whether a new connection was opened for
/// it.
pub struct Sent {
    /// The response, its body giving the connection back at its end.
    pub response: Response<Body>,
    /// A connection was opened for this request (none idle could be used).
    pub connected: bool,
}

impl Pool {
    /// A pool for `scheme://authority`, empty until the first request.
    pub fn new(
        scheme: Scheme,
        authority: Authority,
        connector: Connector,
        max_idle: usize,
        idle_timeout: Duration,
    ) -> Pool {
        let target = Uri::builder()
            .scheme(scheme.clone())
            .authority(authority.clone())
            .path_and_query("/")
            .build()
            .expect("a scheme and an authority make a URI");
        Pool {
            target,
            scheme,
            authority,
            connector,
            idle: (0..shards()).map(|_| Mutex::new(Vec::new())).collect(),
            idle_count: AtomicUsize::new(0),
            h2: Mutex::new(None),
            max_idle,
            idle_timeout,
            reaper: std::sync::Once::new(),
        }
    }

    /// How many idle HTTP/1 connections the pool holds.
    pub fn idle_len(&self) -> usize {
        self.idle_count.load(Ordering::Relaxed)
    }

    /// Sends `req` (its URI in absolute form) and returns the response
    /// head. The URI is sent in origin form on HTTP/1 and as `:scheme`,
    /// `:authority` and `:path` on HTTP/2.
    pub async fn send(self: &Arc<Self>, mut req: Request<Body>) -> Result<Sent, SendError> {
        let mut retried = false;
        loop {
            let (sender, reused) = match self.take().await {
                Some(sender) => (sender, true),
                // Boxed: the connect future is large and rarely run, and
                // inline it would grow every request's future (and the
                // copies of it) by its size.
                None => (Box::pin(self.connect()).await?, false),
            };
            let unsent = match sender {
                Sender::H2(mut h2) => {
                    // h2 wants the absolute URI, and carries it in its own
                    // pseudo-headers.
                    match h2.try_send_request(req).await {
                        Ok(resp) => {
                            return Ok(Sent {
                                response: resp.map(|b| b.map_err(Into::into).boxed()),
                                connected: !reused,
                            })
                        }
                        Err(mut e) => match e.take_message() {
                            Some(back) if reused && !retried => {
                                self.forget_h2(&h2);
                                back
                            }
                            _ => return Err(SendError::Http(e.into_error())),
                        },
                    }
                }
                Sender::H1(mut h1) => {
                    origin_form(&mut req);
                    match h1.try_send_request(req).await {
                        Ok(resp) => {
                            return Ok(Sent {
                                response: self.lease(h1, resp),
                                connected: !reused,
                            })
                        }
                        Err(mut e) => match e.take_message() {
                            Some(back) if reused && !retried => back,
                            _ => return Err(SendError::Http(e.into_error())),
                        },
                    }
                }
            };
            // The reused connection closed before a byte of the request was
            // written: once more, on a new connection.
            tracing::debug!("a pooled upstream connection had closed; sending on a new one");
            req = unsent;
            retried = true;
            self.drain_idle();
        }
    }

    /// An idle connection that is still open, or the HTTP/2 one.
    async fn take(&self) -> Option<Sender> {
        {
            let h2 = self.h2.lock().expect("pool lock");
            if let Some(s) = h2.as_ref() {
                if !s.is_closed() {
                    return Some(Sender::H2(s.clone()));
                }
            }
        }
        let home = shard(self.idle.len());
        loop {
            // This worker's own first, then the others', newest first.
            let Idle { mut sender, since } = (0..self.idle.len()).find_map(|i| {
                self.idle[(home + i) % self.idle.len()]
                    .lock()
                    .expect("pool lock")
                    .pop()
            })?;
            self.idle_count.fetch_sub(1, Ordering::Relaxed);
            if sender.is_closed() || since.elapsed() >= self.idle_timeout {
                continue;
            }
            if sender.is_ready() {
                return Some(Sender::H1(sender));
            }
            // A body read to its end gives its connection back a moment
            // before hyper marks it ready (the connection task does so on
            // its next turn). One still busy past that (the upstream
            // answered before it had read the request body, which is still
            // being written) is closed, as nginx does.
            if let Ok(Ok(())) = tokio::time::timeout(READY_GRACE, sender.ready()).await {
                return Some(Sender::H1(sender));
            }
        }
    }

    /// Opens a connection, HTTP/2 when the upstream's ALPN chose it.
    async fn connect(self: &Arc<Self>) -> Result<Sender, SendError> {
        self.reaper
            .call_once(|| reap(Arc::downgrade(self), self.idle_timeout));
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
            *self.h2.lock().expect("pool lock") = Some(sender.clone());
            Ok(Sender::H2(sender))
        } else {
            let (mut sender, conn) = http1::Builder::new()
                .handshake(io)
                .await
                .map_err(|e| SendError::Connect(e.into()))?;
            tokio::spawn(async move {
                if let Err(e) = conn.with_upgrades().await {
                    tracing::debug!(error = %e, "upstream connection ended");
                }
            });
            // A fresh connection is ready at once; this only orders the
            // handshake's state before the first send.
            sender
                .ready()
                .await
                .map_err(|e| SendError::Connect(e.into()))?;
            Ok(Sender::H1(sender))
        }
    }

    /// Wraps the response so that its body gives the connection back at its
    /// end. A 101 keeps the connection: it becomes the tunnel.
    fn lease(
        self: &Arc<Self>,
        sender: http1::SendRequest<Body>,
        resp: Response<Incoming>,
    ) -> Response<Body> {
        if resp.status() == http::StatusCode::SWITCHING_PROTOCOLS {
            return resp.map(|b| b.map_err(Into::into).boxed());
        }
        let lease = Lease {
            pool: Arc::downgrade(self),
            sender,
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
    fn put(&self, sender: http1::SendRequest<Body>) {
        if sender.is_closed() || self.max_idle == 0 {
            return;
        }
        let mut idle = self.idle[shard(self.idle.len())].lock().expect("pool lock");
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
        idle.push(Idle {
            sender,
            since: Instant::now(),
        });
    }

    /// Drops the HTTP/2 connection if it is still `h2`.
    fn forget_h2(&self, h2: &http2::SendRequest<Body>) {
        let mut shared = self.h2.lock().expect("pool lock");
        if shared
            .as_ref()
            .is_some_and(|s| s.is_closed() || h2.is_closed())
        {
            *shared = None;
        }
    }

    /// Drops the idle connections that are closed or past the idle timeout.
    fn drain_idle(&self) {
        let timeout = self.idle_timeout;
        for shard in self.idle.iter() {
            let mut idle = shard.lock().expect("pool lock");
            let before = idle.len();
            idle.retain(|i| !i.sender.is_closed() && i.since.elapsed() < timeout);
            self.idle_count
                .fetch_sub(before - idle.len(), Ordering::Relaxed);
        }
    }
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

/// The shard of the calling thread among `n`: threads are numbered as they
/// first forward, so the workers of a runtime get one each.
fn shard(n: usize) -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static MINE: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    let mine = MINE.with(|m| {
        if m.get() == usize::MAX {
            m.set(NEXT.fetch_add(1, Ordering::Relaxed));
        }
        m.get()
    });
    mine % n
}

/// Closes expired idle connections of `pool` every half idle timeout, until
/// the pool is gone (its config generation replaced and its requests done).
fn reap(pool: Weak<Pool>, idle_timeout: Duration) {
    let every = (idle_timeout / 2).max(Duration::from_millis(100));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(pool) = pool.upgrade() else { return };
            pool.drain_idle();
        }
    });
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

/// An HTTP/1 connection lent to one response.
struct Lease {
    pool: Weak<Pool>,
    sender: http1::SendRequest<Body>,
}

impl Lease {
    fn give_back(self) {
        if let Some(pool) = self.pool.upgrade() {
            pool.put(self.sender);
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
        let frame = ready!(this.inner.as_mut().poll_frame(cx));
        match &frame {
            Some(Ok(_)) if !this.inner.is_end_stream() => {}
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
