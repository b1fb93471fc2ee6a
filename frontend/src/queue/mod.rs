//! The durable queue behind the SMTP server: immediate delivery to the
//! home clusters, the spool for what could not be delivered at once,
//! retries, bounces and relaying through a smarthost.
//!
//! [`Queue::accept`] delivers first: the recipients are grouped by home
//! cluster, one LMTP transaction per cluster, all clusters in parallel
//! (and the smarthost's recipients in one SMTP transaction beside them).
//! What is not settled within `deliver_wait` (a cluster down, a 4xx, a
//! slow node) is written to the spool ([`spool`]) before `accept` returns:
//! then the message can no longer be lost. [`Queue::run`] retries with
//! exponential backoff until the lifetime ends, sends DSNs ([`dsn`]), and
//! applies the requests of `tandem queue` ([`requests`]).
//!
//! Exactly once: an attempt still in flight is never retried beside
//! itself (an entry is `busy` until its attempt ended), and each
//! recipient's 250 is journalled with fsync as soon as it is read, so
//! neither a retry nor a restart delivers it again. The window every MTA
//! has (RFC 1047), a crash between the backend's 250 and our fsync of it
//! or a connection lost after the final dot before the replies arrive, is
//! closed with the backend: every LMTP transaction carries the queue id as
//! `ENVID=`, which tags each stored copy's file name, and a recipient
//! whose outcome is unknown is retried with `X-TANDEM-RETRY`, so that the
//! backend answers 250 for a copy it finds instead of storing another
//! (see `transaction`). Unknown means: the connection broke after the
//! body was sent (journalled `Unknown`), or the process died during an
//! attempt (a spooled entry journals `Trying` before each retry; one
//! without any ended attempt was spooled while its first ran). First
//! deliveries pay nothing for this; the backend scans a mailbox only for
//! marked retries. What remains: a frontend that dies after an immediate
//! delivery and before it answered the SMTP client leads the client to
//! send again (under a new queue id), and the smarthost gets no tags.
//!
//! - [`envelope`]: what the SMTP server hands over and what it gets back;
//! - [`config`]: the `frontend.queue` section;
//! - [`spool`]: the files, their journal, recovery;
//! - `attempt`: one delivery attempt of an entry and what follows it;
//! - [`reply`], `dialogue`, `transaction`: the client side of SMTP and
//!   LMTP, shared by [`lmtp`] and [`smtp`] (the smarthost);
//! - [`dsn`]: RFC 3464 reports; [`metrics`]; [`requests`]: the CLI's.

mod attempt;
pub mod config;
mod dialogue;
pub mod dsn;
pub mod envelope;
pub mod lmtp;
pub mod metrics;
pub mod reply;
pub mod requests;
pub mod smtp;
pub mod spool;
mod transaction;

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use prometheus_client::registry::Registry;
use shared::blocking::Blocking;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::QueueConfig;
pub use envelope::{Accepted, Disposition, Envelope, Recipient, Refused, Route};
use metrics::QueueMetrics;
use spool::{Event, Header, Loaded, RcptState, SpoolRcpt, SpoolRoute};

use crate::route::Router;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("{path}: {error}")]
    Dir {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{0}: the spool is in use by another process (is a frontend running on it?)")]
    Locked(PathBuf),
    #[error("frontend.queue.smarthost: {0}")]
    Smarthost(String),
}

/// One message in the queue (spooled, or being delivered by `accept`).
pub(crate) struct Entry {
    header: Header,
    state: tokio::sync::Mutex<State>,
    /// An attempt is in flight: no other may start (it would deliver twice).
    busy: AtomicBool,
}

struct State {
    rcpts: Vec<RcptState>,
    attempts: u32,
    /// Unix seconds when the next attempt is due.
    next: i64,
    last_error: Option<String>,
    /// Per recipient: an earlier attempt may have stored its copy though
    /// no 250 was journalled; its next LMTP transaction is marked
    /// `X-TANDEM-RETRY` so that the backend looks before storing.
    uncertain: Vec<bool>,
    /// Open for appends once the entry is in the spool.
    spooled: bool,
    /// `tandem queue delete` while an attempt ran: removed when it ends.
    deleted: bool,
}

impl Entry {
    fn new(header: Header) -> Self {
        Self::from_loaded(Loaded::new(header), false)
    }

