//! MAIL and RCPT (RFC 5321 §4.1.1.2-3): who sends, and where each
//! recipient's copy goes. On submission the sender must be the user's own
//! address (RFC 6409 §6.1).

use locator::Account;
use shared::Address;

use super::session::{Next, Session, Transaction};
use super::{Sink, rcpt};
use crate::queue::{Recipient, Route};

impl<Q: Sink> Session<'_, Q> {
    pub(super) fn mail(&mut self, from: &str, size: Option<u64>, eight_bit: bool) -> Next {
        if self.helo.is_none() {
            return self.error("503 5.5.1 Send EHLO or HELO first");
        }
        if self.tx.is_some() {
            return self.error("503 5.5.1 Nested MAIL command");
        }
        if self.kind.submission() {
            let Some(user) = self.user.clone() else {
                return self.error("530 5.7.0 Authentication required");
            };
            if let Err(why) = sender_allowed(&user, from) {
                tracing::info!(user = %user.address, sender = from, "sender refused");
                self.reply(format_args!(
                    "553 5.7.1 <{from}>: Sender address rejected: {why}"
                ));
                return Next::Go;
            }
        }
        let max = self.smtp.cfg.max_message_size;
        if size.is_some_and(|s| s > max) {
            self.reply(format_args!(
                "552 5.3.4 Message size exceeds fixed maximum message size ({max})"
            ));
            return Next::Go;
        }
        self.transactions += 1;
        if self.transactions > self.smtp.cfg.max_transactions {
            let hostname = self.host();
            self.reply(format_args!(
                "421 4.7.0 {hostname} Too many messages in one connection, closing"
            ));
            return Next::Close;
        }
        self.tx = Some(Transaction {
            sender: from.to_owned(),
            size_hint: size,
            eight_bit,
            rcpts: Vec::new(),
            accepted: 0,
            chunks: None,
        });
        self.reply(format_args!("250 2.1.0 Ok"));
        Next::Go
    }

    pub(super) async fn rcpt(&mut self, to: &str) -> Next {
        let listener = self.kind.name();
        let Some(tx) = &self.tx else {
            return self.error("503 5.5.1 Send MAIL first");
        };
        if tx.chunks.is_some() {
            return self.error("503 5.5.1 RCPT after BDAT");
        }
        if tx.accepted >= self.smtp.cfg.max_recipients {
            self.smtp.metrics.recipient(listener, "too_many");
            self.reply(format_args!("452 4.5.3 Too many recipients"));
            return Next::Go;
        }
        let Ok(address) = Address::parse(to) else {
            self.smtp.metrics.recipient(listener, "bad_address");
            return self.error("501 5.1.3 Bad recipient address syntax");
        };
        let authenticated = self.user.is_some();
        let route = match rcpt::resolve(self.smtp, self.kind, authenticated, &address).await {
            Ok(r) => r,
            Err(refusal) => {
                match &refusal {
                    rcpt::Refusal::Unavailable(why) => {
                        tracing::warn!(rcpt = %address, reason = %why, "recipient temporarily refused")
                    }
                    other => {
                        tracing::info!(rcpt = %address, result = other.label(), "recipient refused")
                    }
                }
                self.smtp.metrics.recipient(listener, refusal.label());
                let reply = refusal.reply(&address);
                // A refused recipient is a client error (like Postfix):
                // guessing addresses ends the session.
                if reply.starts_with('5') {
                    return self.error(&reply);
                }
                self.reply(format_args!("{reply}"));
                return Next::Go;
            }
        };
        self.smtp
            .metrics
            .recipient(listener, if route == Route::Relay { "relay" } else { "ok" });
        if let Some(tx) = &mut self.tx {
            // The same mailbox twice (an address again, or an alias of an
            // account already named) gets one copy.
            let same = |r: &Recipient| match (&r.route, &route) {
                (Route::Local { account: a, .. }, Route::Local { account: b, .. }) => a == b,
                (Route::Relay, Route::Relay) => {
                    Address::parse(&r.address).is_ok_and(|a| a == address)
                }
                _ => false,
            };
            tx.accepted += 1;
            if !tx.rcpts.iter().any(same) {
                tx.rcpts.push(Recipient {
                    address: to.to_owned(),
                    route,
                });
            }
        }
        self.reply(format_args!("250 2.1.5 Ok"));
        Next::Go
    }
}

/// RFC 6409 §6.1: a submission's envelope sender is the user's own: its
/// address or one of its aliases. The null sender is for bounces, which
/// users do not send.
fn sender_allowed(user: &Account, from: &str) -> Result<(), &'static str> {
    if from.is_empty() {
        return Err("null sender not allowed on submission");
    }
    let Ok(sender) = Address::parse(from) else {
        return Err("bad address");
    };
    if sender == user.address || user.aliases.contains(&sender) {
        Ok(())
    } else {
        Err("not owned by the authenticated user")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sender_must_be_the_users_own() {
        let a = |s: &str| Address::parse(s).unwrap();
        let user = Account {
            address: a("alice@example.com"),
            aliases: vec![a("al@example.com")],
            password: None,
            cluster: "c1".into(),
            state: locator::AccountState::Active,
            quota: 0,
            created: 0,
            dn: None,
        };
        assert_eq!(sender_allowed(&user, "alice@example.com"), Ok(()));
        assert_eq!(sender_allowed(&user, "Alice@EXAMPLE.com"), Ok(()));
        assert_eq!(sender_allowed(&user, "al@example.com"), Ok(()));
        assert!(sender_allowed(&user, "bob@example.com").is_err());
        assert!(sender_allowed(&user, "alice@example.org").is_err());
        assert!(sender_allowed(&user, "").is_err());
        assert!(sender_allowed(&user, "\"alice@example.com\"@evil.test").is_err());
    }
}
