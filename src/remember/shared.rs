//! What must hold across the fleet, kept in Redis: an assertion ID is
//! accepted once by all replicas (an atomic `SET NX` that expires with the
//! assertion), a revocation reaches every replica (published on a channel,
//! and kept as a key for as long as a revoked session could live, so that a
//! replica that starts or reconnects later reads it back), and a UEM event
//! is acted on once (by its EventId).
//!
//! Without `[redis]` there is no fleet: every operation answers as one
//! replica would. With it, an unreachable Redis fails closed for what it
//! protects: [`Shared::first_use`] errs (new sign-ins get a 503), while
//! revocations are applied here at once and published when Redis is back.

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwapOption;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::token::{SessionId, SubjectHash};
use crate::config::RedisConfig;
use crate::observe::Metrics;

/// Redis could not answer; the operation did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("shared state unavailable: {0}")]
pub struct Unavailable(pub String);

/// A revocation, as replicas tell each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revocation {
    /// One session, void until `until` (unix seconds; past it, the session
    /// has expired anyway).
    Session {
        /// The session.
        id: SessionId,
        /// Unix seconds.
        until: u64,
    },
    /// Every session of a subject issued at or before `at` (unix seconds).
    Subject {
        /// The subject.
        subject: SubjectHash,
        /// Unix seconds.
        at: u64,
    },
}

impl Revocation {
    /// The message text: `session <hex> <until>` or `subject <hex> <at>`.
    fn encode(&self) -> String {
        match self {
            Revocation::Session { id, until } => format!("session {} {until}", hex::encode(id.0)),
            Revocation::Subject { subject, at } => format!("subject {subject} {at}"),
        }
    }

    /// Reads [`Revocation::encode`]'s text; `None` for anything else.
    fn decode(text: &str) -> Option<Revocation> {
        let mut parts = text.split(' ');
        let (scope, id, time) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let bytes: [u8; 16] = hex::decode(id).ok()?.try_into().ok()?;
        let time: u64 = time.parse().ok()?;
        match scope {
            "session" => Some(Revocation::Session {
                id: SessionId(bytes),
                until: time,
            }),
            "subject" => Some(Revocation::Subject {
                subject: SubjectHash(bytes),
                at: time,
            }),
            _ => None,
        }
    }

    /// The key that keeps the revocation, under `prefix`.
    fn key(&self, prefix: &str) -> String {
        match self {
            Revocation::Session { id, .. } => {
                format!("{prefix}revoked:session:{}", hex::encode(id.0))
            }
            Revocation::Subject { subject, .. } => format!("{prefix}revoked:subject:{subject}"),
        }
    }
}

/// Applies a revocation heard from the fleet to this replica.
pub type Apply = Arc<dyn Fn(Revocation) + Send + Sync>;

/// The fleet's shared state, or this replica alone.
#[derive(Clone)]
pub struct Shared {
    redis: Option<Arc<Redis>>,
}

struct Redis {
    client: redis::Client,
    prefix: String,
    timeout: Duration,
    /// The longest a session can live: how long a subject revocation key
    /// is kept.
    max_session: Duration,
    manager: ArcSwapOption<ConnectionManager>,
    /// Revocations applied here but not yet published: sent when Redis is
    /// back, oldest first.
    pending: Mutex<Vec<Revocation>>,
    /// Whether the revocation channel is subscribed and alive; with a
    /// command answered, what `trustgate_redis_up` says.
    subscribed: std::sync::atomic::AtomicBool,
    metrics: Arc<Metrics>,
}

/// The most revocations queued while Redis is down; past it the oldest go
/// (they hold here, and the log says the fleet may miss them).
const MAX_PENDING: usize = 100_000;

/// How often each replica pings the channel, and how long silence on it
/// means a dead subscription (a NAT or load balancer dropped it unseen).
const HEARTBEAT: Duration = Duration::from_secs(5);
const SILENCE: Duration = Duration::from_secs(16);

/// Sets a revocation key only to a later time than it holds (a late or
/// queued copy of an older revocation never moves it back), with the TTL.
const RAISE: &str = "local v = redis.call('GET', KEYS[1]) \
    if (not v) or (tonumber(v) or 0) < tonumber(ARGV[1]) then \
      redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]) end return 1";

/// How long a UEM EventId is remembered: longer than the UEM retries.
const EVENT_MEMORY: Duration = Duration::from_secs(7 * 24 * 3600);

impl Shared {
    /// One replica, no Redis.
    pub fn local() -> Shared {
        Shared { redis: None }
    }

