//! Network facts for policy: named zones (CIDR lists), the client address
//! behind trusted proxies, and host comparison for the enrollment-host check.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use http::{HeaderMap, HeaderValue};
use ipnet::IpNet;

/// A named network zone: the client address is in it when any of its
/// networks contains the address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    pub(super) name: Arc<str>,
    pub(super) nets: Arc<[IpNet]>,
}

impl Zone {
    /// The zone's name as configured under `[zones]`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The zone's networks, as configured.
    pub fn nets(&self) -> &[IpNet] {
        &self.nets
    }

    /// Whether `ip` is in the zone; an IPv4-mapped IPv6 address counts as
    /// its IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.nets.iter().any(|net| net.contains(&ip))
    }
}

/// Every named zone, from `[zones]`; built by `Zones::try_from(&RawZones)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Zones {
    pub(super) by_name: BTreeMap<String, Zone>,
}

impl Zones {
    /// The zone with this name.
    pub fn get(&self, name: &str) -> Option<&Zone> {
        self.by_name.get(name)
    }

    /// Every zone, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Zone> {
        self.by_name.values()
    }
}

/// The client's address, given the socket peer and the `X-Forwarded-For`
/// header, when `trusted_hops` proxies that append to that header stand in
/// front of trustgate (0: the peer is the client and the header is ignored).
///
/// Each trusted proxy appends the address it saw, so the client is the
/// `trusted_hops`-th entry from the right; entries left of it were sent by
/// the client and are never believed. A shorter header means the outer
/// proxies were bypassed: the leftmost entry, written by the outermost proxy
/// that was passed, is the client. No header at all means the peer is the
/// client. An entry that is not an address (`1.2.3.4:5678` and
/// `[2001:db8::1]:443` are) leaves the peer as the answer. Addresses come
/// back canonical: IPv4-mapped IPv6 becomes IPv4.
///
/// Counting hops is only sound when clients cannot reach trustgate except
/// through those proxies; otherwise a client can write the entry it wants.
pub fn client_ip(peer: IpAddr, xff: Option<&HeaderValue>, trusted_hops: usize) -> IpAddr {
    from_lines(peer, xff.into_iter(), trusted_hops)
}

/// [`client_ip`] over every `X-Forwarded-For` line of a request, read as one
/// list in order.
pub fn client_ip_from_headers(peer: IpAddr, headers: &HeaderMap, trusted_hops: usize) -> IpAddr {
    from_lines(
        peer,
        headers.get_all("x-forwarded-for").iter(),
        trusted_hops,
    )
}

fn from_lines<'a, I>(peer: IpAddr, lines: I, trusted_hops: usize) -> IpAddr
where
    I: DoubleEndedIterator<Item = &'a HeaderValue>,
{
    let peer = peer.to_canonical();
    if trusted_hops == 0 {
        return peer;
    }
    let mut seen = 0;
    let mut leftmost = None;
    for line in lines.rev() {
        // A line that is not visible ASCII was not written by a proxy.
        let Ok(line) = line.to_str() else {
            return peer;
        };
        for entry in line.rsplit(',') {
            let entry = entry.trim();
            if entry.is_empty() {
                continue;
            }
            seen += 1;
            if seen == trusted_hops {
                return parse_entry(entry).unwrap_or(peer);
            }
            leftmost = Some(entry);
        }
    }
    leftmost.and_then(parse_entry).unwrap_or(peer)
}

fn parse_entry(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .or_else(|_| entry.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()
        .or_else(|| {
            entry
                .strip_prefix('[')
                .and_then(|e| e.strip_suffix(']'))
                .and_then(|e| e.parse().ok())
        })
        .map(|ip: IpAddr| ip.to_canonical())
}

/// Whether two URLs or bare hosts (`https://host:443/path`, `host:8443`,
/// `host`, `[::1]:443`) name the same host, ignoring scheme, user info, port,
/// path, letter case and a trailing dot. Used to refuse a config that puts the
/// enrollment host behind device trust.
pub fn host_matches(url_or_host: &str, enrollment_url: &str) -> bool {
    match (host_of(url_or_host), host_of(enrollment_url)) {
        (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
        _ => false,
    }
}

fn host_of(s: &str) -> Option<&str> {
    let s = s.trim();
    let rest = match s.find("://") {
        Some(i) if is_scheme(&s[..i]) => &s[i + 3..],
        _ => s.strip_prefix("//").unwrap_or(s),
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit('@').next().unwrap_or("");
    let host = if let Some(bracketed) = host_port.strip_prefix('[') {
        bracketed.split(']').next().unwrap_or("")
    } else if host_port.matches(':').count() > 1 {
        // A bare IPv6 address: no port can be told apart.
        host_port
    } else {
        host_port.split(':').next().unwrap_or("")
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    (!host.is_empty()).then_some(host)
}

fn is_scheme(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}
