//! One delivery attempt of an entry: its pending recipients grouped by
//! home cluster (one LMTP transaction each, in parallel) and the
//! smarthost's; then what follows it ([`finish`]): DSNs for recipients
//! that failed, the next retry or the end of the entry.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::task::JoinSet;
use tokio_util::task::TaskTracker;

use super::dsn;
use super::reply::dot_stuff;
use super::spool::{self, Event, Header, RcptState, SpoolRcpt, SpoolRoute};
use super::transaction::{Outcome, Recorder, Transaction};
use super::{Entry, Queue, lmtp, now_ms};

/// Records each outcome in the entry, and in its journal once spooled.
struct Recording<'a> {
    q: &'a Queue,
    e: &'a Entry,
}

impl Recorder for Recording<'_> {
    async fn record(&self, r: usize, outcome: Outcome) {
        let relay = matches!(
            self.e.header.recipients.get(r).map(|x| &x.route),
            Some(SpoolRoute::Relay)
        );
        let mut st = self.e.state.lock().await;
        if !matches!(st.rcpts.get(r), Some(RcptState::Pending { .. })) {
            return;
        }
        let address = &self.e.header.recipients[r].address;
        let lost_past_dot = matches!(outcome, Outcome::Unknown(_));
        let event = match outcome {
            Outcome::Delivered => {
                st.rcpts[r] = RcptState::Delivered;
                st.uncertain[r] = false;
                self.q
                    .metrics
                    .recipient(if relay { "relayed" } else { "delivered" });
                let secs = (now_ms() - self.e.header.created_ms).max(0) as f64 / 1000.0;
                self.q.metrics.delivery_seconds.observe(secs);
                tracing::info!(queue_id = %self.e.header.id, session = %self.e.header.session, rcpt = %address, relay, "delivered");
                Some(Event::Delivered { r })
            }
            Outcome::Failed(reply) => {
                self.q.metrics.recipient("failed");
                tracing::info!(queue_id = %self.e.header.id, session = %self.e.header.session, rcpt = %address, %reply, "failed");
                st.rcpts[r] = RcptState::Failed {
                    reply: reply.clone(),
                    bounced: false,
                };
                st.uncertain[r] = false;
                Some(Event::Failed { r, reply })
            }
            Outcome::Deferred(why) | Outcome::Unknown(why) => {
                // Unknown: the copy may be stored; once journalled, the
                // retry asks the backend to look (it stays so until a
                // definite outcome).
                let unknown = lost_past_dot && !st.uncertain[r];
                self.q.metrics.recipient("deferred");
                tracing::info!(queue_id = %self.e.header.id, session = %self.e.header.session, rcpt = %address, error = %why, unknown, "deferred");
                st.rcpts[r] = RcptState::Pending {
                    error: Some(why.clone()),
                };
                st.last_error = Some(why);
                st.uncertain[r] |= unknown;
                unknown.then_some(Event::Unknown { r })
            }
        };
        if let (Some(event), true) = (event, st.spooled) {
            journal_append(self.q, &self.e.header.id, event).await;
        }
    }
}

/// Appends to an entry's journal; a failure is logged (the outcome is
/// then only in memory, and a restart may retry the recipient).
async fn journal_append(q: &Queue, id: &str, event: Event) {
    let (dir, owned) = (q.dir.clone(), id.to_owned());
    let r = q
        .blocking
        .run(move || spool::append(&dir, &owned, &event))
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()));
    if let Err(e) = r {
        tracing::error!(queue_id = %id, error = %e, "cannot write the spool journal");
    }
}

