//! Classifies the client of a request into a platform and a client kind from
//! its headers. Pure and allocation-free; what the classification means is
//! left to `decide`.
//!
//! Known limitations, kept on purpose rather than guessed around:
//! - iPadOS Safari in desktop mode (the default on most iPads) sends a macOS
//!   User-Agent and classifies as [`Platform::Macos`]. `decide`'s lints warn
//!   when a policy has mobile trust rules but no rule for `macos`.
//! - Android Chrome in desktop mode sends an `X11; Linux x86_64` User-Agent and
//!   classifies as [`Platform::Linux`].
//! - Apple's native HTTP stack (`CFNetwork/… Darwin/…`) looks the same on iOS
//!   and macOS; it classifies as [`Platform::Ios`] (or [`Platform::Ipados`]
//!   when the app names the iPad), so a native Mac app meets the mobile rules.
//! - Every header can be forged by the client: the classification picks the
//!   rules, and the device trust in the verified assertion is what is enforced.

use std::fmt;
use std::str::FromStr;

use http::header::USER_AGENT;
use http::HeaderMap;
use serde::{Deserialize, Serialize};

/// The operating system family of the client, in Okta's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Platform {
    /// iPhone or iPod touch.
    Ios,
    /// iPad with a User-Agent that names the iPad (not desktop mode).
    Ipados,
    /// Android phones and tablets.
    Android,
    /// macOS, and iPadOS Safari in desktop mode.
    Macos,
    /// Windows.
    Windows,
    /// ChromeOS.
    Chromeos,
    /// Desktop Linux (and Android Chrome in desktop mode).
    Linux,
    /// Anything else, including a missing User-Agent.
    Other,
}

impl Platform {
    /// Every platform, in declaration order.
    pub const ALL: [Platform; 8] = [
        Platform::Ios,
        Platform::Ipados,
        Platform::Android,
        Platform::Macos,
        Platform::Windows,
        Platform::Chromeos,
        Platform::Linux,
        Platform::Other,
    ];

    /// The static label used in config, metrics, logs and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Ios => "ios",
            Platform::Ipados => "ipados",
            Platform::Android => "android",
            Platform::Macos => "macos",
            Platform::Windows => "windows",
            Platform::Chromeos => "chromeos",
            Platform::Linux => "linux",
            Platform::Other => "other",
        }
    }

    /// Whether this is a mobile platform that Workspace ONE enrolls.
    pub fn is_mobile(self) -> bool {
        matches!(self, Platform::Ios | Platform::Ipados | Platform::Android)
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Platform {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Platform::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| UnknownName::Platform(s.to_owned()))
    }
}

/// How the client talks to the app: a browser, an embedded web view, or a
/// native HTTP stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientKind {
    /// A full browser (Safari, Chrome, Firefox, Edge, Samsung Internet, ...).
    Browser,
    /// A web view embedded in an app (iOS WKWebView, Android WebView).
    Webview,
    /// A native HTTP stack or app (CFNetwork, okhttp, Dalvik, Okta Mobile).
    Native,
}

impl ClientKind {
    /// Every client kind, in declaration order.
    pub const ALL: [ClientKind; 3] = [ClientKind::Browser, ClientKind::Webview, ClientKind::Native];

    /// The static label used in config, metrics, logs and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ClientKind::Browser => "browser",
            ClientKind::Webview => "webview",
            ClientKind::Native => "native",
        }
    }
}

impl fmt::Display for ClientKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ClientKind {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ClientKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownName::ClientKind(s.to_owned()))
    }
}

/// A platform or client kind name that trustgate does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnknownName {
    /// Not one of the [`Platform`] names.
    #[error(
        "unknown platform {0:?} (expected ios, ipados, android, macos, windows, chromeos, linux or other)"
    )]
    Platform(String),
    /// Not one of the [`ClientKind`] names.
    #[error("unknown client kind {0:?} (expected browser, webview or native)")]
    ClientKind(String),
}

impl UnknownName {
    /// The static label used in metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            UnknownName::Platform(_) => "unknown_platform",
            UnknownName::ClientKind(_) => "unknown_client_kind",
        }
    }
}

/// What `classify` found out about a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Client {
    /// The operating system family.
    pub platform: Platform,
    /// Browser, web view or native.
    pub kind: ClientKind,
}

/// Classifies a request's client from its `User-Agent` (the first, if
/// several) and, for Android web views, `X-Requested-With`.
pub fn classify(headers: &HeaderMap) -> Client {
    refine(classify_user_agent(user_agent(headers)), headers)
}

/// The User-Agent that [`classify`] reads: the first one, empty when absent.
pub fn user_agent(headers: &HeaderMap) -> &[u8] {
    headers
        .get(USER_AGENT)
        .map(|v| v.as_bytes())
        .unwrap_or_default()
}

/// The step of [`classify`] after the User-Agent: `by_user_agent` is
/// [`classify_user_agent`] of [`user_agent`]`(headers)`. Split out so that a
/// caller that remembers the User-Agent's classification (the decision
/// cache) still applies it.
pub fn refine(by_user_agent: Client, headers: &HeaderMap) -> Client {
    let mut client = by_user_agent;
    // Android WebView names the embedding app's package in X-Requested-With,
    // even where the app stripped `; wv` from its User-Agent. Pages set the
    // same header to `XMLHttpRequest`, which says nothing about the client.
    if client.platform == Platform::Android && client.kind == ClientKind::Browser {
        if let Some(app) = headers.get("x-requested-with") {
            let app = app.as_bytes();
            if !app.is_empty() && !app.eq_ignore_ascii_case(b"XMLHttpRequest") {
                client.kind = ClientKind::Webview;
            }
        }
    }
    client
}

