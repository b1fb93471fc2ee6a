//! The POP3 server (RFC 1939) with CAPA, RESP-CODES, AUTH-RESP-CODE and
//! PIPELINING (RFC 2449), SASL PLAIN (RFC 5034) and STLS (RFC 2595).
//!
//! - [`command`]: command lines to commands, pure (shared with the
//!   frontend's proxy);
//! - [`maildrop`]: INBOX as the session sees it;
//! - [`wire`]: messages on the wire (CRLF, dot-stuffing, TOP);
//! - `session`: the connection loop and how a session ends;
//! - `login`: the AUTHORIZATION state; `transaction`: the TRANSACTION state.
//!
//! A session holds the account's exclusive POP3 lock for its whole life (a
//! second one gets `[IN-USE]`), and deletions happen only in UPDATE, after
//! QUIT: a dropped connection deletes nothing.

pub use shared::pop3 as command;
mod login;
pub mod maildrop;
mod session;
mod transaction;
pub mod wire;

pub use session::{ConnInfo, Transport};

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use shared::config::{Problems, Validate};
use shared::net::{Conn, Protocol};
use tokio_util::sync::CancellationToken;

use crate::node::Node;

/// The `backend.pop3` settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Pop3Config {
    /// A session idle this long is closed without UPDATE. RFC 1939 asks for
    /// at least 10 minutes.
    #[serde(with = "shared::config::duration")]
    pub idle_timeout: Duration,
    /// Wait before answering a failed login, as Dovecot does (slows down
    /// password guessing without costing the server anything).
    #[serde(with = "shared::config::duration")]
    pub auth_failure_delay: Duration,
    /// Failed logins on one connection; the last one's answer closes it.
    pub max_auth_failures: u32,
    /// Command lines (CAPA and bad ones included) accepted before a
    /// successful login; one more closes the connection.
    pub max_commands_before_auth: u32,
}

impl Default for Pop3Config {
    fn default() -> Self {
        Pop3Config {
            idle_timeout: Duration::from_secs(600),
            auth_failure_delay: Duration::from_secs(2),
            max_auth_failures: 3,
            max_commands_before_auth: 20,
        }
    }
}

impl Validate for Pop3Config {
    fn validate(&self, at: &str, p: &mut Problems) {
        if self.idle_timeout < Duration::from_secs(10) {
            p.push(
                at,
                "idle_timeout",
                "must be at least 10s (RFC 1939 wants 10m)",
            );
        }
        if self.auth_failure_delay > Duration::from_secs(30) {
            p.push(at, "auth_failure_delay", "must be at most 30s");
        }
        if self.max_auth_failures == 0 {
            p.push(at, "max_auth_failures", "must be at least 1");
        }
        if self.max_commands_before_auth == 0 {
            p.push(at, "max_commands_before_auth", "must be at least 1");
        }
    }
}

/// The `result` label of `tandem_pop3_logins_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: &'static str,
}

/// `tandem_pop3_*` metrics.
#[derive(Clone, Default)]
pub struct Pop3Metrics {
    /// Connections served.
    pub sessions: Counter,
    /// Connections open now.
    pub active: Gauge,
    /// `ok`, `failed`, `suspended`, `unavailable`, `in_use`.
    pub logins: Family<ResultLabel, Counter>,
    /// Bytes of RETR and TOP answers.
    pub retrieved_bytes: Counter,
    /// Messages expunged at QUIT.
    pub deleted: Counter,
    /// Store operations that failed (I/O, index).
    pub store_errors: Counter,
}

impl Pop3Metrics {
    /// Registers the `tandem_pop3_*` metrics in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        let r = registry.sub_registry_with_prefix("tandem_pop3");
        r.register("sessions", "POP3 sessions started", m.sessions.clone());
        r.register("active_sessions", "POP3 sessions open", m.active.clone());
        r.register("logins", "POP3 logins by result", m.logins.clone());
        r.register(
            "retrieved_bytes",
            "Bytes sent by RETR and TOP",
            m.retrieved_bytes.clone(),
        );
        r.register("deleted", "Messages deleted at QUIT", m.deleted.clone());
        r.register(
            "store_errors",
            "Store operations that failed",
            m.store_errors.clone(),
        );
        m
    }

    fn login(&self, result: &'static str) {
        self.logins.get_or_create(&ResultLabel { result }).inc();
    }
}

/// The POP3 service of a backend node.
pub struct Pop3 {
    node: Arc<Node>,
    cfg: Pop3Config,
    metrics: Pop3Metrics,
}

impl Pop3 {
    pub fn new(node: Arc<Node>, cfg: Pop3Config, metrics: Pop3Metrics) -> Self {
        Pop3 { node, cfg, metrics }
    }

    /// Serves one connection over any transport (the listener's streams,
    /// test pipes).
    pub async fn serve_on<S: Transport>(
        &self,
        stream: S,
        info: ConnInfo,
        shutdown: CancellationToken,
    ) {
        self.metrics.sessions.inc();
        self.metrics.active.inc();
        session::run(self, stream, info, shutdown).await;
        self.metrics.active.dec();
    }
}

impl Protocol for Pop3 {
    async fn serve(&self, conn: Conn, shutdown: CancellationToken) {
        let info = ConnInfo {
            client: conn.client,
            peer: conn.peer.ip(),
            tls: conn.tls,
        };
        self.serve_on(conn.stream, info, shutdown).await;
    }

    fn too_busy(&self) -> &'static [u8] {
        b"-ERR [SYS/TEMP] Too many connections\r\n"
    }
}

#[cfg(test)]
mod tests;