/// Delivers the entry's pending recipients once; every outcome recorded.
pub(super) async fn deliver(q: Arc<Queue>, e: Arc<Entry>, message: Arc<Vec<u8>>) {
    let (pending, retry, uncertain, spooled) = {
        let st = e.state.lock().await;
        let pending: Vec<usize> = st
            .rcpts
            .iter()
            .enumerate()
            .filter(|(_, s)| matches!(s, RcptState::Pending { .. }))
            .map(|(i, _)| i)
            .collect();
        (pending, st.attempts > 0, st.uncertain.clone(), st.spooled)
    };
    if pending.is_empty() {
        return;
    }
    let rec = Recording { q: &q, e: &e };
    let mut clusters: BTreeMap<String, Vec<(usize, String)>> = BTreeMap::new();
    let mut relay = Vec::new();
    for r in pending {
        let SpoolRcpt { address, route } = &e.header.recipients[r];
        match route {
            SpoolRoute::Local { cluster, account } => {
                // An account moved since it was resolved would be refused
                // (451) by its old cluster until the lifetime ends: a retry
                // asks the locator again and keeps the old route if it
                // cannot say.
                let current = if retry {
                    lookup(&q, account).await.ok().flatten()
                } else {
                    None
                };
                let (cluster, account) =
                    current.unwrap_or_else(|| (cluster.clone(), account.clone()));
                clusters.entry(cluster).or_default().push((r, account))
            }
            SpoolRoute::Relay => relay.push((r, address.clone())),
            SpoolRoute::Lookup => match lookup(&q, address).await {
                Ok(Some((cluster, account))) => {
                    clusters.entry(cluster).or_default().push((r, account))
                }
                Ok(None) if q.smarthost.is_some() => relay.push((r, address.clone())),
                Ok(None) => {
                    let why =
                        format!("550 5.1.2 No route to <{address}>: not local and no smarthost");
                    rec.record(r, Outcome::Failed(why)).await;
                }
                Err(why) => rec.record(r, Outcome::Deferred(why)).await,
            },
        }
    }
    if spooled && !clusters.is_empty() {
        // Before any body goes out: should we die during this attempt,
        // the restart knows its pending recipients are uncertain. Only
        // retries pay this fsync (a first attempt is not spooled yet).
        journal_append(&q, &e.header.id, Event::Trying).await;
    }
    let data = Arc::new(dot_stuff(&message));
    let mut set = JoinSet::new();
    for (cluster, rcpts) in clusters {
        let (q, e, data) = (q.clone(), e.clone(), data.clone());
        // One uncertain recipient marks the transaction: the backend then
        // looks for every recipient's copy (a scan each, on retries only).
        let retry = rcpts.iter().any(|(r, _)| uncertain.get(*r) == Some(&true));
        set.spawn(async move {
            let mut tx = transaction(&e.header, rcpts, &data);
            tx.retry = retry;
            let rec = Recording { q: &q, e: &e };
            lmtp::deliver(
                &q.router,
                &cluster,
                &q.hostname,
                &e.header.session,
                q.cfg.reply_timeout,
                &tx,
                &rec,
            )
            .await;
        });
    }
    if !relay.is_empty() {
        let (q, e, data) = (q.clone(), e.clone(), data.clone());
        set.spawn(async move {
            let tx = transaction(&e.header, relay, &data);
            let rec = Recording { q: &q, e: &e };
            match &q.smarthost {
                Some(client) => client.deliver(q.cfg.reply_timeout, &tx, &rec).await,
                None => {
                    for (r, _) in &tx.recipients {
                        let why = "550 5.7.1 Relaying is not configured on this server".to_owned();
                        rec.record(*r, Outcome::Failed(why)).await;
                    }
                }
            }
        });
    }
    while set.join_next().await.is_some() {}
}

fn transaction<'a>(
    h: &'a Header,
    recipients: Vec<(usize, String)>,
    data: &'a [u8],
) -> Transaction<'a> {
    Transaction {
        sender: &h.sender,
        recipients,
        data,
        eight_bit: h.eight_bit,
        smtputf8: h.smtputf8,
        envid: &h.id,
        retry: false,
    }
}

/// Where the locator says an address lives now: `(cluster, account)`, or
/// `None` when it is not ours (a DSN to a remote sender).
async fn lookup(q: &Queue, address: &str) -> Result<Option<(String, String)>, String> {
    let Ok(a) = shared::Address::parse(address) else {
        return Ok(None);
    };
    match q.router.locator().lookup(&a).await {
        Ok(Some(acc)) => Ok(Some((acc.cluster.clone(), acc.address.as_str().to_owned()))),
        Ok(None) => Ok(None),
        Err(e) => Err(format!("451 4.3.0 locator: {e}")),
    }
}

