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

/// `/app` owns `/app` and `/app/...` but not `/apple`.
fn prefix_matches(prefix: &str, path: &str) -> bool {
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
