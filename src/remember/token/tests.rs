//! Session token tests: round trip, the pinned format, tampering, expiry,
//! binding, keys and rotation, cookies, and never panicking.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{HeaderValue, COOKIE};
use http::HeaderMap;
use proptest::prelude::*;

use super::*;
use aws_lc_rs::hmac;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

const KEY_A: [u8; 32] = [0xa1; 32];
const KEY_B: [u8; 32] = [0xb2; 32];
const T0: u64 = 1_700_000_000;

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn iphone() -> Client {
    Client {
        platform: Platform::Ios,
        kind: ClientKind::Browser,
    }
}

fn keys(list: &[&[u8]]) -> TokenKeys {
    TokenKeys::new(list.iter()).expect("keys are long enough")
}

fn token() -> SessionToken {
    SessionToken {
        app: "mail".to_owned(),
        trust: DeviceTrust::Trusted,
        client: iphone(),
        subject: SubjectHash::of("alice@example.com"),
        issued_at: T0,
        expires_at: T0 + 8 * 3600,
        session_id: SessionId([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]),
    }
}

fn b64(s: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(s).unwrap()
}

#[test]
fn round_trip() {
    let k = keys(&[&KEY_A]);
    let cookie = k.sign(&token()).unwrap();
    assert_eq!(
        k.verify(&cookie, "mail", iphone(), at(T0 + 60)),
        Ok(token())
    );
}

#[test]
fn every_field_survives_the_round_trip() {
    let k = keys(&[&KEY_A]);
    for trust in [
        DeviceTrust::Trusted,
        DeviceTrust::NotTrusted,
        DeviceTrust::Unknown,
    ] {
        for platform in Platform::ALL {
            for kind in ClientKind::ALL {
                let t = SessionToken {
                    trust,
                    client: Client { platform, kind },
                    app: "é".repeat(127),
                    ..token()
                };
                let cookie = k.sign(&t).unwrap();
                assert_eq!(k.open(&cookie), Ok(t));
            }
        }
    }
}

#[test]
fn the_format_is_pinned() {
    let k = keys(&[&KEY_A]);
    let cookie = k.sign(&token()).unwrap();
    let (payload, tag) = cookie.split_once('.').unwrap();
    let mut want = vec![1];
    want.extend_from_slice(&T0.to_be_bytes());
    want.extend_from_slice(&(T0 + 8 * 3600).to_be_bytes());
    want.extend_from_slice(&token().session_id.0);
    want.extend_from_slice(&SubjectHash::of("alice@example.com").0);
    // trusted, ios, browser, then the app name with its length.
    want.extend_from_slice(&[0, 0, 0, 4]);
    want.extend_from_slice(b"mail");
    assert_eq!(b64(payload), want);
    let mut signed = b"trustgate session token\0".to_vec();
    signed.extend_from_slice(&want);
    let expected_tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &KEY_A), &signed);
    assert_eq!(b64(tag), expected_tag.as_ref());
    assert!(!payload.contains('=') && !tag.contains('='));
}

#[test]
fn enum_codes_are_pinned() {
    // The wire codes are indexes in declaration order; reordering the enums
    // would void every session in flight.
    let platforms: Vec<&str> = Platform::ALL.iter().map(|p| p.as_str()).collect();
    assert_eq!(
        platforms,
        ["ios", "ipados", "android", "macos", "windows", "chromeos", "linux", "other"]
    );
    let kinds: Vec<&str> = ClientKind::ALL.iter().map(|k| k.as_str()).collect();
    assert_eq!(kinds, ["browser", "webview", "native"]);
    assert_eq!(Platform::Other as u8, 7);
    assert_eq!(ClientKind::Native as u8, 2);
}

#[test]
fn subject_hash_hides_the_subject_and_tells_subjects_apart() {
    let a = SubjectHash::of("alice@example.com");
    assert_eq!(a, SubjectHash::of("alice@example.com"));
    assert_ne!(a, SubjectHash::of("Alice@example.com"));
    assert_ne!(a, SubjectHash::of("bob@example.com"));
    assert_eq!(a.to_string().len(), 32);
    let cookie = keys(&[&KEY_A]).sign(&token()).unwrap();
    let payload = b64(cookie.split_once('.').unwrap().0);
    assert!(!payload.windows(5).any(|w| w == b"alice"));
}

#[test]
fn subject_header_value_is_the_displayed_hash() {
    for subject in ["alice@example.com", "", "bob"] {
        let h = SubjectHash::of(subject);
        assert_eq!(h.header_value().to_str().unwrap(), h.to_string());
    }
    let all = SubjectHash([
        0x00, 0x09, 0x0a, 0x0f, 0x10, 0x7f, 0x80, 0xa5, 0xf0, 0xff, 1, 2, 3, 4, 5, 6,
    ]);
    assert_eq!(
        all.header_value().to_str().unwrap(),
        "00090a0f107f80a5f0ff010203040506"
    );
}