/// After an attempt: DSNs for new failures, lifetime, the next retry or
/// the removal of a finished entry. Clears `busy`.
pub(super) async fn finish(q: &Arc<Queue>, e: &Arc<Entry>, message: &Arc<Vec<u8>>) {
    let mut st = e.state.lock().await;
    st.attempts += 1;
    let now = now_ms() / 1000;
    if st.deleted {
        drop(st);
        q.forget(e).await;
        e.busy.store(false, Ordering::Release);
        return;
    }
    let lifetime = q.cfg.lifetime.as_secs() as i64;
    let expired = e.header.created_ms / 1000 + lifetime <= now;
    if expired {
        let last = st
            .last_error
            .clone()
            .unwrap_or_else(|| "no attempt ended".into());
        for r in 0..st.rcpts.len() {
            if matches!(st.rcpts[r], RcptState::Pending { .. }) {
                let reply = format!(
                    "Delivery time expired after {}: {last}",
                    shared::config::format_duration(q.cfg.lifetime)
                );
                tracing::info!(queue_id = %e.header.id, rcpt = %e.header.recipients[r].address, "lifetime expired");
                q.metrics.recipient("failed");
                st.rcpts[r] = RcptState::Failed {
                    reply: format!("4.4.7 {reply}"),
                    bounced: false,
                };
                if st.spooled {
                    let ev = Event::Failed {
                        r,
                        reply: format!("4.4.7 {reply}"),
                    };
                    journal_append(q, &e.header.id, ev).await;
                }
            }
        }
    }
    bounce(q, e, &mut st, message).await;
    let pending = st
        .rcpts
        .iter()
        .any(|s| matches!(s, RcptState::Pending { .. }));
    if !pending {
        drop(st);
        q.forget(e).await;
        e.busy.store(false, Ordering::Release);
        return;
    }
    let delay = backoff(q, st.attempts);
    st.next = now + delay;
    if st.spooled {
        let ev = Event::Attempt {
            n: st.attempts,
            next: st.next,
            error: st.last_error.clone(),
        };
        journal_append(q, &e.header.id, ev).await;
    }
    tracing::info!(queue_id = %e.header.id, attempts = st.attempts, retry_in = delay, "deferred");
    e.busy.store(false, Ordering::Release);
}

/// Seconds before the next attempt: `retry_min` doubled per attempt up to
/// `retry_max`, with up to 10% jitter so that a returning cluster is not
/// hit by every entry in the same second.
fn backoff(q: &Queue, attempts: u32) -> i64 {
    let min = q.cfg.retry_min.as_secs().max(1);
    let max = q.cfg.retry_max.as_secs().max(min);
    let base = min
        .saturating_mul(1u64 << attempts.saturating_sub(1).min(30))
        .min(max);
    let jitter = rand::random_range(0..=base / 10);
    (base + jitter) as i64
}

/// Sends one DSN for the failed recipients not yet reported (never for a
/// null-sender message), and journals that they are.
async fn bounce(q: &Arc<Queue>, e: &Arc<Entry>, st: &mut super::State, message: &[u8]) {
    let fresh: Vec<usize> = (0..st.rcpts.len())
        .filter(|&r| matches!(st.rcpts[r], RcptState::Failed { bounced: false, .. }))
        .collect();
    if fresh.is_empty() {
        return;
    }
    if !e.header.sender.is_empty() {
        let failures = fresh
            .iter()
            .filter_map(|&r| match &st.rcpts[r] {
                RcptState::Failed { reply, .. } => Some(dsn::Failure {
                    recipient: &e.header.recipients[r].address,
                    diagnostic: reply,
                    status: dsn::status_of(reply),
                }),
                _ => None,
            })
            .collect();
        let report = dsn::Report {
            hostname: &q.hostname,
            queue_id: &e.header.id,
            sender: &e.header.sender,
            arrived: e.header.created_ms / 1000,
            now: now_ms() / 1000,
            failures,
            headers: spool::headers_of(message),
        };
        let text = dsn::build(&report);
        if let Err(why) = q.enqueue_dsn(&e.header, text).await {
            // Left unbounced: the next attempt of this entry tries again.
            tracing::error!(queue_id = %e.header.id, error = %why, "cannot spool the DSN");
            return;
        }
    }
    for r in fresh {
        if let RcptState::Failed { bounced, .. } = &mut st.rcpts[r] {
            *bounced = true;
        }
        if st.spooled {
            journal_append(q, &e.header.id, Event::Bounced { r }).await;
        }
    }
}