/// Classifies a bare User-Agent value; bytes need not be UTF-8.
pub fn classify_user_agent(ua: &[u8]) -> Client {
    let t = scan(ua);
    Client {
        platform: platform_of(t),
        kind: kind_of(t, ua.starts_with(b"Mozilla/")),
    }
}

/// The tokens found in a User-Agent, one bit each (see [`TOKENS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Found(u32);

impl Found {
    fn any(self, tokens: u32) -> bool {
        self.0 & tokens != 0
    }
}

const IPAD: u32 = 1 << 0;
const IPHONE: u32 = 1 << 1;
const IPOD: u32 = 1 << 2;
const IOS: u32 = 1 << 3;
const ANDROID: u32 = 1 << 4;
const DALVIK: u32 = 1 << 5;
const OKHTTP: u32 = 1 << 6;
const CROS: u32 = 1 << 7;
const WINDOWS: u32 = 1 << 8;
const MACINTOSH: u32 = 1 << 9;
const MAC_OS_X: u32 = 1 << 10;
const CFNETWORK: u32 = 1 << 11;
const DARWIN: u32 = 1 << 12;
const LINUX: u32 = 1 << 13;
const OKTA_MOBILE: u32 = 1 << 14;
const ANDROID_WV: u32 = 1 << 15;
const APPLE_WEBKIT: u32 = 1 << 16;
const SAFARI: u32 = 1 << 17;

/// Every token classification looks for, matched case-sensitively as the
/// stacks send them; entry `i` has bit `1 << i`.
const TOKENS: [(&[u8], u32); 18] = [
    (b"iPad", IPAD),
    (b"iPhone", IPHONE),
    (b"iPod", IPOD),
    (b"iOS", IOS),
    (b"Android", ANDROID),
    (b"Dalvik/", DALVIK),
    (b"okhttp/", OKHTTP),
    (b"CrOS", CROS),
    (b"Windows", WINDOWS),
    (b"Macintosh", MACINTOSH),
    (b"Mac OS X", MAC_OS_X),
    (b"CFNetwork/", CFNETWORK),
    (b"Darwin/", DARWIN),
    (b"Linux", LINUX),
    (b"OktaMobile/", OKTA_MOBILE),
    (b"; wv)", ANDROID_WV),
    (b"AppleWebKit/", APPLE_WEBKIT),
    (b"Safari/", SAFARI),
];

/// [`TOKENS`] where the scan reads it.
static TOKEN_TABLE: [(&[u8], u32); 18] = TOKENS;

/// For each byte, the tokens that start with it: most bytes start none, so
/// one pass over the User-Agent finds every token. A `static`, so the table
/// is not copied where it is indexed.
static STARTS: [u32; 256] = {
    let mut starts = [0; 256];
    let mut i = 0;
    while i < TOKENS.len() {
        starts[TOKENS[i].0[0] as usize] |= TOKENS[i].1;
        i += 1;
    }
    starts
};

fn scan(ua: &[u8]) -> Found {
    let mut found = 0;
    for (i, &b) in ua.iter().enumerate() {
        let candidates = STARTS[usize::from(b)] & !found;
        if candidates == 0 {
            continue;
        }
        let rest = &ua[i..];
        let mut left = candidates;
        while left != 0 {
            let (token, bit) = TOKEN_TABLE[left.trailing_zeros() as usize];
            left &= left - 1;
            if rest.starts_with(token) {
                found |= bit;
            }
        }
    }
    Found(found)
}

/// The order matters: an iPad UA also says `like Mac OS X`, an Android UA
/// `Linux`.
fn platform_of(t: Found) -> Platform {
    if t.any(IPAD) {
        Platform::Ipados
    } else if t.any(IPHONE | IPOD) {
        Platform::Ios
    } else if t.any(ANDROID | DALVIK | OKHTTP) {
        Platform::Android
    } else if t.any(CROS) {
        Platform::Chromeos
    } else if t.any(WINDOWS) {
        Platform::Windows
    } else if t.any(MACINTOSH | MAC_OS_X) {
        Platform::Macos
    } else if t.any(CFNETWORK | DARWIN | IOS) {
        // Native Apple stacks and apps that name iOS (`Outlook-iOS/…`); the
        // browsers that say `CriOS`/`FxiOS`/`EdgiOS` also name the device above.
        Platform::Ios
    } else if t.any(LINUX) {
        Platform::Linux
    } else {
        Platform::Other
    }
}

fn kind_of(t: Found, mozilla: bool) -> ClientKind {
    if t.any(OKTA_MOBILE | CFNETWORK | DARWIN | OKHTTP | DALVIK) {
        return ClientKind::Native;
    }
    // Every browser and web view in use starts with `Mozilla/`; anything else
    // (an app's own name, curl, nothing at all) is not a browser.
    if !mozilla {
        return ClientKind::Native;
    }
    if t.any(ANDROID_WV) {
        return ClientKind::Webview;
    }
    // WKWebView sends the WebKit tokens without Safari's `Version/… Safari/…`.
    // Safari has both; the other iOS browsers (CriOS, FxiOS, EdgiOS) keep
    // `Safari/` without `Version/`, so the absence of `Safari/` is the sign.
    let apple = t.any(IPHONE | IPAD | IPOD | MACINTOSH);
    if apple && t.any(APPLE_WEBKIT) && !t.any(SAFARI) {
        return ClientKind::Webview;
    }
    ClientKind::Browser
}

#[cfg(test)]
mod tests;
