//! Routing: Host (without port) plus the longest matching path prefix picks
//! the app. What happens to the request after that is not routing's concern.

use std::collections::HashMap;
use std::sync::Arc;

/// What routing needs to know of an app: its hosts, its path prefix and
/// whether it enforces device trust. Routing knows nothing else of apps,
/// so that config can check its paths with the same table the requests use
/// without an import circle.
pub trait Routable {
    /// The hosts it is served on, lower case, without port.
    fn hosts(&self) -> &[String];
    /// The path prefix it owns on those hosts.
    fn path_prefix(&self) -> &str;
    /// Whether it enforces device trust (its hosts then take only
    /// canonical paths).
    fn enforced(&self) -> bool;
}

impl<T: Routable> Routable for &T {
    fn hosts(&self) -> &[String] {
        (**self).hosts()
    }
    fn path_prefix(&self) -> &str {
        (**self).path_prefix()
    }
    fn enforced(&self) -> bool {
        (**self).enforced()
    }
}

impl<T: Routable> Routable for Arc<T> {
    fn hosts(&self) -> &[String] {
        (**self).hosts()
    }
    fn path_prefix(&self) -> &str {
        (**self).path_prefix()
    }
    fn enforced(&self) -> bool {
        (**self).enforced()
    }
}

/// The routing table: host and path to one of the apps it was built from.
/// Lookups do not allocate.
#[derive(Debug)]
pub struct Routes<T> {
    by_host: HashMap<String, HostRoutes<T>>,
}

/// The apps of one host, longest prefix first.
#[derive(Debug)]
struct HostRoutes<T> {
    apps: Vec<T>,
    /// Some app on this host enforces device trust: every request path is
    /// held to [`canonical_path`] before routing, whichever app it is for.
    strict: bool,
}

/// Why a request has no app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// No app serves the host.
    #[error("no app serves this host")]
    UnknownHost,
    /// The host has an enforced app and the path is not canonical.
    #[error(transparent)]
    BadPath(#[from] PathError),
}

impl<T: Routable + Clone> Routes<T> {
    /// Builds the table; within a host, longer prefixes are tried first.
    pub fn new(apps: impl IntoIterator<Item = T>) -> Routes<T> {
        let mut by_host: HashMap<String, HostRoutes<T>> = HashMap::new();
        for app in apps {
            for h in app.hosts() {
                let host = by_host.entry(h.clone()).or_insert_with(|| HostRoutes {
                    apps: Vec::new(),
                    strict: false,
                });
                host.strict |= app.enforced();
                host.apps.push(app.clone());
            }
        }
        for host in by_host.values_mut() {
            host.apps
                .sort_by_key(|app| std::cmp::Reverse(app.path_prefix().len()));
        }
        Routes { by_host }
    }
}

impl<T: Routable> Routes<T> {
    /// The app for a request, from its host (any case, port allowed) and
    /// path. On a host with an enforced app the path must be canonical
    /// first, so that the app is chosen on the same bytes that the ACS,
    /// login and public matching and the upstream see; and a path that
    /// would reach another app on a server that ignores case (IIS) is
    /// refused too.
    pub fn find(&self, host: &str, path: &str) -> Result<&T, RouteError> {
        let host = strip_port(host);
        let routes = if host.bytes().any(|b| b.is_ascii_uppercase()) {
            self.by_host.get(&host.to_ascii_lowercase())
        } else {
            self.by_host.get(host)
        }
        .ok_or(RouteError::UnknownHost)?;
        if !routes.strict {
            return routes
                .apps
                .iter()
                .find(|app| prefix_matches(app.path_prefix(), path))
                .ok_or(RouteError::UnknownHost);
        }
        let path = canonical_path(path)?;
        // The gateway's own pages (`/.trustgate/apps`) answer on every host
        // it protects, whichever app owns `/` there.
        if path.starts_with("/.trustgate/") {
            if let Some(app) = routes.apps.iter().find(|a| a.enforced()) {
                return Ok(app);
            }
        }
        // Longest first: the first prefix that matches ignoring case is at
        // least as long as the first that matches exactly, so the two agree
        // exactly when the first one also matches exactly.
        let app = routes
            .apps
            .iter()
            .find(|app| prefix_matches_ignore_case(app.path_prefix(), path))
            .ok_or(RouteError::UnknownHost)?;
        if !prefix_matches(app.path_prefix(), path) {
            return Err(RouteError::BadPath(PathError::CaseSensitiveRoute));
        }
        // `/admin:x/y` is the stream `x` of `admin` on IIS: a `:` is
        // allowed only where cutting each segment at it routes the same.
        if path.contains(':') {
            let cut = cut_streams(path);
            let same = routes
                .apps
                .iter()
                .find(|a| prefix_matches_ignore_case(a.path_prefix(), &cut))
                // The same entry of this host's list: an app listed twice
                // (a host repeated) has equal entries, and both lookups
                // find the first, the sort being stable.
                .is_some_and(|a| std::ptr::eq(a, app));
            if !same {
                return Err(RouteError::BadPath(PathError::WindowsName));
            }
        }
        Ok(app)
    }
}

