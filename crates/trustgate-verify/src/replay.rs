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

use std::time::{Duration, Instant};

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
    cache: Cache<String, Duration>,
    capacity: u64,
}

struct UntilNotOnOrAfter;

impl Expiry<String, Duration> for UntilNotOnOrAfter {
    fn expire_after_create(&self, _: &String, ttl: &Duration, _: Instant) -> Option<Duration> {
        Some(*ttl)
    }
}

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
        }
    }

    /// Records `key` for `ttl` unless it is live already or the cache is
    /// full.
    pub fn first_use(&self, key: String, ttl: Duration) -> Use {
        if self.cache.contains_key(&key) {
            return Use::Again;
        }
        if self.cache.entry_count() >= self.capacity.saturating_sub(TRAIL) {
            // Near the limit: the count trails recent inserts and still
            // holds expired IDs, so bring it up to date before judging.
            self.cache.run_pending_tasks();
            if self.cache.entry_count() >= self.capacity {
                return Use::Full;
            }
        }
        if self.cache.entry(key).or_insert(ttl).is_fresh() {
            Use::First
        } else {
            Use::Again
        }
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

    #[test]
    fn an_id_is_used_once() {
        let c = ReplayCache::new(10);
        assert_eq!(c.first_use("a".into(), LONG), Use::First);
        assert_eq!(c.first_use("a".into(), LONG), Use::Again);
        assert_eq!(c.first_use("b".into(), LONG), Use::First);
    }

    #[test]
    fn a_full_cache_refuses_new_ids_and_still_knows_the_old() {
        let c = ReplayCache::new(100);
        for i in 0..100 {
            assert_eq!(c.first_use(format!("id{i}"), LONG), Use::First, "id{i}");
        }
        // Nothing live was evicted to make room...
        assert_eq!(c.first_use("new".into(), LONG), Use::Full);
        for i in 0..100 {
            assert_eq!(c.first_use(format!("id{i}"), LONG), Use::Again, "id{i}");
        }
        // ...and refusing did not remember the refused ID.
        assert_eq!(c.first_use("new".into(), LONG), Use::Full);
        assert_eq!(c.live(), 100);
        assert_eq!(c.capacity(), 100);
    }

    #[test]
    fn expired_ids_make_room() {
        let c = ReplayCache::new(10);
        for i in 0..10 {
            c.first_use(format!("id{i}"), Duration::from_millis(50));
        }
        assert_eq!(c.first_use("late".into(), LONG), Use::Full);
        // moka's timer wheel removes expired entries at about one-second
        // resolution.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            std::thread::sleep(Duration::from_millis(100));
            match c.first_use("late".into(), LONG) {
                Use::First => break,
                Use::Full if Instant::now() < deadline => {}
                other => panic!("expired ids never made room: {other:?}"),
            }
        }
        // An expired ID may be used again: its assertion has expired too,
        // which the time checks before this one refuse.
        assert_eq!(c.first_use("id0".into(), LONG), Use::First);
    }

    #[test]
    fn concurrent_first_uses_of_one_id_accept_exactly_one() {
        let c = ReplayCache::new(1000);
        let firsts: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| c.first_use("same".into(), LONG) == Use::First))
                .collect();
            handles
                .into_iter()
                .map(|h| usize::from(h.join().unwrap()))
                .sum()
        });
        assert_eq!(firsts, 1);
    }
}
