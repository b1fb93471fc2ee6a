//! What the SMTP server hands the queue: one transaction it accepted, and
//! what became of it. The contract between `crate::smtp` (the receiving
//! side) and the queue (delivery, spool, retries, bounces).

use shared::Address;

/// One message as accepted at the end of DATA (or BDAT LAST).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// Id of the SMTP session, passed to the backend so one message can be
    /// followed through the logs of both tiers.
    pub session: String,
    /// The reverse path without brackets; empty for the null sender (a
    /// bounce, which never gets a bounce of its own).
    pub sender: String,
    pub recipients: Vec<Recipient>,
    /// `BODY=8BITMIME` was given.
    pub eight_bit: bool,
    /// `SMTPUTF8` was given.
    pub smtputf8: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    /// The forward path as the client gave it in RCPT (for DSNs and logs).
    pub address: String,
    pub route: Route,
}

/// Where a recipient's copy goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// An account of ours (aliases already resolved): by LMTP to a node of
    /// its home cluster.
    Local { cluster: String, account: Address },
    /// Not ours: through the configured smarthost (submission only).
    Relay,
}

/// What became of one recipient when the SMTP client was answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Stored in the mailbox (or accepted by the smarthost).
    Delivered,
    /// In the frontend's spool (fsync'd); retried until its lifetime ends.
    Queued,
    /// Refused for good; the sender gets a DSN (unless null).
    Failed { reply: String },
}

/// The message is safe: delivered, spooled, or bounced, per recipient in
/// the order of [`Envelope::recipients`]. The client is answered 250.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// Queue id, said in the 250 reply and logged.
    pub id: String,
    pub recipients: Vec<Disposition>,
}

/// The message was not taken; nothing of it is kept or delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// Every recipient failed permanently at once: the client is given this
    /// reply (`5xx ...`) instead of a later bounce.
    #[error("{0}")]
    Permanent(String),
    /// Neither delivered nor spooled (spool full or failing): the client
    /// is told `451 4.3.0` and retries.
    #[error("{0}")]
    Temporary(String),
}