#[test]
fn changing_any_character_voids_the_cookie() {
    let k = keys(&[&KEY_A]);
    let cookie = k.sign(&token()).unwrap();
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=";
    for i in 0..cookie.len() {
        for c in alphabet.chars() {
            if cookie.as_bytes()[i] == c as u8 {
                continue;
            }
            let mut tampered = cookie.clone().into_bytes();
            tampered[i] = c as u8;
            let tampered = String::from_utf8(tampered).unwrap();
            let got = k.verify(&tampered, "mail", iphone(), at(T0 + 60));
            assert!(
                matches!(got, Err(TokenError::Malformed | TokenError::BadMac)),
                "position {i} -> {c}: {got:?}"
            );
        }
    }
}

#[test]
fn flipping_any_payload_bit_is_a_bad_mac() {
    let k = keys(&[&KEY_A]);
    let cookie = k.sign(&token()).unwrap();
    let (payload, tag) = cookie.split_once('.').unwrap();
    let payload = b64(payload);
    for i in 0..payload.len() {
        for bit in 0..8 {
            let mut p = payload.clone();
            p[i] ^= 1 << bit;
            let forged = format!("{}.{tag}", URL_SAFE_NO_PAD.encode(&p));
            assert_eq!(
                k.open(&forged),
                Err(TokenError::BadMac),
                "byte {i} bit {bit}"
            );
        }
    }
}

#[test]
fn malformed_shapes() {
    let k = keys(&[&KEY_A]);
    let cookie = k.sign(&token()).unwrap();
    let (payload, tag) = cookie.split_once('.').unwrap();
    let long = "A".repeat(5000);
    let cases = [
        String::new(),
        ".".to_owned(),
        payload.to_owned(),
        format!("{payload}."),
        format!(".{tag}"),
        format!("{payload}.{}", &tag[..tag.len() - 1]),
        format!("{payload}.{tag}A"),
        format!("{payload}=.{tag}"),
        format!("{payload}.{tag}.{tag}"),
        format!("{payload}.+{}", &tag[1..]),
        format!("{long}.{tag}"),
        "not a token at all".to_owned(),
    ];
    for case in cases {
        let got = k.open(&case);
        assert!(
            matches!(got, Err(TokenError::Malformed | TokenError::BadMac)),
            "{case:?}: {got:?}"
        );
    }
    assert_eq!(k.open(""), Err(TokenError::Malformed));
}

#[test]
fn expiry_is_exact_to_the_second() {
    let k = keys(&[&KEY_A]);
    let cookie = k.sign(&token()).unwrap();
    let end = T0 + 8 * 3600;
    assert!(k.verify(&cookie, "mail", iphone(), at(end - 1)).is_ok());
    assert_eq!(
        k.verify(&cookie, "mail", iphone(), at(end)),
        Err(TokenError::Expired)
    );
    assert_eq!(
        k.verify(&cookie, "mail", iphone(), at(end + 86_400))
            .unwrap_err()
            .reason(),
        "expired"
    );
}

#[test]
fn a_token_from_the_future_beyond_clock_skew_is_refused() {
    let k = keys(&[&KEY_A]);
    let cookie = k.sign(&token()).unwrap();
    assert!(k.verify(&cookie, "mail", iphone(), at(T0 - 60)).is_ok());
    assert_eq!(
        k.verify(&cookie, "mail", iphone(), at(T0 - 61)),
        Err(TokenError::NotYetValid)
    );
}

#[test]
fn a_token_is_bound_to_its_app_and_client() {
    let k = keys(&[&KEY_A]);
    let cookie = k.sign(&token()).unwrap();
    let now = at(T0 + 60);
    assert_eq!(
        k.verify(&cookie, "crm", iphone(), now),
        Err(TokenError::WrongApp)
    );
    assert_eq!(
        k.verify(&cookie, "Mail", iphone(), now)
            .unwrap_err()
            .reason(),
        "wrong_app"
    );
    let ipad_desktop = Client {
        platform: Platform::Macos,
        kind: ClientKind::Browser,
    };
    assert_eq!(
        k.verify(&cookie, "mail", ipad_desktop, now),
        Err(TokenError::WrongClient)
    );
    let webview = Client {
        platform: Platform::Ios,
        kind: ClientKind::Webview,
    };
    assert_eq!(
        k.verify(&cookie, "mail", webview, now)
            .unwrap_err()
            .reason(),
        "wrong_client"
    );
}

