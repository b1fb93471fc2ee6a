//! The etcd keys of one backend cluster, below the configured prefix
//! (written by its nodes, read by frontends and the CLI too):
//!
//! - `<prefix>/clusters/<c>/nodes/<node>`: a live node (JSON [`NodeInfo`]),
//!   bound to its lease;
//! - `<prefix>/clusters/<c>/owners/<address>`: the node owning an account,
//!   bound to that node's lease, so it vanishes when the node dies;
//! - `<prefix>/clusters/<c>/held/<address>`: the last owner, not bound to a
//!   lease and deleted on a clean release: when a node claims an account
//!   and finds it, the previous owner died holding it (a takeover).

use super::EtcdConfig;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone)]
pub struct Keys {
    base: String,
}

impl Keys {
    pub fn new(cfg: &EtcdConfig, cluster: &str) -> Keys {
        Keys {
            base: cfg.key(&format!("clusters/{cluster}")),
        }
    }

    pub fn nodes(&self) -> String {
        format!("{}/nodes/", self.base)
    }

    pub fn node(&self, node: &str) -> String {
        format!("{}/nodes/{node}", self.base)
    }

    pub fn owners(&self) -> String {
        format!("{}/owners/", self.base)
    }

    pub fn owner(&self, address: &str) -> String {
        format!("{}/owners/{address}", self.base)
    }

    pub fn held(&self, address: &str) -> String {
        format!("{}/held/{address}", self.base)
    }
}

/// What a live node says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub id: String,
    pub host: String,
    pub pid: u32,
    /// Service name (imap, pop3, lmtp, ...) to `host:port`.
    pub addresses: std::collections::BTreeMap<String, String>,
    /// Open IMAP and POP3 sessions, refreshed every few seconds.
    pub sessions: u64,
    /// Unix seconds.
    pub started: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sit_below_the_prefix_and_cluster() {
        let cfg: EtcdConfig =
            serde_saphyr::from_str("endpoints: [h:1]\nprefix: /p/\n").expect("cfg");
        let k = Keys::new(&cfg, "c1");
        assert_eq!(k.node("n1"), "/p/clusters/c1/nodes/n1");
        assert_eq!(k.owner("a@b.c"), "/p/clusters/c1/owners/a@b.c");
        assert!(k.owner("a@b.c").starts_with(&k.owners()));
        assert!(k.node("n1").starts_with(&k.nodes()));
        assert_eq!(k.held("a@b.c"), "/p/clusters/c1/held/a@b.c");
    }
}
