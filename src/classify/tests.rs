//! Table tests with real User-Agent strings, header rules and a fuzz check.

use http::header::{HeaderValue, USER_AGENT};
use http::HeaderMap;
use proptest::prelude::*;

use super::*;

use ClientKind::{Browser, Native, Webview};
use Platform::{Android, Chromeos, Ios, Ipados, Linux, Macos, Other, Windows};

/// Real User-Agents as the clients send them. Where a row is the shape a kind
/// of app sends rather than one captured value, its comment says "-style".
#[rustfmt::skip]
const TABLE: &[(&str, Platform, ClientKind)] = &[
    // iPhone and iPod browsers.
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1", Ios, Browser),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1", Ios, Browser),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/126.0.6478.54 Mobile/15E148 Safari/604.1", Ios, Browser),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) FxiOS/127.0 Mobile/15E148 Safari/605.1.15", Ios, Browser),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 EdgiOS/125.2535.60 Mobile/15E148 Safari/605.1.15", Ios, Browser),
    ("Mozilla/5.0 (iPod touch; CPU iPhone OS 15_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/15.6 Mobile/15E148 Safari/604.1", Ios, Browser),
    // iOS WKWebView: WebKit tokens, no `Version/… Safari/…`.
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148", Ios, Webview),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/460.0.0.38.108;FBBV/589390452;FBDV/iPhone15,2;FBMD/iPhone;FBSN/iOS;FBSV/17.4.1;FBSS/3;FBID/phone;FBLC/en_US;FBOP/5;FBRV/591412486]", Ios, Webview),
    // Teams-style: an app's WKWebView with its own token appended.
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 TeamsMobile-iOS", Ios, Webview),
    // iOS native stacks and apps.
    ("MyApp/1.0 CFNetwork/1410.0.3 Darwin/22.6.0", Ios, Native),
    ("MobileSafari/8619.2.8.10.9 CFNetwork/1496.0.7 Darwin/23.5.0", Ios, Native),
    ("iOS/17.5 (21F79) dataaccessd/1.0", Ios, Native),
    ("Outlook-iOS/709.2226530.prod.iphone (4.2226.0)", Ios, Native),
    // Okta Mobile-style, native and with its WKWebView: Okta Mobile is native.
    ("OktaMobile/7.19.0 (iPhone; iOS 17.5; Scale/3.00)", Ios, Native),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 OktaMobile/7.19.0", Ios, Native),
    // iPad with an iPad User-Agent.
    ("Mozilla/5.0 (iPad; CPU OS 12_5_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/12.1.2 Mobile/15E148 Safari/604.1", Ipados, Browser),
    ("Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/126.0.6478.54 Mobile/15E148 Safari/604.1", Ipados, Browser),
    ("Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148", Ipados, Webview),
    // AFNetworking-style native app on an iPad.
    ("MyApp/1.0 (iPad; iOS 17.5; Scale/2.00)", Ipados, Native),
    // iPadOS Safari in desktop mode sends a macOS User-Agent: it classifies as
    // macos. This is the documented limitation the macos lint is about.
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.0 Safari/605.1.15", Macos, Browser),
    // Android browsers.
    ("Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/123.0.6312.40 Mobile Safari/537.36", Android, Browser),
    ("Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36", Android, Browser),
    ("Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/25.0 Chrome/121.0.0.0 Mobile Safari/537.36", Android, Browser),
    ("Mozilla/5.0 (Android 14; Mobile; rv:127.0) Gecko/127.0 Firefox/127.0", Android, Browser),
    ("Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.0.0 Mobile Safari/537.36 EdgA/125.0.2535.51", Android, Browser),
    ("Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36", Android, Browser),
    // Android WebView: `; wv)` and `Version/4.0`.
    ("Mozilla/5.0 (Linux; Android 14; Pixel 8 Build/UQ1A.240205.004; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/123.0.6312.118 Mobile Safari/537.36", Android, Webview),
    ("Mozilla/5.0 (Linux; Android 10; K; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/125.0.6422.165 Mobile Safari/537.36", Android, Webview),
    ("Mozilla/5.0 (Linux; Android 13; SM-G991B Build/TP1A.220624.014; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/124.0.6367.179 Mobile Safari/537.36 [FB_IAB/FB4A;FBAV/465.0.0.49.109;]", Android, Webview),
    // Android native stacks and apps.
    ("okhttp/4.12.0", Android, Native),
    ("Dalvik/2.1.0 (Linux; U; Android 14; Pixel 8 Build/UQ1A.240205.004)", Android, Native),
    ("Outlook-Android/2.0", Android, Native),
    // Okta Mobile-style on Android.
    ("OktaMobile/7.19.0 Dalvik/2.1.0 (Linux; U; Android 13; SM-G991B Build/TP1A.220624.014)", Android, Native),
    // macOS.
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15", Macos, Browser),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36", Macos, Browser),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:127.0) Gecko/20100101 Firefox/127.0", Macos, Browser),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.2592.56", Macos, Browser),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)", Macos, Webview),
    ("Microsoft Office/16.0 (Macintosh; Mac OS X 10.15; Microsoft Outlook 16.46.21021202; Pro)", Macos, Native),
    // Teams classic desktop is Electron (Chromium): it reads as a browser.
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Teams/1.6.00.4472 Chrome/98.0.4758.141 Electron/17.4.7 Safari/537.36", Macos, Browser),
    // Windows.
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36", Windows, Browser),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.2592.56", Windows, Browser),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:127.0) Gecko/20100101 Firefox/127.0", Windows, Browser),
    ("Mozilla/5.0 (Windows NT 10.0; WOW64; Trident/7.0; rv:11.0) like Gecko", Windows, Browser),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Teams/1.5.00.32283 Chrome/85.0.4183.121 Electron/10.4.7 Safari/537.36", Windows, Browser),
    ("Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17628; Pro)", Windows, Native),
    // ChromeOS.
    ("Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36", Chromeos, Browser),
    // Linux.
    ("Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0", Linux, Browser),
    ("Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0", Linux, Browser),
    ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36", Linux, Browser),
    // Anything else.
    ("Mozilla/5.0 (X11; FreeBSD amd64; rv:127.0) Gecko/20100101 Firefox/127.0", Other, Browser),
    ("curl/8.5.0", Other, Native),
    ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", Other, Browser),
    ("", Other, Native),
];

