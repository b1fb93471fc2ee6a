//! The one interface every account directory implements, whatever it is
//! stored in. The hot path is [`Directory::lookup`]; everything else is
//! provisioning, driven by the `tandem` command.
//!
//! Implementations: [`crate::sql::SqlDirectory`] (SQLite, PostgreSQL,
//! MySQL/MariaDB) and [`crate::ldap::LdapDirectory`]. All pass the same
//! conformance suite (`tests/src/conformance.rs`).
//!
//! Contract shared by all implementations:
//! - addresses are normalised [`Address`]es; primary addresses and aliases
//!   share one namespace (an alias can never shadow an account or another alias);
//! - an account's domain must have been added first, and so must its cluster;
//! - a domain with accounts, or a cluster with accounts or nodes, cannot be removed;
//! - lists come back sorted (domains and accounts by name, clusters by id,
//!   nodes by id, aliases by address).

use std::collections::BTreeMap;

use async_trait::async_trait;
use shared::{Address, Domain};

use crate::error::DirectoryError;
use crate::model::{Account, AccountChange, Cluster, ClusterState, NewAccount, Node};

pub type Result<T> = std::result::Result<T, DirectoryError>;

#[async_trait]
pub trait Directory: Send + Sync + 'static {
    /// A short name for logs and metrics: `sqlite`, `postgres`, `mysql`, `ldap`.
    fn kind(&self) -> &'static str;

    /// The account `address` belongs to, as its primary address or an alias.
    async fn lookup(&self, address: &Address) -> Result<Option<Account>>;

    /// Verifies a password by the directory's own means, for directories that
    /// do not hand out hashes (LDAP auth-by-bind). `Ok(None)`, the default,
    /// means "check [`Account::password`] yourself".
    async fn verify_by_bind(&self, _account: &Account, _password: &[u8]) -> Result<Option<bool>> {
        Ok(None)
    }

    async fn add_domain(&self, domain: &Domain) -> Result<()>;
    async fn remove_domain(&self, domain: &Domain) -> Result<()>;
    async fn domains(&self) -> Result<Vec<Domain>>;

    /// Adds an account; `Conflict` if its address is taken by an account or alias.
    async fn add_account(&self, account: &NewAccount) -> Result<Account>;
    /// Applies `change` to the account whose primary address is `address`.
    async fn update_account(&self, address: &Address, change: &AccountChange) -> Result<Account>;
    /// Removes an account and its aliases.
    async fn remove_account(&self, address: &Address) -> Result<()>;
    /// Accounts, optionally of one domain, sorted by address.
    async fn accounts(&self, domain: Option<&Domain>) -> Result<Vec<Account>>;

    /// Makes `alias` deliver to the account whose primary address is `account`.
    async fn add_alias(&self, alias: &Address, account: &Address) -> Result<()>;
    async fn remove_alias(&self, alias: &Address) -> Result<()>;

    async fn add_cluster(&self, id: &str, state: ClusterState, weight: u32) -> Result<()>;
    async fn update_cluster(
        &self,
        id: &str,
        state: Option<ClusterState>,
        weight: Option<u32>,
    ) -> Result<()>;
    async fn remove_cluster(&self, id: &str) -> Result<()>;
    /// Every cluster with its nodes, sorted by id.
    async fn clusters(&self) -> Result<Vec<Cluster>>;
    /// One cluster with its nodes.
    async fn cluster(&self, id: &str) -> Result<Option<Cluster>>;
    async fn add_node(&self, cluster: &str, node: &Node) -> Result<()>;
    async fn remove_node(&self, cluster: &str, node: &str) -> Result<()>;

    /// Number of accounts homed on each cluster (clusters with none may be absent).
    async fn account_counts(&self) -> Result<BTreeMap<String, u64>>;
}
