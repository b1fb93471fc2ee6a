//! RCPT TO (RFC 5321 §4.1.1.3): where a recipient's copy goes, decided
//! before the body is sent. Our domains are looked up in the locator
//! (aliases included); any other domain is relayed only for an
//! authenticated submission client and only through a smarthost. The
//! address is taken as the directory knows addresses: `%` hacks, quoted
//! `@`s and source routes are never interpreted, so nothing can trick the
//! server into relaying (`user%ours@other` is a user at `other`).

use locator::{AccountState, LookupError};
use shared::Address;

use super::{Kind, Sink, Smtp};
use crate::queue::Route;

/// Why a recipient is refused; each is one reply and one metrics label.
#[derive(Debug)]
pub enum Refusal {
    /// No account or alias has this address in our domain.
    Unknown,
    /// The account is kept but takes no mail.
    Suspended,
    /// Not our domain, and relaying is not allowed here.
    RelayDenied,
    /// Not our domain, authenticated, but nothing to relay through.
    NoSmarthost,
    /// The account is being moved between clusters.
    Moving,
    /// The directory could not answer; logged, never told to the client.
    Unavailable(String),
}

impl Refusal {
    pub fn reply(&self, address: &Address) -> String {
        match self {
            Refusal::Unknown => format!("550 5.1.1 <{address}>: User unknown"),
            Refusal::Suspended => format!("550 5.2.1 <{address}>: Mailbox disabled"),
            Refusal::RelayDenied => format!("550 5.7.1 <{address}>: Relay access denied"),
            Refusal::NoSmarthost => format!(
                "550 5.7.1 <{address}>: Relay access denied: no smarthost configured: this frontend delivers only to local accounts"
            ),
            Refusal::Moving => {
                format!("451 4.2.0 <{address}>: Mailbox is being moved, try again later")
            }
            Refusal::Unavailable(_) => {
                format!("451 4.3.0 <{address}>: Temporary failure, try again later")
            }
        }
    }

    pub fn label(&self) -> &'static str {
        match self {
            Refusal::Unknown => "unknown",
            Refusal::Suspended => "suspended",
            Refusal::RelayDenied | Refusal::NoSmarthost => "relay_denied",
            Refusal::Moving | Refusal::Unavailable(_) => "unavailable",
        }
    }
}

/// The route of `address`, for a client that is `authenticated` (or not)
/// on a listener of `kind`.
pub async fn resolve<Q: Sink>(
    smtp: &Smtp<Q>,
    kind: Kind,
    authenticated: bool,
    address: &Address,
) -> Result<Route, Refusal> {
    let ours = smtp
        .domains
        .is_ours(address.domain())
        .await
        .map_err(|LookupError::Unavailable(why)| Refusal::Unavailable(why))?;
    if !ours {
        // The MX never relays; submission only for a user who logged in.
        if kind == Kind::Mx || !authenticated {
            return Err(Refusal::RelayDenied);
        }
        return if smtp.queue.relays() {
            Ok(Route::Relay)
        } else {
            Err(Refusal::NoSmarthost)
        };
    }
    let account = match smtp.fe.router.locator().lookup(address).await {
        Ok(Some(a)) => a,
        Ok(None) => return Err(Refusal::Unknown),
        Err(LookupError::Unavailable(why)) => return Err(Refusal::Unavailable(why)),
    };
    match account.state {
        AccountState::Active => Ok(Route::Local {
            cluster: account.cluster.clone(),
            account: account.address.clone(),
        }),
        AccountState::Suspended => Err(Refusal::Suspended),
        AccountState::Moving => Err(Refusal::Moving),
    }
}
