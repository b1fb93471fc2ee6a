//! Metrics of a node's part in its cluster.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProtocolLabel {
    pub protocol: &'static str,
}

#[derive(Clone, Default)]
pub struct ClusterMetrics {
    /// Accounts this node owns now.
    pub owned: Gauge,
    /// Accounts claimed (free in etcd, now ours).
    pub acquisitions: Counter,
    /// Of those, accounts whose previous owner died holding them.
    pub takeovers: Counter,
    /// Idle accounts let go.
    pub releases: Counter,
    /// Times this node fenced itself (lease not renewed in time).
    pub fences: Counter,
    /// Leases granted to this node (one at start, one after each fence).
    pub leases: Counter,
    /// Sessions proxied to the owner, by protocol.
    pub proxied: Family<ProtocolLabel, Counter>,
}

impl ClusterMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        let r = registry.sub_registry_with_prefix("tandem_cluster");
        r.register("owned_accounts", "Accounts this node owns", m.owned.clone());
        r.register(
            "acquisitions",
            "Accounts this node claimed",
            m.acquisitions.clone(),
        );
        r.register(
            "takeovers",
            "Accounts claimed from a node that died holding them",
            m.takeovers.clone(),
        );
        r.register("releases", "Idle accounts released", m.releases.clone());
        r.register(
            "fencing_events",
            "Times this node fenced itself for want of a live lease",
            m.fences.clone(),
        );
        r.register(
            "leases",
            "etcd leases granted to this node",
            m.leases.clone(),
        );
        r.register(
            "proxied_sessions",
            "Sessions proxied to the account's owner, by protocol",
            m.proxied.clone(),
        );
        m
    }

    pub fn proxied(&self, protocol: &'static str) {
        self.proxied
            .get_or_create(&ProtocolLabel { protocol })
            .inc();
    }
}
