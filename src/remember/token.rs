//! The stateless session token in the `__Host-trustgate` cookie: a decision
//! (app, trust, platform, kind, subject hash, validity, session id) under
//! HMAC-SHA256. Any replica with a shared key honours it. Pure: keys, bytes
//! and `now` in, a token or a static reason out. Caching, revocation and
//! counting rejected cookies are left to the caller.
//!
//! Format, version 1: `base64url(payload) "." base64url(tag)`, no padding.
//! The tag is HMAC-SHA256 over a fixed context string and the payload:
//!
//! | bytes | field |
//! | --- | --- |
//! | 1 | version (1) |
//! | 8 | issued at, unix seconds, big-endian |
//! | 8 | expires at, unix seconds, big-endian |
//! | 16 | session id (random) |
//! | 16 | subject hash ([`SubjectHash`]) |
//! | 1 each | trust, platform, client kind |
//! | 1 + n | app name length, app name (UTF-8, 1 to 255 bytes) |
//!
//! The payload is readable by whoever holds the cookie; it is only signed.
//! It holds no raw subject for that reason.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::digest;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use http::{HeaderMap, HeaderValue};

use super::seal::{Sealer, Unsealed};
use crate::classify::{Client, ClientKind, Platform};
use crate::evidence::DeviceTrust;

/// The cookie's name; the `__Host-` prefix makes browsers require `Secure`,
/// `Path=/` and no `Domain`.
pub const COOKIE_NAME: &str = "__Host-trustgate";

/// The shortest key accepted, in bytes.
pub const MIN_KEY_LEN: usize = 32;

/// How far in the future `issued_at` may be, for clocks of replicas that
/// disagree a little.
pub const CLOCK_SKEW: Duration = Duration::from_secs(60);

const VERSION: u8 = 1;
const CONTEXT: &[u8] = b"trustgate session token\0";
const FIXED_LEN: usize = 1 + 8 + 8 + 16 + 16 + 3 + 1;
const MAX_APP_LEN: usize = 255;
const MAX_PAYLOAD_LEN: usize = FIXED_LEN + MAX_APP_LEN;

/// Why a cookie was not honoured, or a token could not be made. Messages
/// never hold the cookie or the keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a token of this format: wrong shape, length, base64 or fields.
    #[error("malformed session token")]
    Malformed,
    /// The tag does not match under any configured key: tampered or foreign.
    #[error("session token signature does not match any key")]
    BadMac,
    /// Signed, but by a format version this build does not read.
    #[error("unsupported session token version {0}")]
    UnsupportedVersion(u8),
    /// Past its expiry.
    #[error("session token expired")]
    Expired,
    /// Issued further in the future than clock skew explains.
    #[error("session token issued in the future")]
    NotYetValid,
    /// Issued for another app.
    #[error("session token belongs to another app")]
    WrongApp,
    /// Issued to a client that classified differently.
    #[error("session token belongs to another platform or client kind")]
    WrongClient,
    /// The app name is empty or longer than 255 bytes.
    #[error("app name must be 1 to 255 bytes")]
    BadAppName,
    /// The expiry is not after the issue time.
    #[error("session token lifetime must be longer than zero")]
    BadLifetime,
    /// The system's random source failed.
    #[error("random source failed")]
    Rng,
}

impl TokenError {
    /// The static label used in metrics (rejected cookies by reason) and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            TokenError::Malformed => "malformed",
            TokenError::BadMac => "bad_mac",
            TokenError::UnsupportedVersion(_) => "unsupported_version",
            TokenError::Expired => "expired",
            TokenError::NotYetValid => "not_yet_valid",
            TokenError::WrongApp => "wrong_app",
            TokenError::WrongClient => "wrong_client",
            TokenError::BadAppName => "bad_app_name",
            TokenError::BadLifetime => "bad_lifetime",
            TokenError::Rng => "rng",
        }
    }
}

