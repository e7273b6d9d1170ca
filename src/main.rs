//! The `trustgate` binary: parses the command line and hands off to the library.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use trustgate::config::Config;

/// mimalloc instead of glibc malloc: a proxy allocates and frees small
/// buffers per request on every worker, and glibc's bins and consolidation
/// cost measurable CPU there (see benches/README.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "trustgate",
    version,
    about = "Device-trust reverse proxy for SAML and WS-Federation apps"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (the default, with ./config.toml).
    Run {
        /// The config file.
        #[arg(long, default_value = "config.toml")]
        config: PathBuf,
    },
    /// Validate a config file and print every problem; non-zero on any error.
    Check {
        /// The config file.
        #[arg(long, default_value = "config.toml")]
        config: PathBuf,
    },
    /// Check one SAMLResponse or WS-Fed wresult offline and print the verdict as JSON.
    Verify(trustgate::cli::verify::VerifyArgs),
    /// Show which policy rule matches a client and assertion, and why.
    Explain(trustgate::cli::explain::ExplainArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        None => run(PathBuf::from("config.toml")),
        Some(Command::Run { config }) => run(config),
        Some(Command::Check { config }) => check(&config),
        Some(Command::Verify(args)) => trustgate::cli::verify::run(args),
        Some(Command::Explain(args)) => trustgate::cli::explain::run(args),
    }
}

fn run(path: PathBuf) -> ExitCode {
    match run_gateway(&path) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("trustgate: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run_gateway(path: &std::path::Path) -> anyhow::Result<()> {
    let config =
        Config::load(path).map_err(|e| anyhow::anyhow!("{} has errors:\n{e}", path.display()))?;
    trustgate::observe::init_logging(config.log_format, &config.log_level);
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Some(n) = config.server.worker_threads {
        runtime.worker_threads(n);
    }
    let runtime = runtime.build().context("cannot start the async runtime")?;
    runtime.block_on(trustgate::lifecycle::run(config))?;
    Ok(())
}

fn check(path: &std::path::Path) -> ExitCode {
    match Config::load(path) {
        Ok(config) => {
            for w in &config.warnings {
                println!("{w}");
            }
            println!(
                "{}: ok ({} apps, {} certificates, {} warning(s))",
                path.display(),
                config.apps.len(),
                config.certificates.len(),
                config.warnings.len()
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in &errors.0 {
                println!("error: {e}");
            }
            println!("{}: {} error(s)", path.display(), errors.0.len());
            ExitCode::from(1)
        }
    }
}
