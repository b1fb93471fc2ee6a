//! The `etcd:` section of a Tandem config file, read by backend nodes
//! (membership and account ownership), frontends (who owns an account) and
//! the CLI (`tandem cluster status`).
//!
//! ```yaml
//! etcd:
//!   endpoints: [10.0.0.1:2379, 10.0.0.2:2379, 10.0.0.3:2379]
//!   prefix: /tandem          # every key Tandem writes starts with this
//!   lease_ttl: 5s            # a dead node's accounts are free after this
//!   request_timeout: 1s      # per request and member
//!   release_idle_after: 10m  # an owner lets go of an account idle this long
//! ```
//! Without the section a cluster has one node, which owns every account.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{Problems, Validate};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdConfig {
    /// Client URLs of the members (`host:port` or `http://host:port`); a
    /// request that fails on one is tried on the next.
    pub endpoints: Vec<String>,
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// The TTL of each node's lease. A node fences itself when it could
    /// not renew for most of it; a dead node's accounts are free after it.
    #[serde(default = "default_ttl", with = "crate::config::duration")]
    pub lease_ttl: Duration,
    #[serde(default = "default_timeout", with = "crate::config::duration")]
    pub request_timeout: Duration,
    /// A backend node releases an account that had no session on it for
    /// this long, so accounts spread over the nodes again.
    #[serde(default = "default_release", with = "crate::config::duration")]
    pub release_idle_after: Duration,
}

fn default_release() -> Duration {
    Duration::from_secs(600)
}

fn default_prefix() -> String {
    "/tandem".into()
}

fn default_ttl() -> Duration {
    Duration::from_secs(5)
}

fn default_timeout() -> Duration {
    Duration::from_secs(1)
}

impl EtcdConfig {
    /// The key of `rest` below the prefix: `<prefix>/<rest>`.
    pub fn key(&self, rest: &str) -> String {
        format!("{}/{rest}", self.prefix.trim_end_matches('/'))
    }
}

impl Validate for EtcdConfig {
    fn validate(&self, at: &str, p: &mut Problems) {
        if self.endpoints.is_empty() {
            p.push(at, "endpoints", "list at least one etcd member");
        }
        for e in &self.endpoints {
            if let Err(why) = client::parse_endpoint(e) {
                p.push(at, "endpoints", format!("{e}: {why}"));
            }
        }
        if !self.prefix.starts_with('/') {
            p.push(at, "prefix", "must start with /");
        }
        if self.lease_ttl < Duration::from_secs(2) {
            p.push(at, "lease_ttl", "must be at least 2s");
        }
        if self.request_timeout.is_zero() || self.request_timeout * 3 > self.lease_ttl {
            p.push(
                at,
                "request_timeout",
                "must be above 0 and at most a third of lease_ttl",
            );
        }
    }
}

use super::client;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_problems() {
        let c: EtcdConfig = serde_saphyr::from_str("endpoints: [127.0.0.1:2379]\n").expect("parse");
        assert_eq!(c.prefix, "/tandem");
        assert_eq!(c.lease_ttl, Duration::from_secs(5));
        assert_eq!(c.key("clusters/c1"), "/tandem/clusters/c1");
        let mut p = Problems::default();
        c.validate("etcd", &mut p);
        assert!(p.is_empty(), "{:?}", p.into_vec());
        let bad: EtcdConfig =
            serde_saphyr::from_str("endpoints: [https://x:1, nope]\nprefix: t\nlease_ttl: 1s\n")
                .expect("parse");
        let mut p = Problems::default();
        bad.validate("etcd", &mut p);
        let all: Vec<String> = p.into_vec().iter().map(|x| format!("{x}")).collect();
        assert_eq!(all.len(), 5, "{all:?}");
    }
}
