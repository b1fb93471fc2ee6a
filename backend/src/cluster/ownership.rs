//! Account ownership on etcd: [`EtcdOwnership`].
//!
//! A claim is one transaction: if `owners/<address>` does not exist, put it
//! (= this node, bound to its lease) and mark `held/<address>`; otherwise
//! read it. The owner key dies with the owner's lease, so a dead node's
//! accounts are free after the TTL. Claims of an account this node owns are
//! answered from memory; an account with no session here for the release
//! period is let go with a transaction that deletes the key only if it is
//! still ours, under this lease.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use shared::Address;
use shared::lease::{Kv, LeaseId, LeaseStore, Txn, TxnOp};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::keys::Keys;
use super::lease::NodeLease;
use super::metrics::ClusterMetrics;
use crate::accounts::{Claim, Hold, Ownership, OwnershipError};

/// How long a claim waits for a release of the same account to finish.
const RELEASE_WAIT: Duration = Duration::from_secs(2);

/// An account this node owns.
struct Entry {
    lease: LeaseId,
    sessions: AtomicUsize,
    idle_since: Mutex<Instant>,
}

/// Counts one session of an owned account while it lives.
struct Session(Arc<Entry>);

impl Drop for Session {
    fn drop(&mut self) {
        if self.0.sessions.fetch_sub(1, Ordering::AcqRel) == 1 {
            *self.0.idle_since.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        }
    }
}

pub struct EtcdOwnership {
    lease: Arc<NodeLease>,
    client: Arc<dyn LeaseStore>,
    keys: Keys,
    release_after: Duration,
    owned: Mutex<HashMap<Address, Arc<Entry>>>,
    /// Accounts being released: their claims wait.
    releasing: Mutex<HashSet<Address>>,
    metrics: ClusterMetrics,
}

impl EtcdOwnership {
    pub fn new(
        lease: Arc<NodeLease>,
        client: Arc<dyn LeaseStore>,
        keys: Keys,
        release_after: Duration,
        metrics: ClusterMetrics,
    ) -> EtcdOwnership {
        EtcdOwnership {
            lease,
            client,
            keys,
            release_after,
            owned: Mutex::new(HashMap::new()),
            releasing: Mutex::new(HashSet::new()),
            metrics,
        }
    }

    fn node(&self) -> &str {
        self.lease.node()
    }

    fn session(&self, address: &Address, lease: LeaseId) -> Option<Session> {
        let owned = self.owned.lock().unwrap_or_else(|p| p.into_inner());
        let e = owned.get(address).filter(|e| e.lease == lease)?;
        e.sessions.fetch_add(1, Ordering::AcqRel);
        Some(Session(e.clone()))
    }

    /// Records `address` as ours under `lease`, counting one session; with
    /// whether it is new here (false when a concurrent claim of the same
    /// account got there first: its sessions and cached mailboxes are
    /// live and must be shared, not replaced).
    fn own(&self, address: &Address, lease: LeaseId) -> (Session, bool) {
        let mut owned = self.owned.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = owned.get(address).filter(|e| e.lease == lease) {
            e.sessions.fetch_add(1, Ordering::AcqRel);
            return (Session(e.clone()), false);
        }
        let e = Arc::new(Entry {
            lease,
            sessions: AtomicUsize::new(1),
            idle_since: Mutex::new(Instant::now()),
        });
        owned.insert(address.clone(), e.clone());
        self.metrics.owned.set(owned.len() as i64);
        (Session(e), true)
    }

    /// Whether a release of `address` is under way (for tests of races).
    #[cfg(test)]
    pub(super) fn is_releasing(&self, address: &Address) -> bool {
        self.releasing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(address)
    }

