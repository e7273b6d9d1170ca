//! The one sealing primitive every gateway cookie uses (the session token,
//! the enrollment detour, the lock list), under the session keys:
//! `base64url(payload) "." base64url(HMAC-SHA256(context || payload))`. The
//! first key seals, any key opens (rotation). A different context per
//! cookie kind keeps one kind from being replayed as another.

use aws_lc_rs::hmac;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

/// The largest payload [`Sealer::open`] returns.
const MAX_PAYLOAD: usize = 1024;
/// HMAC-SHA256's tag, and its length in unpadded base64.
const TAG_LEN: usize = 32;
const TAG_B64: usize = (TAG_LEN * 4).div_ceil(3);

/// Why a sealed value did not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsealed {
    /// Not two base64url parts of the expected sizes.
    Malformed,
    /// Well formed, but no key made its tag.
    BadTag,
}

/// Seals and opens small signed values.
pub struct Sealer {
    keys: Vec<hmac::Key>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sealer({} keys)", self.keys.len())
    }
}

impl Sealer {
    /// A sealer over the session keys (their lengths are config's concern).
    pub fn new<K: AsRef<[u8]>>(keys: &[K]) -> Sealer {
        Sealer {
            keys: keys
                .iter()
                .map(|k| hmac::Key::new(hmac::HMAC_SHA256, k.as_ref()))
                .collect(),
        }
    }

    /// The number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there is no key (nothing can be sealed or opened).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The sealed form of `payload` for `context`; `None` without a key.
    pub fn seal(&self, context: &[u8], payload: &[u8]) -> Option<String> {
        // What `open` would refuse is a bug in the caller.
        debug_assert!(payload.len() <= MAX_PAYLOAD, "sealed payload over 1 KiB");
        let key = self.keys.first()?;
        let mut ctx = hmac::Context::with_key(key);
        ctx.update(context);
        ctx.update(payload);
        let mut out = String::with_capacity((payload.len() * 4).div_ceil(3) + 1 + TAG_B64);
        URL_SAFE_NO_PAD.encode_string(payload, &mut out);
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(ctx.sign().as_ref(), &mut out);
        Some(out)
    }

    /// The payload of a value sealed for `context` under any key, decoded
    /// into `buf`, which bounds it: a payload longer than `buf.len() - 3`
    /// bytes (base64's decoding slack) is refused as malformed, before any
    /// MAC is computed. Tags are compared in constant time.
    pub fn open_into<'b>(
        &self,
        context: &[u8],
        sealed: &str,
        buf: &'b mut [u8],
    ) -> Result<&'b [u8], Unsealed> {
        let (payload_b64, tag_b64) = sealed.split_once('.').ok_or(Unsealed::Malformed)?;
        let max_payload = buf.len().saturating_sub(3);
        if payload_b64.len() > (max_payload * 4).div_ceil(3) || tag_b64.len() != TAG_B64 {
            return Err(Unsealed::Malformed);
        }
        let len = URL_SAFE_NO_PAD
            .decode_slice(payload_b64, buf)
            .map_err(|_| Unsealed::Malformed)?;
        let payload = &buf[..len];
        let mut tag = [0u8; TAG_LEN + 3];
        let tag_len = URL_SAFE_NO_PAD
            .decode_slice(tag_b64, &mut tag)
            .map_err(|_| Unsealed::Malformed)?;
        let tag = &tag[..tag_len];
        let opens = self.keys.iter().any(|key| {
            let mut ctx = hmac::Context::with_key(key);
            ctx.update(context);
            ctx.update(payload);
            aws_lc_rs::constant_time::verify_slices_are_equal(ctx.sign().as_ref(), tag).is_ok()
        });
        if opens {
            Ok(payload)
        } else {
            Err(Unsealed::BadTag)
        }
    }

    /// The payload of a value sealed for `context` under any key, at most
    /// 1 KiB.
    pub fn open(&self, context: &[u8], sealed: &str) -> Option<Vec<u8>> {
        let mut buf = [0u8; MAX_PAYLOAD + 3];
        self.open_into(context, sealed, &mut buf)
            .ok()
            .map(<[u8]>::to_vec)
    }
}

/// Every value of cookie `name` in a request's `Cookie` headers, in order.
/// `name` holds no `=` (no cookie name does), so "starts with `name=`" is
/// the same as "the part before the first `=` is `name`", without searching
/// every pair for its `=`. A line with bytes that are not text (obs-text in
/// another cookie) is still read; a value that is not UTF-8 is skipped.
pub fn cookies<'a>(
    headers: &'a http::HeaderMap,
    name: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    debug_assert!(!name.contains('='));
    // Pairs are split as bytes and only a matching value is checked as
    // text: validating the whole line first cost more than the rest of a
    // cached session check.
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .flat_map(|line| pairs(line.as_bytes()))
        .filter_map(move |pair| {
            let value = pair
                .trim_ascii()
                .strip_prefix(name.as_bytes())?
                .strip_prefix(b"=")?;
            std::str::from_utf8(value).ok()
        })
}

/// The `;`-separated pairs of one `Cookie` line, found with `memchr`.
fn pairs(line: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(line);
    std::iter::from_fn(move || {
        let r = rest?;
        Some(match memchr::memchr(b';', r) {
            Some(i) => {
                rest = Some(&r[i + 1..]);
                &r[..i]
            }
            None => {
                rest = None;
                r
            }
        })
    })
}