fn with_ua(ua: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(USER_AGENT, HeaderValue::from_str(ua).unwrap());
    headers
}

#[test]
fn real_user_agents_classify_as_expected() {
    assert!(
        TABLE.len() >= 40,
        "the table keeps at least 40 real User-Agents"
    );
    let mut wrong = Vec::new();
    for &(ua, platform, kind) in TABLE {
        let got = classify(&with_ua(ua));
        if got != (Client { platform, kind }) {
            wrong.push(format!(
                "{ua}\n  want {platform}/{kind}, got {}/{}",
                got.platform, got.kind
            ));
        }
    }
    assert!(wrong.is_empty(), "misclassified:\n{}", wrong.join("\n"));
}

#[test]
fn ipados_desktop_mode_is_indistinguishable_from_macos_safari() {
    let ipad_desktop = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.0 Safari/605.1.15";
    let mac_safari = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15";
    assert_eq!(
        classify(&with_ua(ipad_desktop)),
        classify(&with_ua(mac_safari))
    );
    assert_eq!(classify(&with_ua(ipad_desktop)).platform, Platform::Macos);
}

#[test]
fn missing_user_agent_is_other_native() {
    let client = classify(&HeaderMap::new());
    assert_eq!(
        client,
        Client {
            platform: Other,
            kind: Native
        }
    );
}

#[test]
fn first_user_agent_header_wins() {
    let mut headers = with_ua("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1");
    headers.append(USER_AGENT, HeaderValue::from_static("curl/8.5.0"));
    assert_eq!(
        classify(&headers),
        Client {
            platform: Ios,
            kind: Browser
        }
    );
}

#[test]
fn x_requested_with_marks_an_android_webview() {
    let chrome = "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36";
    let mut headers = with_ua(chrome);
    headers.insert(
        "x-requested-with",
        HeaderValue::from_static("com.example.mail"),
    );
    assert_eq!(
        classify(&headers),
        Client {
            platform: Android,
            kind: Webview
        }
    );
}

#[test]
fn x_requested_with_from_a_page_script_says_nothing() {
    let chrome = "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36";
    let mut headers = with_ua(chrome);
    headers.insert(
        "x-requested-with",
        HeaderValue::from_static("XMLHttpRequest"),
    );
    assert_eq!(classify(&headers).kind, Browser);
}

