//! Locator metrics: lookups by how they were answered, directory queries by
//! operation and outcome, latencies, and authentications by result.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueryLabels {
    pub op: &'static str,
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpLabel {
    pub op: &'static str,
}

/// Cheap to clone: every field is a shared handle.
#[derive(Clone)]
pub struct LocatorMetrics {
    /// `hit`, `negative_hit`, `miss`, `stale`, `unavailable`.
    pub lookups: Family<ResultLabel, Counter>,
    /// Time to answer a lookup, cache included.
    pub lookup_seconds: Histogram,
    /// Queries sent to the directory, by operation and `ok` or error kind.
    pub queries: Family<QueryLabels, Counter>,
    pub query_seconds: Family<OpLabel, Histogram>,
    /// `ok`, `failed`, `suspended`, `unavailable`, `hash_error`.
    pub auths: Family<ResultLabel, Counter>,
    pub cache_entries: Gauge,
}

impl Default for LocatorMetrics {
    fn default() -> Self {
        LocatorMetrics {
            lookups: Family::default(),
            lookup_seconds: shared::metrics::latency_histogram(),
            queries: Family::default(),
            query_seconds: Family::new_with_constructor(shared::metrics::latency_histogram),
            auths: Family::default(),
            cache_entries: Gauge::default(),
        }
    }
}

impl LocatorMetrics {
    /// Creates the metrics and registers them under `tandem_locator_`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        let r = registry.sub_registry_with_prefix("tandem_locator");
        r.register(
            "lookups",
            "Account lookups by how they were answered",
            m.lookups.clone(),
        );
        r.register(
            "lookup_seconds",
            "Time to answer an account lookup, cache included",
            m.lookup_seconds.clone(),
        );
        r.register(
            "directory_queries",
            "Queries sent to the directory",
            m.queries.clone(),
        );
        r.register(
            "directory_query_seconds",
            "Directory query latency",
            m.query_seconds.clone(),
        );
        r.register(
            "authentications",
            "Password checks by result",
            m.auths.clone(),
        );
        r.register(
            "cache_entries",
            "Entries in the lookup cache",
            m.cache_entries.clone(),
        );
        m
    }

    pub fn lookup(&self, result: &'static str) {
        self.lookups.get_or_create(&ResultLabel { result }).inc();
    }

    pub fn auth(&self, result: &'static str) {
        self.auths.get_or_create(&ResultLabel { result }).inc();
    }

    pub fn query(&self, op: &'static str, result: &'static str, seconds: f64) {
        self.queries
            .get_or_create(&QueryLabels { op, result })
            .inc();
        self.query_seconds
            .get_or_create(&OpLabel { op })
            .observe(seconds);
    }
}
