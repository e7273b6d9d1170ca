//! Classifies the client of a request into a platform and a client kind from
//! its headers. Pure and allocation-free; what the classification means is
//! left to `decide`.
//!
//! Known limitations, kept on purpose rather than guessed around:
//! - iPadOS Safari in desktop mode (the default on iPads) sends a macOS
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

/// Classifies a request's client from its `User-Agent` (the first one, if
/// several) and, for Android web views, `X-Requested-With`.
pub fn classify(headers: &HeaderMap) -> Client {
    let ua = headers
        .get(USER_AGENT)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    let mut client = classify_user_agent(ua);
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
    Client {
        platform: platform_of(ua),
        kind: kind_of(ua),
    }
}

/// Tokens are matched case-sensitively, as the stacks send them, except the
/// ones noted. The order matters: an iPad UA also says `like Mac OS X`, an
/// Android UA also says `Linux`, a ChromeOS UA also says `X11`.
fn platform_of(ua: &[u8]) -> Platform {
    if has(ua, b"iPad") {
        Platform::Ipados
    } else if has(ua, b"iPhone") || has(ua, b"iPod") {
        Platform::Ios
    } else if has(ua, b"Android") || has(ua, b"Dalvik/") || has(ua, b"okhttp/") {
        Platform::Android
    } else if has(ua, b"CrOS") {
        Platform::Chromeos
    } else if has(ua, b"Windows") {
        Platform::Windows
    } else if has(ua, b"Macintosh") || has(ua, b"Mac OS X") {
        Platform::Macos
    } else if has(ua, b"CFNetwork/") || has(ua, b"Darwin/") || has(ua, b"iOS") {
        // Native Apple stacks and apps that name iOS (`Outlook-iOS/…`); the
        // browsers that say `CriOS`/`FxiOS`/`EdgiOS` also name the device above.
        Platform::Ios
    } else if has(ua, b"Linux") || has(ua, b"X11") {
        Platform::Linux
    } else {
        Platform::Other
    }
}

fn kind_of(ua: &[u8]) -> ClientKind {
    if has(ua, b"OktaMobile/")
        || has(ua, b"CFNetwork/")
        || has(ua, b"Darwin/")
        || has(ua, b"okhttp/")
        || has(ua, b"Dalvik/")
    {
        return ClientKind::Native;
    }
    // Every browser and web view in use starts with `Mozilla/`; anything else
    // (an app's own name, curl, nothing at all) is not a browser.
    if !ua.starts_with(b"Mozilla/") {
        return ClientKind::Native;
    }
    if has(ua, b"; wv)") {
        return ClientKind::Webview;
    }
    // WKWebView sends the WebKit tokens without Safari's `Version/… Safari/…`.
    // Safari has both; the other iOS browsers (CriOS, FxiOS, EdgiOS) keep
    // `Safari/` without `Version/`, so the absence of `Safari/` is the sign.
    let apple = has(ua, b"iPhone") || has(ua, b"iPad") || has(ua, b"iPod") || has(ua, b"Macintosh");
    if apple && has(ua, b"AppleWebKit/") && !has(ua, b"Safari/") {
        return ClientKind::Webview;
    }
    ClientKind::Browser
}

/// Whether `needle` occurs in `hay`; `needle` is a non-empty literal.
fn has(hay: &[u8], needle: &[u8]) -> bool {
    let Some((&first, rest)) = needle.split_first() else {
        return true;
    };
    let mut at = 0;
    while at + needle.len() <= hay.len() {
        match hay[at..=hay.len() - needle.len()]
            .iter()
            .position(|&b| b == first)
        {
            Some(i) => {
                let start = at + i + 1;
                if hay[start..start + rest.len()] == *rest {
                    return true;
                }
                at = start;
            }
            None => return false,
        }
    }
    false
}

#[cfg(test)]
mod tests;
