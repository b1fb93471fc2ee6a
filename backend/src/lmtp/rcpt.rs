//! RCPT TO (RFC 2033 §4.2, RFC 5321 §4.1.1.3): whether an address can take
//! mail on this node, decided before the body is sent so that an MTA learns
//! of unknown users and full mailboxes without transferring the message.

use locator::{AccountState, LookupError};
use shared::Address;

use crate::accounts::{OpenError, Opened};
use crate::node::Node;

/// Why a recipient is refused; each is one reply and one metrics label.
#[derive(Debug)]
pub(super) enum Refusal {
    /// No account or alias has this address.
    Unknown,
    /// The account is suspended: kept, but takes no mail.
    Disabled,
    /// Quota reached (with the declared SIZE, if any).
    OverQuota,
    /// Try again later; the reason is logged, never told to the client.
    Unavailable(String),
}

impl Refusal {
    pub fn reply(&self, address: &Address) -> String {
        match self {
            Refusal::Unknown => format!("550 5.1.1 <{address}> User unknown"),
            Refusal::Disabled => format!("550 5.2.1 <{address}> Mailbox disabled"),
            Refusal::OverQuota => format!("552 5.2.2 <{address}> Mailbox full"),
            Refusal::Unavailable(_) => {
                format!("451 4.3.0 <{address}> Temporary failure, try again later")
            }
        }
    }

    pub fn label(&self) -> &'static str {
        match self {
            Refusal::Unknown | Refusal::Disabled => "unknown_user",
            Refusal::OverQuota => "over_quota",
            Refusal::Unavailable(_) => "unavailable",
        }
    }

    pub fn log(&self, address: &Address) {
        match self {
            Refusal::Unavailable(why) => {
                tracing::warn!(rcpt = %address, reason = %why, "recipient temporarily refused")
            }
            other => tracing::info!(rcpt = %address, result = other.label(), "recipient refused"),
        }
    }
}

/// Finds the account of `address`, opens it on this node and checks its
/// quota, counting `declared` bytes (MAIL's SIZE) when the client gave it.
pub(super) async fn resolve(
    node: &Node,
    address: &Address,
    declared: Option<u64>,
) -> Result<Opened, Refusal> {
    let account = match node.auth.locator().lookup(address).await {
        Ok(Some(a)) => a,
        Ok(None) => return Err(Refusal::Unknown),
        Err(LookupError::Unavailable(why)) => return Err(Refusal::Unavailable(why)),
    };
    match account.state {
        AccountState::Active => {}
        AccountState::Suspended => return Err(Refusal::Disabled),
        AccountState::Moving => {
            return Err(Refusal::Unavailable(format!(
                "account {} is being moved",
                account.address
            )));
        }
    }
    let quota = account.quota;
    let opened = node
        .accounts
        .open_for_delivery(account)
        .await
        .map_err(|e| match e {
            OpenError::WrongCluster { .. } | OpenError::NotOwner { .. } => {
                Refusal::Unavailable(format!("{e} (the MTA's routing is stale)"))
            }
            other => Refusal::Unavailable(other.to_string()),
        })?;
    if quota > 0 {
        let usage = match opened.run(move |s| s.usage(quota)).await {
            Ok(Ok(u)) => u,
            Ok(Err(e)) => return Err(Refusal::Unavailable(format!("quota: {e}"))),
            Err(e) => return Err(Refusal::Unavailable(format!("quota: {e}"))),
        };
        let full = match declared {
            Some(size) => usage.bytes.saturating_add(size) > quota,
            None => usage.bytes >= quota,
        };
        if full {
            return Err(Refusal::OverQuota);
        }
    }
    Ok(opened)
}