    fn from_loaded(l: Loaded, spooled: bool) -> Self {
        // A fresh entry's first attempt is not in flight yet.
        let uncertain = if spooled {
            l.uncertain()
        } else {
            vec![false; l.rcpts.len()]
        };
        Entry {
            header: l.header,
            state: tokio::sync::Mutex::new(State {
                uncertain,
                rcpts: l.rcpts,
                attempts: l.attempts,
                next: l.next,
                last_error: l.last_error,
                spooled,
                deleted: false,
            }),
            busy: AtomicBool::new(false),
        }
    }
}

pub struct Queue {
    /// This queue, for the tasks `accept` spawns.
    me: Weak<Queue>,
    cfg: QueueConfig,
    dir: PathBuf,
    router: Arc<Router>,
    hostname: String,
    blocking: Blocking,
    /// Spooled entries by id.
    entries: Mutex<HashMap<String, Arc<Entry>>>,
    /// Message bytes in the spool.
    bytes: AtomicU64,
    ids: AtomicU32,
    smarthost: Option<smtp::Client>,
    metrics: QueueMetrics,
    /// Retries running at once.
    slots: Arc<Semaphore>,
    /// Attempts and the ends of `accept`s that outlived `deliver_wait`:
    /// `run` waits for them before it lets go of the spool.
    tasks: TaskTracker,
    wake: Notify,
    closed: AtomicBool,
    /// The spool's lock, held while the queue lives (see [`requests`]).
    lock: Mutex<Option<File>>,
}

impl Queue {
    /// Opens (creating) the spool, takes its lock and recovers every entry
    /// a previous run left; [`run`](Self::run) then delivers them.
    pub async fn open(
        cfg: &QueueConfig,
        router: Arc<Router>,
        hostname: &str,
        registry: &mut Registry,
    ) -> Result<Arc<Queue>, QueueError> {
        let dir = cfg.dir.clone();
        let io = |path: &Path| {
            let path = path.to_owned();
            move |error| QueueError::Dir { path, error }
        };
        spool::create_private_dir(&dir.join(requests::DIR)).map_err(io(&dir))?;
        spool::create_private_dir(&dir).map_err(io(&dir))?;
        let lock = requests::lock(&dir, Duration::from_secs(5))
            .await
            .map_err(io(&dir))?
            .ok_or_else(|| QueueError::Locked(dir.clone()))?;
        let blocking = Blocking::new(16);
        let d = dir.clone();
        let recovered = blocking
            .run(move || {
                let mut recovered = spool::load_all(&d, true)?;
                for l in &mut recovered.entries {
                    if let Err(e) = l.remember_uncertain(&d) {
                        // Only in memory then: right until the next crash.
                        tracing::error!(queue_id = %l.header.id, error = %e, "cannot journal an unknown outcome");
                    }
                }
                Ok::<_, std::io::Error>(recovered)
            })
            .await
            .map_err(|e| QueueError::Dir {
                path: dir.clone(),
                error: std::io::Error::other(e),
            })?
            .map_err(io(&dir))?;
        for d in &recovered.damaged {
            tracing::error!(dir = %dir.display(), problem = %d, "damaged spool entry set aside");
        }
        let smarthost = match &cfg.smarthost {
            Some(s) => Some(smtp::Client::new(s, hostname).map_err(QueueError::Smarthost)?),
            None => None,
        };
        let mut entries = HashMap::new();
        let mut bytes = 0;
        for l in recovered.entries {
            bytes += l.header.size;
            let id = l.header.id.clone();
            entries.insert(id, Arc::new(Entry::from_loaded(l, true)));
        }
        tracing::info!(
            dir = %dir.display(),
            entries = entries.len(),
            removed = recovered.removed,
            "queue opened"
        );
        let metrics = QueueMetrics::register(registry);
        metrics.length.set(entries.len() as i64);
        let q = Arc::new_cyclic(|me| Queue {
            me: me.clone(),
            cfg: cfg.clone(),
            dir,
            router,
            hostname: hostname.to_owned(),
            blocking,
            entries: Mutex::new(entries),
            bytes: AtomicU64::new(bytes),
            ids: AtomicU32::new(rand::random()),
            smarthost,
            metrics,
            slots: Arc::new(Semaphore::new(cfg.max_parallel)),
            tasks: TaskTracker::new(),
            wake: Notify::new(),
            closed: AtomicBool::new(false),
            lock: Mutex::new(Some(lock)),
        });
        Ok(q)
    }