/// The host of a request: the URI authority (HTTP/2, absolute form), else
/// the Host header.
pub fn request_host<'a>(uri: &'a http::Uri, headers: &'a http::HeaderMap) -> Option<&'a str> {
    if let Some(a) = uri.authority() {
        return Some(a.as_str());
    }
    headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
}

/// Drops `:port` from `host:port` and `[v6]:port`.
fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

/// Why a path has no single meaning that every server would agree on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Not an origin-form path (`*`, or no leading `/`).
    #[error("the request path does not start with /")]
    NotAbsolute,
    /// `%` not followed by two hex digits.
    #[error("the request path has a broken percent escape")]
    BadEscape,
    /// An escape of a character that needs none (`%61`, `%2e`), which
    /// decoding servers read as the character itself.
    #[error("the request path escapes a character that needs no escape")]
    NeedlessEscape,
    /// An encoded `/`, `\`, `;`, control character or NUL, which some
    /// servers decode into a separator and others keep.
    #[error("the request path encodes a separator or control character")]
    EncodedSeparator,
    /// `%25` followed by two hex digits: decoded twice (as IIS can), a
    /// second escape.
    #[error("the request path is escaped twice")]
    DoubleEscape,
    /// `\` or `;` (matrix parameters: Tomcat and Jetty drop `;...`).
    #[error("the request path has a backslash or ; parameter")]
    Separator,
    /// An empty, `.` or `..` segment, which servers merge or resolve.
    #[error("the request path has an empty or dot segment")]
    DotSegment,
    /// A segment ending in `.` or a space, which Windows servers trim, or
    /// an NTFS stream (`::$DATA`, `:$i30`).
    #[error("the request path has a segment that Windows servers rewrite")]
    WindowsName,
    /// Escaped bytes that are not UTF-8 (overlong forms such as `%c0%ae`
    /// included), or a fullwidth or look-alike character that best-fit
    /// mapping turns into ASCII.
    #[error("the request path has bytes that servers decode differently")]
    BadUnicode,
    /// The path matches another app's prefix when case is ignored.
    #[error("the request path names another app in another case")]
    CaseSensitiveRoute,
    /// The path is an assertion consumer path in another case, or with an
    /// NTFS stream name (`acs:x`): a server that ignores case would take
    /// the assertion the gateway did not see as one.
    #[error("the request path names the sign-in (ACS) path in another form")]
    OtherFormOfAcs,
}

/// The one meaning of a request path, on a host with an enforced app: the
/// path itself, when no server could read it any other way, and an error
/// otherwise. Refusing rather than rewriting keeps the bytes the gateway
/// decides on identical to the bytes the upstream gets: a rewrite is only
/// safe when every upstream would read the result as the gateway does, and
/// upstreams disagree on exactly these inputs (IIS decodes `%u`, double
/// escapes and best-fit Unicode; Tomcat drops `;params`; nginx merges
/// slashes; ASGI servers decode `%2F`). Refused: percent escapes of
/// characters that need none (`%61`, `%2E`), of `/`, `\`, `;`, NUL or
/// control characters, and `%25XX`; broken escapes; `\` and `;`; empty,
/// `.` and `..` segments; segments that Windows trims (a trailing `.` or
/// space) and NTFS streams; escaped bytes that are not UTF-8; fullwidth
/// and look-alike forms of ASCII. A trailing `/` is kept; matching ignores
/// it.
pub fn canonical_path(path: &str) -> Result<&str, PathError> {
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(PathError::NotAbsolute);
    }
    // Escaped bytes at or above 0x80, collected to check their UTF-8;
    // raw ones are checked in the same string, since `path` is a `str`.
    let mut escaped_utf8: Vec<u8> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'%' => {
                let hex = |j: usize| bytes.get(j).and_then(|c| (*c as char).to_digit(16));
                let (Some(hi), Some(lo)) = (hex(i + 1), hex(i + 2)) else {
                    return Err(PathError::BadEscape);
                };
                let d = (hi * 16 + lo) as u8;
                if d.is_ascii_alphanumeric() || matches!(d, b'-' | b'.' | b'_' | b'~') {
                    return Err(PathError::NeedlessEscape);
                }
                if matches!(d, b'/' | b'\\' | b';') || d < 0x20 || d == 0x7f {
                    return Err(PathError::EncodedSeparator);
                }
                if d == b'%'
                    && ((hex(i + 3).is_some() && hex(i + 4).is_some())
                        || matches!(bytes.get(i + 3), Some(b'u' | b'U')))
                {
                    return Err(PathError::DoubleEscape);
                }
                // An escaped `:` or `$` hides an NTFS stream (`::$DATA`)
                // from the check below; nothing needs them escaped.
                if matches!(d, b':' | b'$') {
                    return Err(PathError::WindowsName);
                }
                if d >= 0x80 {
                    escaped_utf8.push(d);
                } else if !escaped_utf8.is_empty() {
                    check_unicode(&escaped_utf8)?;
                    escaped_utf8.clear();
                }
                i += 3;
                continue;
            }
            b'\\' | b';' => return Err(PathError::Separator),
            _ if b < 0x20 || b == 0x7f => return Err(PathError::EncodedSeparator),
            _ => {}
        }
        if !escaped_utf8.is_empty() {
            check_unicode(&escaped_utf8)?;
            escaped_utf8.clear();
        }
        i += 1;
    }
    if !escaped_utf8.is_empty() {
        check_unicode(&escaped_utf8)?;
    }
    if !path.is_ascii() {
        check_unicode(path.as_bytes())?;
    }
    if path.contains("::") || path.contains(":$") {
        return Err(PathError::WindowsName);
    }
    let inner = path[1..].strip_suffix('/').unwrap_or(&path[1..]);
    if !inner.is_empty() {
        for seg in inner.split('/') {
            if seg.is_empty() || seg == "." || seg == ".." {
                return Err(PathError::DotSegment);
            }
            if seg.ends_with('.') || seg.ends_with(' ') || seg.ends_with("%20") {
                return Err(PathError::WindowsName);
            }
            // An 8.3 short name (`SECURE~1` for `secure-portal`), which
            // IIS resolves to the long one.
            let b = seg.as_bytes();
            if b.windows(2).any(|w| w[0] == b'~' && w[1].is_ascii_digit()) {
                return Err(PathError::WindowsName);
            }
        }
    }
    Ok(path)
}