/// The first value of cookie `name` in a request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a http::HeaderMap, name: &'a str) -> Option<&'a str> {
    cookies(headers, name).next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rotation() {
        let old = Sealer::new(&[[1u8; 32]]);
        let new = Sealer::new(&[[2u8; 32], [1u8; 32]]);
        let sealed = old.seal(b"ctx", b"payload").unwrap();
        assert_eq!(new.open(b"ctx", &sealed).unwrap(), b"payload");
        assert!(Sealer::new(&[[2u8; 32]]).open(b"ctx", &sealed).is_none());
    }

    #[test]
    fn context_and_tampering_matter() {
        let s = Sealer::new(&[[1u8; 32]]);
        let sealed = s.seal(b"detour", b"abc").unwrap();
        assert!(s.open(b"locks", &sealed).is_none());
        let mut bytes = sealed.into_bytes();
        bytes[0] ^= 1;
        assert!(s
            .open(b"detour", &String::from_utf8_lossy(&bytes))
            .is_none());
        for junk in ["", ".", "a.b", "....", "%%%.%%%"] {
            assert!(s.open(b"detour", junk).is_none());
        }
    }

    #[test]
    fn cookie_is_found_by_exact_name() {
        let mut h = http::HeaderMap::new();
        h.append("cookie", "a=1; __Host-x-detour=2".parse().unwrap());
        h.append("cookie", "__Host-x=3".parse().unwrap());
        assert_eq!(cookie(&h, "__Host-x"), Some("3"));
        assert_eq!(cookie(&h, "__Host-x-detour"), Some("2"));
        assert_eq!(cookie(&h, "b"), None);
        // A name is matched whole, not as a prefix of a longer name or value.
        let mut h = http::HeaderMap::new();
        h.append(
            "cookie",
            "__Host-xy=1; __Host-x==2; a=__Host-x=3".parse().unwrap(),
        );
        assert_eq!(cookies(&h, "__Host-x").collect::<Vec<_>>(), ["=2"]);
        assert_eq!(cookie(&h, "a"), Some("__Host-x=3"));
        assert_eq!(cookie(&h, "__Host-xy"), Some("1"));
    }

    #[test]
    fn cookie_lines_split_on_every_semicolon() {
        let mut h = http::HeaderMap::new();
        h.append("cookie", ";; x=1 ;x=2;\tx=3;x=;x".parse().unwrap());
        assert_eq!(cookies(&h, "x").collect::<Vec<_>>(), ["1", "2", "3", ""]);
        // Another cookie's bytes that are not text do not hide ours; a value
        // that is not text is no value.
        let mut h = http::HeaderMap::new();
        h.append(
            "cookie",
            http::HeaderValue::from_bytes(b"pref=caf\xe9; x=4; x=\xff").unwrap(),
        );
        assert_eq!(cookies(&h, "x").collect::<Vec<_>>(), ["4"]);
    }

    /// Pieces of cookie lines: names near `x`, `=`, values, white space.
    const PAIR: &str = "[ \t]{0,2}(x|xx|y)?=?[a-z0-9=]{0,4}[ \t]{0,2}";

    /// The old reading of one line: as text, or not at all.
    fn by_str<'a>(line: &'a http::HeaderValue, name: &str) -> Vec<&'a str> {
        let Ok(line) = line.to_str() else {
            return Vec::new();
        };
        line.split(';')
            .filter_map(|p| p.trim().strip_prefix(name)?.strip_prefix('='))
            .collect()
    }

    proptest::proptest! {
        /// The byte splitter reads every text line as the plain string
        /// splitter does.
        #[test]
        fn cookie_split_matches_str_split(parts in proptest::collection::vec(PAIR, 0..6)) {
            let line = parts.join(";");
            let Ok(value) = http::HeaderValue::from_str(&line) else { return Ok(()) };
            let mut h = http::HeaderMap::new();
            h.append("cookie", value);
            let got: Vec<&str> = cookies(&h, "x").collect();
            proptest::prop_assert_eq!(got, by_str(&h["cookie"], "x"));
        }

        /// Any header bytes: a text line reads as before; in a line with
        /// other bytes, exactly the values that are UTF-8 are found.
        #[test]
        fn cookie_split_on_any_bytes(line in proptest::collection::vec(
            proptest::sample::select(vec![b';', b'=', b'x', b' ', b'a', 0xc3, 0xa9, 0xff]),
            0..24,
        )) {
            let Ok(value) = http::HeaderValue::from_bytes(&line) else { return Ok(()) };
            let mut h = http::HeaderMap::new();
            h.append("cookie", value);
            let got: Vec<&str> = cookies(&h, "x").collect();
            if h["cookie"].to_str().is_ok() {
                proptest::prop_assert_eq!(got, by_str(&h["cookie"], "x"));
            } else {
                let want: Vec<&str> = line
                    .split(|&b| b == b';')
                    .filter_map(|p| std::str::from_utf8(p.trim_ascii().strip_prefix(b"x=")?).ok())
                    .collect();
                proptest::prop_assert_eq!(got, want);
            }
        }
    }
}
