//! `trustgate verify`: checks one SAMLResponse or wresult offline.
//!
//! Reads a file (decoded XML, a base64 SAMLResponse value, or a whole form
//! body), runs the same verifier as the gateway with the replay check off,
//! and prints one JSON object. Exit status: 0 accept, 1 reject, 2 usage or
//! I/O error.

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use serde_json::{json, Map, Value};

use crate::evidence::assertion::{
    AssertionError, PinnedKey, ProtocolSelector, TrustMapping, VerifiedAssertion, Verifier,
    VerifierConfig,
};

/// Arguments of `trustgate verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// Take issuer, audience, ACS URL, pinned certificates, protocol, skew
    /// and the trust attributes from this app of the config.
    #[arg(long, conflicts_with_all = ["idp_cert", "issuer", "audience", "acs_url", "allow_sha1", "trust_attribute"])]
    pub app: Option<String>,
    /// The config file, with `--app`.
    #[arg(
        short = 'c',
        long = "config",
        env = "TRUSTGATE_CONFIG",
        default_value = "config.toml",
        requires = "app"
    )]
    pub config: PathBuf,
    /// Pinned IdP certificate (PEM); repeat for rollover.
    #[arg(long = "idp-cert", required_unless_present = "app")]
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
    #[arg(long, value_enum, default_value = "auto")]
    pub protocol: super::ProtocolArg,
    /// Attribute that carries device trust; repeat to try several in order
    /// (default `DeviceTrustSignal`).
    #[arg(long = "trust-attribute")]
    pub trust_attribute: Vec<String>,
    /// The file holding XML, a base64 SAMLResponse or a form body; `-` reads stdin.
    pub file: PathBuf,
}

/// What the input file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InputKind {
    Xml,
    Form,
    Base64,
}

fn detect(input: &[u8]) -> InputKind {
    let body = input.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(input);
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'<') {
        return InputKind::Xml;
    }
    let is_form = form_urlencoded::parse(body.trim_ascii())
        .any(|(k, _)| k == "SAMLResponse" || k == "wresult" || k == "wa");
    if is_form {
        InputKind::Form
    } else {
        InputKind::Base64
    }
}

/// Runs `trustgate verify` and returns its exit status.
pub fn run(args: VerifyArgs) -> ExitCode {
    match prepare(&args) {
        Ok((verifier, input, now)) => {
            let (mut out, accepted) = verify(&verifier, &input, now);
            out["checks"] = checks(verifier.config());
            println!("{out}");
            if accepted {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(msg) => {
            eprintln!("trustgate verify: {msg}");
            ExitCode::from(2)
        }
    }
}

fn prepare(args: &VerifyArgs) -> Result<(Verifier, Vec<u8>, SystemTime), String> {
    let now = match &args.now {
        None => SystemTime::now(),
        Some(s) => super::parse_now(s)?,
    };
    let input = read_input(&args.file)?;
    if let Some(app) = &args.app {
        let cfg = app_verifier(&args.config, app)?;
        return Ok((Verifier::new(cfg), input, now));
    }
    let mut keys = Vec::new();
    for path in &args.idp_cert {
        let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        keys.extend(PinnedKey::from_pem(&pem).map_err(|e| format!("{}: {e}", path.display()))?);
    }
    let protocol: ProtocolSelector = args.protocol.into();
    let skew: Duration = humantime::parse_duration(&args.skew)
        .map_err(|e| format!("--skew {:?}: {e}", args.skew))?;
    let mut trust = TrustMapping::default();
    if !args.trust_attribute.is_empty() {
        trust.attributes = args.trust_attribute.clone();
    }
    let cfg = VerifierConfig {
        protocol,
        idp_entity_id: args.issuer.clone(),
        keys,
        allow_sha1: args.allow_sha1,
        audience: args.audience.clone(),
        acs_url: args.acs_url.clone(),
        skew,
        trust,
        // One message, checked offline: nothing to replay against.
        replay_capacity: 0,
        ..VerifierConfig::default()
    };
    Ok((Verifier::new(cfg), input, now))
}

/// The file's bytes; `-` reads stdin.
fn read_input(file: &std::path::Path) -> Result<Vec<u8>, String> {
    if file.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .map_err(|e| format!("stdin: {e}"))?;
        Ok(buf)
    } else {
        std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))
    }
}

/// The verifier settings of `app` in the config at `path`, as the gateway
/// would run them, without replay memory (one message, offline).
fn app_verifier(path: &std::path::Path, app: &str) -> Result<VerifierConfig, String> {
    let config = crate::config::Config::load(path)
        .map_err(|e| format!("{} has errors:\n{e}", path.display()))?;
    let found = config
        .apps
        .iter()
        .find(|a| &*a.name == app)
        .ok_or_else(|| format!("no app {app:?} in {}", path.display()))?;
    let enf = found
        .enforcement
        .as_ref()
        .ok_or_else(|| format!("apps.{app} does not enforce device trust"))?;
    Ok(VerifierConfig {
        replay_capacity: 0,
        ..enf.verifier.clone()
    })
}

/// The checks a verification with `cfg` makes, by name, for the verdict's
/// `checks` list: what was compared, and what was not because nothing was
/// configured to compare against.
fn checks(cfg: &VerifierConfig) -> Value {
    let mut ran = vec![
        "structure",
        "signature",
        "digest",
        "validity_window",
        "status",
    ];
    let mut skipped = vec!["replay"];
    let mut pick = |on: bool, name: &'static str| {
        if on {
            ran.push(name)
        } else {
            skipped.push(name)
        }
    };
    pick(cfg.idp_entity_id.is_some(), "issuer");
    pick(cfg.audience.is_some(), "audience");
    pick(cfg.acs_url.is_some(), "destination_and_recipient");
    json!({ "ran": ran, "skipped": skipped })
}

/// Verifies the input and renders the JSON verdict.
fn verify(verifier: &Verifier, input: &[u8], now: SystemTime) -> (Value, bool) {
    let result: Result<VerifiedAssertion, AssertionError> = match detect(input) {
        InputKind::Xml => verifier.verify_document(input, now),
        InputKind::Form => verifier
            .verify_post(input.trim_ascii(), now)
            .map(|d| d.assertion),
        InputKind::Base64 => {
            // A pasted value may still be percent-encoded; re-wrap it as the
            // form field it came from.
            let value = input.trim_ascii();
            let decoded: String = if value.contains(&b'%') {
                form_urlencoded::parse(&[b"v=", value].concat())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            } else {
                String::from_utf8_lossy(value).into_owned()
            };
            let body: String = form_urlencoded::Serializer::new(String::new())
                .append_pair("SAMLResponse", &decoded)
                .finish();
            verifier
                .verify_post(body.as_bytes(), now)
                .map(|d| d.assertion)
        }
    };
    match result {
        Ok(a) => {
            let attributes: Map<String, Value> = a
                .attributes()
                .iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect();
            (
                json!({
                    "verdict": "accept",
                    "reason": "ok",
                    "detail": format!("{} assertion {} verified", a.protocol().as_str(), a.id()),
                    "protocol": a.protocol().as_str(),
                    "issuer": a.issuer(),
                    "name_id": a.name_id(),
                    "device_trust": a.device_trust().as_str(),
                    "attributes": attributes,
                }),
                true,
            )
        }
        Err(e) => (
            json!({
                "verdict": "reject",
                "reason": e.reason(),
                "detail": e.to_string(),
                "protocol": null,
                "issuer": null,
                "name_id": null,
                "device_trust": null,
                "attributes": {},
            }),
            false,
        ),
    }
}

#[cfg(test)]
mod tests;