    async fn wait_release(&self, address: &Address) -> Result<(), OwnershipError> {
        let until = Instant::now() + RELEASE_WAIT;
        loop {
            let busy = self
                .releasing
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains(address);
            if !busy {
                return Ok(());
            }
            if Instant::now() > until {
                return Err(OwnershipError::Unavailable(format!(
                    "account {address} is being released by this node"
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Releases idle accounts and forgets everything at each fence, until
    /// `shutdown`. `forget` drops what the node caches of one account (or
    /// of all, with `None`).
    pub async fn run(
        self: Arc<Self>,
        forget: impl Fn(Option<&Address>) + Send + Sync + 'static,
        shutdown: CancellationToken,
    ) {
        let mut fences = self.lease.fences();
        let every =
            (self.release_after / 4).clamp(Duration::from_millis(200), Duration::from_secs(30));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                r = fences.changed() => {
                    if r.is_err() {
                        return;
                    }
                    self.owned.lock().unwrap_or_else(|p| p.into_inner()).clear();
                    self.metrics.owned.set(0);
                    forget(None);
                }
                _ = tokio::time::sleep(every) => self.release_idle(&forget).await,
            }
        }
    }

    async fn release_idle(&self, forget: &(impl Fn(Option<&Address>) + Send + Sync)) {
        let Some(live) = self.lease.current() else {
            return;
        };
        let idle: Vec<Address> = {
            let owned = self.owned.lock().unwrap_or_else(|p| p.into_inner());
            owned
                .iter()
                .filter(|(_, e)| {
                    e.sessions.load(Ordering::Acquire) == 0
                        && e.idle_since
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .elapsed()
                            >= self.release_after
                })
                .map(|(a, _)| a.clone())
                .collect()
        };
        for address in idle {
            {
                // Checked again under the lock claims take: no session may
                // start on an account being released.
                let mut owned = self.owned.lock().unwrap_or_else(|p| p.into_inner());
                match owned.get(&address) {
                    Some(e) if e.sessions.load(Ordering::Acquire) == 0 => {}
                    _ => continue,
                }
                owned.remove(&address);
                self.metrics.owned.set(owned.len() as i64);
                self.releasing
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(address.clone());
            }
            forget(Some(&address));
            let owner = self.keys.owner(address.as_str());
            let txn = Txn::new()
                .value_is(&owner, self.node().as_bytes())
                .lease_is(&owner, live.lease)
                .then(TxnOp::Delete(owner.clone()))
                .then(TxnOp::Delete(self.keys.held(address.as_str())));
            match self.client.txn(txn).await {
                Ok(r) if r.succeeded => {
                    self.metrics.releases.inc();
                    tracing::info!(account = %address, "released idle account");
                }
                Ok(_) => {
                    tracing::warn!(account = %address, "idle account was no longer ours in etcd")
                }
                // The key stays ours until the lease ends; a later claim
                // here finds it ours again.
                Err(e) => {
                    tracing::warn!(account = %address, error = %e, "could not release idle account")
                }
            }
            self.releasing
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&address);
        }
    }
}

#[async_trait]
impl Ownership for EtcdOwnership {
    async fn claim(&self, address: &Address) -> Result<Claim, OwnershipError> {
        let unavailable = |why: String| OwnershipError::Unavailable(why);
        let Some(live) = self.lease.current() else {
            return Err(unavailable(format!(
                "node {} holds no live etcd lease (starting, or fenced)",
                self.node()
            )));
        };
        self.wait_release(address).await?;
        if let Some(s) = self.session(address, live.lease) {
            return Ok(Claim::Mine(Hold {
                lost: live.lost.clone(),
                fresh: false,
                guard: Some(Box::new(s)),
                write: live.write_guard(),
            }));
        }
        let owner = self.keys.owner(address.as_str());
        let held = self.keys.held(address.as_str());
        let node = self.node().as_bytes().to_vec();
        // A read first: a session of an account another node owns (every
        // session a blind frontend lands on the wrong node) then costs
        // etcd a read, not a transaction through its log.
        let current = self
            .client
            .get(&owner)
            .await
            .map_err(|e| unavailable(format!("claim of {address}: {e}")))?;
        if let Some(kv) = current {
            return self.owned_by(address, &kv, &node, &live);
        }
        let txn = Txn::new()
            .absent(&owner)
            .then(TxnOp::Put {
                key: owner.clone(),
                value: node.clone(),
                lease: live.lease,
            })
            .then(TxnOp::Get(held.clone()))
            .then(TxnOp::Put {
                key: held,
                value: node.clone(),
                lease: LeaseId(0),
            })
            .otherwise(TxnOp::Get(owner));
        let r = self
            .client
            .txn(txn)
            .await
            .map_err(|e| unavailable(format!("claim of {address}: {e}")))?;
        if r.succeeded {
            self.metrics.acquisitions.inc();
            if let Some(prev) = r.got(1) {
                self.metrics.takeovers.inc();
                tracing::warn!(
                    account = %address,
                    previous = %String::from_utf8_lossy(&prev.value),
                    "taking over an account whose owner died holding it; its index is read again from the Maildir"
                );
            } else {
                tracing::debug!(account = %address, "claimed account");
            }
            let (s, fresh) = self.own(address, live.lease);
            return Ok(Claim::Mine(Hold {
                lost: live.lost.clone(),
                fresh,
                guard: Some(Box::new(s)),
                write: live.write_guard(),
            }));
        }
        let Some(kv) = r.got(0) else {
            return Err(unavailable(format!(
                "claim of {address}: owner key vanished; retry"
            )));
        };
        self.owned_by(address, kv, &node, &live)
    }
}

impl EtcdOwnership {
    /// The claim when etcd says `kv` owns `address`.
    fn owned_by(
        &self,
        address: &Address,
        kv: &Kv,
        node: &[u8],
        live: &super::lease::Live,
    ) -> Result<Claim, OwnershipError> {
        if kv.value != node {
            return Ok(Claim::Elsewhere {
                node: String::from_utf8_lossy(&kv.value).into_owned(),
            });
        }
        if kv.lease != live.lease {
            return Err(OwnershipError::Unavailable(format!(
                "account {address} is still bound to this node's fenced lease; free within the ttl"
            )));
        }
        // Ours in etcd but not in memory (a claim raced a fence or a
        // release): cached data cannot be trusted.
        let (s, fresh) = self.own(address, live.lease);
        Ok(Claim::Mine(Hold {
            lost: live.lost.clone(),
            fresh,
            guard: Some(Box::new(s)),
            write: live.write_guard(),
        }))
    }
}
