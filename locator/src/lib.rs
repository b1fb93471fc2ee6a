//! The locator: for every account, its home backend cluster; for every
//! cluster, the nodes that serve it.
//!
//! - [`Directory`] is the storage interface, implemented by
//!   [`sql::SqlDirectory`] (SQLite, PostgreSQL, MySQL/MariaDB) and
//!   [`ldap::LdapDirectory`];
//! - [`Locator`] puts a cache in front of a directory (TTL, negative TTL,
//!   stale answers while the directory is down) and is what daemons use;
//! - [`config`] turns the `locator:` section of a config file into both.

pub mod cache;
pub mod config;
pub mod directory;
pub mod error;
pub mod import;
pub mod ldap;
pub mod metrics;
pub mod model;
pub mod placement;
pub mod sql;

pub use cache::{AuthOutcome, CacheConfig, Locator, LookupError};
pub use directory::Directory;
pub use error::DirectoryError;
pub use metrics::LocatorMetrics;
pub use model::{Account, AccountChange, AccountState, Cluster, ClusterState, NewAccount, Node};
