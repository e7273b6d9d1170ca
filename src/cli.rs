//! Command-line subcommands other than `run`, and what they share: the
//! config-file argument and the enumerated option values.

pub mod check;

pub mod explain;

pub mod verify;

use std::path::{Path, PathBuf};

use crate::evidence::assertion::ProtocolSelector;
use crate::evidence::DeviceTrust;

/// The config file argument of every subcommand that reads one:
/// `-c/--config FILE`, else `TRUSTGATE_CONFIG`, else `./config.toml`.
#[derive(Debug, Clone, clap::Args)]
pub struct ConfigArg {
    /// The config file.
    #[arg(
        short = 'c',
        long = "config",
        env = "TRUSTGATE_CONFIG",
        default_value = "config.toml"
    )]
    pub config: PathBuf,
}

impl ConfigArg {
    /// The argument as `trustgate` with no subcommand takes it: from
    /// `TRUSTGATE_CONFIG`, else `./config.toml`.
    pub fn parse_env() -> ConfigArg {
        ConfigArg {
            config: std::env::var_os("TRUSTGATE_CONFIG")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("config.toml")),
        }
    }

    /// The file, or a message that says where it was looked for and how to
    /// name another.
    pub fn existing(&self) -> Result<&Path, String> {
        if self.config.is_file() {
            Ok(&self.config)
        } else {
            Err(format!(
                "no config file at {}: pass -c FILE, or set TRUSTGATE_CONFIG",
                self.config.display()
            ))
        }
    }
}

/// `--protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProtocolArg {
    /// SAML 2.0 Response.
    Saml2,
    /// WS-Federation wresult.
    Wsfed,
    /// Either, by the document.
    Auto,
}

impl From<ProtocolArg> for ProtocolSelector {
    fn from(p: ProtocolArg) -> Self {
        match p {
            ProtocolArg::Saml2 => ProtocolSelector::Saml2,
            ProtocolArg::Wsfed => ProtocolSelector::WsFed,
            ProtocolArg::Auto => ProtocolSelector::Auto,
        }
    }
}

/// `--trust`; any case, as the attribute values match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TrustArg {
    /// TRUSTED (Okta Identity Engine: true).
    Trusted,
    /// NOT_TRUSTED (false).
    #[value(name = "not_trusted", alias = "not-trusted")]
    NotTrusted,
    /// UNKNOWN (device trust not enabled); counts as not trusted.
    Unknown,
}

impl From<TrustArg> for DeviceTrust {
    fn from(t: TrustArg) -> Self {
        match t {
            TrustArg::Trusted => DeviceTrust::Trusted,
            TrustArg::NotTrusted => DeviceTrust::NotTrusted,
            TrustArg::Unknown => DeviceTrust::Unknown,
        }
    }
}

/// Parses an RFC 3339 time for `--now`.
pub fn parse_now(s: &str) -> Result<std::time::SystemTime, String> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map(std::time::SystemTime::from)
        .map_err(|e| format!("--now {s:?} is not rfc 3339: {e}"))
}

/// `trustgate subject-hash`: what the audit log, `X-Trustgate-Subject` and
/// `subject_hash` revocations call a NameID.
pub fn subject_hash(name_id: &str) -> String {
    match crate::remember::token::SubjectHash::keyings(name_id).as_slice() {
        [one] => format!("{one}\n"),
        [plain, email, ..] => format!(
            "{plain}  (NameID format unspecified or other)\n{email}  (NameID format emailAddress)\n"
        ),
        [] => String::new(),
    }
}

/// One plain-HTTP/1.1 exchange with the admin listener: the status and
/// the body. The admin listener is plain HTTP on a private address, so a
/// socket is all the client this needs (and the image needs no curl).
fn admin_call(
    url: &str,
    method: &str,
    headers: &[(&str, &str)],
    body: &str,
    timeout: std::time::Duration,
) -> Result<(u16, String), String> {
    use std::io::{Read, Write};
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: only http:// URLs (the admin listener)"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = std::net::ToSocketAddrs::to_socket_addrs(authority)
        .map_err(|e| format!("{authority}: {e}"))?
        .next()
        .ok_or_else(|| format!("{authority}: no address"))?;
    let mut tcp =
        std::net::TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("{addr}: {e}"))?;
    tcp.set_read_timeout(Some(timeout)).ok();
    tcp.set_write_timeout(Some(timeout)).ok();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    tcp.write_all(head.as_bytes())
        .and_then(|_| tcp.write_all(body.as_bytes()))
        .map_err(|e| format!("{addr}: {e}"))?;
    let mut answer = Vec::new();
    tcp.take(1 << 20)
        .read_to_end(&mut answer)
        .map_err(|e| format!("{addr}: {e}"))?;
    let text = String::from_utf8_lossy(&answer);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("{url}: not an HTTP answer"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    Ok((status, body))
}

/// `trustgate healthcheck`: GET `url` (plain HTTP, the admin listener) and
/// whether it answered 200, for container probes without curl.
pub fn healthcheck(url: &str, timeout: std::time::Duration) -> Result<(), String> {
    match admin_call(url, "GET", &[], "", timeout)? {
        (200, _) => Ok(()),
        (status, _) => Err(format!("{url} answered {status}")),
    }
}

/// What `trustgate revoke` revokes.
#[derive(Debug, Clone, clap::Args)]
#[group(required = true, multiple = false)]
pub struct RevokeTarget {
    /// One session, by its id (32 hex digits, as the audit log names it).
    #[arg(long)]
    pub session: Option<String>,
    /// Every session of a subject, by NameID.
    #[arg(long)]
    pub subject: Option<String>,
    /// Every session of a subject, by its hash (`trustgate subject-hash`).
    #[arg(long = "subject-hash")]
    pub subject_hash: Option<String>,
}

/// `trustgate revoke`: asks the admin listener to revoke, and says what
/// happened (`fleet`: published to every replica, pending until Redis is
/// back, or local without Redis).
pub fn revoke(
    admin: &str,
    token: Option<&str>,
    target: &RevokeTarget,
    timeout: std::time::Duration,
) -> Result<String, String> {
    let body = match target {
        RevokeTarget {
            session: Some(s), ..
        } => serde_json::json!({ "session": s }),
        RevokeTarget {
            subject: Some(s), ..
        } => serde_json::json!({ "subject": s }),
        RevokeTarget {
            subject_hash: Some(h),
            ..
        } => serde_json::json!({ "subject_hash": h }),
        _ => return Err("give --session, --subject or --subject-hash".into()),
    };
    let url = format!("{}/sessions/revoke", admin.trim_end_matches('/'));
    let bearer = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(b) = &bearer {
        headers.push(("Authorization", b.as_str()));
    }
    let (status, answer) = admin_call(&url, "POST", &headers, &body.to_string(), timeout)?;
    let v: serde_json::Value = serde_json::from_str(answer.trim()).unwrap_or_default();
    if status != 200 {
        let why = v["error"].as_str().unwrap_or(answer.trim());
        return Err(format!("{url} answered {status}: {why}"));
    }
    let scope = v["revoked"].as_str().unwrap_or("?");
    Ok(match v["fleet"].as_str() {
        Some("published") => format!("revoked ({scope}) on every replica"),
        Some("pending") => {
            format!("revoked ({scope}) on this replica; the others hear of it when Redis is back")
        }
        _ => format!("revoked ({scope}) on this replica (no [redis]: the others are not told)"),
    })
}
