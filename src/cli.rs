//! The command line (SPEC 8): `identity-service [--config FILE] [serve | check-config]`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// OpenID Connect login sessions and downstream tokens for browser applications.
#[derive(Debug, Parser)]
#[command(name = "identity-service", version, about)]
pub struct Cli {
    /// Configuration file (default: config/default.toml when it exists).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service.
    Serve,
    /// Validate the configuration and print it with secrets masked.
    CheckConfig,
}