    /// The fleet's state in the Redis of `cfg`. Nothing connects until
    /// [`Shared::start`].
    pub fn redis(cfg: &RedisConfig, max_session: Duration, metrics: Arc<Metrics>) -> Shared {
        Shared {
            redis: Some(Arc::new(Redis {
                client: cfg.client.clone(),
                prefix: cfg.key_prefix.clone(),
                timeout: cfg.timeout,
                max_session,
                manager: ArcSwapOption::empty(),
                pending: Mutex::new(Vec::new()),
                subscribed: std::sync::atomic::AtomicBool::new(false),
                metrics,
            })),
        }
    }

    /// Whether replicas share state (a `[redis]` section).
    pub fn is_fleet(&self) -> bool {
        self.redis.is_some()
    }

    /// Connects and keeps connecting: the command connection, and the
    /// subscription that hears other replicas' revocations (each applied
    /// with `apply`, as are the kept ones read back on every (re)connect).
    /// Returns at once; `stop` ends the tasks.
    pub fn start(&self, apply: Apply, stop: tokio::sync::watch::Receiver<bool>) {
        let Some(r) = &self.redis else {
            return;
        };
        r.metrics.redis_up.set(0);
        tokio::spawn(listen(Arc::downgrade(r), apply, stop));
    }

    /// Whether `assertion_id` is used for the first time by the whole
    /// fleet; the ID is then remembered until `expires`. Alone, always
    /// true: the replica's own replay cache decided already.
    pub async fn first_use(
        &self,
        assertion_id: &str,
        expires: SystemTime,
        now: SystemTime,
    ) -> Result<bool, Unavailable> {
        let Some(r) = &self.redis else {
            return Ok(true);
        };
        let key = format!("{}assertion:{}", r.prefix, digest_hex(assertion_id));
        let ttl = expires
            .duration_since(now)
            .unwrap_or_default()
            .max(Duration::from_secs(1));
        let mut cmd = redis::cmd("SET");
        cmd.arg(&key)
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(ttl.as_millis() as u64);
        let set: Option<String> = r.query("replay", &cmd).await?;
        Ok(set.is_some())
    }

    /// Tells the fleet of a revocation this replica has applied: kept as a
    /// key and published. When Redis is unreachable it is queued and sent
    /// on reconnect; the error says so.
    pub async fn publish(&self, rev: Revocation, now: SystemTime) -> Result<(), Unavailable> {
        let Some(r) = &self.redis else {
            return Ok(());
        };
        let result = r.publish(rev, now).await;
        if result.is_err() {
            let mut pending = r.pending.lock().expect("pending lock");
            if pending.len() >= MAX_PENDING {
                pending.remove(0);
                tracing::warn!("over {MAX_PENDING} revocations queued for redis: the oldest is dropped (it holds on this replica)");
            }
            pending.push(rev);
        }
        result
    }

    /// Whether a UEM event was acted on already (by any replica).
    pub async fn event_seen(&self, event_id: &str) -> Result<bool, Unavailable> {
        let Some(r) = &self.redis else {
            return Ok(false);
        };
        let mut cmd = redis::cmd("EXISTS");
        cmd.arg(r.event_key(event_id));
        let n: i64 = r.query("event", &cmd).await?;
        Ok(n > 0)
    }

    /// Remembers that a UEM event was acted on.
    pub async fn event_done(&self, event_id: &str) -> Result<(), Unavailable> {
        let Some(r) = &self.redis else {
            return Ok(());
        };
        let mut cmd = redis::cmd("SET");
        cmd.arg(r.event_key(event_id))
            .arg(1)
            .arg("EX")
            .arg(EVENT_MEMORY.as_secs());
        let _: Option<String> = r.query("event", &cmd).await?;
        Ok(())
    }
}

impl Redis {
    /// Runs one command on the managed connection, within the timeout;
    /// a failure counts in `trustgate_redis_errors_total{op}`.
    async fn query<T: redis::FromRedisValue>(
        &self,
        op: &'static str,
        cmd: &redis::Cmd,
    ) -> Result<T, Unavailable> {
        let fail = |why: String| {
            self.metrics.redis_errors.with_label_values(&[op]).inc();
            self.metrics.redis_up.set(0);
            Unavailable(why)
        };
        let Some(manager) = self.manager.load_full() else {
            return Err(fail("not connected".into()));
        };
        let mut con = (*manager).clone();
        match tokio::time::timeout(self.timeout, cmd.query_async::<T>(&mut con)).await {
            Ok(Ok(v)) => {
                if self.subscribed.load(std::sync::atomic::Ordering::Relaxed) {
                    self.metrics.redis_up.set(1);
                }
                Ok(v)
            }
            Ok(Err(e)) => Err(fail(e.to_string())),
            Err(_) => Err(fail(format!("no answer within {:?}", self.timeout))),
        }
    }

