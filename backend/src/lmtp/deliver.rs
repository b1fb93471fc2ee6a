//! The end of a transaction (RFC 2033 §4.2): one copy per recipient, each
//! with its own trace headers in front of the shared body, stored durably
//! before its `250` is queued; then one reply per accepted RCPT, in order.

use std::sync::Arc;
use std::time::Duration;

use shared::Address;
use tokio::task::JoinSet;

use super::session::{Rcpt, Session, Transaction};
use super::trace::{Trace, header_block};
use crate::store::maildir;

/// How one recipient's delivery went.
#[derive(Debug, Clone)]
enum Outcome {
    Saved,
    /// A retry whose copy was stored by an earlier attempt: not again.
    AlreadySaved,
    /// A retry whose copy an earlier transaction is still writing.
    Storing,
    OverQuota,
    TooBig,
    Failed(String),
}

impl Outcome {
    fn label(&self) -> &'static str {
        match self {
            Outcome::Saved => "ok",
            Outcome::AlreadySaved => "duplicate",
            Outcome::Storing => "unavailable",
            Outcome::OverQuota => "over_quota",
            Outcome::TooBig => "too_big",
            Outcome::Failed(_) => "error",
        }
    }
}

pub(super) async fn deliver(s: &mut Session<'_>, tx: Transaction, over: bool, size: u64) {
    let n = tx.rcpts.len();
    // The address each reply names: a duplicate names its original.
    let mut addresses: Vec<Address> = Vec::with_capacity(n);
    let mut results: Vec<Option<(Outcome, Duration)>> = vec![None; n];
    let mut tasks = JoinSet::new();
    let body = Arc::new(std::mem::take(&mut s.body));
    let date = shared::time::rfc5322(shared::time::now());
    let trace = Trace {
        sender: &tx.sender,
        lhlo: s.lhlo.as_deref().unwrap_or(""),
        client: s.conn.client,
        hostname: &s.lmtp.node.hostname,
        session: &s.conn.session,
        tls: s.tls,
        date: &date,
    };
    let timing = s.lmtp.metrics.delivery_seconds.clone();
    for (i, rcpt) in tx.rcpts.into_iter().enumerate() {
        let (address, opened) = match rcpt {
            Rcpt::Accepted { address, opened } => (address, opened),
            Rcpt::Duplicate(j) => {
                let a = addresses.get(j).cloned();
                addresses.extend(a);
                continue;
            }
        };
        if over {
            addresses.push(address);
            results[i] = Some((Outcome::TooBig, Duration::ZERO));
            continue;
        }
        let mut headers = Vec::with_capacity(256);
        header_block(&mut headers, &trace, address.as_str());
        // Tagged whenever the client sent an ENVID (free: it is only a
        // name); looked for only when it says an earlier outcome is unknown.
        let tag = tx
            .envid
            .as_deref()
            .map(|envid| maildir::delivery_tag(envid, address.as_str()));
        let check = tx.retry;
        addresses.push(address);
        let body = body.clone();
        let timing = timing.clone();
        tasks.spawn(async move {
            let start = tokio::time::Instant::now();
            let quota = opened.account.quota;
            let r = opened
                .run(move |store| {
                    if let (Some(tag), true) = (&tag, check) {
                        match store.find_delivery(tag)? {
                            maildir::Tagged::Stored => return Ok(Outcome::AlreadySaved),
                            // Stored or not in a moment: the next retry knows.
                            maildir::Tagged::Storing => return Ok(Outcome::Storing),
                            maildir::Tagged::Absent => {}
                        }
                    }
                    let size = (headers.len() + body.len()) as u64;
                    if quota > 0 && store.usage(quota)?.bytes.saturating_add(size) > quota {
                        return Ok(Outcome::OverQuota);
                    }
                    store
                        .deliver_parts(&[&headers, &body], tag.as_deref())
                        .map(|_| Outcome::Saved)
                })
                .await;
            let outcome = match r {
                Ok(Ok(outcome)) => outcome,
                Ok(Err(e)) => Outcome::Failed(e.to_string()),
                Err(e) => Outcome::Failed(e.to_string()),
            };
            let took = start.elapsed();
            timing.observe(took.as_secs_f64());
            (i, outcome, took)
        });
    }
    while let Some(done) = tasks.join_next().await {
        // A task that died leaves its slot empty: reported as failed below.
        if let Ok((i, outcome, took)) = done {
            results[i] = Some((outcome, took));
        }
    }
    // Every task has ended, so every clone of the body is gone.
    if let Ok(b) = Arc::try_unwrap(body) {
        s.body = b;
    }

    let mut originals = Vec::with_capacity(n);
    for (i, address) in addresses.iter().enumerate() {
        let (outcome, took) = match results.get(i).cloned().flatten() {
            Some(r) => r,
            // A duplicate: the outcome of the first RCPT of its address.
            None => match addresses[..i].iter().position(|a| a == address) {
                Some(j) => originals.get(j).cloned().unwrap_or(missing()),
                None => missing(),
            },
        };
        originals.push((outcome.clone(), took));
        s.lmtp.metrics.count(outcome.label());
        let ms = took.as_millis() as u64;
        let (code, text, what) = match &outcome {
            Outcome::Saved => ("250 2.0.0", "Saved", "delivered"),
            Outcome::AlreadySaved => (
                "250 2.0.0",
                "Already delivered",
                "retry of a stored copy: not stored again",
            ),
            Outcome::Storing => (
                "451 4.3.0",
                "A delivery of this copy is in progress, try again later",
                "retry of a copy still being stored: try later",
            ),
            Outcome::OverQuota => ("552 5.2.2", "Mailbox full", "not delivered"),
            Outcome::TooBig => ("552 5.3.4", "Message too big for system", "not delivered"),
            Outcome::Failed(why) => {
                tracing::error!(rcpt = %address, size, result = "error", ms, error = %why, "delivery failed");
                (
                    "451 4.3.0",
                    "Temporary failure, try again later",
                    "delivery failed",
                )
            }
        };
        if !matches!(outcome, Outcome::Failed(_)) {
            tracing::info!(rcpt = %address, size, result = outcome.label(), ms, "{what}");
        }
        s.reply(format_args!("{code} <{address}> {text}"));
    }
}

fn missing() -> (Outcome, Duration) {
    (
        Outcome::Failed("delivery task ended early".into()),
        Duration::ZERO,
    )
}
