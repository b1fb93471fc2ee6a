//! Fencing before the store lets the lease go, and a takeover after missed
//! renewals.

use std::time::Duration;

use shared::lease::memory::{Fault, MemoryStore};
use tokio::time::Instant;

use super::{TestNode, alice, eventually, owner_key};

const TTL: Duration = Duration::from_secs(3);
const RELEASE: Duration = Duration::from_secs(600);

#[tokio::test(start_paused = true)]
async fn a_node_cut_off_fences_strictly_before_its_lease_expires() {
    let store = MemoryStore::new();
    let a = TestNode::start(&store, "a", TTL, RELEASE).await;
    let b = TestNode::start(&store, "b", TTL, RELEASE).await;
    let hold = a.hold(&alice()).await;
    // A few renewals go through first.
    tokio::time::sleep(TTL * 3).await;
    let live = a.lease.current().expect("a still holds its lease");
    assert_eq!(a.fences(), 0);

    a.client.faults().set(Fault::Refuse);
    // No renewal reaches the store from now on: this is when it lets go.
    let expiry = store.expiry(live.lease).expect("lease alive at the store");
    let (mut fenced, mut taken, mut refused) = (None, None, 0);
    let until = Instant::now() + TTL * 10;
    while fenced.is_none() || taken.is_none() {
        assert!(
            Instant::now() < until,
            "a fenced at {fenced:?}, b took at {taken:?}"
        );
        if fenced.is_none() && a.fences() > 0 {
            fenced = Some(Instant::now());
            assert!(hold.lost.is_cancelled(), "sessions told at the fence");
            assert!(!hold.write.allows(), "writes refused at the fence");
        }
        if taken.is_none() {
            match b.owner(&alice()).await.as_deref() {
                Some("b") => taken = Some(Instant::now()),
                Some("a") => refused += 1,
                other => panic!("b's claim: {other:?}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (fenced, taken) = (fenced.expect("fenced"), taken.expect("taken"));
    assert!(
        fenced < expiry,
        "a fenced {:?} after its lease expired",
        fenced - expiry
    );
    assert!(
        live.valid.valid_until() <= fenced,
        "the write deadline is no later than the fence"
    );
    assert!(taken >= expiry, "b took alice before a's lease expired");
    assert!(refused > 0, "b was sent to a while a's lease lived");
    assert!(
        a.lease.current().is_none(),
        "claims refused until a new lease"
    );
}

#[tokio::test(start_paused = true)]
async fn after_missed_renewals_another_node_takes_over_and_the_first_is_fenced_by_then() {
    let store = MemoryStore::new();
    let a = TestNode::start(&store, "a", TTL, RELEASE).await;
    let b = TestNode::start(&store, "b", TTL, RELEASE).await;
    let hold = a.hold(&alice()).await;
    let first = a.lease.current().expect("live").lease;
    assert_eq!(b.owner(&alice()).await.as_deref(), Some("a"));

    // A's requests hang from now on: its renewal never comes back.
    a.client.faults().set(Fault::Stall);
    let mut b_hold = None;
    let until = Instant::now() + TTL * 10;
    while b_hold.is_none() {
        assert!(Instant::now() < until, "b never took alice over");
        if b.owner(&alice()).await.as_deref() == Some("b") {
            // By the time b has the account, a must have stopped.
            assert!(a.fences() > 0, "a not fenced when b took over");
            assert!(hold.lost.is_cancelled() && !hold.write.allows());
            b_hold = Some(b.hold(&alice()).await);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(b.metrics.takeovers.get(), 1, "b saw a died holding alice");
    let (owner, lease) = owner_key(&store, &alice()).expect("owner key");
    assert_eq!(owner, "b");
    assert_eq!(Some(lease), b.lease.current().map(|l| l.lease));
    assert_eq!(a.forgotten.lock().expect("lock").as_slice(), [None]);

    // A's link comes back: a new lease, and alice stays b's.
    a.client.faults().set(Fault::None);
    eventually(TTL * 5, "a gets a new lease", || {
        a.lease.current().is_some_and(|l| l.lease != first)
    })
    .await;
    assert_eq!(a.owner(&alice()).await.as_deref(), Some("b"));
    assert!(!hold.write.allows(), "the old hold stays dead");
    assert!(b_hold.expect("b's hold").write.allows());
}
