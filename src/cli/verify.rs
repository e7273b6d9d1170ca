//! `trustgate verify`: checks one SAMLResponse or wresult offline.

use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `trustgate verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// Pinned IdP certificate (PEM); repeat for rollover.
    #[arg(long = "idp-cert", required = true)]
    pub idp_cert: Vec<PathBuf>,
    /// Expected IdP entity ID (Issuer).
    #[arg(long)]
    pub issuer: Option<String>,
    /// Expected audience (SP entity ID or wtrealm).
    #[arg(long)]
    pub audience: Option<String>,
    /// Expected ACS URL (Destination and Recipient).
    #[arg(long = "acs-url")]
    pub acs_url: Option<String>,
    /// The clock to check validity against (RFC 3339); default now.
    #[arg(long)]
    pub now: Option<String>,
    /// Allowed clock skew, such as `60s`.
    #[arg(long, default_value = "60s")]
    pub skew: String,
    /// Accept SHA-1 digests and signatures (legacy IdPs only).
    #[arg(long = "allow-sha1")]
    pub allow_sha1: bool,
    /// Which protocol to expect.
    #[arg(long, default_value = "auto")]
    pub protocol: String,
    /// The file holding XML, a base64 SAMLResponse or a form body; `-` reads stdin.
    pub file: PathBuf,
}

/// Runs `trustgate verify` and returns its exit status.
pub fn run(_args: VerifyArgs) -> ExitCode {
    eprintln!("trustgate verify: not built yet");
    ExitCode::from(2)
}
