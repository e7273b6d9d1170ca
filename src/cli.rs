//! Command-line subcommands other than `run`.

pub mod explain;

pub mod verify;
