//! The load generator: keep-alive HTTP/1.1 or HTTP/2 connections, plain or
//! TLS, driven closed-loop (each worker sends as soon as its last answer
//! came) or open-loop (a pacer thread releases tickets at a constant rate and
//! latency is measured from each ticket's intended send time, so a stalled
//! server is charged for every request it delayed: coordinated omission
//! corrected). It knows nothing of SAML; bodies come from `Pools`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http::header::{HeaderValue, CONTENT_TYPE, COOKIE, HOST, USER_AGENT};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tokio::sync::{Mutex, Semaphore};

/// What one request exercises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scenario {
    /// A GET carrying a valid session cookie.
    Passthrough,
    /// An assertion POST whose device is trusted.
    AcsTrusted,
    /// An assertion POST from an untrusted iPhone (302 to enrollment).
    AcsUntrusted,
}

impl Scenario {
    /// Every scenario, in table order.
    pub const ALL: [Scenario; 3] = [
        Scenario::Passthrough,
        Scenario::AcsTrusted,
        Scenario::AcsUntrusted,
    ];

    /// The command-line and report name.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Passthrough => "passthrough",
            Scenario::AcsTrusted => "acs-trusted",
            Scenario::AcsUntrusted => "acs-untrusted",
        }
    }

    /// The scenario's position in [`Scenario::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// HTTP version on the client side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// HTTP/1.1, one request in flight per connection.
    H1,
    /// HTTP/2, requests multiplexed over the connections.
    H2,
}

/// Where the load goes.
#[derive(Clone)]
pub struct Target {
    /// The socket address to connect to.
    pub addr: SocketAddr,
    /// Host header / :authority and, with TLS, the SNI name.
    pub authority: String,
    /// The name checked against the certificate.
    pub server_name: rustls_pki_types::ServerName<'static>,
    /// TLS client config, or plain TCP.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Whether this is the gateway (statuses differ from the direct upstream).
    pub gateway: bool,
    /// Statuses given (`--expect-status`) or learned from the target's
    /// first answer, by scenario; `None` keeps the harness's own.
    pub expect: [Option<StatusCode>; 3],
}

impl Target {
    fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// The status a healthy run answers `s` with.
    pub fn expected(&self, s: Scenario) -> StatusCode {
        if let Some(status) = self.expect[s.index()] {
            return status;
        }
        match (self.gateway, s) {
            (true, Scenario::AcsUntrusted) => StatusCode::FOUND,
            _ => StatusCode::OK,
        }
    }
}

/// Pre-built request material shared by every worker.
pub struct Material {
    /// Path of the pass-through GET.
    pub path: String,
    /// Path the assertions are posted to.
    pub acs_path: String,
    /// User-Agent on every request.
    pub user_agent: HeaderValue,
    /// Cookie header of the pass-through GET.
    pub cookie: Option<HeaderValue>,
    /// Trusted assertion form bodies.
    pub trusted: Pool,
    /// Untrusted assertion form bodies.
    pub untrusted: Pool,
}

/// Form bodies handed out once each, or round robin when `cycle` (for the
/// direct upstream, which has no replay protection).
pub struct Pool {
    bodies: Vec<Bytes>,
    next: AtomicUsize,
    cycle: bool,
}

impl Pool {
    /// A pool over `bodies`.
    pub fn new(bodies: Vec<Bytes>, cycle: bool) -> Pool {
        Pool {
            bodies,
            next: AtomicUsize::new(0),
            cycle,
        }
    }

    fn take(&self) -> Option<Bytes> {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        if self.cycle && !self.bodies.is_empty() {
            return Some(self.bodies[i % self.bodies.len()].clone());
        }
        self.bodies.get(i).cloned()
    }
}

/// How long a run lasts.
#[derive(Debug, Clone, Copy)]
pub enum Stop {
    /// Stop after this long.
    Duration(Duration),
    /// Stop after this many requests.
    Requests(u64),
}

/// One load run.
#[derive(Clone)]
pub struct Plan {
    /// HTTP version.
    pub proto: Proto,
    /// Requests in flight (workers).
    pub concurrency: usize,
    /// Connections (HTTP/2; HTTP/1.1 uses one per worker).
    pub connections: usize,
    /// Length of the run.
    pub stop: Stop,
    /// Open-loop rate in requests per second, or closed loop.
    pub rate: Option<f64>,
    /// Scenario of ticket `i` is `mix[i % mix.len()]`.
    pub mix: Vec<Scenario>,
    /// Per-request timeout.
    pub timeout: Duration,
}