#[test]
fn a_foreign_key_is_a_bad_mac() {
    let cookie = keys(&[&KEY_B]).sign(&token()).unwrap();
    assert_eq!(
        keys(&[&KEY_A]).verify(&cookie, "mail", iphone(), at(T0 + 60)),
        Err(TokenError::BadMac)
    );
}

#[test]
fn rotation_signs_with_the_first_key_and_accepts_any() {
    let old = keys(&[&KEY_A]);
    let rotating = keys(&[&KEY_B, &KEY_A]);
    let new = keys(&[&KEY_B]);
    let now = at(T0 + 60);

    let from_old = old.sign(&token()).unwrap();
    assert!(rotating.verify(&from_old, "mail", iphone(), now).is_ok());
    assert_eq!(
        new.verify(&from_old, "mail", iphone(), now),
        Err(TokenError::BadMac)
    );

    let from_rotating = rotating.sign(&token()).unwrap();
    assert_eq!(from_rotating, new.sign(&token()).unwrap());
    assert!(new.verify(&from_rotating, "mail", iphone(), now).is_ok());
    assert_eq!(
        old.verify(&from_rotating, "mail", iphone(), now),
        Err(TokenError::BadMac)
    );
}

#[test]
fn keys_must_exist_and_be_long_enough() {
    assert_eq!(
        TokenKeys::new(Vec::<Vec<u8>>::new()).unwrap_err(),
        KeyError::NoKeys
    );
    let err = TokenKeys::new([&KEY_A[..], &[0u8; 31][..]]).unwrap_err();
    assert_eq!(err, KeyError::TooShort { index: 1, len: 31 });
    assert_eq!(
        err.to_string(),
        "session key 1 is 31 bytes; at least 32 are required"
    );
    assert_eq!(err.reason(), "key_too_short");
    assert!(TokenKeys::new([[0u8; 32]]).is_ok());
    let debug = format!("{:?}", keys(&[&KEY_A, &KEY_B]));
    assert_eq!(debug, "TokenKeys(2 keys)");
}

#[test]
fn a_newer_version_signed_with_our_key_is_reported_as_such() {
    let k = keys(&[&KEY_A]);
    let mut payload = b64(k.sign(&token()).unwrap().split_once('.').unwrap().0);
    payload[0] = 2;
    let cookie = k.sign_payload(&payload);
    assert_eq!(k.open(&cookie), Err(TokenError::UnsupportedVersion(2)));
    assert_eq!(
        TokenError::UnsupportedVersion(2).reason(),
        "unsupported_version"
    );
}

#[test]
fn signed_but_inconsistent_payloads_are_malformed() {
    let k = keys(&[&KEY_A]);
    let good = b64(k.sign(&token()).unwrap().split_once('.').unwrap().0);
    let mut cases = Vec::new();
    let mut p = good.clone();
    p[49] = 3; // no such trust
    cases.push(p);
    let mut p = good.clone();
    p[50] = 8; // no such platform
    cases.push(p);
    let mut p = good.clone();
    p[51] = 3; // no such kind
    cases.push(p);
    let mut p = good.clone();
    p[52] = 5; // app length past the end
    cases.push(p);
    let mut p = good.clone();
    p.truncate(20);
    cases.push(p);
    let mut p = good.clone();
    p[9..17].copy_from_slice(&T0.to_be_bytes()); // expires when issued
    cases.push(p);
    let mut p = good.clone();
    p[53] = 0xff; // not UTF-8
    cases.push(p);
    let mut p = good;
    p[52] = 0;
    p.truncate(53); // empty app name
    cases.push(p);
    for p in cases {
        assert_eq!(
            k.open(&k.sign_payload(&p)),
            Err(TokenError::Malformed),
            "{p:?}"
        );
    }
}

#[test]
fn new_tokens_get_random_ids_and_their_lifetime() {
    let a = SessionToken::new(
        "mail",
        DeviceTrust::Trusted,
        iphone(),
        "alice@example.com",
        at(T0),
        Duration::from_secs(3600),
    )
    .unwrap();
    let b = SessionToken::new(
        "mail",
        DeviceTrust::Trusted,
        iphone(),
        "alice@example.com",
        at(T0),
        Duration::from_secs(3600),
    )
    .unwrap();
    assert_ne!(a.session_id, b.session_id);
    assert_eq!((a.issued_at, a.expires_at), (T0, T0 + 3600));
    assert_eq!(a.subject, SubjectHash::of("alice@example.com"));
    assert_eq!(a.remaining(at(T0 + 600)), Duration::from_secs(3000));
    assert_eq!(a.remaining(at(T0 + 7200)), Duration::ZERO);
}

