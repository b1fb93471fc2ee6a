//! The `locator:` section of a Tandem config file, and opening what it names.
//!
//! ```yaml
//! locator:
//!   sql:
//!     url: sqlite:///var/lib/tandem/locator.db   # or postgres://..., mysql://...
//!   ldap:                                         # optional: accounts from LDAP
//!     url: ldap://ldap.example.com
//!     base_dn: ou=mail,dc=example,dc=com
//!   cache:
//!     ttl: 60s
//! ```
//!
//! Without `ldap`, the SQL database holds everything. With it, domains,
//! accounts and aliases come from LDAP and the SQL database holds only the
//! clusters and their nodes (the topology Tandem itself manages).

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use shared::config::{Problems, Validate, join};

use crate::cache::CacheConfig;
use crate::directory::Directory;
use crate::error::DirectoryError;
use crate::ldap::{LdapConfig, LdapDirectory};
use crate::sql::{Dialect, SqlDirectory, SqlOptions};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocatorConfig {
    /// The SQL store: every account when `ldap` is absent; clusters and nodes always.
    pub sql: SqlConfig,
    /// Domains, accounts and aliases from an LDAP directory instead of `sql`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ldap: Option<LdapConfig>,
    /// Lookup cache of every daemon that reads the locator.
    #[serde(default)]
    pub cache: CacheConfig,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlConfig {
    /// `sqlite:///path/locator.db` (created on first use),
    /// `postgres://user:password@host/db` or `mysql://user:password@host/db`.
    pub url: String,
    /// Connections per process.
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// Longest wait for a connection or a statement before the database
    /// counts as unavailable (and lookups fall back to the cache).
    #[serde(default = "default_timeout", with = "shared::config::duration")]
    pub timeout: Duration,
}

fn default_max_connections() -> u32 {
    16
}

fn default_timeout() -> Duration {
    Duration::from_secs(3)
}

impl Validate for LocatorConfig {
    fn validate(&self, at: &str, p: &mut Problems) {
        if let Err(e) = Dialect::from_url(&self.sql.url) {
            p.push(at, "sql.url", e.to_string());
        }
        if self.sql.max_connections == 0 {
            p.push(at, "sql.max_connections", "must be at least 1");
        }
        if let Some(l) = &self.ldap {
            l.validate(&join(at, "ldap"), p);
        }
        self.cache.validate(&join(at, "cache"), p);
    }
}

/// How a process opens the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Open {
    /// Connect now and create or upgrade the schema: provisioning commands.
    Eager,
    /// Start even if the database is down, serving from cache until it is
    /// back: daemons.
    Lazy,
}

/// Opens the directory the config describes.
pub async fn open(cfg: &LocatorConfig, how: Open) -> Result<Arc<dyn Directory>, DirectoryError> {
    let mut opts = SqlOptions {
        max_connections: cfg.sql.max_connections,
        timeout: cfg.sql.timeout,
        lazy: false,
    };
    let sql = match SqlDirectory::open(&cfg.sql.url, &opts).await {
        Ok(d) => d,
        Err(e) if how == Open::Lazy && e.is_transient() => {
            tracing::warn!(error = %e, "locator database unreachable; starting anyway");
            opts.lazy = true;
            SqlDirectory::open(&cfg.sql.url, &opts).await?
        }
        Err(e) => return Err(e),
    };
    let sql: Arc<dyn Directory> = Arc::new(sql);
    match (&cfg.ldap, how) {
        (None, _) => Ok(sql),
        (Some(l), Open::Eager) => Ok(Arc::new(LdapDirectory::connect(l, sql).await?)),
        (Some(l), Open::Lazy) => Ok(Arc::new(LdapDirectory::connect_lazy(l, sql).await?)),
    }
}