/// What one run measured.
pub struct Outcome {
    /// Latency in nanoseconds per scenario (index = `Scenario as usize`).
    pub latency: Vec<Histogram<u64>>,
    /// Latency over every scenario.
    pub total: Histogram<u64>,
    /// Completed requests with the expected status.
    pub ok: u64,
    /// Errors and unexpected statuses by kind.
    pub errors: BTreeMap<String, u64>,
    /// From the first send to the last completion.
    pub elapsed: Duration,
    /// Response body bytes received.
    pub bytes: u64,
    /// The run ended early because an assertion pool ran dry.
    pub pool_exhausted: bool,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000_000, 3).expect("valid histogram bounds")
}

type ReqBody = Full<Bytes>;

enum Sender {
    H1(http1::SendRequest<ReqBody>),
    H2(http2::SendRequest<ReqBody>),
}

/// Why a connection or request failed, as a short static label.
fn hyper_kind(e: &hyper::Error) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else if e.is_incomplete_message() {
        "connection closed mid-response"
    } else if e.is_closed() || e.is_canceled() {
        "connection closed"
    } else if e.is_parse() {
        "invalid response"
    } else {
        "request failed"
    }
}

/// Opens one keep-alive connection to `t`.
async fn connect(t: &Target, proto: Proto) -> Result<Sender, String> {
    let tcp = TcpStream::connect(t.addr)
        .await
        .map_err(|e| format!("connect: {}", e.kind()))?;
    let _ = tcp.set_nodelay(true);
    match &t.tls {
        None => handshake(TokioIo::new(tcp), proto).await,
        Some(cfg) => {
            let tls = tokio_rustls::TlsConnector::from(cfg.clone())
                .connect(t.server_name.clone(), tcp)
                .await
                .map_err(|e| format!("tls handshake: {}", e.kind()))?;
            handshake(TokioIo::new(tls), proto).await
        }
    }
}

async fn handshake<I>(io: I, proto: Proto) -> Result<Sender, String>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    match proto {
        Proto::H1 => {
            let (s, conn) = http1::handshake(io)
                .await
                .map_err(|e| format!("handshake: {}", hyper_kind(&e)))?;
            tokio::spawn(conn);
            Ok(Sender::H1(s))
        }
        Proto::H2 => {
            let (s, conn) = http2::Builder::new(TokioExecutor::new())
                .initial_stream_window_size(1 << 20)
                .initial_connection_window_size(4 << 20)
                .handshake(io)
                .await
                .map_err(|e| format!("handshake: {}", hyper_kind(&e)))?;
            tokio::spawn(conn);
            Ok(Sender::H2(s))
        }
    }
}

/// Sends one request of `s` and reads the whole answer. Returns the status
/// and body length.
pub async fn send_one(
    t: &Target,
    proto: Proto,
    m: &Material,
    s: Scenario,
) -> Result<(StatusCode, http::HeaderMap, Bytes), String> {
    let mut sender = connect(t, proto).await?;
    let req = request(t, proto, m, s, 0).ok_or_else(|| "assertion pool exhausted".to_string())?;
    let resp = match &mut sender {
        Sender::H1(h) => h.send_request(req).await,
        Sender::H2(h) => h.send_request(req).await,
    }
    .map_err(|e| hyper_kind(&e).to_string())?;
    let (parts, body) = resp.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| hyper_kind(&e).to_string())?
        .to_bytes();
    Ok((parts.status, parts.headers, body))
}