/// Escaped (or raw) bytes above ASCII must be UTF-8, which also refuses
/// overlong forms (`%c0%af` for `/`), and hold no character that some
/// server would turn into something else: any that NFKC changes (fullwidth
/// `ａ`, `𝐚`, `ⅰ`, `℀`, the en space), any whose case mapping is ASCII
/// (the Kelvin sign, dotless `ı`, long `ſ`), and the slash and dot
/// look-alikes that best-fit mapping folds (`∕`, `⁄`, `∖`, combining
/// overlays).
fn check_unicode(bytes: &[u8]) -> Result<(), PathError> {
    use unicode_normalization::UnicodeNormalization;
    let text = std::str::from_utf8(bytes).map_err(|_| PathError::BadUnicode)?;
    let lookalike = |c: char| {
        matches!(
            c,
            '\u{2024}'
                ..='\u{2026}' | '\u{2044}' | '\u{2215}' | '\u{2216}' | '\u{0337}' | '\u{0338}'
        )
    };
    for c in text.chars().filter(|c| !c.is_ascii()) {
        let folds_to_ascii = c
            .to_lowercase()
            .chain(c.to_uppercase())
            .any(|f| f.is_ascii());
        let mut nfkc = std::iter::once(c).nfkc();
        let stable = nfkc.next() == Some(c) && nfkc.next().is_none();
        if lookalike(c) || folds_to_ascii || !stable {
            return Err(PathError::BadUnicode);
        }
    }
    Ok(())
}

/// Whether a canonical path is `target`, ignoring a trailing `/`.
pub fn same_path(canonical: &str, target: &str) -> bool {
    without_trailing_slash(canonical) == without_trailing_slash(target)
}

/// A path without one trailing `/`, unless it is `/` itself.
fn without_trailing_slash(path: &str) -> &str {
    path.strip_suffix('/')
        .filter(|p| !p.is_empty())
        .unwrap_or(path)
}

/// Each segment cut at its first `:`, as NTFS reads `name:stream`.
fn cut_streams(path: &str) -> std::borrow::Cow<'_, str> {
    if !path.contains(':') {
        return std::borrow::Cow::Borrowed(path);
    }
    std::borrow::Cow::Owned(
        path.split('/')
            .map(|seg| seg.split(':').next().unwrap_or(""))
            .collect::<Vec<_>>()
            .join("/"),
    )
}

/// Whether a canonical path reaches `target` on some server: ignoring a
/// trailing `/` and ASCII case (IIS), and with each segment cut at `:`
/// (`acs:x` is the stream `x` of `acs` on NTFS). [`same_path`] implies it.
/// An app's ACS is matched so: a variant the gateway took for another path
/// would carry an assertion to the app unverified.
pub fn may_reach(canonical: &str, target: &str) -> bool {
    without_trailing_slash(&cut_streams(canonical))
        .eq_ignore_ascii_case(without_trailing_slash(target))
}

/// `/app` owns `/app` and `/app/...` but not `/apple`.
pub fn prefix_matches(prefix: &str, path: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    let prefix = prefix.trim_end_matches('/');
    match path.strip_prefix(prefix) {
        Some(rest) => at_segment_end(rest),
        None => false,
    }
}

/// [`prefix_matches`], ignoring ASCII case.
fn prefix_matches_ignore_case(prefix: &str, path: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    let prefix = prefix.trim_end_matches('/').as_bytes();
    let path = path.as_bytes();
    path.len() >= prefix.len()
        && path[..prefix.len()].eq_ignore_ascii_case(prefix)
        && at_segment_end(&path[prefix.len()..])
}

fn at_segment_end(rest: impl AsRef<[u8]>) -> bool {
    matches!(rest.as_ref().first(), None | Some(b'/' | b'?'))
}

#[cfg(test)]
mod tests;