    /// Whether `Route::Relay` recipients can be taken.
    pub fn has_smarthost(&self) -> bool {
        self.smarthost.is_some()
    }

    /// Takes responsibility for a message: returns once every recipient is
    /// delivered, failed for good (the sender gets a DSN), or spooled.
    pub async fn accept(&self, envelope: Envelope, message: Vec<u8>) -> Result<Accepted, Refused> {
        let Some(q) = self.me.upgrade() else {
            return Err(Refused::Temporary("queue shutting down".into()));
        };
        // In a task of its own: if the SMTP session goes away meanwhile,
        // what was delivered is still recorded and the rest spooled.
        tokio::spawn(async move { q.accept_arc(envelope, message).await })
            .await
            .unwrap_or_else(|e| Err(Refused::Temporary(format!("queue task failed: {e}"))))
    }

    async fn accept_arc(
        self: &Arc<Self>,
        envelope: Envelope,
        message: Vec<u8>,
    ) -> Result<Accepted, Refused> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Refused::Temporary("queue shutting down".into()));
        }
        if envelope.recipients.is_empty() {
            return Err(Refused::Permanent("554 5.5.1 No valid recipients".into()));
        }
        let header = self.header(&envelope, message.len());
        let id = header.id.clone();
        let entry = Arc::new(Entry::new(header));
        entry.busy.store(true, Ordering::Release);
        let message = Arc::new(message);
        let mut attempt = tokio::spawn(attempt::deliver(
            self.clone(),
            entry.clone(),
            message.clone(),
        ));
        let finished = tokio::time::timeout(self.cfg.deliver_wait, &mut attempt)
            .await
            .is_ok();
        let dispositions = {
            let st = entry.state.lock().await;
            dispositions(&st.rcpts)
        };
        let pending = dispositions.contains(&Disposition::Queued);
        if finished && !pending {
            if let Some(Disposition::Failed { reply }) = dispositions.first()
                && dispositions
                    .iter()
                    .all(|d| matches!(d, Disposition::Failed { .. }))
            {
                tracing::info!(queue_id = %id, session = %envelope.session, %reply, "every recipient refused");
                self.metrics.message("refused_permanent");
                return Err(Refused::Permanent(reply.clone()));
            }
        } else if let Err(e) = self.spool(&entry, &message).await {
            tracing::error!(queue_id = %id, session = %envelope.session, error = %e, "cannot spool");
            self.metrics.message("refused_temporary");
            if !finished {
                tracing::warn!(queue_id = %id, "an attempt is still in flight; a retry by the client may deliver twice");
            }
            return Err(Refused::Temporary(e));
        }
        if finished {
            attempt::finish(self, &entry, &message).await;
        } else {
            tracing::info!(queue_id = %id, wait = ?self.cfg.deliver_wait, "delivery goes on in the background");
            let q = self.clone();
            self.tasks.spawn(async move {
                let _ = attempt.await;
                attempt::finish(&q, &entry, &message).await;
            });
        }
        self.metrics
            .message(if pending { "queued" } else { "delivered" });
        tracing::info!(
            queue_id = %id,
            session = %envelope.session,
            queued = pending,
            "message accepted"
        );
        Ok(Accepted {
            id,
            recipients: dispositions,
        })
    }

    /// Retries, lifetimes, DSNs and the CLI's requests, until `shutdown`.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut recoveries = self.router.recoveries();
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            requests::apply(&self).await;
            let now = self.router.recoveries();
            if now != recoveries {
                // A backend node is back: what waits for a cluster need not
                // wait out its backoff.
                recoveries = now;
                attempt::due_now(&self).await;
            }
            attempt::schedule(&self, &self.tasks).await;
            self.gauges();
        }
        self.closed.store(true, Ordering::Release);
        self.tasks.close();
        if tokio::time::timeout(Duration::from_secs(5), self.tasks.wait())
            .await
            .is_err()
        {
            tracing::info!(
                "queue attempts still running at shutdown; they resume at the next start"
            );
        }
        let lock = self.lock.lock().unwrap_or_else(|p| p.into_inner()).take();
        drop(lock);
        tracing::info!("queue stopped");
    }

    fn header(&self, e: &Envelope, size: usize) -> Header {
        let n = self.ids.fetch_add(1, Ordering::Relaxed);
        let now_ms = now_ms();
        Header {
            v: 1,
            id: format!("{:X}{n:08X}", now_ms / 1000),
            created_ms: now_ms,
            session: e.session.clone(),
            sender: e.sender.clone(),
            recipients: e
                .recipients
                .iter()
                .map(|r| SpoolRcpt {
                    address: r.address.clone(),
                    route: match &r.route {
                        Route::Local { cluster, account } => SpoolRoute::Local {
                            cluster: cluster.clone(),
                            account: account.as_str().to_owned(),
                        },
                        Route::Relay => SpoolRoute::Relay,
                    },
                })
                .collect(),
            eight_bit: e.eight_bit,
            smtputf8: e.smtputf8,
            size: size as u64,
        }
    }

    /// Writes an entry to the spool with what is known of it so far; from
    /// then on its outcomes are journalled.
    async fn spool(&self, entry: &Arc<Entry>, message: &Arc<Vec<u8>>) -> Result<(), String> {
        let size = entry.header.size;
        {
            let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            if entries.len() >= self.cfg.max_messages
                || self.bytes.load(Ordering::Relaxed) + size > self.cfg.max_bytes
            {
                return Err(format!(
                    "spool {} full ({} messages, limits {} messages / {} bytes)",
                    self.dir.display(),
                    entries.len(),
                    self.cfg.max_messages,
                    self.cfg.max_bytes
                ));
            }
        }
        let mut st = entry.state.lock().await;
        let events: Vec<Event> = st
            .rcpts
            .iter()
            .enumerate()
            .filter_map(|(r, s)| match s {
                RcptState::Delivered => Some(Event::Delivered { r }),
                RcptState::Failed { reply, .. } => Some(Event::Failed {
                    r,
                    reply: reply.clone(),
                }),
                RcptState::Pending { .. } if st.uncertain.get(r) == Some(&true) => {
                    Some(Event::Unknown { r })
                }
                RcptState::Pending { .. } => None,
            })
            .collect();
        let (dir, header, message) = (self.dir.clone(), entry.header.clone(), message.clone());
        self.blocking
            .run(move || spool::create(&dir, &header, &events, &message))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("{}: {e}", self.dir.display()))?;
        st.spooled = true;
        drop(st);
        self.bytes.fetch_add(size, Ordering::Relaxed);
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.insert(entry.header.id.clone(), entry.clone());
        self.metrics.length.set(entries.len() as i64);
        Ok(())
    }

    /// Takes an entry out of the index and the spool.
    async fn forget(&self, entry: &Entry) {
        let id = entry.header.id.clone();
        let removed = {
            let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            let removed = entries.remove(&id).is_some();
            self.metrics.length.set(entries.len() as i64);
            removed
        };
        if !removed {
            return;
        }
        self.bytes.fetch_sub(entry.header.size, Ordering::Relaxed);
        let dir = self.dir.clone();
        let r = self
            .blocking
            .run(move || spool::remove(&dir, &id))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()));
        if let Err(e) = r {
            tracing::error!(queue_id = %entry.header.id, error = %e, "cannot remove spool entry");
        }
    }

    fn snapshot(&self) -> Vec<Arc<Entry>> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.values().cloned().collect()
    }

    fn gauges(&self) {
        let entries = self.snapshot();
        self.metrics.length.set(entries.len() as i64);
        let oldest = entries.iter().map(|e| e.header.created_ms).min();
        let age = oldest.map_or(0, |t| (now_ms() - t).max(0) / 1000);
        self.metrics.oldest_seconds.set(age);
    }

    /// Queue ids currently spooled (tests, diagnostics).
    pub fn spooled(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .snapshot()
            .iter()
            .map(|e| e.header.id.clone())
            .collect();
        ids.sort();
        ids
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

fn dispositions(rcpts: &[RcptState]) -> Vec<Disposition> {
    rcpts
        .iter()
        .map(|s| match s {
            RcptState::Delivered => Disposition::Delivered,
            RcptState::Failed { reply, .. } => Disposition::Failed {
                reply: reply.clone(),
            },
            RcptState::Pending { .. } => Disposition::Queued,
        })
        .collect()
}

/// Current Unix time in milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
