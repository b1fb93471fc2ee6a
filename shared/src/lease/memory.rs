//! An in-process [`LeaseStore`] on `tokio::time`, for tests of the lease and
//! ownership code under a paused clock.
//!
//! One [`MemoryStore`] is the cluster's etcd; each node talks to it through
//! its own [`MemoryClient`], whose [`Faults`] can refuse requests (a node cut
//! off from etcd), delay them (a slow member) or stall them until released
//! (a node whose requests hang, as a SIGSTOPped process's would). Expiry is
//! measured with `tokio::time::Instant` when a request arrives, so a paused
//! clock moved past a lease's end makes its keys vanish for the next reader,
//! as etcd's lessor would have revoked them by then.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;
use tokio::time::Instant;

use super::{Compare, EtcdError, Kv, LeaseId, LeaseStore, Txn, TxnOp, TxnResult};

struct Lease {
    ttl: Duration,
    expires: Instant,
}

#[derive(Default)]
struct State {
    revision: i64,
    next_lease: i64,
    leases: HashMap<LeaseId, Lease>,
    keys: BTreeMap<String, Kv>,
}

impl State {
    /// Ends every lease whose time is up, with its keys.
    fn expire(&mut self, now: Instant) {
        let dead: Vec<LeaseId> = self
            .leases
            .iter()
            .filter(|(_, l)| l.expires <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in dead {
            self.end(id);
        }
    }

    fn end(&mut self, id: LeaseId) -> bool {
        if self.leases.remove(&id).is_none() {
            return false;
        }
        let before = self.keys.len();
        self.keys.retain(|_, kv| kv.lease != id);
        if self.keys.len() != before {
            self.revision += 1;
        }
        true
    }

    fn put(&mut self, key: &str, value: &[u8], lease: LeaseId) -> Result<(), EtcdError> {
        if lease != LeaseId(0) && !self.leases.contains_key(&lease) {
            return Err(EtcdError::Server {
                op: "put",
                code: 5,
                message: "etcdserver: requested lease not found".into(),
            });
        }
        self.revision += 1;
        let revision = self.revision;
        let kv = self.keys.entry(key.to_owned()).or_insert_with(|| Kv {
            key: key.to_owned(),
            value: Vec::new(),
            lease,
            create_revision: revision,
            mod_revision: revision,
        });
        kv.value = value.to_vec();
        kv.lease = lease;
        kv.mod_revision = revision;
        Ok(())
    }

    fn holds(&self, c: &Compare) -> bool {
        match c {
            Compare::Absent(k) => !self.keys.contains_key(k),
            Compare::ValueIs(k, v) => self.keys.get(k).is_some_and(|kv| kv.value == *v),
            Compare::LeaseIs(k, l) => self.keys.get(k).is_some_and(|kv| kv.lease == *l),
        }
    }

    fn txn(&mut self, txn: Txn) -> Result<TxnResult, EtcdError> {
        let succeeded = txn.compare.iter().all(|c| self.holds(c));
        let ops = if succeeded { txn.then } else { txn.otherwise };
        // All or nothing, as etcd applies a transaction: a put bound to a
        // dead lease fails the whole of it.
        let puts_ok = ops.iter().all(|op| match op {
            TxnOp::Put { lease, .. } => *lease == LeaseId(0) || self.leases.contains_key(lease),
            _ => true,
        });
        if !puts_ok {
            return Err(EtcdError::Server {
                op: "txn",
                code: 5,
                message: "etcdserver: requested lease not found".into(),
            });
        }
        let mut written = std::collections::HashSet::new();
        let twice = ops.iter().any(|op| match op {
            TxnOp::Put { key, .. } | TxnOp::Delete(key) => !written.insert(key.as_str()),
            TxnOp::Get(_) => false,
        });
        if twice {
            return Err(EtcdError::Server {
                op: "txn",
                code: 3,
                message: "etcdserver: duplicate key given in txn request".into(),
            });
        }
        let mut found = Vec::with_capacity(ops.len());
        for op in ops {
            match op {
                TxnOp::Get(k) => found.push(self.keys.get(&k).cloned().into_iter().collect()),
                TxnOp::Put { key, value, lease } => {
                    self.put(&key, &value, lease)?;
                    found.push(Vec::new());
                }
                TxnOp::Delete(k) => {
                    if self.keys.remove(&k).is_some() {
                        self.revision += 1;
                    }
                    found.push(Vec::new());
                }
            }
        }
        Ok(TxnResult { succeeded, found })
    }
}

/// The store itself: every [`MemoryClient`] of it sees one state.
#[derive(Clone, Default)]
pub struct MemoryStore {
    state: Arc<Mutex<State>>,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// A client of its own, with its own faults (one per node).
    pub fn client(&self) -> MemoryClient {
        MemoryClient {
            store: self.clone(),
            faults: Faults::default(),
        }
    }

