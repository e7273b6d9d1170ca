//! What one config generation means at run time: the routing table over
//! the apps as requests see them, each with its verifier and metric
//! handles built once, so that no request can find one missing.

use std::sync::Arc;

use crate::answer::forward::pool::Pool;
use crate::answer::forward::Forwarder;
use crate::config::{App, Config, Enforcement};
use crate::evidence::assertion::replay::ReplayCache;
use crate::evidence::assertion::Verifier;
use crate::observe::{AppMetrics, Metrics};
use crate::remember::seal::Sealer;
use crate::remember::token::TokenKeys;
use crate::route::{Routable, Routes};

/// What one config means at run time. A reload builds a new one and swaps it
/// in whole; requests in flight keep the one they started with.
pub struct State {
    /// The config this state was built from.
    pub config: Arc<Config>,
    /// The routing table, to the apps below.
    pub routes: Routes<Arc<RunningApp>>,
    /// Every app, in config order.
    pub apps: Vec<Arc<RunningApp>>,
    /// The upstream client pool.
    pub forwarder: Forwarder,
    /// Session keys: the configured ones, or a random one when no app
    /// enforces (nothing then verifies a session anyway).
    pub keys: TokenKeys,
    /// Seals the detour and lock cookies with the same keys.
    pub sealer: Sealer,
}

/// One app as requests see it: its config, its metric handles and, when it
/// enforces device trust, its rules and verifier.
pub struct RunningApp {
    /// The app's config: hosts, upstream, cookies.
    pub app: App,
    /// Its metric handles.
    pub metrics: AppMetrics,
    /// Its upstream's connection pool (shared by the apps of one upstream).
    pub upstream: Arc<Pool>,
    /// Device-trust enforcement; `None` for a plain proxied app.
    pub enforced: Option<Enforced>,
}

/// What an enforced app checks with.
pub struct Enforced {
    /// Its paths, policy and session rules.
    pub rules: Arc<Enforcement>,
    /// Its assertion verifier (sharing the gateway's replay cache).
    pub verifier: Arc<Verifier>,
}

impl RunningApp {
    /// The app's name.
    pub fn name(&self) -> &str {
        &self.app.name
    }
}

impl Routable for RunningApp {
    fn hosts(&self) -> &[String] {
        &self.app.hosts
    }
    fn path_prefix(&self) -> &str {
        &self.app.path_prefix
    }
    fn enforced(&self) -> bool {
        self.enforced.is_some()
    }
}

impl State {
    /// Builds the run-time state for a config.
    pub(crate) fn new(config: Arc<Config>, replay: &ReplayCache, metrics: &Metrics) -> State {
        let keys = if config.session_keys.is_empty() {
            let mut k = [0u8; 32];
            aws_lc_rs::rand::SecureRandom::fill(&aws_lc_rs::rand::SystemRandom::new(), &mut k)
                .expect("system randomness");
            vec![k.to_vec()]
        } else {
            config.session_keys.iter().map(|k| k.0.clone()).collect()
        };
        let forwarder = Forwarder::new(
            &config.upstream,
            config.server.runtime,
            &metrics.upstream_parked,
        );
        let apps: Vec<Arc<RunningApp>> = config
            .apps
            .iter()
            .map(|a| {
                let m = metrics.for_app(&a.name);
                // The GET series of every status class exist from the
                // start, so that error ratios have a denominator.
                for status in [200, 302, 404, 502] {
                    m.request(
                        &http::Method::GET,
                        http::StatusCode::from_u16(status).expect("a status"),
                    );
                }
                Arc::new(RunningApp {
                    app: a.clone(),
                    metrics: m,
                    upstream: forwarder.pool(a),
                    enforced: a.enforcement.as_ref().map(|e| Enforced {
                        rules: e.clone(),
                        verifier: Arc::new(Verifier::with_replay(
                            e.verifier.clone(),
                            replay.clone(),
                        )),
                    }),
                })
            })
            .collect();
        State {
            routes: Routes::new(apps.iter().cloned()),
            apps,
            forwarder,
            keys: TokenKeys::new(&keys).expect("config checked the key lengths"),
            sealer: Sealer::new(&keys),
            config,
        }
    }
}
