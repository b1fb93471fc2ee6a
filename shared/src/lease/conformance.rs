//! The one conformance suite every [`LeaseStore`] must pass: each case checks
//! one clause of the contract in [`super`]'s docs on a fresh, empty store.
//!
//! [`lease_store_suite!`](crate::lease_store_suite) turns the cases into one
//! `#[tokio::test]` per case for a factory, so a failure names both the
//! implementation and the case. The in-memory store runs them as `shared`'s
//! unit tests under a paused clock; etcd runs them in
//! `tests/tests/lease_store.rs` on the real clock. Waits poll with a
//! deadline (never a fixed sleep as synchronisation), and "not before the
//! TTL" is only asserted of reads that surely ended before it.

use std::any::Any;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::{EtcdError, LeaseId, LeaseStore, Txn, TxnOp};

/// A fresh, empty store, and whatever must live as long as it (servers).
pub struct Fixture {
    pub store: Arc<dyn LeaseStore>,
    pub keep: Vec<Box<dyn Any + Send>>,
}

/// Generates one test per case. `paused` runs each on a paused
/// current-thread runtime (in-process stores), `real` on the real clock
/// with two worker threads (etcd).
#[macro_export]
macro_rules! lease_store_suite {
    (paused: $factory:path) => {
        $crate::lease_store_suite!(@cases $factory; (start_paused = true));
    };
    (real: $factory:path) => {
        $crate::lease_store_suite!(@cases $factory; (flavor = "multi_thread", worker_threads = 2));
    };
    (@cases $factory:path; $attr:tt) => {
        $crate::lease_store_suite!(@each $factory; $attr;
            grant_renew_revoke, bound_keys_vanish_when_the_lease_expires,
            renewals_keep_a_lease_and_its_keys, revoke_ends_bound_keys_only,
            put_rebinds_and_needs_a_live_lease, txn_creates_if_absent,
            txn_compares_value_and_lease, txn_answers_per_operation,
            revisions);
    };
    (@each $factory:path; $attr:tt; $($case:ident),+) => {
        $(
            #[tokio::test $attr]
            async fn $case() {
                let fixture: $crate::lease::conformance::Fixture = $factory().await;
                $crate::lease::conformance::$case(fixture.store.clone()).await;
            }
        )+
    };
}

/// Short enough for a quick test, long enough for etcd's minimum TTL.
const TTL: Duration = Duration::from_secs(2);