/// Makes every idle entry with a recipient pending for a cluster due now.
pub(super) async fn due_now(q: &Queue) {
    for e in q.snapshot() {
        let Ok(mut st) = e.state.try_lock() else {
            continue;
        };
        let local = st.rcpts.iter().enumerate().any(|(r, s)| {
            matches!(s, RcptState::Pending { .. })
                && !matches!(e.header.recipients[r].route, SpoolRoute::Relay)
        });
        if local && !e.busy.load(Ordering::Acquire) {
            st.next = 0;
        }
    }
}

/// Starts the attempts that are due; called each second by `run`.
pub(super) async fn schedule(q: &Arc<Queue>, tracker: &TaskTracker) {
    let now = now_ms() / 1000;
    for e in q.snapshot() {
        if e.busy.load(Ordering::Acquire) {
            continue;
        }
        let Ok(st) = e.state.try_lock() else { continue };
        if st.next > now || st.deleted {
            continue;
        }
        drop(st);
        let Ok(slot) = q.slots.clone().try_acquire_owned() else {
            return;
        };
        e.busy.store(true, Ordering::Release);
        let q = q.clone();
        tracker.spawn(async move {
            let dir = q.dir.clone();
            let id = e.header.id.clone();
            let message = q
                .blocking
                .run(move || std::fs::read(spool::msg_path(&dir, &id)))
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r.map_err(|e| e.to_string()));
            let message = match message {
                Ok(m) => Arc::new(m),
                Err(why) => {
                    tracing::error!(queue_id = %e.header.id, error = %why, "cannot read the spooled message");
                    let mut st = e.state.lock().await;
                    st.next = now_ms() / 1000 + backoff(&q, st.attempts.max(1));
                    e.busy.store(false, Ordering::Release);
                    return;
                }
            };
            let lifetime = q.cfg.lifetime.as_secs() as i64;
            if e.header.created_ms / 1000 + lifetime > now_ms() / 1000 {
                if e.state.lock().await.attempts > 0 {
                    q.metrics.retries.inc();
                }
                deliver(q.clone(), e.clone(), message.clone()).await;
            }
            finish(&q, &e, &message).await;
            // The slot is free: the next due entry need not wait for a tick.
            drop(slot);
            q.wake.notify_one();
        });
    }
}

impl Queue {
    /// Spools a DSN to `original`'s sender, due at once.
    async fn enqueue_dsn(self: &Arc<Self>, original: &Header, text: Vec<u8>) -> Result<(), String> {
        let n = self.ids.fetch_add(1, Ordering::Relaxed);
        let now = now_ms();
        let header = Header {
            v: 1,
            id: format!("{:X}{n:08X}", now / 1000),
            created_ms: now,
            session: original.session.clone(),
            sender: String::new(),
            recipients: vec![SpoolRcpt {
                address: original.sender.clone(),
                route: SpoolRoute::Lookup,
            }],
            eight_bit: true,
            smtputf8: original.smtputf8,
            size: text.len() as u64,
        };
        let id = header.id.clone();
        let entry = Arc::new(Entry::new(header));
        self.spool(&entry, &Arc::new(text)).await?;
        self.metrics.dsns.inc();
        tracing::info!(queue_id = %original.id, dsn = %id, to = %original.sender, "DSN queued");
        self.wake.notify_one();
        Ok(())
    }
}
