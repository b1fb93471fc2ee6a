//! This node's etcd lease: granted at start, renewed every ttl/3, with the
//! node's registration bound to it; fencing when renewal fails too long,
//! and a write deadline ([`Validity`]) that refuses writes from then on
//! even when the fence itself is late (the process was stopped).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use shared::lease::{LeaseId, LeaseStore};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::keys::{Keys, NodeInfo};
use super::metrics::ClusterMetrics;

/// How often the registration (with its session count) is rewritten.
const REFRESH: Duration = Duration::from_secs(3);
/// Pause before renewing again after a failed renewal.
const RETRY_RENEWAL: Duration = Duration::from_millis(100);
/// Pause between attempts to get a lease while etcd cannot be reached.
const RETRY: Duration = Duration::from_millis(500);

/// A lease this node holds now.
#[derive(Clone)]
pub struct Live {
    pub lease: LeaseId,
    /// Cancelled when the node fences itself: everything done under this
    /// lease must stop.
    pub lost: CancellationToken,
    /// Until when writes under this lease are safe.
    pub valid: Arc<Validity>,
}

impl Live {
    /// The guard a mailbox opened under this lease checks before writing.
    pub fn write_guard(&self) -> crate::store::WriteGuard {
        crate::store::WriteGuard::new(self.valid.clone())
    }
}

/// The write deadline of one lease: the send time of its last successful
/// renewal (or of its grant) plus [`NodeLease::fence_after`]. The lease
/// lives at the store at least a ttl from that send time, so up to this
/// deadline no other node can own this node's accounts. It only moves
/// forward, and never again once the lease is fenced.
pub struct Validity {
    until: Mutex<Instant>,
}

impl Validity {
    fn new(until: Instant) -> Validity {
        Validity {
            until: Mutex::new(until),
        }
    }

    pub fn valid_until(&self) -> Instant {
        *self.until.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether writes are still safe now.
    pub fn is_valid(&self) -> bool {
        Instant::now() < self.valid_until()
    }

    fn extend(&self, until: Instant) {
        let mut u = self.until.lock().unwrap_or_else(|p| p.into_inner());
        *u = (*u).max(until);
    }

    /// Ends it now (fenced or shut down): no write passes from here on.
    fn end(&self) {
        let mut u = self.until.lock().unwrap_or_else(|p| p.into_inner());
        *u = (*u).min(Instant::now());
    }
}

impl crate::store::guard::Permit for Validity {
    fn may_write(&self) -> bool {
        self.is_valid()
    }
}

pub struct NodeLease {
    client: Arc<dyn LeaseStore>,
    keys: Keys,
    ttl: Duration,
    info: NodeInfo,
    /// Open sessions, for the registration.
    sessions: Box<dyn Fn() -> u64 + Send + Sync>,
    live: Mutex<Option<Live>>,
    /// Counts fencing events; watchers drop what they hold for the node.
    fences: watch::Sender<u64>,
    metrics: ClusterMetrics,
}

enum End {
    Shutdown,
    Fence(String),
}

impl NodeLease {
    pub fn new(
        client: Arc<dyn LeaseStore>,
        keys: Keys,
        ttl: Duration,
        info: NodeInfo,
        sessions: Box<dyn Fn() -> u64 + Send + Sync>,
        metrics: ClusterMetrics,
    ) -> NodeLease {
        NodeLease {
            client,
            keys,
            ttl,
            info,
            sessions,
            live: Mutex::new(None),
            fences: watch::Sender::new(0),
            metrics,
        }
    }

    pub fn node(&self) -> &str {
        &self.info.id
    }

    /// The lease, while it is surely alive at etcd; `None` while the node
    /// is starting or fenced, or past the lease's write deadline (the fence
    /// is about to run, or the process was stopped and it has not yet).
    pub fn current(&self) -> Option<Live> {
        let live = self
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()?;
        live.valid.is_valid().then_some(live)
    }

    /// Fencing events, as a counter that grows with each.
    pub fn fences(&self) -> watch::Receiver<u64> {
        self.fences.subscribe()
    }

    /// How long after the last successful renewal was sent the node fences:
    /// the TTL less a margin for sessions to stop (a quarter, at least 1 s).
    pub fn fence_after(&self) -> Duration {
        let margin = (self.ttl / 4).max(Duration::from_secs(1));
        self.ttl.saturating_sub(margin)
    }

