//! `tandem_queue_*` metrics.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::ResultLabel;

#[derive(Clone)]
pub struct QueueMetrics {
    /// Messages by what `accept` answered: `delivered` (every recipient
    /// delivered or failed), `queued` (some spooled), `refused_permanent`,
    /// `refused_temporary`.
    pub messages: Family<ResultLabel, Counter>,
    /// Recipients by attempt result: `delivered` (LMTP), `relayed`
    /// (smarthost), `deferred`, `failed`.
    pub recipients: Family<ResultLabel, Counter>,
    /// Entries in the spool.
    pub length: Gauge,
    /// Age of the oldest entry, seconds.
    pub oldest_seconds: Gauge,
    /// From accept to the 250 of a recipient's delivery.
    pub delivery_seconds: Histogram,
    pub dsns: Counter,
    /// Attempts after the first.
    pub retries: Counter,
}

impl Default for QueueMetrics {
    fn default() -> Self {
        QueueMetrics {
            messages: Family::default(),
            recipients: Family::default(),
            length: Gauge::default(),
            oldest_seconds: Gauge::default(),
            // 1 ms to ~3 days: immediate deliveries and retried ones.
            delivery_seconds: Histogram::new(exponential_buckets(0.001, 4.0, 14)),
            dsns: Counter::default(),
            retries: Counter::default(),
        }
    }
}

impl QueueMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        let r = registry.sub_registry_with_prefix("tandem_queue");
        r.register(
            "messages",
            "Messages handed to the queue, by what the client was told",
            m.messages.clone(),
        );
        r.register(
            "recipients",
            "Recipients by attempt result",
            m.recipients.clone(),
        );
        r.register("length", "Messages in the spool", m.length.clone());
        r.register(
            "oldest_seconds",
            "Age of the oldest message in the spool",
            m.oldest_seconds.clone(),
        );
        r.register(
            "delivery_seconds",
            "Time from acceptance to delivery, per recipient",
            m.delivery_seconds.clone(),
        );
        r.register("dsns", "Delivery status notifications sent", m.dsns.clone());
        r.register(
            "retries",
            "Delivery attempts after the first",
            m.retries.clone(),
        );
        m
    }

    pub fn message(&self, result: &'static str) {
        self.messages.get_or_create(&ResultLabel { result }).inc();
    }

    pub fn recipient(&self, result: &'static str) {
        self.recipients.get_or_create(&ResultLabel { result }).inc();
    }
}
