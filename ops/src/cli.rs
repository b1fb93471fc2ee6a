//! Command-line surface of `tandem`. Every subcommand takes `--config FILE`
//! and `--json`; the locator section of that file says which directory.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use shared::logging::LogFormat;

#[derive(Debug, Parser)]
#[command(
    name = "tandem",
    version,
    about = "Tandem mail supercluster: daemons and provisioning"
)]
pub struct Cli {
    /// Config file.
    #[arg(
        long,
        short,
        global = true,
        env = "TANDEM_CONFIG",
        default_value = "/etc/tandem/tandem.yaml"
    )]
    pub config: PathBuf,
    /// Machine-readable output: one JSON document on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    /// Log format on stderr.
    #[arg(long, global = true, default_value = "text")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Mail domains served.
    #[command(subcommand)]
    Domain(DomainCmd),
    /// Mail accounts.
    #[command(subcommand)]
    Account(AccountCmd),
    /// Extra addresses that deliver to an account.
    #[command(subcommand)]
    Alias(AliasCmd),
    /// Backend clusters and their nodes.
    #[command(subcommand)]
    Cluster(ClusterCmd),
    /// The config file.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// This frontend host's mail spool (`frontend.queue.dir`).
    #[command(subcommand)]
    Queue(QueueCmd),
    /// Run a backend node (the `backend:` section) until SIGTERM.
    Backend {
        /// This node's id, as in `tandem cluster node add CLUSTER NODE`.
        #[arg(long)]
        node: String,
    },
    /// Run the frontend proxies (the `frontend:` section) until SIGTERM.
    Frontend,
    /// A whole supercluster on this machine (locator, two backend clusters,
    /// a frontend) as child processes, until Ctrl-C.
    Up {
        /// Where the locator, stores, certificate, configs and logs go.
        #[arg(long, default_value = "tandem-data")]
        dir: PathBuf,
        /// Added to every default port (POP3 1110, POP3S 1995, ...).
        #[arg(long, default_value_t = 0)]
        port_offset: u16,
        /// Backend nodes per cluster (1-9). Above 1 the nodes share the
        /// cluster's store and coordinate through a local etcd that `up`
        /// starts (Debian package etcd-server).
        #[arg(long, default_value_t = 1)]
        nodes: u16,
    },
}

impl Command {
    pub fn is_daemon(&self) -> bool {
        matches!(
            self,
            Command::Backend { .. } | Command::Frontend | Command::Up { .. }
        )
    }
}

#[derive(Debug, Subcommand)]
pub enum DomainCmd {
    /// Add a domain.
    Add { domain: String },
    /// List domains.
    List,
    /// Remove a domain that has no accounts or aliases left.
    Rm { domain: String },
}

#[derive(Debug, Subcommand)]
pub enum AccountCmd {
    /// Add an account; without --cluster it goes to the open cluster with the
    /// fewest accounts per unit of weight.
    Add {
        address: String,
        #[arg(long)]
        cluster: Option<String>,
        #[command(flatten)]
        password: PasswordArgs,
        /// Quota in bytes (K, M, G, T suffixes accepted); 0 for none.
        #[arg(long, value_parser = parse_size, default_value = "0")]
        quota: u64,
        /// Create the account suspended.
        #[arg(long)]
        suspended: bool,
    },
    /// Show one account (found by its address or an alias).
    Show { address: String },
    /// List accounts.
    List {
        #[arg(long)]
        domain: Option<String>,
        #[arg(long)]
        cluster: Option<String>,
    },
    /// Set or remove the password.
    Passwd {
        address: String,
        #[command(flatten)]
        password: PasswordArgs,
        /// Remove the password: the account can no longer log in.
        #[arg(long, conflicts_with_all = ["password_stdin", "password_hash"])]
        remove: bool,
    },
    /// Set the quota in bytes (K, M, G, T suffixes accepted); 0 for none.
    Quota {
        address: String,
        #[arg(value_parser = parse_size)]
        bytes: u64,
    },
    /// Stop logins and deliveries, keeping the mail.
    Suspend { address: String },
    /// Undo `suspend`.
    Resume { address: String },
    /// Remove an account and its aliases (its mail stays in the store).
    Rm { address: String },
    /// Import accounts from a file, idempotently; errors are reported per line.
    Import(ImportArgs),
}

#[derive(Debug, Args)]
pub struct PasswordArgs {
    /// Read the password from the first line of standard input.
    #[arg(long)]
    pub password_stdin: bool,
    /// Store this {SCHEME}hash as it is (e.g. from `doveadm pw`).
    #[arg(long, conflicts_with = "password_stdin")]
    pub password_hash: Option<String>,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The file, or - for standard input.
    pub file: PathBuf,
    #[arg(long, value_enum, default_value = "passwd")]
    pub format: ImportFormat,
    /// Create missing domains instead of failing their lines.
    #[arg(long)]
    pub create_domains: bool,
    /// Cluster for new accounts whose line names none (default: placement).
    #[arg(long)]
    pub cluster: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ImportFormat {
    /// `address:{SCHEME}hash[:...]`, as Dovecot's passwd-file.
    Passwd,
    /// One JSON object per line.
    Jsonl,
}

#[derive(Debug, Subcommand)]
pub enum AliasCmd {
    /// Make ALIAS deliver to ACCOUNT.
    Add { alias: String, account: String },
    /// Remove an alias.
    Rm { alias: String },
}

#[derive(Debug, Subcommand)]
pub enum ClusterCmd {
    /// Add a cluster (open for new accounts unless --state says otherwise).
    Add {
        id: String,
        #[arg(long, default_value_t = 1)]
        weight: u32,
        #[arg(long, default_value = "open")]
        state: String,
    },
    /// List clusters with their account counts and nodes.
    List,
    /// Show one cluster.
    Show { id: String },
    /// Live nodes of a cluster (from etcd): host, pid, addresses, sessions
    /// and the accounts each owns.
    Status { id: String },
    /// open, closed (no new accounts) or draining (being emptied).
    SetState { id: String, state: String },
    /// Relative capacity for placing new accounts.
    SetWeight { id: String, weight: u32 },
    /// Remove a cluster with no accounts and no nodes.
    Rm { id: String },
    /// Nodes of a cluster.
    #[command(subcommand)]
    Node(NodeCmd),
}

#[derive(Debug, Subcommand)]
pub enum NodeCmd {
    /// Add a node and where its services listen (HOST:PORT).
    Add {
        cluster: String,
        node: String,
        #[arg(long)]
        imap: Option<String>,
        #[arg(long)]
        pop3: Option<String>,
        #[arg(long)]
        lmtp: Option<String>,
        #[arg(long)]
        http: Option<String>,
        #[arg(long)]
        internal: Option<String>,
    },
    /// Remove a node.
    Rm { cluster: String, node: String },
}

#[derive(Debug, Subcommand)]
pub enum QueueCmd {
    /// Messages waiting: id, age, sender, pending recipients, attempts,
    /// next attempt, last error.
    List,
    /// One message: every recipient's state and the message's header.
    Show { id: String },
    /// Make a message (or every one) due now; the running frontend
    /// tries it within a second.
    Retry {
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        #[arg(long)]
        all: bool,
    },
    /// Remove a message without a DSN to its sender.
    Delete { id: String },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCmd {
    /// Load and validate the config file, reporting every problem.
    Check,
}

fn parse_size(s: &str) -> Result<u64, String> {
    shared::config::parse_size(s)
}
