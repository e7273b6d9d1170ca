//! Lifecycle: bind every listener, mark ready, reload on SIGHUP (a bad
//! config keeps the old one), and drain on SIGTERM or SIGINT: stop
//! accepting, turn `/readyz` to 503, let requests in flight finish within
//! the grace period, then return.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

use crate::accept::{accept_loop, tls, Listener};
use crate::config::{Config, ConfigErrors, RuntimeKind};
use crate::observe::Metrics;
use crate::service::Gateway;

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener address could not be bound.
    #[error("{key}: cannot listen on {addr}: {source}")]
    Bind {
        /// The config key of the address.
        key: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The demo IdP key or certificate is unusable.
    #[error("demo.idp_key: {0}")]
    Demo(crate::demo::idp::SignerError),
    /// The per-core serving threads could not be started.
    #[error("server.runtime: cannot start the serving threads: {0}")]
    Serve(std::io::Error),
}

/// A started gateway: its bound addresses and the handles to reload and
/// stop it.
pub struct Running {
    /// The TLS listener's address, when configured.
    pub tls_addr: Option<SocketAddr>,
    /// The plain listener's address, when configured.
    pub plain_addr: Option<SocketAddr>,
    /// The admin listener's address.
    pub admin_addr: SocketAddr,
    /// The demo app's address, when enabled.
    pub demo_addr: Option<SocketAddr>,
    /// The demo IdP and enrollment portal's address, when enabled.
    pub portal_addr: Option<SocketAddr>,
    /// The shared gateway.
    pub gateway: Arc<Gateway>,
    stop_traffic: watch::Sender<bool>,
    stop_admin: watch::Sender<bool>,
    limit: ConnectionLimit,
    tasks: Vec<JoinHandle<()>>,
    /// With `server.runtime = "per_core"`, the serving threads.
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// The connection limit, changeable while connections are open: one
/// permit per connection, and the permits there are make the limit.
struct ConnectionLimit {
    slots: Arc<Semaphore>,
    max: std::sync::Mutex<u32>,
}

impl ConnectionLimit {
    fn new(max: usize) -> ConnectionLimit {
        let max = Self::clamp(max);
        ConnectionLimit {
            slots: Arc::new(Semaphore::new(max as usize)),
            max: std::sync::Mutex::new(max),
        }
    }

    fn clamp(max: usize) -> u32 {
        u32::try_from(max)
            .unwrap_or(u32::MAX >> 4)
            .min(Semaphore::MAX_PERMITS as u32)
    }

    /// Raises the limit at once; lowers it as connections close (permits
    /// in use are taken back when they return, never from a connection).
    fn resize(&self, max: usize) {
        let max = Self::clamp(max);
        let mut current = self.max.lock().expect("limit lock");
        if max > *current {
            self.slots.add_permits((max - *current) as usize);
        } else if max < *current {
            let mut surplus = *current - max;
            surplus -= self.slots.forget_permits(surplus as usize) as u32;
            if surplus > 0 {
                let slots = self.slots.clone();
                tokio::spawn(async move {
                    if let Ok(p) = slots.acquire_many(surplus).await {
                        p.forget();
                    }
                });
            }
        }
        *current = max;
    }

    fn max(&self) -> u32 {
        *self.max.lock().expect("limit lock")
    }
}

/// Keys that a reload cannot apply: their change is logged and counted
/// (`trustgate_config_reload_warnings_total{key}`) and takes effect after a
/// restart.
pub const RESTART_KEYS: &[&str] = &[
    "server.listen",
    "server.plain_listen",
    "admin.listen",
    "server.worker_threads",
    "server.runtime",
    "server.decision_cache_entries",
    "server.replay_cache_entries",
    "log.format",
    "demo",
    "redis",
];

/// The restart-only keys whose values differ between two configs.
fn restart_keys_changed(next: &Config, current: &Config) -> Vec<&'static str> {
    let (n, c) = (&next.server, &current.server);
    let changed = [
        n.listen != c.listen,
        n.plain_listen != c.plain_listen,
        next.admin_listen != current.admin_listen,
        n.worker_threads != c.worker_threads,
        n.runtime != c.runtime,
        n.decision_cache_entries != c.decision_cache_entries,
        n.replay_cache_entries != c.replay_cache_entries,
        next.log_format != current.log_format,
        format!("{:?}", next.demo) != format!("{:?}", current.demo),
        format!("{:?}", next.redis) != format!("{:?}", current.redis),
    ];
    RESTART_KEYS
        .iter()
        .zip(changed)
        .filter(|(_, c)| *c)
        .map(|(k, _)| *k)
        .collect()
}

async fn bind(key: &'static str, addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { key, addr, source })
}

