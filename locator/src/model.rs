//! What the locator knows: domains, accounts with their aliases, clusters and
//! the nodes that serve them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use shared::Address;

/// Lifecycle of an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccountState {
    /// Logs in and receives mail.
    Active,
    /// Kept, but neither logs in nor receives mail.
    Suspended,
    /// Being migrated between clusters: temporarily unavailable.
    Moving,
}

/// Whether a cluster takes new accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClusterState {
    /// Serves its accounts and is a candidate for new ones.
    Open,
    /// Serves its accounts, takes no new ones.
    Closed,
    /// Serves its accounts while they are moved elsewhere; takes no new ones.
    Draining,
}

/// An account and everything a frontend or backend needs to serve it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub address: Address,
    /// Other addresses that deliver to this account, sorted.
    pub aliases: Vec<Address>,
    /// `{SCHEME}hash`; `None` when the account cannot log in with a password.
    #[serde(skip_serializing)]
    pub password: Option<String>,
    /// Id of the home cluster.
    pub cluster: String,
    pub state: AccountState,
    /// Bytes; 0 means unlimited.
    pub quota: u64,
    /// Unix seconds.
    pub created: i64,
    /// The entry's DN when the account comes from LDAP (for auth by bind).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub dn: Option<String>,
}

/// What `tandem account add` or an import line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAccount {
    pub address: Address,
    pub password: Option<String>,
    pub cluster: String,
    pub state: AccountState,
    pub quota: u64,
}

/// A change to an existing account; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountChange {
    /// `Some(None)` removes the password.
    pub password: Option<Option<String>>,
    pub state: Option<AccountState>,
    pub quota: Option<u64>,
    pub cluster: Option<String>,
}

/// A backend cluster: nodes sharing one store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cluster {
    pub id: String,
    pub state: ClusterState,
    /// Relative capacity for placing new accounts.
    pub weight: u32,
    pub nodes: Vec<Node>,
}

/// One node of a cluster and where each of its services listens (`host:port`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub id: String,
    pub imap: Option<String>,
    pub pop3: Option<String>,
    pub lmtp: Option<String>,
    pub http: Option<String>,
    pub internal: Option<String>,
}

/// Why a cluster or node id, or a service address, was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidName(pub String);

/// Cluster and node ids: 1-64 of `[a-z0-9._-]`, starting with a letter or
/// digit. They appear in paths, metrics labels and LDAP values, so they are
/// kept boring on purpose.
pub fn check_id(kind: &str, id: &str) -> Result<(), InvalidName> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        && id.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(InvalidName(format!(
            "{kind} id {id:?} is invalid: use 1-64 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit"
        )))
    }
}

/// `host:port` or `[v6]:port`, as given to `--imap` and friends.
pub fn check_endpoint(service: &str, value: &str) -> Result<(), InvalidName> {
    let bad = || {
        InvalidName(format!(
            "{service} address {value:?} is invalid: expected HOST:PORT or [IPv6]:PORT"
        ))
    };
    let (host, port) = value.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    let host_ok = if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        v6.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        !host.is_empty()
            && host.len() <= 253
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-_".contains(&b))
    };
    if port == 0 || !host_ok {
        return Err(bad());
    }
    Ok(())
}

impl Node {
    /// Checks the id and every address given.
    pub fn validate(&self) -> Result<(), InvalidName> {
        check_id("node", &self.id)?;
        for (service, addr) in self.endpoints() {
            if let Some(a) = addr {
                check_endpoint(service, a)?;
            }
        }
        Ok(())
    }

    pub fn endpoints(&self) -> [(&'static str, &Option<String>); 5] {
        [
            ("imap", &self.imap),
            ("pop3", &self.pop3),
            ("lmtp", &self.lmtp),
            ("http", &self.http),
            ("internal", &self.internal),
        ]
    }
}

macro_rules! text_enum {
    ($t:ty { $($v:ident = $s:literal),+ $(,)? }) => {
        impl $t {
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$v => $s),+ }
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl FromStr for $t {
            type Err = InvalidName;
            fn from_str(s: &str) -> Result<Self, InvalidName> {
                match s.trim().to_ascii_lowercase().as_str() {
                    $($s => Ok(Self::$v),)+
                    other => Err(InvalidName(format!(
                        "{other:?} is not one of: {}", [$($s),+].join(", ")
                    ))),
                }
            }
        }
    };
}

text_enum!(AccountState { Active = "active", Suspended = "suspended", Moving = "moving" });
text_enum!(ClusterState { Open = "open", Closed = "closed", Draining = "draining" });

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        for ok in ["c1", "eu-west.1", "a", "0_x"] {
            assert!(check_id("cluster", ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "C1",
            "-a",
            ".a",
            "a/b",
            "../x",
            "a b",
            "a*",
            &"x".repeat(65),
        ] {
            assert!(check_id("cluster", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn endpoints() {
        for ok in [
            "127.0.0.1:143",
            "imap.example.com:993",
            "[::1]:24",
            "node-a:4190",
        ] {
            assert!(check_endpoint("imap", ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "host",
            "host:",
            ":143",
            "host:0",
            "host:99999",
            "[::1:24",
            "a b:1",
            "h/x:1",
        ] {
            assert!(check_endpoint("imap", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn states_parse() {
        assert_eq!(
            "Suspended".parse::<AccountState>(),
            Ok(AccountState::Suspended)
        );
        assert_eq!(
            "draining".parse::<ClusterState>(),
            Ok(ClusterState::Draining)
        );
        let e = "gone".parse::<ClusterState>().unwrap_err().to_string();
        assert!(e.contains("open, closed, draining"), "{e}");
    }
}
