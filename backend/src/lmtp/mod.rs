//! The LMTP server (RFC 2033) through which MTAs hand mail to a backend
//! node, with PIPELINING (RFC 2920), ENHANCEDSTATUSCODES (RFC 2034),
//! 8BITMIME (RFC 6152), SIZE (RFC 1870), CHUNKING (RFC 3030) and STARTTLS
//! (RFC 3207).
//!
//! - `shared::smtp`: command lines to commands, and DATA and BDAT bodies
//!   to the stored (LF) form, pure, shared with the frontend's SMTP server;
//! - [`trace`]: the trace headers of each copy;
//! - `session`: the state machine of one connection;
//! - `rcpt`: whether a recipient can take mail, decided at RCPT time;
//! - `deliver`: durable delivery and the per-recipient replies (§4.2).
//!
//! Only the trusted networks (the MTAs, loopback) may connect: LMTP has no
//! authentication and must never be reachable from outside.

mod deliver;
mod rcpt;
mod session;
pub mod trace;

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use shared::config::{Problems, Validate};
use shared::net::{Conn, Protocol};
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

use crate::node::Node;

/// The `backend.lmtp` settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LmtpConfig {
    /// Largest message accepted, in bytes as sent (CRLF line ends);
    /// advertised as SIZE. A number or `50M`, `1G`. Default 50 MiB.
    #[serde(with = "shared::config::size")]
    pub max_message_size: u64,
    /// Recipients per transaction; more get `452 4.5.3`. Default 1000.
    pub max_recipients: usize,
    /// A session that sends nothing this long is told `421 4.4.2` and
    /// closed. Default 5m.
    #[serde(with = "shared::config::duration")]
    pub idle_timeout: Duration,
    /// Protocol errors (bad syntax, wrong sequence) tolerated per session
    /// before `421` and close. Default 20.
    pub max_errors: u32,
}

impl Default for LmtpConfig {
    fn default() -> Self {
        LmtpConfig {
            max_message_size: 50 << 20,
            max_recipients: 1000,
            idle_timeout: Duration::from_secs(300),
            max_errors: 20,
        }
    }
}

impl Validate for LmtpConfig {
    fn validate(&self, at: &str, p: &mut Problems) {
        shared::smtp::validate_message_size(self.max_message_size, at, p);
        if self.max_recipients == 0 {
            p.push(at, "max_recipients", "must be at least 1");
        }
        if self.idle_timeout < Duration::from_secs(1) {
            p.push(at, "idle_timeout", "must be at least 1s");
        }
        if self.max_errors == 0 {
            p.push(at, "max_errors", "must be at least 1");
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: &'static str,
}

/// LMTP metrics, registered under `tandem_lmtp_`. Cheap to clone.
#[derive(Clone)]
pub struct LmtpMetrics {
    /// One per recipient of a transaction: `ok`, `duplicate` (a retry of a
    /// copy already stored: answered 250, not stored again), `unknown_user` (no such
    /// address, or a suspended account), `over_quota`, `too_big`,
    /// `unavailable` (try again later: directory, ownership, store), `error`
    /// (a delivery that failed).
    pub deliveries: Family<ResultLabel, Counter>,
    /// Time to store one recipient's copy durably.
    pub delivery_seconds: Histogram,
    /// Message bytes received (DATA and BDAT, as sent).
    pub received_bytes: Counter,
}

impl Default for LmtpMetrics {
    fn default() -> Self {
        LmtpMetrics {
            deliveries: Family::default(),
            delivery_seconds: shared::metrics::latency_histogram(),
            received_bytes: Counter::default(),
        }
    }
}

impl LmtpMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        let r = registry.sub_registry_with_prefix("tandem_lmtp");
        r.register(
            "deliveries",
            "Recipients of LMTP transactions, by outcome",
            m.deliveries.clone(),
        );
        r.register(
            "delivery_seconds",
            "Time to store one recipient's copy durably",
            m.delivery_seconds.clone(),
        );
        r.register(
            "received_bytes",
            "Message bytes received over LMTP",
            m.received_bytes.clone(),
        );
        m
    }

    fn count(&self, result: &'static str) {
        self.deliveries.get_or_create(&ResultLabel { result }).inc();
    }
}

/// The LMTP service of a backend node.
pub struct Lmtp {
    node: Arc<Node>,
    cfg: LmtpConfig,
    metrics: LmtpMetrics,
}

impl Lmtp {
    pub fn new(node: Arc<Node>, cfg: LmtpConfig, metrics: LmtpMetrics) -> Self {
        Lmtp { node, cfg, metrics }
    }
}

impl Protocol for Lmtp {
    async fn serve(&self, conn: Conn, shutdown: CancellationToken) {
        let mut stream = conn.stream;
        if !self.node.auth.is_trusted(conn.peer.ip()) {
            tracing::warn!(peer = %conn.peer, "LMTP connection from outside the trusted networks refused");
            let reply = b"554 5.7.1 Not authorized to deliver here\r\n";
            let idle = self.cfg.idle_timeout;
            let _ = tokio::time::timeout(idle, async {
                stream.write_all(reply).await?;
                stream.shutdown().await
            })
            .await;
            return;
        }
        let info = session::ConnInfo {
            client: conn.client.ip(),
            session: conn.session,
            tls: conn.tls,
        };
        session::Session::new(self, info)
            .run(stream, shutdown)
            .await;
    }

    fn too_busy(&self) -> &'static [u8] {
        b"421 4.3.2 Too many connections\r\n"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_parse_and_validate() {
        let cfg: LmtpConfig = serde_saphyr::from_str("{}").unwrap();
        assert_eq!(cfg, LmtpConfig::default());
        let cfg: LmtpConfig =
            serde_saphyr::from_str("max_message_size: 10M\nidle_timeout: 30s\nmax_errors: 3\n")
                .unwrap();
        assert_eq!(cfg.max_message_size, 10 << 20);
        assert_eq!(cfg.idle_timeout, Duration::from_secs(30));
        let cfg: LmtpConfig = serde_saphyr::from_str("max_message_size: 1000\n").unwrap();
        assert_eq!(cfg.max_message_size, 1000);
        assert!(serde_saphyr::from_str::<LmtpConfig>("max_size: 1\n").is_err());

        let mut p = Problems::default();
        LmtpConfig::default().validate("backend.lmtp", &mut p);
        assert!(p.is_empty());
        let bad = LmtpConfig {
            max_message_size: 0,
            max_recipients: 0,
            idle_timeout: Duration::ZERO,
            max_errors: 0,
        };
        bad.validate("backend.lmtp", &mut p);
        let fields: Vec<_> = p.into_vec().into_iter().map(|p| p.field).collect();
        assert_eq!(
            fields,
            [
                "backend.lmtp.max_message_size",
                "backend.lmtp.max_recipients",
                "backend.lmtp.idle_timeout",
                "backend.lmtp.max_errors"
            ]
        );
    }

    #[test]
    fn metric_names() {
        let mut reg = Registry::default();
        let m = LmtpMetrics::register(&mut reg);
        m.count("ok");
        m.delivery_seconds.observe(0.01);
        m.received_bytes.inc_by(10);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &reg).unwrap();
        for want in [
            "tandem_lmtp_deliveries_total{result=\"ok\"} 1",
            "tandem_lmtp_delivery_seconds_count 1",
            "tandem_lmtp_received_bytes_total 10",
        ] {
            assert!(text.contains(want), "missing {want} in\n{text}");
        }
    }
}
