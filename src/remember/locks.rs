//! The lock cookie: the sealed subject hash of a user a policy refused, so
//! that `/.trustgate/apps` can show which apps are locked on this device
//! after the refusal, when there is no session to say who the user is.

use std::time::Duration;

use http::HeaderMap;

use super::seal::{cookie, Sealer};
use super::token::SubjectHash;

/// The lock cookie's name.
pub const COOKIE: &str = "__Host-trustgate-locks";
const CONTEXT: &[u8] = b"trustgate locks v1\0";

/// The `Set-Cookie` value that remembers `subject` for `max_age`; `None`
/// when the sealer cannot seal (no randomness).
pub fn set_cookie(sealer: &Sealer, subject: &SubjectHash, max_age: Duration) -> Option<String> {
    let v = sealer.seal(CONTEXT, &subject.0)?;
    Some(format!(
        "{COOKIE}={v}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age={}",
        max_age.as_secs()
    ))
}

/// The subject a request's lock cookie names, when it is one this gateway
/// sealed.
pub fn subject(sealer: &Sealer, headers: &HeaderMap) -> Option<SubjectHash> {
    let payload = sealer.open(CONTEXT, cookie(headers, COOKIE)?)?;
    <[u8; 16]>::try_from(payload.as_slice())
        .ok()
        .map(SubjectHash)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(set_cookie: &str) -> HeaderMap {
        let pair = set_cookie.split(';').next().unwrap();
        let mut h = HeaderMap::new();
        h.insert(http::header::COOKIE, pair.parse().unwrap());
        h
    }

    #[test]
    fn a_sealed_subject_opens_to_itself_and_only_with_its_keys() {
        let sealer = Sealer::new(&[[7u8; 32]]);
        let s = SubjectHash::of("alice@example.com");
        let c = set_cookie(&sealer, &s, Duration::from_secs(60)).unwrap();
        assert!(c.contains("Max-Age=60") && c.contains("HttpOnly") && c.contains("Secure"));
        assert_eq!(subject(&sealer, &headers(&c)), Some(s));
        assert_eq!(subject(&Sealer::new(&[[8u8; 32]]), &headers(&c)), None);
    }

    #[test]
    fn a_forged_or_missing_lock_cookie_names_no_one() {
        let sealer = Sealer::new(&[[7u8; 32]]);
        assert_eq!(subject(&sealer, &HeaderMap::new()), None);
        assert_eq!(subject(&sealer, &headers(&format!("{COOKIE}=AAAA"))), None);
        // A value sealed for another purpose (a detour) is not a lock.
        let other = sealer.seal(b"trustgate detour v1\0", &[0u8; 16]).unwrap();
        assert_eq!(
            subject(&sealer, &headers(&format!("{COOKIE}={other}"))),
            None
        );
    }
}