/// Binds every listener and starts serving. Addresses with port 0 get a free
/// port; `Running` says which.
pub async fn start(config: Config) -> Result<Running, StartError> {
    let metrics = Metrics::new();
    let config = Arc::new(config);
    let gateway = Gateway::new(config.clone(), metrics);
    let (stop_traffic, traffic_rx) = watch::channel(false);
    let (stop_admin, admin_rx) = watch::channel(false);
    let limit = ConnectionLimit::new(config.server.max_connections);
    let slots = limit.slots.clone();
    let mut tasks = Vec::new();
    for key in RESTART_KEYS {
        gateway
            .metrics
            .config_reload_warnings
            .with_label_values(&[key]);
    }

    let admin = bind("admin.listen", config.admin_listen).await?;
    let admin_addr = admin.local_addr().expect("bound socket has an address");
    tasks.push(tokio::spawn(crate::admin::serve(
        admin,
        gateway.clone(),
        admin_rx,
    )));

    let mut demo_addr = None;
    let mut portal_addr = None;
    if let Some(demo) = &config.demo {
        let demo = Arc::new(demo.clone());
        let l = bind("demo.app_listen", demo.app_listen).await?;
        demo_addr = l.local_addr().ok();
        let cfg = demo.clone();
        tasks.push(tokio::spawn(crate::demo::serve(
            l,
            stop_admin.subscribe(),
            move |req| crate::demo::app::handle(cfg.clone(), req),
        )));
        let portal =
            Arc::new(crate::demo::portal::Portal::new(demo.clone()).map_err(StartError::Demo)?);
        let l = bind("demo.portal_listen", demo.portal_listen).await?;
        portal_addr = l.local_addr().ok();
        tasks.push(tokio::spawn(crate::demo::serve(
            l,
            stop_admin.subscribe(),
            move |req| {
                let portal = portal.clone();
                async move { portal.handle(req).await }
            },
        )));
    }

    let mut listeners = Vec::new();
    let mut tls_addr = None;
    if let Some(addr) = config.server.listen {
        let tcp = bind("server.listen", addr).await?;
        tls_addr = tcp.local_addr().ok();
        let acceptor = tokio_rustls::TlsAcceptor::from(tls::server_config(gateway.certs()));
        listeners.push(Listener {
            tcp,
            tls: Some(acceptor),
        });
    }
    let mut plain_addr = None;
    if let Some(addr) = config.server.plain_listen {
        let tcp = bind("server.plain_listen", addr).await?;
        plain_addr = tcp.local_addr().ok();
        listeners.push(Listener { tcp, tls: None });
    }
    let mut threads = Vec::new();
    match config.server.runtime {
        RuntimeKind::Shared => {
            for listener in listeners {
                tasks.push(tokio::spawn(accept_loop(
                    listener,
                    gateway.clone(),
                    slots.clone(),
                    traffic_rx.clone(),
                )));
            }
        }
        RuntimeKind::PerCore => {
            threads = serve_per_core(
                listeners,
                config.server.serving_threads(),
                &gateway,
                &slots,
                &traffic_rx,
                &stop_admin,
            )?;
        }
    }

    // Revocations heard from other replicas (and read back on every
    // reconnect) apply here; counted as the ones made here are.
    let weak = Arc::downgrade(&gateway);
    gateway.shared.start(
        Arc::new(move |rev| {
            if let Some(g) = weak.upgrade() {
                g.sessions.apply(rev, g.now());
            }
        }),
        stop_admin.subscribe(),
    );

    gateway.set_ready(true);
    // Absent addresses are absent fields, not `None` text.
    let shown = |a: Option<SocketAddr>| a.map(tracing::field::display);
    tracing::info!(
        tls = shown(tls_addr),
        plain = shown(plain_addr),
        admin = %admin_addr,
        demo = shown(demo_addr),
        portal = shown(portal_addr),
        apps = config.apps.len(),
        "trustgate ready"
    );
    Ok(Running {
        tls_addr,
        plain_addr,
        admin_addr,
        demo_addr,
        portal_addr,
        gateway,
        stop_traffic,
        stop_admin,
        limit,
        tasks,
        threads,
    })
}

/// Starts `n` serving threads, each with a single-threaded runtime that
/// accepts from every listener (the same sockets, registered with each
/// thread's epoll: a thread that is not busy takes the next connection
/// first, as nginx's workers do) and runs the connections it accepted. A
/// thread stops accepting with the traffic signal and ends with the admin
/// one, after the drain; its runtime then closes whatever is left.
fn serve_per_core(
    listeners: Vec<Listener>,
    n: usize,
    gateway: &Arc<Gateway>,
    slots: &Arc<Semaphore>,
    traffic: &watch::Receiver<bool>,
    stop_admin: &watch::Sender<bool>,
) -> Result<Vec<std::thread::JoinHandle<()>>, StartError> {
    let sockets = listeners
        .into_iter()
        .map(|l| Ok((l.tcp.into_std()?, l.tls)))
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(StartError::Serve)?;
    let mut threads = Vec::with_capacity(n);
    let mut started = Vec::with_capacity(n);
    for i in 0..n {
        let mine = sockets
            .iter()
            .map(|(tcp, tls)| Ok((tcp.try_clone()?, tls.clone())))
            .collect::<std::io::Result<Vec<_>>>()
            .map_err(StartError::Serve)?;
        let (gateway, slots, traffic) = (gateway.clone(), slots.clone(), traffic.clone());
        let done = stop_admin.subscribe();
        let (up, up_rx) = std::sync::mpsc::channel::<std::io::Result<()>>();
        // The runtime is built, and the sockets registered, on the thread
        // itself: a failure comes back as the start's error, and nothing
        // of a runtime is dropped in the caller's async context.
        let thread = std::thread::Builder::new()
            .name(format!("trustgate-serve-{i}"))
            .spawn(move || serving_thread(mine, gateway, slots, traffic, done, up))
            .map_err(StartError::Serve)?;
        threads.push(thread);
        started.push(up_rx);
    }
    // Each thread says when it accepts (a moment: a runtime and a
    // registration). On an error the others end as `start` returns it:
    // their stop signals' senders are dropped.
    for up in started {
        match up.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(StartError::Serve(e)),
            Err(_) => {
                return Err(StartError::Serve(std::io::Error::other(
                    "a serving thread ended before it accepted",
                )))
            }
        }
    }
    Ok(threads)
}

