//! The `trustgate` binary: parses the command line and hands off to the library.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use trustgate::config::Config;

/// mimalloc instead of glibc malloc: a proxy allocates and frees small
/// buffers per request on every worker, and glibc's bins and consolidation
/// cost measurable CPU there (see benches/README.md). It is built without
/// transparent huge pages (Cargo.toml's `no_thp`): with them, a host whose
/// THP setting is `madvise` backs its arenas with 2 MiB pages, and an idle
/// connection costs half as much again.
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
    /// Run the gateway (the default, with ./config.toml or TRUSTGATE_CONFIG).
    Run(trustgate::cli::ConfigArg),
    /// Validate a config file and print every problem; non-zero on any error.
    Check(trustgate::cli::check::CheckArgs),
    /// Check one SAMLResponse or WS-Fed wresult offline and print the verdict as JSON.
    Verify(trustgate::cli::verify::VerifyArgs),
    /// Show which policy rule matches a client and assertion, and why.
    Explain(trustgate::cli::explain::ExplainArgs),
    /// Print the subject hash of a NameID, as the audit log and
    /// X-Trustgate-Subject carry it.
    SubjectHash {
        /// The NameID (SAML 2.0) or NameIdentifier (WS-Fed).
        name_id: String,
    },
    /// Exit 0 when the admin listener answers /readyz with 200 (a
    /// container probe without curl).
    Healthcheck {
        /// The URL to probe.
        #[arg(long, default_value = "http://127.0.0.1:9901/readyz")]
        url: String,
        /// How long to wait for the answer, such as `2s`.
        #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
        timeout: std::time::Duration,
    },
    /// Revoke sessions through the admin listener (on every replica, with
    /// [redis]).
    Revoke {
        /// The admin listener.
        #[arg(long, default_value = "http://127.0.0.1:9901")]
        admin: String,
        /// The admin token (admin.token), if one is set.
        #[arg(long, env = "TRUSTGATE_ADMIN_TOKEN", hide_env_values = true)]
        token: Option<String>,
        #[command(flatten)]
        target: trustgate::cli::RevokeTarget,
    },
    /// Print a shell completion script.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        None => run(trustgate::cli::ConfigArg::parse_env()),
        Some(Command::Run(config)) => run(config),
        Some(Command::Check(args)) => trustgate::cli::check::run(args),
        Some(Command::Verify(args)) => trustgate::cli::verify::run(args),
        Some(Command::Explain(args)) => trustgate::cli::explain::run(args),
        Some(Command::SubjectHash { name_id }) => {
            print!("{}", trustgate::cli::subject_hash(&name_id));
            ExitCode::SUCCESS
        }
        Some(Command::Healthcheck { url, timeout }) => {
            match trustgate::cli::healthcheck(&url, timeout) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("trustgate healthcheck: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Some(Command::Revoke {
            admin,
            token,
            target,
        }) => match trustgate::cli::revoke(
            &admin,
            token.as_deref(),
            &target,
            std::time::Duration::from_secs(5),
        ) {
            Ok(said) => {
                println!("{said}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("trustgate revoke: {e}");
                ExitCode::from(1)
            }
        },
        Some(Command::Completions { shell }) => {
            use clap::CommandFactory;
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "trustgate",
                &mut std::io::stdout(),
            );
            ExitCode::SUCCESS
        }
    }
}

fn run(config: trustgate::cli::ConfigArg) -> ExitCode {
    let result = config
        .existing()
        .map_err(anyhow::Error::msg)
        .and_then(run_gateway);
    match result {
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
    let mut runtime = match config.server.runtime {
        // The serving threads have runtimes of their own; this one, on the
        // main thread, runs the admin listener, Redis, signals and reloads.
        trustgate::config::RuntimeKind::PerCore => tokio::runtime::Builder::new_current_thread(),
        trustgate::config::RuntimeKind::Shared => {
            let mut r = tokio::runtime::Builder::new_multi_thread();
            if let Some(n) = config.server.worker_threads {
                r.worker_threads(n);
            }
            r
        }
    };
    runtime.enable_all();
    let runtime = runtime.build().context("cannot start the async runtime")?;
    runtime.block_on(trustgate::lifecycle::run(config))?;
    Ok(())
}