/// Why a set of keys cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// No key at all.
    #[error("no session key configured")]
    NoKeys,
    /// A key shorter than [`MIN_KEY_LEN`] bytes.
    #[error("session key {index} is {len} bytes; at least 32 are required")]
    TooShort {
        /// The key's position in the list.
        index: usize,
        /// Its length in bytes.
        len: usize,
    },
}

impl KeyError {
    /// The static label used in logs.
    pub fn reason(&self) -> &'static str {
        match self {
            KeyError::NoKeys => "no_keys",
            KeyError::TooShort { .. } => "key_too_short",
        }
    }
}

/// A truncated SHA-256 of the subject, with a fixed prefix that keeps it
/// apart from other hashes: enough to revoke by subject and to tell sessions
/// apart, without putting the subject in the cookie.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SubjectHash(pub [u8; 16]);

impl SubjectHash {
    /// The hash as the gateway sends it to apps (`X-Trustgate-Subject`): the
    /// `Display` text. Built once per cached session, not per request.
    pub fn header_value(&self) -> HeaderValue {
        HeaderValue::try_from(self.to_string()).expect("hex digits are a valid header value")
    }

    /// The hashes a typed-in subject may have been keyed by at sign-in:
    /// as given (trimmed), and as an emailAddress NameID (also
    /// lowercased); one when they agree. Revocation tries each, since the
    /// NameID format is not known outside an assertion.
    pub fn keyings(subject: &str) -> Vec<SubjectHash> {
        use crate::evidence::assertion::subject_key;
        let plain = SubjectHash::of(&subject_key(subject, false));
        let email = SubjectHash::of(&subject_key(subject, true));
        if plain == email {
            vec![plain]
        } else {
            vec![plain, email]
        }
    }

    /// Hashes a subject (the assertion's NameID or UPN), exactly as given.
    pub fn of(subject: &str) -> Self {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(b"trustgate subject\0");
        ctx.update(subject.as_bytes());
        let mut out = [0; 16];
        out.copy_from_slice(&ctx.finish().as_ref()[..16]);
        SubjectHash(out)
    }
}

impl fmt::Display for SubjectHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for SubjectHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SubjectHash({self})")
    }
}

/// A random session id: the handle for revoking one session.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionId(pub [u8; 16]);

impl SessionId {
    /// A fresh id from the system's secure random source.
    pub fn random() -> Result<Self, TokenError> {
        let mut id = [0; 16];
        SystemRandom::new()
            .fill(&mut id)
            .map_err(|_| TokenError::Rng)?;
        Ok(SessionId(id))
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({self})")
    }
}

/// A decision worth remembering: what the session cookie carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionToken {
    /// The app the decision is for.
    pub app: String,
    /// Device trust when the session began.
    pub trust: DeviceTrust,
    /// The client the session is bound to.
    pub client: Client,
    /// Whose session it is.
    pub subject: SubjectHash,
    /// Unix seconds.
    pub issued_at: u64,
    /// Unix seconds; the token is void from this second on.
    pub expires_at: u64,
    /// For revoking this session alone.
    pub session_id: SessionId,
}

impl SessionToken {
    /// A new session for `subject` from `now` for `lifetime`, with a random
    /// session id.
    pub fn new(
        app: &str,
        trust: DeviceTrust,
        client: Client,
        subject: &str,
        now: SystemTime,
        lifetime: Duration,
    ) -> Result<Self, TokenError> {
        let issued_at = unix_secs(now);
        let token = SessionToken {
            app: app.to_owned(),
            trust,
            client,
            subject: SubjectHash::of(subject),
            issued_at,
            expires_at: issued_at.saturating_add(lifetime.as_secs()),
            session_id: SessionId::random()?,
        };
        token.well_formed()?;
        Ok(token)
    }

