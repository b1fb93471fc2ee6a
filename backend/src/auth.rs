//! Who may log in to a backend node, and as whom.
//!
//! Two kinds of login reach a backend:
//! - a user directly (tests, or a cluster without frontends): the password
//!   is checked against the locator;
//! - a frontend on behalf of a user it already authenticated: SASL PLAIN
//!   with authzid = the user and authcid/password = the configured proxy
//!   identity and secret (a Dovecot master user). Accepted only from the
//!   trusted networks, so a leaked secret is useless from outside;
//! - another node of the cluster proxying a session to this one, the
//!   account's owner: the same, with `#peer` after the identity.

use std::net::IpAddr;
use std::sync::Arc;

use locator::{Account, AccountState, AuthOutcome, Locator};
use shared::Address;
use shared::net::NetList;
use shared::sasl::Plain;
use subtle::ConstantTimeEq;

/// The identity frontends log in with.
#[derive(Clone)]
pub struct ProxyIdentity {
    pub name: String,
    pub secret: Vec<u8>,
}

/// The outcome of a login, as a protocol reports it.
#[derive(Debug, Clone)]
pub enum Login {
    Ok(Arc<Account>),
    /// Wrong credentials, unknown user, or a proxy login from outside the
    /// trusted networks: the client is not told which.
    Failed,
    /// Right credentials, account suspended.
    Suspended,
    /// Try again later (directory down, account moving).
    Unavailable(String),
}

pub struct Auth {
    locator: Arc<Locator>,
    /// Frontends: may send PROXY headers and log in as the proxy identity.
    trusted: NetList,
    proxy: Option<ProxyIdentity>,
}

impl Auth {
    pub fn new(locator: Arc<Locator>, trusted: NetList, proxy: Option<ProxyIdentity>) -> Self {
        Auth {
            locator,
            trusted,
            proxy,
        }
    }

    pub fn locator(&self) -> &Arc<Locator> {
        &self.locator
    }

    pub fn is_trusted(&self, peer: IpAddr) -> bool {
        self.trusted.contains(peer)
    }

    /// Whether a password may be sent on this connection: over TLS, or in
    /// the clear from a trusted network (the frontends, loopback).
    pub fn plaintext_allowed(&self, peer: IpAddr, tls: bool) -> bool {
        tls || self.trusted.contains(peer)
    }

    /// Checks a SASL PLAIN login (USER/PASS and LOGIN arrive as PLAIN with
    /// an empty authzid). `peer` is the TCP peer, not the PROXY-header
    /// client: trust is about who is connected.
    pub async fn login(&self, peer: IpAddr, plain: &Plain) -> Login {
        if let Some(proxy) = self
            .proxy
            .as_ref()
            .filter(|p| plain.authcid == p.name || self.is_peer_hop(plain))
        {
            return self.proxy_login(peer, proxy, plain).await;
        }
        let Ok(user) = Address::parse(&plain.authcid) else {
            return Login::Failed;
        };
        if !plain.authzid.is_empty() {
            // Acting as someone else is for the proxy identity only.
            match Address::parse(&plain.authzid) {
                Ok(z) if z == user => {}
                _ => return Login::Failed,
            }
        }
        match self.locator.authenticate(&user, &plain.password).await {
            AuthOutcome::Ok(a) => Login::Ok(a),
            AuthOutcome::Failed => Login::Failed,
            AuthOutcome::Suspended(_) => Login::Suspended,
            AuthOutcome::Unavailable(why) => Login::Unavailable(why),
        }
    }

    /// Whether `plain` is another node of the cluster proxying a session to
    /// this one (the proxy identity with `#peer`): such a session is served
    /// here or refused, never proxied again.
    pub fn is_peer_hop(&self, plain: &Plain) -> bool {
        self.proxy.as_ref().is_some_and(|p| {
            plain
                .authcid
                .strip_suffix(crate::cluster::peer::PEER_SUFFIX)
                .is_some_and(|name| name == p.name)
        })
    }

    async fn proxy_login(&self, peer: IpAddr, proxy: &ProxyIdentity, plain: &Plain) -> Login {
        let secret_ok: bool = plain.password.ct_eq(&proxy.secret).into();
        if !self.trusted.contains(peer) {
            tracing::warn!(%peer, "proxy login from outside the trusted networks refused");
            return Login::Failed;
        }
        if !secret_ok {
            tracing::warn!(%peer, "proxy login with a wrong secret");
            return Login::Failed;
        }
        let Ok(user) = Address::parse(&plain.authzid) else {
            return Login::Failed;
        };
        match self.locator.lookup(&user).await {
            Ok(Some(a)) => match a.state {
                AccountState::Active => Login::Ok(a),
                AccountState::Suspended => Login::Suspended,
                AccountState::Moving => {
                    Login::Unavailable(format!("account {} is being moved", a.address))
                }
            },
            Ok(None) => Login::Failed,
            Err(e) => Login::Unavailable(e.to_string()),
        }
    }
}