/// One serving thread: its runtime, its registrations of the listening
/// sockets (`up` says whether both were made), its accept loops until the
/// traffic signal, its connections until `done`, then whatever is left
/// closed.
fn serving_thread(
    sockets: Vec<(std::net::TcpListener, Option<tokio_rustls::TlsAcceptor>)>,
    gateway: Arc<Gateway>,
    slots: Arc<Semaphore>,
    traffic: watch::Receiver<bool>,
    mut done: watch::Receiver<bool>,
    up: std::sync::mpsc::Sender<std::io::Result<()>>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            let _ = up.send(Err(e));
            return;
        }
    };
    runtime.block_on(async move {
        let mut loops = Vec::new();
        for (tcp, tls) in sockets {
            let tcp = match TcpListener::from_std(tcp) {
                Ok(tcp) => tcp,
                Err(e) => {
                    let _ = up.send(Err(e));
                    return;
                }
            };
            loops.push(tokio::spawn(accept_loop(
                Listener { tcp, tls },
                gateway.clone(),
                slots.clone(),
                traffic.clone(),
            )));
        }
        let _ = up.send(Ok(()));
        for l in loops {
            let _ = l.await;
        }
        // Its connections drain here until the lifecycle is done with them
        // (or Running is dropped).
        let _ = done.wait_for(|d| *d).await;
    });
    // What is left past the grace period closes now; a blocking task (a
    // name lookup) is not waited for past a second.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
}

impl Running {
    /// Re-reads the config file and swaps it in, certificates included. A
    /// config with errors is refused and the old one keeps running.
    pub fn reload(&self) -> Result<(), ConfigErrors> {
        let current = self.gateway.state().config.clone();
        let metrics = &self.gateway.metrics;
        match Config::load(&current.source) {
            Ok(next) => {
                for key in restart_keys_changed(&next, &current) {
                    metrics
                        .config_reload_warnings
                        .with_label_values(&[key])
                        .inc();
                    tracing::warn!(key, "changed; it applies after a restart");
                }
                // Applied live: the connection limit and the log filter
                // here; timeouts, the grace period and everything per
                // request through the new state.
                self.limit.resize(next.server.max_connections);
                if next.log_level != current.log_level {
                    if let Err(e) = crate::observe::set_log_level(&next.log_level) {
                        tracing::warn!(error = %e, "log.level not applied");
                    }
                }
                self.gateway.apply(Arc::new(next));
                metrics.config_reloads.with_label_values(&["success"]).inc();
                tracing::info!("config reloaded");
                Ok(())
            }
            Err(e) => {
                metrics.config_reloads.with_label_values(&["failure"]).inc();
                for err in &e.0 {
                    tracing::error!(%err, "config reload refused; the old config stays");
                }
                Err(e)
            }
        }
    }

    /// Drains: not ready, listeners closed, requests in flight get the grace
    /// period to finish. Returns whether every connection closed in time.
    pub async fn shutdown(self) -> bool {
        self.gateway.set_ready(false);
        let _ = self.stop_traffic.send(true);
        // The grace period of the config in force now, reloads included.
        let grace = self.gateway.state().config.server.grace_period;
        let drained = tokio::time::timeout(grace, self.limit.slots.acquire_many(self.limit.max()))
            .await
            .is_ok();
        if !drained {
            tracing::warn!("grace period over; closing the remaining connections");
        }
        let _ = self.stop_admin.send(true);
        for t in self.tasks {
            t.abort();
        }
        let threads = self.threads;
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
        drained
    }
}

/// Runs until SIGTERM or SIGINT, reloading on SIGHUP.
pub async fn run(config: Config) -> Result<(), StartError> {
    use tokio::signal::unix::{signal, SignalKind};
    let running = start(config).await?;
    let mut hup = signal(SignalKind::hangup()).expect("install SIGHUP handler");
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("install SIGINT handler");
    loop {
        tokio::select! {
            _ = hup.recv() => {
                let _ = running.reload();
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    tracing::info!("draining");
    let drained = running.shutdown().await;
    tracing::info!(drained, "stopped");
    Ok(())
}
