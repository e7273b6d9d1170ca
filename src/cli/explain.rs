//! `trustgate explain`: which rule of an app's policy matches a given client
//! and assertion (or trust), and why, in words or as JSON.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::classify::classify_user_agent;
use crate::config::Config;
use crate::decide::Facts;
use crate::evidence::assertion::{Verifier, VerifierConfig};
use crate::evidence::DeviceTrust;

/// Arguments of `trustgate explain`.
#[derive(Debug, clap::Args)]
pub struct ExplainArgs {
    #[command(flatten)]
    pub config: super::ConfigArg,
    /// The app (its key under `[apps]`).
    #[arg(long)]
    pub app: String,
    /// The client's User-Agent.
    #[arg(long = "user-agent")]
    pub user_agent: String,
    /// An assertion delivery (XML, base64 SAMLResponse or form body) to take
    /// trust and groups from; it is verified with the app's IdP settings.
    #[arg(long, conflicts_with = "trust")]
    pub assertion: Option<PathBuf>,
    /// Device trust, in any case (TRUSTED works as the attribute does).
    #[arg(long, value_enum, ignore_case = true)]
    pub trust: Option<super::TrustArg>,
    /// Groups, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub groups: Vec<String>,
    /// The client address (for network zones).
    #[arg(long, default_value = "127.0.0.1")]
    pub ip: IpAddr,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Judge a captured assertion at this time (RFC 3339), not now.
    #[arg(long, requires = "assertion")]
    pub now: Option<String>,
}

/// Runs `trustgate explain`: 0 on success, 1 when the assertion is
/// rejected, 2 on usage or config errors.
pub fn run(args: ExplainArgs) -> ExitCode {
    let path = match args.config.existing() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("trustgate explain: {e}");
            return ExitCode::from(2);
        }
    };
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("trustgate explain: {} has errors:\n{e}", path.display());
            return ExitCode::from(2);
        }
    };
    let now = match args.now.as_deref().map(super::parse_now).transpose() {
        Ok(now) => now.unwrap_or_else(std::time::SystemTime::now),
        Err(e) => {
            eprintln!("trustgate explain: {e}");
            return ExitCode::from(2);
        }
    };
    let Some(app) = config.apps.iter().find(|a| *a.name == args.app) else {
        eprintln!(
            "trustgate explain: no app {:?} in {}",
            args.app,
            path.display()
        );
        return ExitCode::from(2);
    };
    let Some(enf) = &app.enforcement else {
        eprintln!(
            "trustgate explain: apps.{} does not enforce device trust",
            args.app
        );
        return ExitCode::from(2);
    };
    let mut groups = args.groups.clone();
    let trust = match (&args.assertion, args.trust.as_ref()) {
        (Some(path), _) => {
            let data = match std::fs::read(path) {
                Ok(d) => d,
                Err(e) => {
                    eprintln!("trustgate explain: cannot read {}: {e}", path.display());
                    return ExitCode::from(2);
                }
            };
            // An offline look: no replay memory.
            let verifier = Verifier::new(VerifierConfig {
                replay_capacity: 0,
                ..enf.verifier.clone()
            });
            let result = if data.starts_with(b"<") || data.starts_with(b"\xef\xbb\xbf<") {
                verifier.verify_document(&data, now)
            } else if data.contains(&b'=') && !data.starts_with(b"PD") {
                verifier.verify_post(&data, now).map(|d| d.assertion)
            } else {
                let form = format!(
                    "SAMLResponse={}",
                    form_urlencoded::byte_serialize(&data).collect::<String>()
                );
                verifier
                    .verify_post(form.as_bytes(), now)
                    .map(|d| d.assertion)
            };
            match result {
                Ok(a) => {
                    if groups.is_empty() {
                        groups = a.groups().to_vec();
                    }
                    a.device_trust()
                }
                Err(e) => {
                    eprintln!(
                        "trustgate explain: the assertion is rejected ({}): {e}",
                        e.reason()
                    );
                    return ExitCode::from(1);
                }
            }
        }
        (None, Some(t)) => DeviceTrust::from(*t),
        (None, None) => DeviceTrust::Unknown,
    };
    let client = classify_user_agent(args.user_agent.as_bytes());
    let explanation = enf.policy.explain(&Facts {
        client,
        trust,
        groups: &groups,
        ip: args.ip,
    });
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&explanation).expect("explanations serialize")
        );
    } else {
        println!("{explanation}");
    }
    ExitCode::SUCCESS
}
