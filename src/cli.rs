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
    use crate::evidence::assertion::subject_key;
    use crate::remember::token::SubjectHash;
    let plain = SubjectHash::of(&subject_key(name_id, false));
    let email = SubjectHash::of(&subject_key(name_id, true));
    if plain == email {
        format!("{plain}\n")
    } else {
        format!("{plain}  (NameID format unspecified or other)\n{email}  (NameID format emailAddress)\n")
    }
}

/// `trustgate healthcheck`: GET `url` (plain HTTP, the admin listener) and
/// whether it answered 200, for container probes without curl.
pub fn healthcheck(url: &str, timeout: std::time::Duration) -> Result<(), String> {
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
    write!(
        tcp,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("{addr}: {e}"))?;
    let mut head = [0u8; 64];
    let n = tcp.read(&mut head).map_err(|e| format!("{addr}: {e}"))?;
    let line = String::from_utf8_lossy(&head[..n]);
    let status = line.split(' ').nth(1).unwrap_or("");
    if status == "200" {
        Ok(())
    } else {
        Err(format!(
            "{url} answered {}",
            line.lines().next().unwrap_or("nothing")
        ))
    }
}
