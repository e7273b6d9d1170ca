//! `trustgate check`: validates a config and prints every problem with its
//! key path, as text or JSON; `--strict` makes warnings fail too (as
//! promtool's `--lint-fatal`).

use std::process::ExitCode;

use serde_json::json;

use super::ConfigArg;
use crate::config::Config;

/// Arguments of `trustgate check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Print one JSON object: `ok`, `errors` and `warnings`, each with its
    /// key path.
    #[arg(long)]
    pub json: bool,
    /// Warnings fail the check too.
    #[arg(long)]
    pub strict: bool,
}

/// Runs `trustgate check`: 0 when the config holds (and, with `--strict`,
/// has no warning), 1 otherwise, 2 when there is no file to check.
pub fn run(args: CheckArgs) -> ExitCode {
    let path = match args.config.existing() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("trustgate check: {e}");
            return ExitCode::from(2);
        }
    };
    let (errors, warnings, apps, certificates) = match Config::load(path) {
        Ok(c) => (
            Vec::new(),
            c.warnings.clone(),
            c.apps.len(),
            c.certificates.len(),
        ),
        Err(e) => (e.0, Vec::new(), 0, 0),
    };
    let failed = !errors.is_empty() || (args.strict && !warnings.is_empty());
    if args.json {
        let out = json!({
            "file": path.display().to_string(),
            "ok": !failed,
            "strict": args.strict,
            "errors": errors.iter().map(|e| json!({"path": e.path, "message": e.message})).collect::<Vec<_>>(),
            "warnings": warnings.iter().map(|w| json!({"path": w.path, "code": w.code, "message": w.message})).collect::<Vec<_>>(),
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&out).expect("json serializes")
        );
    } else {
        for e in &errors {
            println!("error: {e}");
        }
        for w in &warnings {
            println!("{w}");
        }
        if errors.is_empty() {
            println!(
                "{}: {} ({apps} apps, {certificates} certificates, {} warning(s){})",
                path.display(),
                if failed {
                    "warnings fail under --strict"
                } else {
                    "ok"
                },
                warnings.len(),
                if args.strict { ", strict" } else { "" },
            );
        } else {
            println!("{}: {} error(s)", path.display(), errors.len());
        }
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