/// Polls `check` until it holds, up to `limit`.
pub async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let until = Instant::now() + limit;
    loop {
        if check().await {
            return;
        }
        assert!(Instant::now() < until, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn value(s: &dyn LeaseStore, key: &str) -> Option<Vec<u8>> {
    s.get(key).await.expect("get").map(|kv| kv.value)
}

/// Asserts `key` is there at every read that ended within `ttl` of `sent`
/// (when the lease it is bound to was granted or last renewed), reading
/// until `ttl` has passed.
async fn alive_until(s: &dyn LeaseStore, key: &str, sent: Instant, ttl: Duration) {
    loop {
        let v = value(s, key).await;
        if sent.elapsed() >= ttl {
            return;
        }
        assert!(
            v.is_some(),
            "{key} vanished {:?} into a ttl of {ttl:?}",
            sent.elapsed()
        );
        tokio::time::sleep(ttl / 8).await;
    }
}

pub async fn grant_renew_revoke(s: Arc<dyn LeaseStore>) {
    let a = s.grant(TTL).await.expect("grant");
    let b = s.grant(TTL).await.expect("grant");
    assert_ne!(a, LeaseId(0), "a lease id is never 0");
    assert_ne!(a, b, "each grant makes a new lease");
    let ttl = s.keep_alive(a).await.expect("renew").expect("a live lease");
    assert!(ttl >= TTL, "renewed for {ttl:?}, asked for {TTL:?}");
    s.revoke(a).await.expect("revoke");
    assert_eq!(s.keep_alive(a).await.expect("renew"), None, "revoked");
    s.revoke(a)
        .await
        .expect("revoking a lease already gone is fine");
    assert_eq!(
        s.keep_alive(LeaseId(0x7eed_f00d)).await.expect("renew"),
        None,
        "a lease that never existed"
    );
    assert!(
        s.keep_alive(b).await.expect("renew").is_some(),
        "b lives on"
    );
}

pub async fn bound_keys_vanish_when_the_lease_expires(s: Arc<dyn LeaseStore>) {
    let sent = Instant::now();
    let l = s.grant(TTL).await.expect("grant");
    s.put("/c/bound", b"1", l).await.expect("put");
    s.put("/c/free", b"2", LeaseId(0)).await.expect("put");
    alive_until(&*s, "/c/bound", sent, TTL).await;
    eventually(TTL * 10, "the bound key vanishes", || async {
        value(&*s, "/c/bound").await.is_none()
    })
    .await;
    assert_eq!(
        s.keep_alive(l).await.expect("renew"),
        None,
        "an expired lease never comes back"
    );
    assert_eq!(value(&*s, "/c/free").await.as_deref(), Some(&b"2"[..]));
}

pub async fn renewals_keep_a_lease_and_its_keys(s: Arc<dyn LeaseStore>) {
    let granted = Instant::now();
    let l = s.grant(TTL).await.expect("grant");
    s.put("/c/k", b"v", l).await.expect("put");
    let mut sent = granted;
    while granted.elapsed() < TTL * 3 {
        alive_until(&*s, "/c/k", sent, TTL / 3).await;
        sent = Instant::now();
        assert!(
            s.keep_alive(l).await.expect("renew").is_some(),
            "renewed in time"
        );
    }
    alive_until(&*s, "/c/k", sent, TTL).await;
    eventually(TTL * 10, "the key vanishes once renewals stop", || async {
        value(&*s, "/c/k").await.is_none()
    })
    .await;
}

pub async fn revoke_ends_bound_keys_only(s: Arc<dyn LeaseStore>) {
    let a = s.grant(TTL * 30).await.expect("grant");
    let b = s.grant(TTL * 30).await.expect("grant");
    s.put("/c/a1", b"1", a).await.expect("put");
    s.put("/c/a2", b"2", a).await.expect("put");
    s.put("/c/b", b"3", b).await.expect("put");
    s.put("/c/none", b"4", LeaseId(0)).await.expect("put");
    s.revoke(a).await.expect("revoke");
    assert_eq!(value(&*s, "/c/a1").await, None);
    assert_eq!(value(&*s, "/c/a2").await, None);
    assert!(
        value(&*s, "/c/b").await.is_some(),
        "another lease's key stays"
    );
    assert!(
        value(&*s, "/c/none").await.is_some(),
        "an unbound key stays"
    );
}

pub async fn put_rebinds_and_needs_a_live_lease(s: Arc<dyn LeaseStore>) {
    let a = s.grant(TTL * 30).await.expect("grant");
    s.put("/c/k", b"1", a).await.expect("put");
    assert_eq!(s.get("/c/k").await.expect("get").expect("k").lease, a);
    s.put("/c/k", b"2", LeaseId(0)).await.expect("put unbound");
    let kv = s.get("/c/k").await.expect("get").expect("k");
    assert_eq!((kv.value.as_slice(), kv.lease), (&b"2"[..], LeaseId(0)));
    s.revoke(a).await.expect("revoke");
    assert!(value(&*s, "/c/k").await.is_some(), "no longer bound to a");

    match s.put("/c/dead", b"x", a).await {
        Err(EtcdError::Server { .. }) => {}
        other => panic!("a put bound to a revoked lease: {other:?}"),
    }
    let txn = Txn::new().then(TxnOp::Put {
        key: "/c/dead".into(),
        value: b"x".to_vec(),
        lease: a,
    });
    assert!(
        s.txn(txn).await.is_err(),
        "a txn putting under a revoked lease fails"
    );
    assert_eq!(value(&*s, "/c/dead").await, None, "and writes nothing");
}

/// The claim of `backend::cluster::ownership`: create the owner key bound to
/// the lease if absent (reading the last owner on the way), else read it.
fn claim(node: &[u8], lease: LeaseId) -> Txn {
    Txn::new()
        .absent("/c/owner")
        .then(TxnOp::Put {
            key: "/c/owner".into(),
            value: node.to_vec(),
            lease,
        })
        .then(TxnOp::Get("/c/held".into()))
        .then(TxnOp::Put {
            key: "/c/held".into(),
            value: node.to_vec(),
            lease: LeaseId(0),
        })
        .otherwise(TxnOp::Get("/c/owner".into()))
}

pub async fn txn_creates_if_absent(s: Arc<dyn LeaseStore>) {
    let a = s.grant(TTL * 30).await.expect("grant");
    let b = s.grant(TTL * 30).await.expect("grant");
    let first = s.txn(claim(b"n1", a)).await.expect("txn");
    assert!(first.succeeded, "the first claim wins");
    assert_eq!(first.got(1), None, "no last owner yet");
    let second = s.txn(claim(b"n2", b)).await.expect("txn");
    assert!(!second.succeeded, "the second claim loses");
    let owner = second.got(0).expect("reads the winner");
    assert_eq!((owner.value.as_slice(), owner.lease), (&b"n1"[..], a));

    // The owner's lease ends: the next claim wins and finds the last owner.
    s.revoke(a).await.expect("revoke");
    let third = s.txn(claim(b"n2", b)).await.expect("txn");
    assert!(third.succeeded, "free once the owner's lease is gone");
    assert_eq!(third.got(1).map(|k| k.value.as_slice()), Some(&b"n1"[..]));
    let kv = s.get("/c/owner").await.expect("get").expect("owner");
    assert_eq!((kv.value.as_slice(), kv.lease), (&b"n2"[..], b));
}

pub async fn txn_compares_value_and_lease(s: Arc<dyn LeaseStore>) {
    let a = s.grant(TTL * 30).await.expect("grant");
    let b = s.grant(TTL * 30).await.expect("grant");
    let release = |value: &[u8], lease: LeaseId| {
        Txn::new()
            .value_is("/c/owner", value)
            .lease_is("/c/owner", lease)
            .then(TxnOp::Delete("/c/owner".into()))
    };
    let r = s.txn(release(b"n1", a)).await.expect("txn");
    assert!(
        !r.succeeded,
        "a value compare never holds for a missing key"
    );
    s.put("/c/owner", b"n1", a).await.expect("put");
    for (value, lease, why) in [
        (&b"n2"[..], a, "another value"),
        (&b"n1"[..], b, "another lease"),
        (&b"n"[..], a, "a prefix of the value"),
    ] {
        let r = s.txn(release(value, lease)).await.expect("txn");
        assert!(!r.succeeded, "{why}: the compare fails");
        assert!(value_of(&*s).await.is_some(), "{why}: nothing deleted");
    }
    let r = s.txn(release(b"n1", a)).await.expect("txn");
    assert!(r.succeeded, "value and lease both match");
    assert_eq!(value_of(&*s).await, None, "deleted");
    let r = s
        .txn(Txn::new().lease_is("/c/owner", a))
        .await
        .expect("txn");
    assert!(
        !r.succeeded,
        "a lease compare never holds for a missing key"
    );
}

async fn value_of(s: &dyn LeaseStore) -> Option<Vec<u8>> {
    value(s, "/c/owner").await
}

pub async fn txn_answers_per_operation(s: Arc<dyn LeaseStore>) {
    s.put("/c/x", b"1", LeaseId(0)).await.expect("put");
    s.put("/c/y", b"y", LeaseId(0)).await.expect("put");
    let txn = Txn::new()
        .then(TxnOp::Get("/c/x".into()))
        .then(TxnOp::Put {
            key: "/c/x".into(),
            value: b"2".to_vec(),
            lease: LeaseId(0),
        })
        .then(TxnOp::Get("/c/x".into()))
        .then(TxnOp::Delete("/c/y".into()))
        .then(TxnOp::Get("/c/y".into()))
        .then(TxnOp::Get("/c/missing".into()));
    let r = s.txn(txn).await.expect("txn");
    assert!(r.succeeded, "no compares: the then branch");
    assert_eq!(r.found.len(), 6, "one answer per operation: {r:?}");
    assert_eq!(r.got(0).map(|k| k.value.as_slice()), Some(&b"1"[..]));
    assert!(r.found[1].is_empty(), "a put finds nothing");
    assert_eq!(
        r.got(2).map(|k| k.value.as_slice()),
        Some(&b"2"[..]),
        "each op sees the ones before"
    );
    assert!(r.found[3].is_empty() && r.found[4].is_empty() && r.found[5].is_empty());
    let r = s
        .txn(
            Txn::new()
                .absent("/c/y")
                .absent("/c/z")
                .then(TxnOp::Get("/c/y".into())),
        )
        .await
        .expect("txn");
    assert!(r.succeeded && r.found.len() == 1, "{r:?}");
    s.put("/c/z", b"", LeaseId(0)).await.expect("put");
    let r = s
        .txn(
            Txn::new()
                .absent("/c/y")
                .absent("/c/z")
                .then(TxnOp::Get("/c/y".into()))
                .otherwise(TxnOp::Get("/c/z".into()))
                .otherwise(TxnOp::Get("/c/y".into())),
        )
        .await
        .expect("txn");
    assert!(!r.succeeded, "one compare failing fails them all");
    assert_eq!(r.found.len(), 2, "the otherwise branch answers: {r:?}");
    assert_eq!(r.got(0).map(|k| k.value.as_slice()), Some(&b""[..]));
    assert_eq!(r.got(1), None);

    // One key written twice in one branch: refused whole.
    let twice = Txn::new()
        .then(TxnOp::Put {
            key: "/c/w".into(),
            value: b"1".to_vec(),
            lease: LeaseId(0),
        })
        .then(TxnOp::Delete("/c/w".into()));
    assert!(
        s.txn(twice).await.is_err(),
        "a key written twice in one txn"
    );
    assert_eq!(value(&*s, "/c/w").await, None, "nothing applied");
}

pub async fn revisions(s: Arc<dyn LeaseStore>) {
    s.put("/c/r", b"1", LeaseId(0)).await.expect("put");
    let one = s.get("/c/r").await.expect("get").expect("r");
    assert!(one.create_revision > 0 && one.mod_revision == one.create_revision);
    s.put("/c/other", b"x", LeaseId(0)).await.expect("put");
    s.put("/c/r", b"2", LeaseId(0)).await.expect("put");
    let two = s.get("/c/r").await.expect("get").expect("r");
    assert_eq!(two.create_revision, one.create_revision, "kept by a put");
    assert!(
        two.mod_revision > one.mod_revision + 1,
        "every change counts"
    );
    assert_eq!(two.key, "/c/r");
}
