//! Enrollment detours: when policy sends a device to enroll, the gateway
//! remembers where the user was going. Within the window a trusted sign-in
//! resumes there; after it, the user gets a clear page instead of the dead
//! sign-in that Okta's native-app flow leaves behind.
//!
//! The detour itself lives in a moka cache with TTL = the longest window.
//! The browser holds a sealed cookie with the detour id, app and start time,
//! so that an expired detour can be told apart from a foreign cookie, even
//! on another replica or after the cache entry is gone.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use moka::sync::Cache;

use super::seal::Sealer;
use super::token::SubjectHash;

/// The detour cookie's name for an app alone on its hosts; see
/// [`CookieNames`](super::CookieNames).
pub const COOKIE_NAME: &str = "__Host-trustgate-detour";
const CONTEXT: &[u8] = b"trustgate detour v2\0";

/// One pending detour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detour {
    /// Random id, hex.
    pub id: String,
    /// The app the user was signing in to.
    pub app: String,
    /// Whose sign-in it was: only the same subject's sign-in resumes it.
    pub subject: SubjectHash,
    /// Where the user was going: RelayState, wctx or the requested URL.
    pub target: Option<String>,
    /// The platform that was sent to enroll.
    pub platform: &'static str,
    /// When the detour began (unix seconds).
    pub started: u64,
}

/// What a returning detour cookie means now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Return {
    /// Within the window; the detour as recorded here, if this replica has it.
    Alive(Option<Arc<Detour>>),
    /// The window has passed.
    Expired {
        /// The app of the detour.
        app: String,
    },
    /// Another subject's detour (left in this browser, or planted: the
    /// cookie is `SameSite=None`): it must not lend its target, and goes.
    Foreign,
}

/// Pending detours.
pub struct Detours {
    cache: Cache<String, Arc<Detour>>,
}

impl Detours {
    /// A store whose entries live for `max_window`; each app checks its own
    /// window on return.
    pub fn new(max_window: Duration) -> Detours {
        Detours {
            cache: Cache::builder()
                .max_capacity(1_000_000)
                .time_to_live(max_window.max(Duration::from_secs(1)))
                .build(),
        }
    }

    /// Records a detour and returns its sealed cookie value.
    pub fn start(
        &self,
        sealer: &Sealer,
        app: &str,
        subject: SubjectHash,
        target: Option<String>,
        platform: &'static str,
        now: SystemTime,
    ) -> Option<(Arc<Detour>, String)> {
        let mut id = [0u8; 16];
        aws_lc_rs::rand::SecureRandom::fill(&aws_lc_rs::rand::SystemRandom::new(), &mut id).ok()?;
        let id = hex::encode(id);
        let started = unix(now);
        let detour = Arc::new(Detour {
            id: id.clone(),
            app: app.to_string(),
            subject,
            target,
            platform,
            started,
        });
        let payload = format!("{id}\n{started}\n{subject}\n{app}");
        let cookie = sealer.seal(CONTEXT, payload.as_bytes())?;
        self.cache.insert(id, detour.clone());
        Some((detour, cookie))
    }

    /// Reads a detour cookie: `None` when it is not ours or not for `app`;
    /// [`Return::Foreign`] when `subject` is given (a verified sign-in) and
    /// the detour began with another subject's.
    pub fn check(
        &self,
        sealer: &Sealer,
        cookie: &str,
        app: &str,
        subject: Option<&SubjectHash>,
        window: Duration,
        now: SystemTime,
    ) -> Option<Return> {
        let payload = sealer.open(CONTEXT, cookie)?;
        let text = std::str::from_utf8(&payload).ok()?;
        let mut parts = text.splitn(4, '\n');
        let (id, started, cookie_subject, cookie_app) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let started: u64 = started.parse().ok()?;
        if cookie_app != app {
            return None;
        }
        if subject.is_some_and(|s| s.to_string() != cookie_subject) {
            return Some(Return::Foreign);
        }
        if unix(now) >= started.saturating_add(window.as_secs()) {
            self.cache.invalidate(id);
            return Some(Return::Expired {
                app: cookie_app.to_string(),
            });
        }
        Some(Return::Alive(self.cache.get(id)))
    }

    /// Forgets a detour once it has resumed.
    pub fn finish(&self, id: &str) {
        self.cache.invalidate(id);
    }
}

/// The `Set-Cookie` value for a detour cookie named `name`; it outlives the
/// window so that a late return can still be recognised. `SameSite=None`,
/// because the return is the IdP's cross-site POST to the ACS URL, on which
/// browsers drop `Lax` cookies.
pub fn set_cookie(name: &str, value: &str) -> String {
    format!("{name}={value}; Path=/; Secure; HttpOnly; SameSite=None; Max-Age=86400")
}

/// The `Set-Cookie` value that removes the detour cookie named `name`.
pub fn clear_cookie(name: &str) -> String {
    format!("{name}=; Path=/; Secure; HttpOnly; SameSite=None; Max-Age=0")
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
