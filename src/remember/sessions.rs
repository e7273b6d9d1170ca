//! Sessions after a decision: the decision cache (cookie value to verified
//! token, so a hit costs no HMAC), revocation sets by session and by subject,
//! and the per-subject set of apps locked after a refusal (Okta's lock icon).

use std::collections::BTreeSet;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dashmap::DashMap;
use http::{HeaderMap, HeaderValue};
use moka::sync::Cache;

use super::shared::Revocation;
use super::token::{SessionId, SessionToken, SubjectHash, TokenError, TokenKeys};
use crate::classify::{self, classify_user_agent, Client};

/// The longest User-Agent a cache entry remembers; a longer one is
/// classified on every request instead of being stored per session.
const MAX_REMEMBERED_USER_AGENT: usize = 512;

/// Why a session cookie was treated as absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SessionReject {
    /// The token failed a check.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The session or its subject was revoked.
    #[error("session revoked")]
    Revoked,
}

impl SessionReject {
    /// Every reason a presented cookie can be rejected with (the labels of
    /// `trustgate_session_cookies_rejected_total`); issuing errors
    /// (`bad_app_name`, `bad_lifetime`, `rng`) never reject a cookie.
    pub const REASONS: [&'static str; 8] = [
        "malformed",
        "bad_mac",
        "unsupported_version",
        "expired",
        "not_yet_valid",
        "wrong_app",
        "wrong_client",
        "revoked",
    ];

    /// The static label for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            SessionReject::Token(e) => e.reason(),
            SessionReject::Revoked => "revoked",
        }
    }
}

/// A verified token as the decision cache holds it, with what every hit
/// would otherwise recompute.
#[derive(Debug)]
pub struct Entry {
    /// The verified token.
    pub token: SessionToken,
    /// `token.subject` as the `X-Trustgate-Subject` value.
    pub subject_header: HeaderValue,
    /// The User-Agent the cookie first came with (empty when longer than
    /// [`MAX_REMEMBERED_USER_AGENT`]) and its [`classify_user_agent`]: that
    /// function is pure, so a byte-equal User-Agent classifies the same.
    user_agent: Box<[u8]>,
    by_user_agent: Client,
    /// The key set it verified (or was signed) under.
    keys: u64,
}

impl Entry {
    fn new(token: SessionToken, keys: &TokenKeys, request: &HeaderMap) -> Entry {
        let ua = classify::user_agent(request);
        let remembered = if ua.len() <= MAX_REMEMBERED_USER_AGENT {
            ua
        } else {
            &[]
        };
        Entry {
            subject_header: token.subject.header_value(),
            token,
            user_agent: remembered.into(),
            by_user_agent: classify_user_agent(remembered),
            keys: keys.generation(),
        }
    }

    /// [`classify::classify`] of `request`, without scanning a User-Agent
    /// this entry has already classified.
    fn classify(&self, request: &HeaderMap) -> Client {
        let ua = classify::user_agent(request);
        let by_user_agent = if ua == &*self.user_agent {
            self.by_user_agent
        } else {
            classify_user_agent(ua)
        };
        classify::refine(by_user_agent, request)
    }
}

/// A session that holds for this request.
#[derive(Debug, Clone)]
pub struct Valid {
    /// The verified token and its prebuilt values.
    pub entry: Arc<Entry>,
    /// Whether it came from the cache (no HMAC work).
    pub cached: bool,
    /// The request's client, as [`classify::classify`] sees it; the token is
    /// bound to it.
    pub client: Client,
}

/// Hashes a decision-cache key by its last eight bytes. Every key is a
/// cookie value that verified (nothing else is inserted), so it ends in the
/// base64 of an HMAC tag: bytes that are already uniform and that no client
/// can choose. SipHash over the whole ~140-byte value cost more than the
/// rest of a cache hit.
#[derive(Default)]
struct TagHasher(u64);