    /// Waits until the node holds a lease (at start), up to `limit`.
    pub async fn wait_live(&self, limit: Duration) -> bool {
        let until = Instant::now() + limit;
        while Instant::now() < until {
            if self.current().is_some() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    /// Holds a lease until `shutdown`, getting a new one after each fence;
    /// on shutdown revokes it, so the node's accounts are free at once.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut previous: Option<LeaseId> = None;
        loop {
            let Some((lease, granted)) = self.grant(&shutdown).await else {
                return;
            };
            if let Some(old) = previous.take() {
                // The node fenced under `old`: its owner keys may go now.
                if let Err(e) = self.client.revoke(old).await {
                    tracing::info!(error = %e, "could not revoke the fenced lease; it expires by itself");
                }
            }
            if let Err(e) = self.register(lease).await {
                tracing::warn!(error = %e, "cannot register this node in etcd; retrying");
                let _ = self.client.revoke(lease).await;
                tokio::time::sleep(RETRY).await;
                continue;
            }
            let lost = CancellationToken::new();
            let valid = Arc::new(Validity::new(granted + self.fence_after()));
            *self.live.lock().unwrap_or_else(|p| p.into_inner()) = Some(Live {
                lease,
                lost: lost.clone(),
                valid: valid.clone(),
            });
            self.metrics.leases.inc();
            tracing::info!(node = self.node(), lease = lease.0, ttl = ?self.ttl, "holding an etcd lease; registered in the cluster");
            let end = self.keep(lease, granted, &valid, &shutdown).await;
            valid.end();
            *self.live.lock().unwrap_or_else(|p| p.into_inner()) = None;
            lost.cancel();
            match end {
                End::Shutdown => {
                    if let Err(e) = self.client.revoke(lease).await {
                        tracing::warn!(error = %e, "could not revoke the lease at shutdown; accounts are free after the ttl");
                    }
                    return;
                }
                End::Fence(why) => {
                    self.metrics.fences.inc();
                    self.metrics.owned.set(0);
                    self.fences.send_modify(|n| *n += 1);
                    tracing::error!(node = self.node(), reason = %why, "fenced: sessions of owned accounts closed, claims refused until a new lease");
                    previous = Some(lease);
                }
            }
        }
    }

    /// A new lease, retrying until granted or shut down; with the time the
    /// request was sent (the lease lives at least ttl from then).
    async fn grant(&self, shutdown: &CancellationToken) -> Option<(LeaseId, Instant)> {
        loop {
            let sent = Instant::now();
            let r = tokio::select! {
                _ = shutdown.cancelled() => return None,
                r = self.client.grant(self.ttl) => r,
            };
            match r {
                Ok(l) => return Some((l, sent)),
                Err(e) => tracing::warn!(error = %e, "cannot get an etcd lease; retrying"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return None,
                _ = tokio::time::sleep(RETRY) => {}
            }
        }
    }

    async fn register(&self, lease: LeaseId) -> Result<(), shared::etcd::EtcdError> {
        let mut info = self.info.clone();
        info.sessions = (self.sessions)();
        let value = serde_json::to_vec(&info).unwrap_or_default();
        self.client
            .put(&self.keys.node(&self.info.id), &value, lease)
            .await
    }

    /// Renews `lease` every ttl/3 until shutdown or until it must fence.
    async fn keep(
        &self,
        lease: LeaseId,
        granted: Instant,
        valid: &Validity,
        shutdown: &CancellationToken,
    ) -> End {
        let mut renewed = granted;
        let mut registered = Instant::now();
        let every = self.ttl / 3;
        let mut failed = false;
        loop {
            let deadline = renewed + self.fence_after();
            // After a failure, try again soon: a member may have died and
            // the next answers once the cluster elected a leader.
            let pause = if failed { RETRY_RENEWAL } else { every };
            let renewal = async {
                tokio::time::sleep(pause).await;
                let sent = Instant::now();
                (sent, self.client.keep_alive(lease).await)
            };
            tokio::select! {
                _ = shutdown.cancelled() => return End::Shutdown,
                _ = tokio::time::sleep_until(deadline) => {
                    return End::Fence(format!(
                        "no lease renewal succeeded for {:?}",
                        self.fence_after()
                    ));
                }
                (sent, r) = renewal => match r {
                    Ok(Some(_)) => {
                        renewed = sent;
                        valid.extend(sent + self.fence_after());
                        failed = false;
                        if registered.elapsed() >= REFRESH {
                            registered = Instant::now();
                            self.refresh(lease);
                        }
                    }
                    Ok(None) => return End::Fence("the lease expired at etcd".into()),
                    Err(e) => {
                        failed = true;
                        tracing::warn!(error = %e, "lease renewal failed");
                    }
                },
            }
        }
    }

    /// Rewrites the registration in the background (it must never hold up
    /// the renewals).
    fn refresh(&self, lease: LeaseId) {
        let mut info = self.info.clone();
        info.sessions = (self.sessions)();
        let client = self.client.clone();
        let key = self.keys.node(&self.info.id);
        tokio::spawn(async move {
            let value = serde_json::to_vec(&info).unwrap_or_default();
            if let Err(e) = client.put(&key, &value, lease).await {
                tracing::debug!(error = %e, "registration refresh failed");
            }
        });
    }
}
