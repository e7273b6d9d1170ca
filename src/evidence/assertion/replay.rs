//! One-time use of assertion IDs: a bounded moka cache whose entries live
//! until the assertion's own NotOnOrAfter.
//!
//! Only verified assertions reach this cache; deciding what a replay means
//! is left to policy.

use std::time::{Duration, Instant};

use moka::sync::Cache;
use moka::Expiry;

/// Remembers accepted assertion IDs until their validity ends.
#[derive(Clone)]
pub(crate) struct ReplayCache {
    cache: Cache<String, Duration>,
}

struct UntilNotOnOrAfter;

impl Expiry<String, Duration> for UntilNotOnOrAfter {
    fn expire_after_create(&self, _: &String, ttl: &Duration, _: Instant) -> Option<Duration> {
        Some(*ttl)
    }
}

impl ReplayCache {
    /// A cache holding at most `capacity` IDs.
    pub(crate) fn new(capacity: u64) -> Self {
        ReplayCache {
            cache: Cache::builder()
                .max_capacity(capacity)
                .expire_after(UntilNotOnOrAfter)
                .build(),
        }
    }

    /// Records `key` for `ttl`; returns false if it was already there.
    pub(crate) fn first_use(&self, key: String, ttl: Duration) -> bool {
        self.cache.entry(key).or_insert(ttl).is_fresh()
    }
}