    /// Whether the token still holds for this app and client at `now`: what
    /// a decision-cache hit checks instead of the MAC.
    pub fn check(&self, app: &str, client: Client, now: SystemTime) -> Result<(), TokenError> {
        let now = unix_secs(now);
        if now >= self.expires_at {
            return Err(TokenError::Expired);
        }
        if self.issued_at > now.saturating_add(CLOCK_SKEW.as_secs()) {
            return Err(TokenError::NotYetValid);
        }
        if self.app != app {
            return Err(TokenError::WrongApp);
        }
        if self.client != client {
            return Err(TokenError::WrongClient);
        }
        Ok(())
    }

    /// Seconds left at `now`, for the cookie's `Max-Age`.
    pub fn remaining(&self, now: SystemTime) -> Duration {
        Duration::from_secs(self.expires_at.saturating_sub(unix_secs(now)))
    }

    fn well_formed(&self) -> Result<(), TokenError> {
        if self.app.is_empty() || self.app.len() > MAX_APP_LEN {
            return Err(TokenError::BadAppName);
        }
        if self.expires_at <= self.issued_at {
            return Err(TokenError::BadLifetime);
        }
        Ok(())
    }
}

/// The session keys: the first signs, any verifies (key rotation). A
/// session token is a value sealed by [`Sealer`] for its own context.
pub struct TokenKeys {
    sealer: Sealer,
    /// A fingerprint of the key set, so that a decision cached under other
    /// keys is known as such (see `Sessions::check`).
    generation: u64,
}

impl fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenKeys({} keys)", self.sealer.len())
    }
}

impl TokenKeys {
    /// Keys as raw bytes, the signing key first; each at least
    /// [`MIN_KEY_LEN`] bytes.
    pub fn new<I, K>(keys: I) -> Result<Self, KeyError>
    where
        I: IntoIterator<Item = K>,
        K: AsRef<[u8]>,
    {
        let mut out = Vec::new();
        for (index, key) in keys.into_iter().enumerate() {
            let key = key.as_ref();
            if key.len() < MIN_KEY_LEN {
                return Err(KeyError::TooShort {
                    index,
                    len: key.len(),
                });
            }
            out.push(key.to_vec());
        }
        if out.is_empty() {
            return Err(KeyError::NoKeys);
        }
        let generation = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            out.hash(&mut h);
            h.finish()
        };
        Ok(TokenKeys {
            sealer: Sealer::new(&out),
            generation,
        })
    }

    /// Which key set this is: equal for equal keys, in this process.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The cookie value for `token`, signed with the first key.
    pub fn sign(&self, token: &SessionToken) -> Result<String, TokenError> {
        token.well_formed()?;
        let mut payload = [0u8; MAX_PAYLOAD_LEN];
        let len = encode(token, &mut payload);
        Ok(self
            .sealer
            .seal(CONTEXT, &payload[..len])
            .expect("TokenKeys holds at least one key"))
    }

    /// Seals a raw payload, for tests of what `open` makes of odd ones.
    #[cfg(test)]
    fn sign_payload(&self, payload: &[u8]) -> String {
        self.sealer
            .seal(CONTEXT, payload)
            .expect("TokenKeys holds at least one key")
    }

    /// Verifies a cookie value: its format and tag under any key, then that it
    /// holds for `app` and `client` at `now`. Never panics on any input.
    pub fn verify(
        &self,
        cookie_value: &str,
        app: &str,
        client: Client,
        now: SystemTime,
    ) -> Result<SessionToken, TokenError> {
        let token = self.open(cookie_value)?;
        token.check(app, client, now)?;
        Ok(token)
    }

    /// The token in a cookie value whose tag matches a key, without checking
    /// validity or binding; `verify` is what requests use.
    pub fn open(&self, cookie_value: &str) -> Result<SessionToken, TokenError> {
        // Room for base64's decoding slack; the payload itself is on the
        // stack, bounded before any MAC is computed.
        let mut buf = [0u8; MAX_PAYLOAD_LEN + 3];
        let payload = self
            .sealer
            .open_into(CONTEXT, cookie_value, &mut buf)
            .map_err(|e| match e {
                Unsealed::Malformed => TokenError::Malformed,
                Unsealed::BadTag => TokenError::BadMac,
            })?;
        decode(payload)
    }
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

