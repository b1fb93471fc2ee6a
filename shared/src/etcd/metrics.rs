//! etcd request latency and errors, by operation.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpLabel {
    pub op: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabel {
    pub op: &'static str,
    /// `unavailable` (no member answered), `server` (etcd said no),
    /// `protocol` (an answer we could not read).
    pub kind: &'static str,
}

#[derive(Clone)]
pub struct EtcdMetrics {
    pub seconds: Family<OpLabel, Histogram>,
    pub errors: Family<ErrorLabel, Counter>,
    /// Requests a member failed and the next one was asked.
    pub failovers: Counter,
}

impl Default for EtcdMetrics {
    fn default() -> Self {
        EtcdMetrics {
            seconds: Family::new_with_constructor(crate::metrics::latency_histogram),
            errors: Family::default(),
            failovers: Counter::default(),
        }
    }
}

impl EtcdMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        let r = registry.sub_registry_with_prefix("tandem_etcd");
        r.register(
            "request_seconds",
            "etcd request latency by operation (including failover)",
            m.seconds.clone(),
        );
        r.register(
            "errors",
            "etcd requests that failed, by operation and kind",
            m.errors.clone(),
        );
        r.register(
            "failovers",
            "etcd requests retried on the next member",
            m.failovers.clone(),
        );
        m
    }
}
