//! Small helpers over `prometheus_client` so every crate builds its metrics
//! the same way: explicit registries, seconds for latencies, no globals.

use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

/// Buckets for latencies from 100 µs to ~26 s, for network round trips and
/// directory queries alike.
pub fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 19))
}

/// Times an operation into a histogram, in seconds.
pub struct Timer<'a> {
    histogram: &'a Histogram,
    start: tokio::time::Instant,
}

impl<'a> Timer<'a> {
    pub fn start(histogram: &'a Histogram) -> Self {
        Timer {
            histogram,
            start: tokio::time::Instant::now(),
        }
    }

    pub fn observe(self) {
        self.histogram.observe(self.start.elapsed().as_secs_f64());
    }
}