fn request(
    t: &Target,
    proto: Proto,
    m: &Material,
    s: Scenario,
    _ticket: u64,
) -> Option<Request<ReqBody>> {
    let (method, path, body) = match s {
        Scenario::Passthrough => (Method::GET, &m.path, Bytes::new()),
        Scenario::AcsTrusted => (Method::POST, &m.acs_path, m.trusted.take()?),
        Scenario::AcsUntrusted => (Method::POST, &m.acs_path, m.untrusted.take()?),
    };
    let uri = match proto {
        Proto::H1 => path.clone(),
        Proto::H2 => format!("{}://{}{}", t.scheme(), t.authority, path),
    };
    let mut b = Request::builder()
        .method(method)
        .uri(uri)
        .header(USER_AGENT, m.user_agent.clone());
    if proto == Proto::H1 {
        b = b.header(HOST, t.authority.as_str());
    }
    if s == Scenario::Passthrough {
        if let Some(c) = &m.cookie {
            b = b.header(COOKIE, c.clone());
        }
    } else {
        b = b.header(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
    }
    b.body(Full::new(body)).ok()
}

/// Shared state of one run.
struct Run {
    target: Target,
    plan: Plan,
    material: Arc<Material>,
    next: AtomicU64,
    /// Open loop: tickets released by the pacer.
    permits: Arc<Semaphore>,
    /// Open loop: the number of tickets of the whole run.
    tickets: u64,
    start: Instant,
    interval: Duration,
    /// Closed loop with a duration: stop sending after this.
    deadline: Instant,
    /// Nobody starts a request after this (open-loop backlog bound).
    hard_stop: Instant,
    done: AtomicU64,
    exhausted: AtomicBool,
    slots: Vec<Mutex<Option<http2::SendRequest<ReqBody>>>>,
    /// Latency histograms, shared by the workers in a few shards: one
    /// histogram is about 230 KB, so a set per worker would cost gigabytes
    /// (and the merge most of the generator's CPU) at 5,000 connections.
    shards: Vec<std::sync::Mutex<Latency>>,
}

/// Latency per scenario and over all of them, in nanoseconds.
struct Latency {
    per_scenario: Vec<Histogram<u64>>,
    total: Histogram<u64>,
}

impl Latency {
    fn new() -> Latency {
        Latency {
            per_scenario: Scenario::ALL.iter().map(|_| histogram()).collect(),
            total: histogram(),
        }
    }

    fn record(&mut self, s: Scenario, ns: u64) {
        self.per_scenario[s.index()].saturating_record(ns.max(1));
        self.total.saturating_record(ns.max(1));
    }
}

/// Shards of latency histograms: enough that workers on different load
/// generator threads rarely meet on one lock.
const LATENCY_SHARDS: usize = 16;

struct WorkerResult {
    ok: u64,
    errors: BTreeMap<String, u64>,
    bytes: u64,
    last: Instant,
}

/// Runs `plan` against `target`; `progress` counts completions.
pub async fn run(
    target: Target,
    plan: Plan,
    material: Arc<Material>,
    progress: Arc<AtomicU64>,
) -> Outcome {
    let open = plan.rate.is_some();
    let (tickets, run_for) = match (plan.stop, plan.rate) {
        (Stop::Requests(n), Some(r)) => (n, Duration::from_secs_f64(n as f64 / r)),
        (Stop::Duration(d), Some(r)) => ((d.as_secs_f64() * r).round() as u64, d),
        (Stop::Requests(n), None) => (n, Duration::from_secs(3600)),
        (Stop::Duration(d), None) => (u64::MAX, d),
    };
    let interval = plan
        .rate
        .map(|r| Duration::from_secs_f64(1.0 / r))
        .unwrap_or_default();
    // A run may overrun by its timeout plus a tenth; later tickets are
    // reported as not sent rather than waited for.
    let grace = plan.timeout + run_for / 10;
    let connections = match plan.proto {
        Proto::H1 => 0,
        Proto::H2 => plan.connections.max(1),
    };
    // Open connections before the clock starts, so handshakes are not
    // charged to the run; in batches, so a large count does not overflow
    // the listener's backlog.
    let mut h2 = Vec::with_capacity(connections);
    for _ in 0..connections {
        h2.push(match connect(&target, Proto::H2).await {
            Ok(Sender::H2(s)) => Mutex::new(Some(s)),
            _ => Mutex::new(None),
        });
    }
    let mut h1: Vec<Option<http1::SendRequest<ReqBody>>> = Vec::new();
    if plan.proto == Proto::H1 {
        let mut left = plan.concurrency;
        while left > 0 {
            let batch = left.min(256);
            left -= batch;
            let opened =
                futures_util::future::join_all((0..batch).map(|_| connect(&target, Proto::H1)))
                    .await;
            h1.extend(opened.into_iter().map(|r| match r {
                Ok(Sender::H1(s)) => Some(s),
                _ => None,
            }));
        }
    }
    let start = Instant::now() + Duration::from_millis(20);
    let run = Arc::new(Run {
        target,
        material,
        next: AtomicU64::new(0),
        permits: Arc::new(Semaphore::new(0)),
        tickets,
        start,
        interval,
        deadline: start + run_for,
        hard_stop: start + run_for + grace,
        done: AtomicU64::new(0),
        exhausted: AtomicBool::new(false),
        slots: h2,
        shards: (0..LATENCY_SHARDS)
            .map(|_| std::sync::Mutex::new(Latency::new()))
            .collect(),
        plan,
    });
    let pacer = open.then(|| {
        let run = run.clone();
        std::thread::spawn(move || pace(&run))
    });
    let mut workers = Vec::new();
    for w in 0..run.plan.concurrency {
        let run = run.clone();
        let progress = progress.clone();
        let conn = h1.get_mut(w).and_then(Option::take);
        workers.push(tokio::spawn(
            async move { worker(run, w, conn, progress).await },
        ));
    }
    let mut out = Outcome {
        latency: Scenario::ALL.iter().map(|_| histogram()).collect(),
        total: histogram(),
        ok: 0,
        errors: BTreeMap::new(),
        elapsed: Duration::ZERO,
        bytes: 0,
        pool_exhausted: false,
    };
    let mut last = start;
    for w in workers {
        let Ok(r) = w.await else { continue };
        out.ok += r.ok;
        out.bytes += r.bytes;
        for (k, v) in r.errors {
            *out.errors.entry(k).or_default() += v;
        }
        last = last.max(r.last);
    }
    if let Some(p) = pacer {
        let _ = p.join();
    }
    for shard in &run.shards {
        let shard = shard.lock().unwrap_or_else(|e| e.into_inner());
        for (a, b) in out.latency.iter_mut().zip(&shard.per_scenario) {
            a.add(b).expect("same histogram bounds");
        }
        out.total.add(&shard.total).expect("same histogram bounds");
    }
    if open && tickets != u64::MAX {
        let started = run.next.load(Ordering::Relaxed).min(tickets);
        if started < tickets && !run.exhausted.load(Ordering::Relaxed) {
            *out.errors
                .entry("not sent (backlog past the deadline)".into())
                .or_default() += tickets - started;
        }
    }
    out.pool_exhausted = run.exhausted.load(Ordering::Relaxed);
    out.elapsed = last.saturating_duration_since(start);
    out
}

/// Releases open-loop tickets at their intended times. A thread, not a
/// tokio timer: tokio's timer wheel has millisecond resolution, which would
/// add up to a millisecond of fake latency at high rates.
fn pace(run: &Run) {
    let mut released = 0u64;
    while released < run.tickets {
        let now = Instant::now();
        if now >= run.hard_stop {
            break;
        }
        let due = if now < run.start {
            0
        } else {
            let n = (now - run.start).as_nanos() / run.interval.as_nanos().max(1) + 1;
            (n as u64).min(run.tickets)
        };
        if due > released {
            run.permits.add_permits((due - released) as usize);
            released = due;
        }
        let next = run.start + run.interval.mul_f64(released as f64);
        let wait = next
            .saturating_duration_since(Instant::now())
            .max(Duration::from_micros(50));
        std::thread::sleep(wait);
    }
    // Wake every worker so it sees that no ticket is left.
    run.permits.add_permits(run.plan.concurrency);
}

async fn worker(
    run: Arc<Run>,
    w: usize,
    mut h1: Option<http1::SendRequest<ReqBody>>,
    progress: Arc<AtomicU64>,
) -> WorkerResult {
    let open = run.plan.rate.is_some();
    let shard = &run.shards[w % run.shards.len()];
    let mut r = WorkerResult {
        ok: 0,
        errors: BTreeMap::new(),
        bytes: 0,
        last: run.start,
    };
    tokio::time::sleep_until(run.start.into()).await;
    let error = |r: &mut WorkerResult, k: String| *r.errors.entry(k).or_default() += 1;
    loop {
        if open {
            match run.permits.acquire().await {
                Ok(p) => p.forget(),
                Err(_) => break,
            }
        }
        let ticket = run.next.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        if ticket >= run.tickets || now >= run.hard_stop || run.exhausted.load(Ordering::Relaxed) {
            break;
        }
        if !open && matches!(run.plan.stop, Stop::Duration(_)) && now >= run.deadline {
            break;
        }
        let intended = if open {
            run.start + run.interval.mul_f64(ticket as f64)
        } else {
            now
        };
        let s = run.plan.mix[(ticket % run.plan.mix.len() as u64) as usize];
        let Some(req) = request(&run.target, run.plan.proto, &run.material, s, ticket) else {
            run.exhausted.store(true, Ordering::Relaxed);
            break;
        };
        let result = tokio::time::timeout(run.plan.timeout, async {
            let resp = match run.plan.proto {
                Proto::H1 => {
                    let mut ready = false;
                    if let Some(h) = h1.as_mut() {
                        ready = h.ready().await.is_ok();
                    }
                    if !ready {
                        h1 = match connect(&run.target, Proto::H1).await? {
                            Sender::H1(h) => Some(h),
                            Sender::H2(_) => unreachable!("asked for http/1.1"),
                        };
                    }
                    let h = h1.as_mut().expect("connected above");
                    h.send_request(req).await
                }
                Proto::H2 => {
                    let slot = &run.slots[w % run.slots.len()];
                    let mut sender = {
                        let mut g = slot.lock().await;
                        match g.as_ref() {
                            Some(s) if !s.is_closed() => s.clone(),
                            _ => {
                                let s = match connect(&run.target, Proto::H2).await? {
                                    Sender::H2(s) => s,
                                    Sender::H1(_) => unreachable!("asked for h2"),
                                };
                                *g = Some(s.clone());
                                s
                            }
                        }
                    };
                    sender
                        .ready()
                        .await
                        .map_err(|e| hyper_kind(&e).to_string())?;
                    sender.send_request(req).await
                }
            }
            .map_err(|e| hyper_kind(&e).to_string())?;
            let status = resp.status();
            let mut body = resp.into_body();
            let mut n = 0u64;
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| format!("body: {}", hyper_kind(&e)))?;
                if let Some(d) = frame.data_ref() {
                    n += d.len() as u64;
                }
            }
            Ok::<_, String>((status, n))
        })
        .await;
        let done = Instant::now();
        r.last = r.last.max(done);
        progress.fetch_add(1, Ordering::Relaxed);
        run.done.fetch_add(1, Ordering::Relaxed);
        match result {
            Err(_) => {
                h1 = None;
                error(&mut r, "timeout".into());
            }
            Ok(Err(e)) => {
                h1 = None;
                error(&mut r, e);
            }
            Ok(Ok((status, n))) => {
                r.bytes += n;
                if status == run.target.expected(s) {
                    let ns = done.saturating_duration_since(intended).as_nanos() as u64;
                    shard
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .record(s, ns);
                    r.ok += 1;
                } else {
                    error(
                        &mut r,
                        format!("status {} on {}", status.as_u16(), s.name()),
                    );
                }
            }
        }
    }
    r
}

/// An open connection kept idle.
pub struct Idle(#[allow(dead_code)] Sender);

/// Opens `n` keep-alive connections, sends one pass-through GET on each and
/// keeps them open. Returns them and how many failed.
pub async fn open_idle(t: &Target, proto: Proto, m: &Material, n: usize) -> (Vec<Idle>, usize) {
    let mut out = Vec::with_capacity(n);
    let mut failed = 0;
    let mut left = n;
    while left > 0 {
        let batch = left.min(256);
        left -= batch;
        let opened = futures_util::future::join_all((0..batch).map(|_| async {
            let mut s = connect(t, proto).await?;
            let req = request(t, proto, m, Scenario::Passthrough, 0)
                .ok_or_else(|| "no request".to_string())?;
            let resp = match &mut s {
                Sender::H1(h) => h.send_request(req).await,
                Sender::H2(h) => h.send_request(req).await,
            }
            .map_err(|e| hyper_kind(&e).to_string())?;
            let _ = resp.into_body().collect().await;
            Ok::<_, String>(Idle(s))
        }))
        .await;
        for r in opened {
            match r {
                Ok(i) => out.push(i),
                Err(_) => failed += 1,
            }
        }
    }
    (out, failed)
}
