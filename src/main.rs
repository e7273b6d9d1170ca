//! The `trustgate` binary: parses the command line and hands off to the library.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
    /// Check one SAMLResponse or WS-Fed wresult offline and print the verdict as JSON.
    Verify(trustgate::cli::verify::VerifyArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Verify(args)) => trustgate::cli::verify::run(args),
        None => ExitCode::SUCCESS,
    }
}
