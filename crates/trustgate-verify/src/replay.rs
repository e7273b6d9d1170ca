//! One-time use of assertion IDs: a bounded moka cache whose entries live
//! until the assertion's own NotOnOrAfter.
//!
//! Only verified assertions reach this cache; deciding what a replay means
//! is left to policy.
//!
//! The bound fails closed. A cache that evicted a live ID to make room would
//! accept that assertion a second time, so when `capacity` IDs are live, a
//! new one is refused instead ([`Use::Full`]) until some expire. moka is
//! given room beyond `capacity`, so that its own eviction (and its TinyLFU
//! admission, which may drop a new entry) never runs: near the limit its
//! entry count is brought up to date before each insert, and concurrent
//! inserts can overshoot the limit by at most one per thread.
//!
//! Whether an ID is still live is judged by the verifier's clock (the `now`
//! every check is given), not by moka's: moka's own expiry, on the real
//! clock, only frees the memory. When the cache is full, IDs expired by the
//! verifier's clock are swept out before a new one is refused.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use moka::ops::compute::{CompResult, Op};
use moka::sync::Cache;
use moka::Expiry;

/// The cache key of an assertion: its issuer and ID, which only together
/// name one assertion.
pub fn key(issuer: &str, id: &str) -> String {
    format!("{issuer}\u{0}{id}")
}

/// What the cache says of an assertion ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// Not seen before; now remembered.
    First,
    /// Already accepted and still live: a replay.
    Again,
    /// Not seen, but the cache holds as many live IDs as it may.
    Full,
}

/// Remembers accepted assertion IDs until their validity ends.
#[derive(Clone)]
pub struct ReplayCache {
    cache: Cache<String, Live>,
    capacity: u64,
    /// When (verifier's clock, Unix seconds) the last sweep of a full cache
    /// ran.
    swept: Arc<AtomicU64>,
}

/// One remembered ID: until when it is live by the verifier's clock, and
/// how long moka keeps it.
#[derive(Clone, Copy)]
struct Live {
    /// Unix milliseconds.
    until: u64,
    ttl: Duration,
}

struct UntilNotOnOrAfter;

impl Expiry<String, Live> for UntilNotOnOrAfter {
    fn expire_after_create(&self, _: &String, live: &Live, _: Instant) -> Option<Duration> {
        Some(live.ttl)
    }
}

/// A time as Unix milliseconds (0 before the epoch).
fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// How often, by the verifier's clock, a full cache is swept of the IDs
/// that clock has expired. A sweep walks every entry, so it is rate-bound;
/// on a machine whose clock the verifier shares, moka's expiry has removed
/// them already.
const SWEEP_EVERY_SECS: u64 = 10;

/// The room moka gets beyond `capacity`.
fn headroom(capacity: u64) -> u64 {
    (capacity / 8).max(4096)
}

/// How far moka's entry count may trail: it applies inserts in batches of
/// 64, with a few batches queued. Within this distance of the limit, the
/// count is brought up to date before it is trusted.
const TRAIL: u64 = 1024;

impl ReplayCache {
    /// A cache holding at most `capacity` live IDs.
    pub fn new(capacity: u64) -> Self {
        ReplayCache {
            cache: Cache::builder()
                .max_capacity(capacity.saturating_add(headroom(capacity)))
                .expire_after(UntilNotOnOrAfter)
                .build(),
            capacity,
            swept: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Records `key` as live for `ttl` from `now` unless it is live already
    /// or the cache is full.
    pub fn first_use(&self, key: String, ttl: Duration, now: SystemTime) -> Use {
        let now_ms = unix_ms(now);
        // `contains_key` first: unlike `get`, it records no read in moka's
        // access log, and most IDs are new.
        if self.cache.contains_key(&key)
            && self.cache.get(&key).is_some_and(|live| live.until > now_ms)
        {
            return Use::Again;
        }
        if self.cache.entry_count() >= self.capacity.saturating_sub(TRAIL) {
            // Near the limit: the count trails recent inserts and still
            // holds expired IDs, so bring it up to date before judging.
            self.cache.run_pending_tasks();
            if self.cache.entry_count() >= self.capacity && !self.sweep(now_ms) {
                return Use::Full;
            }
        }
        let live = Live {
            until: now_ms.saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX)),
            ttl,
        };
        // moka coalesces concurrent inserts of one key: of two first uses
        // at once, one inserts (fresh) and the other finds it live.
        let entry = self.cache.entry(key).or_insert(live);
        if entry.is_fresh() {
            return Use::First;
        }
        if entry.value().until > now_ms {
            return Use::Again;
        }
        // Expired by the verifier's clock but not yet by moka's: replaced,
        // one judgement at a time (moka locks the key for the compute).
        match self
            .cache
            .entry(entry.key().clone())
            .and_compute_with(|old| match old {
                Some(e) if e.value().until > now_ms => Op::Nop,
                _ => Op::Put(live),
            }) {
            CompResult::Inserted(_) | CompResult::ReplacedWith(_) => Use::First,
            _ => Use::Again,
        }
    }