#[test]
fn x_requested_with_matters_only_on_android() {
    let mac = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36";
    let mut headers = with_ua(mac);
    headers.insert(
        "x-requested-with",
        HeaderValue::from_static("com.example.mail"),
    );
    assert_eq!(
        classify(&headers),
        Client {
            platform: Macos,
            kind: Browser
        }
    );
}

#[test]
fn non_utf8_user_agent_is_read_as_bytes() {
    let mut headers = HeaderMap::new();
    let ua =
        b"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 \xff\xfe) AppleWebKit/605.1.15 Mobile/15E148";
    headers.insert(USER_AGENT, HeaderValue::from_bytes(ua).unwrap());
    assert_eq!(
        classify(&headers),
        Client {
            platform: Ios,
            kind: Webview
        }
    );
}

#[test]
fn names_round_trip_through_from_str_and_serde() {
    for p in Platform::ALL {
        assert_eq!(p.as_str().parse::<Platform>(), Ok(p));
        assert_eq!(serde_json::to_string(&p).unwrap(), format!("\"{p}\""));
        assert_eq!(
            serde_json::from_str::<Platform>(&format!("\"{p}\"")).unwrap(),
            p
        );
    }
    for k in ClientKind::ALL {
        assert_eq!(k.as_str().parse::<ClientKind>(), Ok(k));
        assert_eq!(serde_json::to_string(&k).unwrap(), format!("\"{k}\""));
        assert_eq!(
            serde_json::from_str::<ClientKind>(&format!("\"{k}\"")).unwrap(),
            k
        );
    }
}

#[test]
fn unknown_names_are_refused_with_the_name_and_the_choices() {
    let err = "iphone".parse::<Platform>().unwrap_err();
    assert_eq!(err.reason(), "unknown_platform");
    assert!(
        err.to_string()
            .starts_with("unknown platform \"iphone\" (expected ios,"),
        "{err}"
    );
    let err = "app".parse::<ClientKind>().unwrap_err();
    assert_eq!(err.reason(), "unknown_client_kind");
    assert_eq!(
        err.to_string(),
        "unknown client kind \"app\" (expected browser, webview or native)"
    );
    // Names are exact, as in config files.
    assert!("IOS".parse::<Platform>().is_err());
}

#[test]
fn only_the_enrolled_families_are_mobile() {
    let mobile: Vec<_> = Platform::ALL
        .into_iter()
        .filter(|p| p.is_mobile())
        .collect();
    assert_eq!(mobile, [Ios, Ipados, Android]);
}

#[test]
fn each_token_has_the_bit_of_its_index() {
    for (i, (token, bit)) in TOKENS.into_iter().enumerate() {
        assert!(!token.is_empty());
        assert_eq!(bit, 1 << i, "{:?}", String::from_utf8_lossy(token));
    }
}

proptest! {
    #[test]
    fn arbitrary_user_agent_bytes_never_panic(ua in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = classify_user_agent(&ua);
        if let Ok(value) = HeaderValue::from_bytes(&ua) {
            let mut headers = HeaderMap::new();
            headers.insert(USER_AGENT, value.clone());
            headers.insert("x-requested-with", value);
            let _ = classify(&headers);
        }
    }

    /// The one-pass scan finds exactly the tokens a plain search finds, on
    /// strings made of token pieces, overlaps and near misses.
    #[test]
    fn scan_agrees_with_a_plain_search(
        pieces in proptest::collection::vec(
            prop_oneof![
                proptest::sample::select(TOKENS.to_vec()).prop_map(|(t, _)| t.to_vec()),
                proptest::sample::select(TOKENS.to_vec()).prop_map(|(t, _)| t[..t.len() - 1].to_vec()),
                proptest::collection::vec(any::<u8>(), 0..3),
            ],
            0..12,
        )
    ) {
        let ua = pieces.concat();
        let found = scan(&ua);
        for (token, bit) in TOKENS {
            let plain = ua.windows(token.len()).any(|w| w == token);
            prop_assert_eq!(found.any(bit), plain, "{:?} in {:?}", String::from_utf8_lossy(token), String::from_utf8_lossy(&ua));
        }
    }
}
