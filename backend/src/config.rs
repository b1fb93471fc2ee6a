//! The `backend:` section of a Tandem config file.
//!
//! ```yaml
//! backend:
//!   cluster: c1
//!   store_root: /srv/tandem/c1          # the cluster's shared filesystem
//!   trusted_networks: [10.0.0.0/8]      # frontends (loopback is always trusted)
//!   proxy_protocol_from: [10.0.0.0/8]   # they send PROXY v2 headers
//!   proxy_login:
//!     identity: tandem-proxy
//!     secret_file: /etc/tandem/proxy.secret
//!   tls: { cert: /etc/tandem/tls.crt, key: /etc/tandem/tls.key }
//!   listen:
//!     lmtp: 0.0.0.0:24
//!     imap: 0.0.0.0:143
//!     imaps: 0.0.0.0:993
//!     pop3: 0.0.0.0:110
//!     pop3s: 0.0.0.0:995
//!     admin: 127.0.0.1:9101
//! ```
//! One file per node; `tandem backend --node ID` says which node it is.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use shared::config::{Problems, ProxyLogin, TlsFiles, Validate, join};
use shared::net::NetList;

use crate::imap::ImapConfig;
use crate::lmtp::LmtpConfig;
use crate::pop3::Pop3Config;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendConfig {
    /// The cluster this node serves (`tandem cluster add`).
    pub cluster: String,
    /// Where the cluster's accounts live; shared by all its nodes.
    pub store_root: PathBuf,
    /// Name in greetings and `Received:` headers; default: the host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Peers that may send PROXY headers, log in as the proxy identity,
    /// deliver over LMTP and send passwords without TLS. Loopback always.
    #[serde(default)]
    pub trusted_networks: NetList,
    /// Peers that open every connection with a PROXY protocol header (the
    /// frontends, haproxy), whose client address it carries. Required from
    /// them, so a header can never be forged by anyone else. Default: none.
    #[serde(default)]
    pub proxy_protocol_from: NetList,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_login: Option<ProxyLogin>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsFiles>,
    pub listen: Listen,
    #[serde(default)]
    pub limits: ConnectionLimits,
    #[serde(default)]
    pub lmtp: LmtpConfig,
    #[serde(default)]
    pub pop3: Pop3Config,
    #[serde(default)]
    pub imap: ImapConfig,
}

/// Where each service listens; a service without an address is off.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listen {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lmtp: Option<SocketAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imap: Option<SocketAddr>,
    /// IMAP over implicit TLS; needs `tls`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imaps: Option<SocketAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pop3: Option<SocketAddr>,
    /// POP3 over implicit TLS; needs `tls`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pop3s: Option<SocketAddr>,
    /// `/metrics` and `/health`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<SocketAddr>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectionLimits {
    /// Per listener.
    pub max_connections: usize,
    /// Per client address (the PROXY-header client when proxied).
    pub max_per_ip: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: 10_000,
            max_per_ip: 1_000,
        }
    }
}

impl Validate for BackendConfig {
    fn validate(&self, at: &str, p: &mut Problems) {
        if self.cluster.is_empty() {
            p.push(at, "cluster", "must name the cluster this node serves");
        }
        if !self.store_root.is_absolute() {
            p.push(
                at,
                "store_root",
                format!("{}: must be an absolute path", self.store_root.display()),
            );
        }
        let l = &self.listen;
        if [l.lmtp, l.imap, l.imaps, l.pop3, l.pop3s]
            .iter()
            .all(Option::is_none)
        {
            p.push(
                &join(at, "listen"),
                "lmtp",
                "no service to listen for (lmtp, imap, imaps, pop3, pop3s)",
            );
        }
        if l.imaps.is_some() && self.tls.is_none() {
            p.push(&join(at, "listen"), "imaps", "needs a `tls` section");
        }
        if l.pop3s.is_some() && self.tls.is_none() {
            p.push(&join(at, "listen"), "pop3s", "needs a `tls` section");
        }
        if let Some(pl) = &self.proxy_login {
            let at = join(at, "proxy_login");
            if pl.identity.is_empty() || pl.identity.contains('@') {
                p.push(&at, "identity", "must be a name that is not a mail address");
            }
            match (&pl.secret, &pl.secret_file) {
                (None, None) => p.push(&at, "secret", "set secret or secret_file"),
                (Some(s), None) if s.len() < 16 => {
                    p.push(&at, "secret", "must be at least 16 characters")
                }
                _ => {}
            }
        }
        if self.limits.max_connections == 0 || self.limits.max_per_ip == 0 {
            p.push(
                &join(at, "limits"),
                "max_connections",
                "limits must be above 0",
            );
        }
        self.lmtp.validate(&join(at, "lmtp"), p);
        self.pop3.validate(&join(at, "pop3"), p);
        self.imap.validate(&join(at, "imap"), p);
    }
}