    /// Drops the IDs expired by the verifier's clock, at most once per
    /// [`SWEEP_EVERY_SECS`] of it; whether the cache then has room.
    fn sweep(&self, now_ms: u64) -> bool {
        let now_s = now_ms / 1000;
        let last = self.swept.load(Ordering::Relaxed);
        if now_s < last.saturating_add(SWEEP_EVERY_SECS)
            || self
                .swept
                .compare_exchange(last, now_s, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return false;
        }
        let expired: Vec<Arc<String>> = self
            .cache
            .iter()
            .filter(|(_, live)| live.until <= now_ms)
            .map(|(k, _)| k)
            .collect();
        for k in expired {
            self.cache.invalidate(k.as_str());
        }
        self.cache.run_pending_tasks();
        self.cache.entry_count() < self.capacity
    }

    /// Live IDs now: pending inserts counted and expired IDs dropped first,
    /// so it costs more than a read (a metrics scrape, not every request).
    pub fn live(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.entry_count()
    }

    /// Forgets `key`: its sign-in did not happen after all (the fleet's
    /// check could not be made), so a retry must not count as a replay.
    pub fn forget(&self, key: &str) {
        self.cache.invalidate(key);
    }

    /// The most live IDs the cache holds.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: Duration = Duration::from_secs(3600);

    /// The verifier's clock in these tests: a fixed instant, moved by hand.
    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
    }

    #[test]
    fn an_id_is_used_once() {
        let c = ReplayCache::new(10);
        assert_eq!(c.first_use("a".into(), LONG, at(0)), Use::First);
        assert_eq!(c.first_use("a".into(), LONG, at(0)), Use::Again);
        assert_eq!(c.first_use("b".into(), LONG, at(0)), Use::First);
    }

    #[test]
    fn a_full_cache_refuses_new_ids_and_still_knows_the_old() {
        let c = ReplayCache::new(100);
        for i in 0..100 {
            assert_eq!(
                c.first_use(format!("id{i}"), LONG, at(0)),
                Use::First,
                "id{i}"
            );
        }
        // Nothing live was evicted to make room...
        assert_eq!(c.first_use("new".into(), LONG, at(0)), Use::Full);
        for i in 0..100 {
            assert_eq!(
                c.first_use(format!("id{i}"), LONG, at(0)),
                Use::Again,
                "id{i}"
            );
        }
        // ...and refusing did not remember the refused ID.
        assert_eq!(c.first_use("new".into(), LONG, at(0)), Use::Full);
        assert_eq!(c.live(), 100);
        assert_eq!(c.capacity(), 100);
    }

    #[test]
    fn expired_ids_make_room() {
        let c = ReplayCache::new(10);
        for i in 0..10 {
            c.first_use(format!("id{i}"), Duration::from_secs(5), at(0));
        }
        assert_eq!(c.first_use("late".into(), LONG, at(0)), Use::Full);
        // Still live by the verifier's clock: no room, and no sweep.
        assert_eq!(c.first_use("late".into(), LONG, at(4)), Use::Full);
        // Past their end by the verifier's clock (moka's real clock has not
        // moved), the sweep of the full cache makes room.
        assert_eq!(c.first_use("late".into(), LONG, at(20)), Use::First);
        assert_eq!(c.live(), 1);
        // An expired ID may be used again: its assertion has expired too,
        // which the time checks before this one refuse.
        assert_eq!(c.first_use("id0".into(), LONG, at(20)), Use::First);
        assert_eq!(c.first_use("id0".into(), LONG, at(20)), Use::Again);
    }

    #[test]
    fn an_id_is_live_until_its_end_by_the_verifiers_clock() {
        let c = ReplayCache::new(10);
        let ttl = Duration::from_secs(300);
        assert_eq!(c.first_use("a".into(), ttl, at(0)), Use::First);
        assert_eq!(c.first_use("a".into(), ttl, at(299)), Use::Again);
        assert_eq!(c.first_use("a".into(), ttl, at(300)), Use::First);
        // Remembered again from its new first use.
        assert_eq!(c.first_use("a".into(), ttl, at(599)), Use::Again);
    }

    #[test]
    fn a_full_cache_sweeps_at_most_once_per_interval() {
        let c = ReplayCache::new(4);
        for i in 0..4 {
            c.first_use(format!("short{i}"), Duration::from_secs(1), at(0));
        }
        // Full at 0 s: a sweep runs, finds every ID live, and refuses.
        assert_eq!(c.first_use("new".into(), LONG, at(0)), Use::Full);
        // At 5 s every ID has expired, but the next sweep is not due.
        assert_eq!(c.first_use("new".into(), LONG, at(5)), Use::Full);
        // At 10 s it is, and makes room.
        assert_eq!(c.first_use("new".into(), LONG, at(10)), Use::First);
        assert_eq!(c.live(), 1);
    }

    #[test]
    fn concurrent_first_uses_of_one_id_accept_exactly_one() {
        let c = ReplayCache::new(1000);
        let firsts: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| c.first_use("same".into(), LONG, at(0)) == Use::First))
                .collect();
            handles
                .into_iter()
                .map(|h| usize::from(h.join().unwrap()))
                .sum()
        });
        assert_eq!(firsts, 1);
    }
}
