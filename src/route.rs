//! Routing: Host (without port) plus the longest matching path prefix picks
//! the app. What happens to the request after that is not routing's concern.

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::App;

/// The routing table built from config. Lookups do not allocate.
#[derive(Debug, Default)]
pub struct Routes {
    by_host: HashMap<String, Vec<Arc<App>>>,
}

impl Routes {
    /// Builds the table; within a host, longer prefixes are tried first.
    pub fn new(apps: &[App]) -> Routes {
        let mut by_host: HashMap<String, Vec<Arc<App>>> = HashMap::new();
        for app in apps {
            let app = Arc::new(app.clone());
            for h in &app.hosts {
                by_host.entry(h.clone()).or_default().push(app.clone());
            }
        }
        for list in by_host.values_mut() {
            list.sort_by_key(|app| std::cmp::Reverse(app.path_prefix.len()));
        }
        Routes { by_host }
    }

    /// The app for a request, from its host (any case, port allowed) and path.
    pub fn find(&self, host: &str, path: &str) -> Option<&Arc<App>> {
        let host = strip_port(host);
        let list = if host.bytes().any(|b| b.is_ascii_uppercase()) {
            self.by_host.get(&host.to_ascii_lowercase())
        } else {
            self.by_host.get(host)
        }?;
        list.iter()
            .find(|app| prefix_matches(&app.path_prefix, path))
    }
}

/// The host of a request: the URI authority (HTTP/2, absolute form), else
/// the Host header.
pub fn request_host(parts: &http::request::Parts) -> Option<&str> {
    if let Some(a) = parts.uri.authority() {
        return Some(a.as_str());
    }
    parts
        .headers
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
#[error("the request path is not in canonical form")]
pub struct PathError;

/// The one meaning of a request path, for matching security-relevant paths
/// (ACS, login, public): percent-encoded unreserved characters decoded, and
/// anything that servers normalise differently refused outright: dot
/// segments, empty segments, `;` parameters, backslashes, and encoded `/`,
/// `\`, `;` or NUL. A trailing `/` is kept; matching ignores it.
pub fn canonical_path(path: &str) -> Result<std::borrow::Cow<'_, str>, PathError> {
    use std::borrow::Cow;
    if !path.starts_with('/') {
        return Err(PathError);
    }
    let decoded: Cow<'_, str> = if path.contains('%') {
        let bytes = path.as_bytes();
        let mut out = String::with_capacity(path.len());
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                let hex = path.get(i + 1..i + 3).ok_or(PathError)?;
                let b = u8::from_str_radix(hex, 16).map_err(|_| PathError)?;
                if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                    out.push(b as char);
                } else if matches!(b, b'/' | b'\\' | b';' | 0) {
                    return Err(PathError);
                } else {
                    out.push_str(&path[i..i + 3]);
                }
                i += 3;
            } else {
                out.push(bytes[i] as char);
                i += 1;
            }
        }
        Cow::Owned(out)
    } else {
        Cow::Borrowed(path)
    };
    if decoded.contains(['\\', ';', '\0']) {
        return Err(PathError);
    }
    let inner = decoded[1..].strip_suffix('/').unwrap_or(&decoded[1..]);
    if !inner.is_empty()
        && inner
            .split('/')
            .any(|seg| seg.is_empty() || seg == "." || seg == "..")
    {
        return Err(PathError);
    }
    Ok(decoded)
}

/// Whether a canonical path is `target`, ignoring a trailing `/`.
pub fn same_path(canonical: &str, target: &str) -> bool {
    let a = canonical
        .strip_suffix('/')
        .filter(|a| !a.is_empty())
        .unwrap_or(canonical);
    let b = target
        .strip_suffix('/')
        .filter(|b| !b.is_empty())
        .unwrap_or(target);
    a == b
}

/// `/app` owns `/app` and `/app/...` but not `/apple`.
pub fn prefix_matches(prefix: &str, path: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    let prefix = prefix.trim_end_matches('/');
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/') || rest.starts_with('?'),
        None => false,
    }
}

#[cfg(test)]
mod tests;