/// Writes the payload; `token` is well formed. Returns its length.
/// Platform and kind are written as their index in `ALL` (declaration
/// order); a golden test pins the bytes.
fn encode(token: &SessionToken, out: &mut [u8; MAX_PAYLOAD_LEN]) -> usize {
    out[0] = VERSION;
    out[1..9].copy_from_slice(&token.issued_at.to_be_bytes());
    out[9..17].copy_from_slice(&token.expires_at.to_be_bytes());
    out[17..33].copy_from_slice(&token.session_id.0);
    out[33..49].copy_from_slice(&token.subject.0);
    out[49] = trust_code(token.trust);
    out[50] = token.client.platform as u8;
    out[51] = token.client.kind as u8;
    let app = token.app.as_bytes();
    out[52] = app.len() as u8;
    out[FIXED_LEN..FIXED_LEN + app.len()].copy_from_slice(app);
    FIXED_LEN + app.len()
}

/// Reads a payload whose tag matched. Every field is still checked: a key
/// shared with a buggy or newer signer must not crash or confuse us.
fn decode(payload: &[u8]) -> Result<SessionToken, TokenError> {
    let &version = payload.first().ok_or(TokenError::Malformed)?;
    if version != VERSION {
        return Err(TokenError::UnsupportedVersion(version));
    }
    if payload.len() < FIXED_LEN {
        return Err(TokenError::Malformed);
    }
    let u64_at = |i: usize| {
        let mut b = [0; 8];
        b.copy_from_slice(&payload[i..i + 8]);
        u64::from_be_bytes(b)
    };
    let array_at = |i: usize| {
        let mut b = [0; 16];
        b.copy_from_slice(&payload[i..i + 16]);
        b
    };
    let app_len = usize::from(payload[52]);
    if payload.len() != FIXED_LEN + app_len {
        return Err(TokenError::Malformed);
    }
    let app = std::str::from_utf8(&payload[FIXED_LEN..])
        .map_err(|_| TokenError::Malformed)?
        .to_owned();
    let token = SessionToken {
        app,
        trust: trust_from(payload[49])?,
        client: Client {
            platform: *Platform::ALL
                .get(usize::from(payload[50]))
                .ok_or(TokenError::Malformed)?,
            kind: *ClientKind::ALL
                .get(usize::from(payload[51]))
                .ok_or(TokenError::Malformed)?,
        },
        subject: SubjectHash(array_at(33)),
        issued_at: u64_at(1),
        expires_at: u64_at(9),
        session_id: SessionId(array_at(17)),
    };
    token.well_formed().map_err(|_| TokenError::Malformed)?;
    Ok(token)
}

/// The `Set-Cookie` value that stores a session token for `max_age` in the
/// cookie `name` (see [`CookieNames`](super::CookieNames)).
pub fn set_cookie(name: &str, value: &str, max_age: Duration) -> String {
    format!(
        "{name}={value}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age={}",
        max_age.as_secs()
    )
}

/// Every value of the session cookie `name` in a request's `Cookie`
/// headers, in order. A client can send more than one; callers try each
/// and keep the first that verifies.
pub fn cookie_values<'a>(headers: &'a HeaderMap, name: &'a str) -> impl Iterator<Item = &'a str> {
    super::seal::cookies(headers, name)
}

fn trust_code(trust: DeviceTrust) -> u8 {
    match trust {
        DeviceTrust::Trusted => 0,
        DeviceTrust::NotTrusted => 1,
        DeviceTrust::Unknown => 2,
    }
}

fn trust_from(code: u8) -> Result<DeviceTrust, TokenError> {
    match code {
        0 => Ok(DeviceTrust::Trusted),
        1 => Ok(DeviceTrust::NotTrusted),
        2 => Ok(DeviceTrust::Unknown),
        _ => Err(TokenError::Malformed),
    }
}

#[cfg(test)]
mod tests;