    /// When `lease` ends unless renewed; `None` once it is gone.
    pub fn expiry(&self, lease: LeaseId) -> Option<Instant> {
        let mut s = self.lock();
        s.expire(Instant::now());
        s.leases.get(&lease).map(|l| l.expires)
    }

    /// The key as a reader would see it now (no faults apply).
    pub fn peek(&self, key: &str) -> Option<Kv> {
        let mut s = self.lock();
        s.expire(Instant::now());
        s.keys.get(key).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn apply<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut s = self.lock();
        s.expire(Instant::now());
        f(&mut s)
    }
}

/// How a client's requests fare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fault {
    /// Answered at once.
    #[default]
    None,
    /// Refused at once, as when no member can be reached.
    Refuse,
    /// Applied and answered after this long (a slow member, a slow link).
    Delay(Duration),
    /// Held, unapplied, until the fault changes; then treated by the new
    /// one (a request written to a socket of a process that is stopped).
    Stall,
    /// Like `Stall`, for requests of this operation only (`grant`,
    /// `keepalive`, `revoke`, `range`, `put`, `txn`): one request held in
    /// flight while others overtake it.
    StallOnly(&'static str),
}

/// The faults of one client; clones share them.
#[derive(Clone)]
pub struct Faults {
    mode: Arc<watch::Sender<Fault>>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            mode: Arc::new(watch::Sender::new(Fault::None)),
        }
    }
}

impl Faults {
    pub fn set(&self, fault: Fault) {
        self.mode.send_replace(fault);
    }

    pub fn get(&self) -> Fault {
        *self.mode.borrow()
    }

    /// Waits out the current fault: `Err` when the request is refused.
    async fn admit(&self, op: &'static str) -> Result<(), EtcdError> {
        let mut rx = self.mode.subscribe();
        loop {
            let fault = *rx.borrow_and_update();
            match fault {
                Fault::None => return Ok(()),
                Fault::Refuse => {
                    return Err(EtcdError::Unavailable {
                        op,
                        tried: 1,
                        last: "memory store: refused by fault injection".into(),
                    });
                }
                Fault::Delay(d) => {
                    tokio::time::sleep(d).await;
                    return Ok(());
                }
                Fault::StallOnly(only) if only != op => return Ok(()),
                Fault::Stall | Fault::StallOnly(_) => {
                    if rx.changed().await.is_err() {
                        return Err(EtcdError::Unavailable {
                            op,
                            tried: 1,
                            last: "memory store: gone".into(),
                        });
                    }
                }
            }
        }
    }
}

/// One node's connection to a [`MemoryStore`].
#[derive(Clone)]
pub struct MemoryClient {
    store: MemoryStore,
    faults: Faults,
}

impl MemoryClient {
    /// The faults applied to this client's requests.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    pub fn store(&self) -> &MemoryStore {
        &self.store
    }
}

