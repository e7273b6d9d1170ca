//! Command-line subcommands other than `run`.

pub mod verify;
