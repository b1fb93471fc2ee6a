//! The `tandem` command's logic: every subcommand, behind [`run`].

pub mod cli;
pub mod commands;
pub mod config;
pub mod output;

use locator::DirectoryError;
use shared::config::ConfigError;

/// Why a command failed, and the exit status that says so to scripts
/// (sysexits.h values where one fits).
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Directory(#[from] DirectoryError),
    #[error("{0}")]
    Io(String),
    /// Some of the work was done, some was not (an import with bad lines).
    #[error("{0}")]
    Partial(String),
}

impl Failure {
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Config(_) | Failure::Usage(_) => 64,
            Failure::Directory(e) if e.is_transient() => 75,
            Failure::Directory(_) => 1,
            Failure::Io(_) => 74,
            Failure::Partial(_) => 65,
        }
    }
}

pub async fn run(cli: cli::Cli) -> Result<(), Failure> {
    commands::dispatch(cli).await
}