    async fn publish(&self, rev: Revocation, now: SystemTime) -> Result<(), Unavailable> {
        let now_s = unix(now);
        let ttl = match rev {
            Revocation::Session { until, .. } => until.saturating_sub(now_s),
            Revocation::Subject { at, .. } => {
                (at + self.max_session.as_secs()).saturating_sub(now_s)
            }
        }
        .max(1);
        let time = match rev {
            Revocation::Session { until, .. } => until,
            Revocation::Subject { at, .. } => at,
        };
        let mut set = redis::cmd("EVAL");
        set.arg(RAISE)
            .arg(1)
            .arg(rev.key(&self.prefix))
            .arg(time)
            .arg(ttl);
        let _: i64 = self.query("revoke", &set).await?;
        let mut publish = redis::cmd("PUBLISH");
        publish.arg(self.channel()).arg(rev.encode());
        let _: i64 = self.query("publish", &publish).await?;
        Ok(())
    }

    fn channel(&self) -> String {
        format!("{}revocations", self.prefix)
    }

    fn event_key(&self, event_id: &str) -> String {
        format!("{}uem:event:{}", self.prefix, digest_hex(event_id))
    }

    /// Every kept revocation, read back: a SCAN batch at a time, its
    /// values in one MGET. Keys or values that are not ours are skipped.
    async fn kept(&self) -> Result<Vec<Revocation>, Unavailable> {
        let pattern = format!("{}revoked:*", self.prefix);
        let mut cursor: u64 = 0;
        let mut out = Vec::new();
        loop {
            let mut scan = redis::cmd("SCAN");
            scan.arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000);
            let (next, keys): (u64, Vec<String>) = self.query("sync", &scan).await?;
            if !keys.is_empty() {
                let mut get = redis::cmd("MGET");
                get.arg(&keys);
                let values: Vec<Option<String>> = self.query("sync", &get).await?;
                for (key, value) in keys.iter().zip(values) {
                    let parsed = key
                        .strip_prefix(&self.prefix)
                        .and_then(|k| k.strip_prefix("revoked:"))
                        .and_then(|k| k.split_once(':'))
                        .zip(value.and_then(|v| v.parse::<u64>().ok()))
                        .and_then(|((scope, id), time)| {
                            Revocation::decode(&format!("{scope} {id} {time}"))
                        });
                    if let Some(rev) = parsed {
                        out.push(rev);
                    }
                }
            }
            cursor = next;
            if cursor == 0 {
                return Ok(out);
            }
            // Other tasks run between batches.
            tokio::task::yield_now().await;
        }
    }

    /// A revocation heard from the fleet, with its time held to what a
    /// sane clock could say (a forged or skewed `u64::MAX` would revoke
    /// forever).
    fn clamp(&self, rev: Revocation) -> Revocation {
        let now = unix(SystemTime::now());
        match rev {
            Revocation::Session { id, until } => Revocation::Session {
                id,
                until: until.min(now + self.max_session.as_secs()),
            },
            Revocation::Subject { subject, at } => Revocation::Subject {
                subject,
                at: at.min(now + 60),
            },
        }
    }
}

