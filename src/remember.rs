//! What trustgate remembers after a decision so that later requests need no
//! assertion: the signed session token (`token`), the decision cache,
//! revocations and lock state (`sessions`), enrollment detours (`detour`),
//! and the small signed cookies they use (`seal`).

pub mod token;

pub mod sessions;

pub mod detour;

pub mod seal;

pub mod locks;

pub mod shared;

/// The names of one app's session and detour cookies. An app alone on its
/// hosts uses `__Host-trustgate` and `__Host-trustgate-detour`; apps that
/// share a host with another enforced app each get their own
/// (`__Host-trustgate.APP`, `__Host-trustgate-detour.APP`), since every
/// `__Host-` cookie has `Path=/` and two apps under one name would evict
/// each other's session. `.` cannot occur in an app name, so no name of
/// one app is another's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieNames {
    /// The session cookie.
    pub session: String,
    /// The enrollment detour cookie.
    pub detour: String,
}

impl CookieNames {
    /// The names for app `name`; `shared` when another enforced app serves
    /// one of its hosts.
    pub fn for_app(name: &str, shared: bool) -> CookieNames {
        if shared {
            CookieNames {
                session: format!("{}.{name}", token::COOKIE_NAME),
                detour: format!("{}.{name}", detour::COOKIE_NAME),
            }
        } else {
            CookieNames {
                session: token::COOKIE_NAME.to_string(),
                detour: detour::COOKIE_NAME.to_string(),
            }
        }
    }
}

impl Default for CookieNames {
    fn default() -> Self {
        CookieNames::for_app("", false)
    }
}
