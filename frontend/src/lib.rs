//! The frontend tier: stateless proxies that authenticate users against the
//! locator and hand their sessions to a node of their home cluster.
//!
//! - [`config`]: the `frontend:` section;
//! - [`route`]: account -> healthy node of its cluster, PROXY v2 header;
//! - [`imap`]: the IMAP proxy;
//! - [`pop3`]: the POP3 proxy;
//! - [`smtp`]: the SMTP server (MX and submission), in front of [`queue`];
//! - [`login`]: the password check every proxy shares;
//! - [`penalty`]: growing delays for addresses that fail to log in;
//! - `splice`: the byte pump after login;
//! - [`daemon`]: `tandem frontend`.

pub mod config;
pub mod daemon;
pub mod health;
pub mod imap;
pub mod login;
pub mod penalty;
pub mod pop3;
pub mod queue;
pub mod route;
pub mod smtp;
mod splice;

use std::net::IpAddr;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use shared::net::NetList;

use crate::config::Limits;
use crate::route::Router;

/// What every proxy of a frontend shares.
pub struct Frontend {
    pub router: std::sync::Arc<Router>,
    pub limits: Limits,
    /// The backends' proxy login.
    pub identity: String,
    pub secret: Vec<u8>,
    /// Clients allowed to log in without TLS (loopback always).
    pub trusted: NetList,
    pub metrics: FrontendMetrics,
    /// Failed logins slow down further attempts from the same address.
    pub penalty: penalty::Penalty<std::net::IpAddr>,
    /// Per account name (lower-cased as typed): guesses spread over many
    /// addresses.
    pub account_penalty: penalty::Penalty<String>,
    /// Cancelled when a drain's grace period is over: spliced sessions say
    /// goodbye and close.
    pub drain_deadline: tokio_util::sync::CancellationToken,
    /// Password checks in flight per client address.
    pub login_slots: penalty::Slots<std::net::IpAddr>,
}

impl Frontend {
    pub fn plaintext_allowed(&self, client: IpAddr) -> bool {
        self.trusted.contains(client)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NodeLabel {
    pub node: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NodeResultLabel {
    pub node: String,
    pub result: &'static str,
}

/// `tandem_frontend_*` metrics.
#[derive(Clone)]
pub struct FrontendMetrics {
    /// `ok`, `failed`, `suspended`, `unavailable`.
    pub logins: Family<ResultLabel, Counter>,
    pub bytes_up: Counter,
    pub bytes_down: Counter,
    /// Connections to backend nodes: `ok`, `refused` (error), `timeout`.
    pub backend_connects: Family<NodeResultLabel, Counter>,
    pub backend_connect_seconds: Family<NodeLabel, Histogram>,
    /// 1 when the last health check of a node's service succeeded.
    pub backend_up: Family<NodeServiceLabel, prometheus_client::metrics::gauge::Gauge>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct NodeServiceLabel {
    pub node: String,
    pub service: &'static str,
}

impl Default for FrontendMetrics {
    fn default() -> Self {
        FrontendMetrics {
            logins: Family::default(),
            bytes_up: Counter::default(),
            bytes_down: Counter::default(),
            backend_connects: Family::default(),
            backend_connect_seconds: Family::new_with_constructor(
                shared::metrics::latency_histogram,
            ),
            backend_up: Family::default(),
        }
    }
}

impl FrontendMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        let r = registry.sub_registry_with_prefix("tandem_frontend");
        r.register("logins", "Logins by result", m.logins.clone());
        r.register(
            "bytes_up",
            "Bytes from clients to backends",
            m.bytes_up.clone(),
        );
        r.register(
            "bytes_down",
            "Bytes from backends to clients",
            m.bytes_down.clone(),
        );
        r.register(
            "backend_connects",
            "Connections to backend nodes by node and result",
            m.backend_connects.clone(),
        );
        r.register(
            "backend_connect_seconds",
            "Time to connect to a backend node",
            m.backend_connect_seconds.clone(),
        );
        r.register(
            "backend_up",
            "Whether the last health check of a node's service succeeded",
            m.backend_up.clone(),
        );
        m
    }

    pub fn backend_connect(&self, node: &str, result: &'static str, seconds: f64) {
        self.backend_connects
            .get_or_create(&NodeResultLabel {
                node: node.to_owned(),
                result,
            })
            .inc();
        if result == "ok" {
            self.backend_connect_seconds
                .get_or_create(&NodeLabel {
                    node: node.to_owned(),
                })
                .observe(seconds);
        }
    }

    pub fn backend_up(&self, node: &str, service: &'static str, up: bool) {
        self.backend_up
            .get_or_create(&NodeServiceLabel {
                node: node.to_owned(),
                service,
            })
            .set(i64::from(up));
    }

    pub fn login(&self, result: &'static str) {
        self.logins.get_or_create(&ResultLabel { result }).inc();
    }

    pub fn bytes(&self, up: u64, down: u64) {
        self.bytes_up.inc_by(up);
        self.bytes_down.inc_by(down);
    }
}