/// The connection and subscription loop: connect, subscribe, read back
/// the kept revocations and publish the queued ones, then apply every
/// message until the subscription breaks; back off and do it again.
async fn listen(redis: Weak<Redis>, apply: Apply, mut stop: tokio::sync::watch::Receiver<bool>) {
    use futures_util::StreamExt;
    let mut backoff = Duration::from_millis(100);
    loop {
        let Some(r) = redis.upgrade() else {
            return;
        };
        let attempt = async {
            if r.manager.load().is_none() {
                let cfg = ConnectionManagerConfig::new()
                    .set_connection_timeout(r.timeout)
                    .set_response_timeout(r.timeout)
                    .set_number_of_retries(1);
                let manager = ConnectionManager::new_with_config(r.client.clone(), cfg)
                    .await
                    .map_err(|e| e.to_string())?;
                r.manager.store(Some(Arc::new(manager)));
            }
            let mut pubsub = r
                .client
                .get_async_pubsub()
                .await
                .map_err(|e| e.to_string())?;
            pubsub
                .subscribe(r.channel())
                .await
                .map_err(|e| e.to_string())?;
            // Subscribed first, then read back: nothing published between
            // the two is missed.
            for rev in r.kept().await.map_err(|e| e.0)? {
                apply(r.clamp(rev));
            }
            let queued: Vec<Revocation> =
                std::mem::take(&mut *r.pending.lock().expect("pending lock"));
            for (i, rev) in queued.iter().enumerate() {
                if let Err(e) = r.publish(*rev, SystemTime::now()).await {
                    r.pending
                        .lock()
                        .expect("pending lock")
                        .extend_from_slice(&queued[i..]);
                    return Err(e.0);
                }
            }
            r.subscribed
                .store(true, std::sync::atomic::Ordering::Relaxed);
            r.metrics.redis_up.set(1);
            tracing::info!("redis connected; revocations are shared");
            Ok::<_, String>(pubsub)
        };
        let pubsub = tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            p = attempt => p,
        };
        match pubsub {
            Ok(pubsub) => {
                backoff = Duration::from_millis(100);
                let mut messages = pubsub.into_on_message();
                let mut heartbeat = tokio::time::interval(HEARTBEAT);
                let mut heard = tokio::time::Instant::now();
                loop {
                    enum Next<M> {
                        Stop,
                        Beat,
                        Message(Option<M>),
                    }
                    let next = tokio::select! {
                        _ = stop.wait_for(|s| *s) => Next::Stop,
                        _ = heartbeat.tick() => Next::Beat,
                        m = messages.next() => Next::Message(m),
                    };
                    let msg = match next {
                        Next::Stop => return,
                        Next::Beat => {
                            // Every replica pings the channel, so silence
                            // longer than this means our subscription died
                            // unseen: subscribe again and read back.
                            if heard.elapsed() > SILENCE {
                                tracing::warn!("no message on the revocation channel for {SILENCE:?}: resubscribing");
                                break;
                            }
                            let mut ping = redis::cmd("PUBLISH");
                            ping.arg(r.channel()).arg("ping");
                            let _ = r.query::<i64>("publish", &ping).await;
                            continue;
                        }
                        Next::Message(m) => m,
                    };
                    let Some(msg) = msg else {
                        break;
                    };
                    heard = tokio::time::Instant::now();
                    let payload = msg.get_payload::<String>().unwrap_or_default();
                    if payload == "ping" {
                        continue;
                    }
                    match Revocation::decode(&payload) {
                        Some(rev) => apply(r.clamp(rev)),
                        None => tracing::warn!("unreadable revocation message on the channel"),
                    }
                }
                r.subscribed
                    .store(false, std::sync::atomic::Ordering::Relaxed);
                r.metrics.redis_up.set(0);
                r.metrics
                    .redis_errors
                    .with_label_values(&["subscribe"])
                    .inc();
                tracing::warn!(
                    "redis subscription lost: new sign-ins are refused until it is back; sessions go on"
                );
            }
            Err(e) => {
                r.metrics.redis_up.set(0);
                r.metrics.redis_errors.with_label_values(&["connect"]).inc();
                tracing::warn!(error = %e, retry_in = ?backoff, "redis unavailable: new sign-ins are refused; sessions go on");
            }
        }
        drop(r);
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// SHA-256 of `s` in hex: bounded keys whatever the IdP's ID looks like.
fn digest_hex(s: &str) -> String {
    hex::encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        s.as_bytes(),
    ))
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revocation_messages_round_trip_and_refuse_anything_else() {
        for rev in [
            Revocation::Session {
                id: SessionId([7; 16]),
                until: 1_800_000_000,
            },
            Revocation::Subject {
                subject: SubjectHash::of("bob@corp.example"),
                at: 1_799_999_999,
            },
        ] {
            assert_eq!(Revocation::decode(&rev.encode()), Some(rev));
            assert!(rev.key("tg:").starts_with("tg:revoked:"));
        }
        for bad in [
            "",
            "session",
            "session 00 1",
            "subject zz000000000000000000000000000000 1",
            "other 00000000000000000000000000000000 1",
            "session 00000000000000000000000000000000 -1",
            "session 00000000000000000000000000000000 1 extra",
        ] {
            assert_eq!(Revocation::decode(bad), None, "{bad:?}");
        }
    }

    #[tokio::test]
    async fn alone_every_answer_is_one_replicas() {
        let s = Shared::local();
        assert!(!s.is_fleet());
        let now = SystemTime::now();
        assert_eq!(s.first_use("id", now, now).await, Ok(true));
        assert_eq!(s.first_use("id", now, now).await, Ok(true));
        assert_eq!(s.event_seen("e").await, Ok(false));
        let rev = Revocation::Subject {
            subject: SubjectHash::of("x"),
            at: 1,
        };
        assert_eq!(s.publish(rev, now).await, Ok(()));
    }
}
