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
    /// The config file.
    #[arg(long, default_value = "config.toml")]
    pub config: PathBuf,
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
    /// Device trust: trusted, not_trusted or unknown.
    #[arg(long)]
    pub trust: Option<String>,
    /// Groups, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub groups: Vec<String>,
    /// The client address (for network zones).
    #[arg(long, default_value = "127.0.0.1")]
    pub ip: IpAddr,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Runs `trustgate explain`: 0 on success, 1 when the assertion is
/// rejected, 2 on usage or config errors.
pub fn run(args: ExplainArgs) -> ExitCode {
    let config = match Config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!(
                "trustgate explain: {} has errors:\n{e}",
                args.config.display()
            );
            return ExitCode::from(2);
        }
    };
    let Some(app) = config.apps.iter().find(|a| *a.name == args.app) else {
        eprintln!(
            "trustgate explain: no app {:?} in {}",
            args.app,
            args.config.display()
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
    let trust = match (&args.assertion, args.trust.as_deref()) {
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
            let now = std::time::SystemTime::now();
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
        (None, Some("trusted")) => DeviceTrust::Trusted,
        (None, Some("not_trusted")) => DeviceTrust::NotTrusted,
        (None, Some("unknown")) | (None, None) => DeviceTrust::Unknown,
        (None, Some(other)) => {
            eprintln!(
                "trustgate explain: --trust {other:?} is not one of trusted, not_trusted, unknown"
            );
            return ExitCode::from(2);
        }
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
