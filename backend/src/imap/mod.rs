//! The IMAP4rev1 server (RFC 3501) with the extensions modern clients use.
//!
//! Protocol layer:
//! - [`frame`]: sans-I/O framing of client input into whole commands (lines
//!   joined by literals, RFC 3501 §4.3, LITERAL+ RFC 7888), with the size
//!   limits and the skipping of over-limit input;
//! - [`codec`]: the async [`CommandReader`] (imap-codec parses), continuation
//!   requests, AUTHENTICATE lines and IDLE's DONE;
//! - [`extended`]: ESEARCH and LIST-EXTENDED options imap-codec does not
//!   parse, taken off before it does;
//! - [`respond`]: responses written by hand into one reused buffer.
//!
//! Session layer:
//! - `session`: the connection loop, states and tagged results;
//! - `login`: the not-authenticated state;
//! - `authenticated`: mailbox commands (SELECT, STATUS, ENABLE, NAMESPACE);
//! - `selected`: the selected state (FETCH, STORE, EXPUNGE, CLOSE);
//! - `idle`: IDLE (RFC 2177);
//! - [`view`]: the selected mailbox as the client knows it (sequence
//!   numbers, flags last reported, \Recent) and the untagged updates.

pub mod codec;
pub mod extended;
pub mod frame;
pub mod message;
pub mod respond;
pub mod search;
pub mod view;

mod authenticated;
mod condstore;
mod copy;
mod fetch;
mod folders;
mod idle;
mod login;
mod query;
mod selected;
mod session;

#[cfg(test)]
mod tests;

pub use codec::{
    CONTINUE_LITERAL, CommandReader, Next, NextAuth, NextIdle, encode_greeting, encode_response,
};
pub use frame::Limits;
pub use imap_codec::imap_types;
pub use session::ConnInfo;

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use shared::config::{Problems, Validate};
use shared::net::{Conn, Protocol, Transport};
use tokio_util::sync::CancellationToken;

use crate::node::Node;
use respond::Status;

/// Capabilities after login, besides the ones every state has.
pub(crate) const AUTHENTICATED_CAPS: &str = " NAMESPACE UNSELECT UIDPLUS MOVE CHILDREN SPECIAL-USE LIST-EXTENDED LIST-STATUS ESEARCH QUOTA BINARY SORT SORT=DISPLAY ESORT THREAD=ORDEREDSUBJECT THREAD=REFERENCES CONDSTORE QRESYNC";

/// The `backend.imap` settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImapConfig {
    /// A logged-in session silent this long is closed. RFC 3501 §5.4 asks
    /// for at least 30 minutes.
    #[serde(with = "shared::config::duration")]
    pub idle_timeout: Duration,
    /// Time to log in (and for each SASL step).
    #[serde(with = "shared::config::duration")]
    pub login_timeout: Duration,
    /// Wait before answering a failed login.
    #[serde(with = "shared::config::duration")]
    pub auth_failure_delay: Duration,
    /// Failed logins on one connection before it is closed.
    pub max_auth_failures: u32,
    /// Commands accepted before a successful login.
    pub max_commands_before_auth: u32,
    /// Longest command line outside literals.
    pub max_line: usize,
    /// Largest APPEND message: a number or `64M`, `1G`.
    #[serde(with = "shared::config::size")]
    pub max_message_size: u64,
}

impl Default for ImapConfig {
    fn default() -> Self {
        ImapConfig {
            idle_timeout: Duration::from_secs(30 * 60),
            login_timeout: Duration::from_secs(60),
            auth_failure_delay: Duration::from_secs(2),
            max_auth_failures: 3,
            max_commands_before_auth: 30,
            max_line: 64 * 1024,
            max_message_size: 64 << 20,
        }
    }
}

impl ImapConfig {
    pub fn limits(&self) -> Limits {
        Limits {
            max_line: self.max_line,
            max_literal: 64 * 1024,
            max_append_literal: self.max_message_size,
            max_command: usize::try_from(self.max_message_size).unwrap_or(usize::MAX)
                + self.max_line,
        }
    }
}

impl Validate for ImapConfig {
    fn validate(&self, at: &str, p: &mut Problems) {
        if self.idle_timeout < Duration::from_secs(60) {
            p.push(
                at,
                "idle_timeout",
                "must be at least 1m (RFC 3501 wants 30m)",
            );
        }
        if self.login_timeout < Duration::from_secs(1) {
            p.push(at, "login_timeout", "must be at least 1s");
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
        if self.max_line < 1024 {
            p.push(at, "max_line", "must be at least 1024");
        }
        if self.max_message_size < 1024 {
            p.push(at, "max_message_size", "must be at least 1024");
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CommandLabel {
    pub command: &'static str,
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NameLabel {
    pub command: &'static str,
}

/// `tandem_imap_*` metrics.
#[derive(Clone)]
pub struct ImapMetrics {
    pub sessions: Counter,
    pub active: Gauge,
    pub logins: Family<ResultLabel, Counter>,
    pub commands: Family<CommandLabel, Counter>,
    pub latency: Family<NameLabel, Histogram>,
    pub store_errors: Counter,
}

impl Default for ImapMetrics {
    fn default() -> Self {
        ImapMetrics {
            sessions: Counter::default(),
            active: Gauge::default(),
            logins: Family::default(),
            commands: Family::default(),
            latency: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.0001, 4.0, 10))
            }),
            store_errors: Counter::default(),
        }
    }
}

impl ImapMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        let r = registry.sub_registry_with_prefix("tandem_imap");
        r.register("sessions", "IMAP sessions started", m.sessions.clone());
        r.register("active_sessions", "IMAP sessions open", m.active.clone());
        r.register("logins", "IMAP logins by result", m.logins.clone());
        r.register(
            "commands",
            "IMAP commands by name and result",
            m.commands.clone(),
        );
        r.register(
            "command_seconds",
            "IMAP command latency by name",
            m.latency.clone(),
        );
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

    fn command(&self, command: &'static str, status: Status, seconds: f64) {
        self.commands
            .get_or_create(&CommandLabel {
                command,
                result: status.label(),
            })
            .inc();
        self.latency
            .get_or_create(&NameLabel { command })
            .observe(seconds);
    }
}

/// The IMAP service of a backend node.
pub struct Imap {
    node: Arc<Node>,
    cfg: ImapConfig,
    metrics: ImapMetrics,
}

impl Imap {
    pub fn new(node: Arc<Node>, cfg: ImapConfig, metrics: ImapMetrics) -> Self {
        Imap { node, cfg, metrics }
    }

    /// Serves one connection over any transport (listener streams, test pipes).
    pub async fn serve_on<S: Transport>(
        &self,
        stream: S,
        info: ConnInfo,
        shutdown: CancellationToken,
    ) {
        self.metrics.sessions.inc();
        session::run(self, stream, info, shutdown).await;
    }
}

impl Protocol for Imap {
    async fn serve(&self, conn: Conn, shutdown: CancellationToken) {
        let info = ConnInfo {
            client: conn.client,
            peer: conn.peer.ip(),
            tls: conn.tls,
            session: conn.session.to_string(),
        };
        self.serve_on(conn.stream, info, shutdown).await;
    }

    fn too_busy(&self) -> &'static [u8] {
        b"* BYE [UNAVAILABLE] Too many connections\r\n"
    }
}