#[test]
fn tokens_that_cannot_be_written_are_refused() {
    let new = |app: &str, lifetime| {
        SessionToken::new("x", DeviceTrust::Trusted, iphone(), "s", at(T0), lifetime).and_then(
            |t| {
                keys(&[&KEY_A]).sign(&SessionToken {
                    app: app.to_owned(),
                    ..t
                })
            },
        )
    };
    assert_eq!(
        new("", Duration::from_secs(60)),
        Err(TokenError::BadAppName)
    );
    assert_eq!(
        new(&"a".repeat(256), Duration::from_secs(60)),
        Err(TokenError::BadAppName)
    );
    assert!(new(&"a".repeat(255), Duration::from_secs(60)).is_ok());
    assert_eq!(
        SessionToken::new(
            "mail",
            DeviceTrust::Trusted,
            iphone(),
            "s",
            at(T0),
            Duration::ZERO
        ),
        Err(TokenError::BadLifetime)
    );
}

#[test]
fn the_longest_token_fits_a_cookie() {
    let t = SessionToken {
        app: "a".repeat(255),
        ..token()
    };
    let cookie = keys(&[&KEY_A]).sign(&t).unwrap();
    assert!(set_cookie(COOKIE_NAME, &cookie, Duration::from_secs(3600)).len() < 600);
    assert!(cookie
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')));
}

#[test]
fn set_cookie_carries_the_required_attributes() {
    assert_eq!(
        set_cookie(COOKIE_NAME, "abc.def", Duration::from_secs(28_800)),
        "__Host-trustgate=abc.def; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=28800"
    );
}

#[test]
fn cookie_values_finds_every_session_cookie() {
    let mut headers = HeaderMap::new();
    headers.append(
        COOKIE,
        HeaderValue::from_static("a=1; __Host-trustgate=first.tag;b=2"),
    );
    headers.append(
        COOKIE,
        HeaderValue::from_static("__Host-trustgate=second.tag"),
    );
    headers.append(
        COOKIE,
        HeaderValue::from_static(
            "trustgate=not.ours; __host-trustgate=nor.this; __Host-trustgate.mail=mail.tag",
        ),
    );
    let found: Vec<&str> = cookie_values(&headers, COOKIE_NAME).collect();
    assert_eq!(found, ["first.tag", "second.tag"]);
    assert_eq!(cookie_values(&HeaderMap::new(), COOKIE_NAME).count(), 0);
    // Another app's cookie on a shared host is another name.
    let mail: Vec<&str> = cookie_values(&headers, "__Host-trustgate.mail").collect();
    assert_eq!(mail, ["mail.tag"]);
}

proptest! {
    #[test]
    fn any_string_is_refused_without_panic(s in ".{0,600}") {
        let k = keys(&[&KEY_A]);
        prop_assert!(k.verify(&s, "mail", iphone(), at(T0)).is_err());
    }

    #[test]
    fn any_token_shaped_string_is_refused_without_panic(
        payload in "[A-Za-z0-9_-]{0,420}",
        tag in "[A-Za-z0-9_-]{40,46}",
    ) {
        let k = keys(&[&KEY_A]);
        let got = k.open(&format!("{payload}.{tag}"));
        prop_assert!(matches!(got, Err(TokenError::Malformed | TokenError::BadMac)));
    }

    /// Whatever a key holder signs, reading it never panics.
    #[test]
    fn any_signed_payload_is_read_without_panic(payload in proptest::collection::vec(any::<u8>(), 0..320)) {
        let k = keys(&[&KEY_A]);
        let cookie = k.sign_payload(&payload);
        let _ = k.verify(&cookie, "mail", iphone(), at(T0));
    }

    #[test]
    fn any_token_round_trips(
        app in "[a-z0-9._-]{1,64}",
        issued in 0u64..4_000_000_000,
        lifetime in 1u64..10_000_000,
        id in any::<[u8; 16]>(),
        subject in ".{0,40}",
        p in 0usize..8,
        kd in 0usize..3,
        tr in 0u8..3,
    ) {
        let t = SessionToken {
            app,
            trust: trust_from(tr).unwrap(),
            client: Client { platform: Platform::ALL[p], kind: ClientKind::ALL[kd] },
            subject: SubjectHash::of(&subject),
            issued_at: issued,
            expires_at: issued + lifetime,
            session_id: SessionId(id),
        };
        let k = keys(&[&KEY_B, &KEY_A]);
        let cookie = k.sign(&t).unwrap();
        prop_assert_eq!(k.verify(&cookie, &t.app, t.client, at(issued)), Ok(t));
    }
}

#[test]
fn keys_and_tokens_cross_threads() {
    fn send_sync<T: Send + Sync + 'static>() {}
    send_sync::<TokenKeys>();
    send_sync::<SessionToken>();
    send_sync::<TokenError>();
}
