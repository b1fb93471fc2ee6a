//! An idle account's release racing a new claim of it: the release's
//! transaction is held in flight (the store stalls the node's
//! transactions, its reads and renewals go through) while the claim comes
//! in.

use std::time::Duration;

use shared::lease::memory::{Fault, MemoryStore};

use super::{TestNode, alice, eventually, owner_key};
use crate::accounts::{Claim, Ownership};

const TTL: Duration = Duration::from_secs(3);
const RELEASE: Duration = Duration::from_secs(1);

/// Starts `a`, has it own alice with no session left, and holds `a`'s
/// transactions, so its release of alice stays in flight.
async fn releasing(store: &MemoryStore) -> TestNode {
    let a = TestNode::start(store, "a", TTL, RELEASE).await;
    drop(a.hold(&alice()).await);
    a.client.faults().set(Fault::StallOnly("txn"));
    eventually(RELEASE * 5, "a starts releasing alice", || {
        a.owners.is_releasing(&alice())
    })
    .await;
    assert_eq!(
        owner_key(store, &alice()).map(|o| o.0).as_deref(),
        Some("a"),
        "the release's transaction is held"
    );
    a
}

#[tokio::test(start_paused = true)]
async fn a_claim_on_the_same_node_waits_for_the_release_and_starts_afresh() {
    let store = MemoryStore::new();
    let a = releasing(&store).await;
    let owners = a.owners.clone();
    let claim = tokio::spawn(async move { owners.claim(&alice()).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !claim.is_finished(),
        "the claim waits for the release (a read now would find a's key, about to go)"
    );

    a.client.faults().set(Fault::None);
    let hold = match claim.await.expect("join") {
        Ok(Claim::Mine(h)) => h,
        Ok(Claim::Elsewhere { node }) => panic!("sent to {node}"),
        Err(e) => panic!("claim refused: {e}"),
    };
    assert!(
        hold.fresh,
        "the released account's cache cannot be trusted: read it afresh"
    );
    assert_eq!(
        a.forgotten.lock().expect("lock").as_slice(),
        [Some(alice())],
        "the release dropped what a cached of alice"
    );
    let live = a.lease.current().expect("live");
    assert_eq!(
        owner_key(&store, &alice()),
        Some(("a".to_owned(), live.lease)),
        "claimed again in the store, under a's lease"
    );
    assert_eq!(a.metrics.releases.get(), 1);
    assert_eq!(a.metrics.acquisitions.get(), 2);
    assert!(!a.hold(&alice()).await.fresh, "now answered from memory");
}

#[tokio::test(start_paused = true)]
async fn a_claim_from_another_node_goes_to_the_owner_until_the_release_is_done() {
    let store = MemoryStore::new();
    let a = releasing(&store).await;
    let b = TestNode::start(&store, "b", TTL, RELEASE).await;
    assert_eq!(
        b.owner(&alice()).await.as_deref(),
        Some("a"),
        "the owner key is a's until the release transaction applies"
    );

    a.client.faults().set(Fault::None);
    eventually(RELEASE * 5, "the release finishes", || {
        !a.owners.is_releasing(&alice())
    })
    .await;
    assert_eq!(owner_key(&store, &alice()), None, "released");
    let hold = b.hold(&alice()).await;
    assert!(hold.fresh);
    assert_eq!(
        b.metrics.takeovers.get(),
        0,
        "a clean release is no takeover"
    );
    assert_eq!(
        a.owner(&alice()).await.as_deref(),
        Some("b"),
        "a let go: its next session of alice is sent to b"
    );
}