#[async_trait]
impl LeaseStore for MemoryClient {
    async fn grant(&self, ttl: Duration) -> Result<LeaseId, EtcdError> {
        self.faults.admit("grant").await?;
        Ok(self.store.apply(|s| {
            s.next_lease += 1;
            let id = LeaseId(s.next_lease);
            let expires = Instant::now() + ttl;
            s.leases.insert(id, Lease { ttl, expires });
            id
        }))
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<Option<Duration>, EtcdError> {
        self.faults.admit("keepalive").await?;
        Ok(self.store.apply(|s| {
            let l = s.leases.get_mut(&lease)?;
            l.expires = Instant::now() + l.ttl;
            Some(l.ttl)
        }))
    }

    async fn revoke(&self, lease: LeaseId) -> Result<(), EtcdError> {
        self.faults.admit("revoke").await?;
        self.store.apply(|s| s.end(lease));
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<Kv>, EtcdError> {
        self.faults.admit("range").await?;
        Ok(self.store.apply(|s| s.keys.get(key).cloned()))
    }

    async fn put(&self, key: &str, value: &[u8], lease: LeaseId) -> Result<(), EtcdError> {
        self.faults.admit("put").await?;
        self.store.apply(|s| s.put(key, value, lease))
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResult, EtcdError> {
        self.faults.admit("txn").await?;
        self.store.apply(|s| s.txn(txn))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lease::conformance::Fixture;

    async fn fixture() -> Fixture {
        Fixture {
            store: Arc::new(MemoryStore::new().client()),
            keep: Vec::new(),
        }
    }

    crate::lease_store_suite!(paused: fixture);

    #[tokio::test(start_paused = true)]
    async fn faults_refuse_delay_and_stall_one_client_only() {
        let store = MemoryStore::new();
        let (a, b) = (store.client(), store.client());
        let l = a.grant(Duration::from_secs(10)).await.expect("grant");

        a.faults().set(Fault::Refuse);
        assert!(matches!(
            a.keep_alive(l).await,
            Err(EtcdError::Unavailable { .. })
        ));
        assert!(b.keep_alive(l).await.expect("b").is_some(), "b unaffected");

        a.faults().set(Fault::Delay(Duration::from_secs(3)));
        let start = Instant::now();
        a.put("/k", b"v", l).await.expect("put");
        assert_eq!(start.elapsed(), Duration::from_secs(3));

        // A stalled request is not applied until the stall ends.
        a.faults().set(Fault::Stall);
        let stalled = tokio::spawn({
            let a = a.clone();
            async move { a.put("/k", b"w", LeaseId(0)).await }
        });
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(!stalled.is_finished());
        assert_eq!(store.peek("/k").map(|k| k.value), None, "expired meanwhile");
        a.faults().set(Fault::None);
        stalled.await.expect("join").expect("put");
        assert_eq!(store.peek("/k").map(|k| k.value), Some(b"w".to_vec()));

        // Only transactions stall; a read overtakes one.
        a.faults().set(Fault::StallOnly("txn"));
        let txn = tokio::spawn({
            let a = a.clone();
            async move { a.txn(Txn::new().then(TxnOp::Delete("/k".into()))).await }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(a.get("/k").await.expect("get").is_some(), "not deleted yet");
        a.faults().set(Fault::None);
        assert!(txn.await.expect("join").expect("txn").succeeded);
        assert_eq!(store.peek("/k"), None);
    }

    #[tokio::test(start_paused = true)]
    async fn expiry_follows_the_paused_clock() {
        let store = MemoryStore::new();
        let c = store.client();
        let l = c.grant(Duration::from_secs(3)).await.expect("grant");
        let end = store.expiry(l).expect("live");
        assert_eq!(end - Instant::now(), Duration::from_secs(3));
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(
            c.keep_alive(l).await.expect("renew"),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            store.expiry(l),
            Some(Instant::now() + Duration::from_secs(3))
        );
        tokio::time::advance(Duration::from_secs(3)).await;
        assert_eq!(store.expiry(l), None, "gone at exactly its end");
        assert_eq!(c.keep_alive(l).await.expect("renew"), None);
    }
}
