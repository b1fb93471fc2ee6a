//! One module per noun of the command line; each turns a parsed command into
//! directory calls and prints the result.

mod account;
mod cluster;
mod daemon;
mod domain;
mod import;
mod queue;
mod up;

use std::sync::Arc;

use locator::Directory;
use locator::config::Open;
use shared::Address;

use crate::Failure;
use crate::cli::{Cli, Command, ConfigCmd};

/// What every command gets: the directory and how to print.
pub struct Ctx {
    pub dir: Arc<dyn Directory>,
    pub json: bool,
    /// The config's `etcd:` section, if any.
    pub etcd: Option<shared::etcd::EtcdConfig>,
}

impl Ctx {
    /// Prints `value` as JSON, or `text` for people.
    pub fn done<T: serde::Serialize>(
        &self,
        value: &T,
        text: impl FnOnce() -> String,
    ) -> Result<(), Failure> {
        if self.json {
            crate::output::json(value)
        } else {
            println!("{}", text());
            Ok(())
        }
    }
}

pub async fn dispatch(cli: Cli) -> Result<(), Failure> {
    // `up` writes its own config; there is none to read yet.
    if let Command::Up {
        dir,
        port_offset,
        nodes,
    } = &cli.command
    {
        return up::up(dir, *port_offset, *nodes, cli.json).await;
    }
    let cfg = crate::config::load(&cli.config)?;
    if let Command::Config(ConfigCmd::Check) = cli.command {
        let summary = serde_json::json!({ "config": cli.config, "ok": true });
        return if cli.json {
            crate::output::json(&summary)
        } else {
            println!("{}: ok", cli.config.display());
            Ok(())
        };
    }
    match &cli.command {
        Command::Backend { node } => return daemon::backend(&cfg, node).await,
        Command::Frontend => return daemon::frontend(&cfg).await,
        // The spool is a local directory: no locator needed.
        Command::Queue(c) => return queue::run(&cfg, cli.json, c).await,
        _ => {}
    }
    let dir = locator::config::open(&cfg.locator, Open::Eager).await?;
    let ctx = Ctx {
        dir,
        json: cli.json,
        etcd: cfg.etcd.clone(),
    };
    match cli.command {
        Command::Domain(c) => domain::run(&ctx, c).await,
        Command::Account(c) => account::run(&ctx, c).await,
        Command::Alias(c) => account::alias(&ctx, c).await,
        Command::Cluster(c) => cluster::run(&ctx, c).await,
        Command::Config(_)
        | Command::Backend { .. }
        | Command::Frontend
        | Command::Up { .. }
        | Command::Queue(_) => Ok(()),
    }
}

pub fn address(s: &str) -> Result<Address, Failure> {
    Address::parse(s).map_err(|e| Failure::Usage(e.to_string()))
}