impl Hasher for TagHasher {
    fn write(&mut self, bytes: &[u8]) {
        let tail = &bytes[bytes.len().saturating_sub(8)..];
        let mut word = [0u8; 8];
        word[..tail.len()].copy_from_slice(tail);
        // Fx-style mixing, so that every bit of the result depends on the tag.
        self.0 =
            (self.0.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(0x517c_c1b7_2722_0a95);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Session state shared by every connection; it outlives config reloads.
/// The keys come with each call, since a reload may rotate them.
pub struct Sessions {
    cache: Cache<String, Arc<Entry>, BuildHasherDefault<TagHasher>>,
    /// Set once anything was revoked: until then a check skips the revocation
    /// maps (`DashMap::is_empty` locks every shard).
    any_revoked: AtomicBool,
    revoked_sessions: DashMap<SessionId, u64>,
    revoked_subjects: DashMap<SubjectHash, u64>,
    locks: Cache<SubjectHash, Arc<Mutex<BTreeSet<String>>>>,
    max_lifetime: Duration,
    /// The unix second of the last prune.
    pruned_at: std::sync::atomic::AtomicU64,
}

impl Sessions {
    /// Session state over `keys`; cached entries and locks live at most
    /// `max_lifetime`.
    pub fn new(max_lifetime: Duration, capacity: u64) -> Sessions {
        Sessions {
            cache: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(max_lifetime.max(Duration::from_secs(1)))
                .build_with_hasher(BuildHasherDefault::default()),
            any_revoked: AtomicBool::new(false),
            pruned_at: std::sync::atomic::AtomicU64::new(0),
            revoked_sessions: DashMap::new(),
            revoked_subjects: DashMap::new(),
            locks: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(max_lifetime.max(Duration::from_secs(1)))
                .build(),
            max_lifetime,
        }
    }

    /// Checks a cookie value for `app` and the client of `request` (see
    /// [`classify::classify`]) at `now`: from the cache when it has been
    /// seen, else by its HMAC. Revocation is checked either way.
    pub fn check(
        &self,
        keys: &TokenKeys,
        cookie: &str,
        app: &str,
        request: &HeaderMap,
        now: SystemTime,
    ) -> Result<Valid, SessionReject> {
        // An entry cached under other keys is checked again: a request that
        // read the old keys while they were being replaced can cache a
        // decision after `clear_cache` ran.
        let (entry, cached) = match self.cache.get(cookie) {
            Some(e) if e.keys == keys.generation() => (e, true),
            _ => {
                let e = Arc::new(Entry::new(keys.open(cookie)?, keys, request));
                // Cache only what verified; the binding is checked per request.
                self.cache.insert(cookie.to_string(), e.clone());
                (e, false)
            }
        };
        let client = entry.classify(request);
        entry.token.check(app, client, now)?;
        if self.is_revoked(&entry.token) {
            return Err(SessionReject::Revoked);
        }
        Ok(Valid {
            entry,
            cached,
            client,
        })
    }

    /// Signs a new session and caches it, for the `request` that earned it;
    /// returns the cookie value.
    pub fn issue(
        &self,
        keys: &TokenKeys,
        token: SessionToken,
        request: &HeaderMap,
    ) -> Result<String, TokenError> {
        let value = keys.sign(&token)?;
        self.cache
            .insert(value.clone(), Arc::new(Entry::new(token, keys, request)));
        Ok(value)
    }

    fn is_revoked(&self, token: &SessionToken) -> bool {
        if !self.any_revoked.load(Ordering::Acquire) {
            return false;
        }
        if self.revoked_sessions.contains_key(&token.session_id) {
            return true;
        }
        self.subject_revoked_since(&token.subject, token.issued_at)
    }

    /// Whether `subject` was revoked at or after `issued` (Unix seconds),
    /// while that revocation is kept: what was issued up to then, sessions
    /// and assertions alike, is void.
    pub fn subject_revoked_since(&self, subject: &SubjectHash, issued: u64) -> bool {
        self.any_revoked.load(Ordering::Acquire)
            && self
                .revoked_subjects
                .get(subject)
                .is_some_and(|at| issued <= *at)
    }

    /// Revokes one session, wherever its cookie is presented; the
    /// revocation as the fleet is told of it.
    pub fn revoke_session(&self, id: SessionId, now: SystemTime) -> Revocation {
        let rev = Revocation::Session {
            id,
            until: unix(now) + self.max_lifetime.as_secs(),
        };
        self.apply(rev, now);
        rev
    }

    /// Revokes every session of a subject issued up to now; the revocation
    /// as the fleet is told of it.
    pub fn revoke_subject(&self, subject: SubjectHash, now: SystemTime) -> Revocation {
        let rev = Revocation::Subject {
            subject,
            at: unix(now),
        };
        self.apply(rev, now);
        rev
    }

    /// Applies a revocation made here or heard from another replica. The
    /// latest of two subject revocations holds, so a late copy of an old
    /// one (read back on reconnect) never narrows a newer one.
    pub fn apply(&self, rev: Revocation, now: SystemTime) {
        // Pruning walks every revocation: at most once a second, so that
        // reading back many kept ones stays linear.
        let second = unix(now);
        if self.pruned_at.swap(second, Ordering::Relaxed) != second {
            self.prune(now);
        }
        match rev {
            Revocation::Session { id, until } => {
                let mut e = self.revoked_sessions.entry(id).or_insert(until);
                *e = (*e).max(until);
            }
            Revocation::Subject { subject, at } => {
                let mut e = self.revoked_subjects.entry(subject).or_insert(at);
                *e = (*e).max(at);
            }
        }
        self.any_revoked.store(true, Ordering::Release);
    }

    /// Drops revocations that can no longer match a live session.
    fn prune(&self, now: SystemTime) {
        let now = unix(now);
        let horizon = now.saturating_sub(self.max_lifetime.as_secs());
        self.revoked_sessions.retain(|_, until| *until > now);
        self.revoked_subjects.retain(|_, at| *at > horizon);
    }

    /// Marks `app` locked for `subject` after a refusal.
    pub fn lock(&self, subject: SubjectHash, app: &str) {
        let set = self
            .locks
            .get_with(subject, || Arc::new(Mutex::new(BTreeSet::new())));
        set.lock()
            .expect("lock set poisoned")
            .insert(app.to_string());
    }

    /// The apps locked for `subject`.
    pub fn locked(&self, subject: &SubjectHash) -> BTreeSet<String> {
        self.locks
            .get(subject)
            .map(|s| s.lock().expect("lock set poisoned").clone())
            .unwrap_or_default()
    }

    /// Forgets every cached decision (after the keys changed).
    pub fn clear_cache(&self) {
        self.cache.invalidate_all();
    }

    /// Cached decisions right now (approximate, for the gauge).
    pub fn cached(&self) -> u64 {
        self.cache.entry_count()
    }
}

/// Unix seconds of `t`; 0 before the epoch.
pub(crate) fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
