//! The lease and ownership code of a node over the in-memory lease store,
//! under a paused clock: every race below is played out to the millisecond
//! the same way each run, and a whole TTL passes in no real time.
//!
//! - [`fence`]: the fence comes strictly before the store lets the lease go,
//!   and so before another node can claim the accounts; a takeover after
//!   missed renewals;
//! - [`release`]: an idle release racing a claim of the same account, on
//!   this node and from another one;
//! - [`pause`]: a node whose tasks did not run while its lease ran out (a
//!   SIGSTOP) writes nothing when it resumes.

mod fence;
mod pause;
mod release;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use shared::Address;
use shared::etcd::EtcdConfig;
use shared::lease::memory::{MemoryClient, MemoryStore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::keys::{Keys, NodeInfo};
use super::{ClusterMetrics, EtcdOwnership, NodeLease};
use crate::accounts::{Claim, Hold, Ownership};

/// Stops and continues a set of tasks, as SIGSTOP and SIGCONT would: a
/// stopped task is not polled at all, whatever its timers say.
#[derive(Clone, Default)]
pub struct Freeze {
    stopped: Arc<AtomicBool>,
    waiting: Arc<Mutex<Vec<Waker>>>,
}

impl Freeze {
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
    }

    pub fn cont(&self) {
        self.stopped.store(false, Ordering::SeqCst);
        for w in self.waiting.lock().expect("lock").drain(..) {
            w.wake();
        }
    }

    /// `f`, run only while not stopped.
    pub fn wrap<F: Future + Send + 'static>(&self, f: F) -> Frozen<F::Output> {
        Frozen {
            inner: Box::pin(f),
            freeze: self.clone(),
        }
    }
}

pub struct Frozen<T> {
    inner: Pin<Box<dyn Future<Output = T> + Send>>,
    freeze: Freeze,
}

impl<T> Future for Frozen<T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        if self.freeze.stopped.load(Ordering::SeqCst) {
            self.freeze
                .waiting
                .lock()
                .expect("lock")
                .push(cx.waker().clone());
            // Continued between the check and the push: poll now.
            if self.freeze.stopped.load(Ordering::SeqCst) {
                return Poll::Pending;
            }
        }
        self.inner.as_mut().poll(cx)
    }
}

/// One node of the cluster under test, its tasks running.
pub struct TestNode {
    pub lease: Arc<NodeLease>,
    pub owners: Arc<EtcdOwnership>,
    pub client: MemoryClient,
    pub metrics: ClusterMetrics,
    /// What the node was told to forget (`None`: everything).
    pub forgotten: Arc<Mutex<Vec<Option<Address>>>>,
    /// Stops the node's lease and ownership tasks.
    pub freeze: Freeze,
    stop: CancellationToken,
}

impl Drop for TestNode {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

pub fn keys() -> Keys {
    let cfg = EtcdConfig {
        endpoints: vec!["memory:1".into()],
        prefix: "/t".into(),
        lease_ttl: Duration::from_secs(3),
        request_timeout: Duration::from_secs(1),
        release_idle_after: Duration::from_secs(600),
    };
    Keys::new(&cfg, "c1")
}

pub fn alice() -> Address {
    Address::parse("alice@example.com").expect("address")
}

impl TestNode {
    /// Starts node `id` on `store` and waits for its lease.
    pub async fn start(
        store: &MemoryStore,
        id: &str,
        ttl: Duration,
        release_after: Duration,
    ) -> TestNode {
        let client = store.client();
        let metrics = ClusterMetrics::default();
        let info = NodeInfo {
            id: id.into(),
            host: "localhost".into(),
            pid: 1,
            addresses: Default::default(),
            sessions: 0,
            started: 0,
        };
        let lease = Arc::new(NodeLease::new(
            Arc::new(client.clone()),
            keys(),
            ttl,
            info,
            Box::new(|| 0),
            metrics.clone(),
        ));
        let owners = Arc::new(EtcdOwnership::new(
            lease.clone(),
            Arc::new(client.clone()),
            keys(),
            release_after,
            metrics.clone(),
        ));
        let forgotten = Arc::new(Mutex::new(Vec::new()));
        let (stop, freeze) = (CancellationToken::new(), Freeze::default());
        let f = forgotten.clone();
        let forget = move |a: Option<&Address>| f.lock().expect("lock").push(a.cloned());
        tokio::spawn(freeze.wrap(owners.clone().run(forget, stop.clone())));
        tokio::spawn(freeze.wrap(lease.clone().run(stop.clone())));
        assert!(lease.wait_live(ttl).await, "{id} got no lease");
        TestNode {
            lease,
            owners,
            client,
            metrics,
            forgotten,
            freeze,
            stop,
        }
    }

    pub fn fences(&self) -> u64 {
        *self.lease.fences().borrow()
    }

    /// A claim that must come out as this node's.
    pub async fn hold(&self, a: &Address) -> Hold {
        match self.owners.claim(a).await {
            Ok(Claim::Mine(h)) => h,
            Ok(Claim::Elsewhere { node }) => panic!("{a} is {node}'s, not {}'s", self.lease.node()),
            Err(e) => panic!("claim of {a} on {}: {e}", self.lease.node()),
        }
    }

    /// The node a claim points to (this one's own name when it is ours),
    /// `None` when the claim is refused.
    pub async fn owner(&self, a: &Address) -> Option<String> {
        match self.owners.claim(a).await {
            Ok(Claim::Mine(_)) => Some(self.lease.node().to_owned()),
            Ok(Claim::Elsewhere { node }) => Some(node),
            Err(_) => None,
        }
    }
}

/// The owner key of `a` in `store`: the node's name and its lease.
pub fn owner_key(store: &MemoryStore, a: &Address) -> Option<(String, shared::lease::LeaseId)> {
    store
        .peek(&keys().owner(a.as_str()))
        .map(|kv| (String::from_utf8_lossy(&kv.value).into_owned(), kv.lease))
}

/// Polls `check` every 10 ms of (paused) time until it holds, up to `limit`.
pub async fn eventually(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let until = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < until, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
