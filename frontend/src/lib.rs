//! The frontend tier: stateless proxies that authenticate users against the
//! locator and hand their sessions to a node of their home cluster.
//!
//! - [`config`]: the `frontend:` section;
//! - [`route`]: account -> healthy node of its cluster, PROXY v2 header;
//! - [`imap`]: the IMAP proxy;
//! - [`pop3`]: the POP3 proxy;
//! - [`login`]: the password check every proxy shares;
//! - [`penalty`]: growing delays for addresses that fail to log in;
//! - `splice`: the byte pump after login;
//! - [`daemon`]: `tandem frontend`.

pub mod config;
pub mod daemon;
pub mod imap;
pub mod login;
pub mod penalty;
pub mod pop3;
pub mod route;
mod splice;

use std::net::IpAddr;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use shared::net::NetList;

use crate::config::Limits;
use crate::route::Router;

/// What every proxy of a frontend shares.
pub struct Frontend {
    pub router: Router,
    pub limits: Limits,
    /// The backends' proxy login.
    pub identity: String,
    pub secret: Vec<u8>,
    /// Clients allowed to log in without TLS (loopback always).
    pub trusted: NetList,
    pub metrics: FrontendMetrics,
    /// Failed logins slow down further attempts from the same address.
    pub penalty: penalty::Penalty,
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

/// `tandem_frontend_*` metrics.
#[derive(Clone, Default)]
pub struct FrontendMetrics {
    /// `ok`, `failed`, `suspended`, `unavailable`.
    pub logins: Family<ResultLabel, Counter>,
    pub bytes_up: Counter,
    pub bytes_down: Counter,
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
        m
    }

    pub fn login(&self, result: &'static str) {
        self.logins.get_or_create(&ResultLabel { result }).inc();
    }

    pub fn bytes(&self, up: u64, down: u64) {
        self.bytes_up.inc_by(up);
        self.bytes_down.inc_by(down);
    }
}
