//! Sessions after a decision: the decision cache (cookie value to verified
//! token, so a hit costs no HMAC), revocation sets by session and by subject,
//! and the per-subject set of apps locked after a refusal (Okta's lock icon).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dashmap::DashMap;
use moka::sync::Cache;

use super::token::{SessionId, SessionToken, SubjectHash, TokenError, TokenKeys};
use crate::classify::Client;

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
    /// The static label for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            SessionReject::Token(e) => e.reason(),
            SessionReject::Revoked => "revoked",
        }
    }
}

/// A session that holds for this request.
#[derive(Debug, Clone)]
pub struct Valid {
    /// The verified token.
    pub token: Arc<SessionToken>,
    /// Whether it came from the cache (no HMAC work).
    pub cached: bool,
}

/// Session state shared by every connection; it outlives config reloads.
/// The keys come with each call, since a reload may rotate them.
pub struct Sessions {
    cache: Cache<String, Arc<SessionToken>>,
    revoked_sessions: DashMap<SessionId, u64>,
    revoked_subjects: DashMap<SubjectHash, u64>,
    locks: Cache<SubjectHash, Arc<Mutex<BTreeSet<String>>>>,
    max_lifetime: Duration,
}

impl Sessions {
    /// Session state over `keys`; cached entries and locks live at most
    /// `max_lifetime`.
    pub fn new(max_lifetime: Duration, capacity: u64) -> Sessions {
        Sessions {
            cache: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(max_lifetime.max(Duration::from_secs(1)))
                .build(),
            revoked_sessions: DashMap::new(),
            revoked_subjects: DashMap::new(),
            locks: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(max_lifetime.max(Duration::from_secs(1)))
                .build(),
            max_lifetime,
        }
    }

    /// Checks a cookie value for `app` and `client` at `now`: from the cache
    /// when it has been seen, else by its HMAC. Revocation is checked either
    /// way.
    pub fn check(
        &self,
        keys: &TokenKeys,
        cookie: &str,
        app: &str,
        client: Client,
        now: SystemTime,
    ) -> Result<Valid, SessionReject> {
        let (token, cached) = match self.cache.get(cookie) {
            Some(t) => (t, true),
            None => {
                let t = Arc::new(keys.open(cookie)?);
                // Cache only what verified; the binding is checked per request.
                self.cache.insert(cookie.to_string(), t.clone());
                (t, false)
            }
        };
        token.check(app, client, now)?;
        if self.is_revoked(&token) {
            return Err(SessionReject::Revoked);
        }
        Ok(Valid { token, cached })
    }

    /// Signs a new session and caches it; returns the cookie value.
    pub fn issue(&self, keys: &TokenKeys, token: SessionToken) -> Result<String, TokenError> {
        let value = keys.sign(&token)?;
        self.cache.insert(value.clone(), Arc::new(token));
        Ok(value)
    }

    fn is_revoked(&self, token: &SessionToken) -> bool {
        if !self.revoked_sessions.is_empty()
            && self.revoked_sessions.contains_key(&token.session_id)
        {
            return true;
        }
        if !self.revoked_subjects.is_empty() {
            if let Some(at) = self.revoked_subjects.get(&token.subject) {
                return token.issued_at <= *at;
            }
        }
        false
    }

    /// Revokes one session, wherever its cookie is presented.
    pub fn revoke_session(&self, id: SessionId, now: SystemTime) {
        self.prune(now);
        self.revoked_sessions
            .insert(id, unix(now) + self.max_lifetime.as_secs());
    }

    /// Revokes every session of a subject issued up to now.
    pub fn revoke_subject(&self, subject: SubjectHash, now: SystemTime) {
        self.prune(now);
        self.revoked_subjects.insert(subject, unix(now));
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

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
