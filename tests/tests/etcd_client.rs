//! The etcd client (shared::etcd) against a real 3-member etcd cluster.

use std::time::Duration;

use shared::etcd::{Client, EtcdConfig, EtcdError, EtcdMetrics, LeaseId, Txn, TxnOp};
use tests::servers::EtcdCluster;

fn client(endpoints: Vec<String>) -> Client {
    let cfg = EtcdConfig {
        endpoints,
        prefix: "/t".into(),
        lease_ttl: Duration::from_secs(3),
        request_timeout: Duration::from_secs(1),
        release_idle_after: Duration::from_secs(60),
    };
    Client::new(&cfg, EtcdMetrics::default()).expect("client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_transactions_and_leases_on_a_three_member_cluster() {
    let etcd = EtcdCluster::start(3).expect("etcd");
    let c = client(etcd.endpoints());

    assert_eq!(c.get("/t/a").await.expect("get"), None);
    c.put("/t/a", b"1", LeaseId(0)).await.expect("put");
    c.put("/t/b", b"2", LeaseId(0)).await.expect("put");
    c.put("/u", b"3", LeaseId(0)).await.expect("put");
    assert_eq!(c.get("/t/a").await.expect("get").expect("a").value, b"1");
    let all = c.prefix("/t/").await.expect("prefix");
    let keys: Vec<&str> = all.iter().map(|k| k.key.as_str()).collect();
    assert_eq!(keys, ["/t/a", "/t/b"]);
    assert!(c.delete("/t/b").await.expect("delete"));
    assert!(!c.delete("/t/b").await.expect("delete again"));

    // Create-if-absent: the first wins, the second reads the winner.
    let lease = c.grant(Duration::from_secs(3)).await.expect("grant");
    let claim = |value: &'static [u8]| {
        Txn::new()
            .absent("/t/owner")
            .then(TxnOp::Put {
                key: "/t/owner".into(),
                value: value.to_vec(),
                lease,
            })
            .otherwise(TxnOp::Get("/t/owner".into()))
    };
    let first = c.txn(claim(b"n1")).await.expect("txn");
    assert!(first.succeeded);
    let second = c.txn(claim(b"n2")).await.expect("txn");
    assert!(!second.succeeded);
    let owner = second.got(0).expect("owner");
    assert_eq!((owner.value.as_slice(), owner.lease), (&b"n1"[..], lease));
    // Delete only if still ours.
    let not_ours = Txn::new()
        .value_is("/t/owner", b"n2")
        .then(TxnOp::Delete("/t/owner".into()));
    assert!(!c.txn(not_ours).await.expect("txn").succeeded);
    let ours = Txn::new()
        .value_is("/t/owner", b"n1")
        .lease_is("/t/owner", lease)
        .then(TxnOp::Get("/t/owner".into()));
    assert!(c.txn(ours).await.expect("txn").succeeded);

    // Kept alive, the key stays past the TTL; left alone, it goes.
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(c.keep_alive(lease).await.expect("keepalive").is_some());
    }
    assert!(c.get("/t/owner").await.expect("get").is_some());
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(c.get("/t/owner").await.expect("get"), None, "lease expired");
    assert_eq!(c.keep_alive(lease).await.expect("keepalive"), None);

    // Revoking deletes the lease's keys at once; twice is fine.
    let l2 = c.grant(Duration::from_secs(30)).await.expect("grant");
    c.put("/t/x", b"x", l2).await.expect("put");
    c.revoke(l2).await.expect("revoke");
    c.revoke(l2).await.expect("revoke again");
    assert_eq!(c.get("/t/x").await.expect("get"), None);
    // A put bound to a lease that is gone is refused, not lost silently.
    let e = c.put("/t/y", b"y", l2).await.expect_err("no lease");
    assert!(matches!(e, EtcdError::Server { code: 5, .. }), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_fail_over_to_the_next_member() {
    let mut etcd = EtcdCluster::start(3).expect("etcd");
    // A member that refuses connections first in the list.
    let mut endpoints = vec!["127.0.0.1:9".to_owned()];
    endpoints.extend(etcd.endpoints());
    let c = client(endpoints);
    c.put("/t/k", b"v", LeaseId(0)).await.expect("put");
    etcd.kill(1);
    etcd.kill(0);
    // One of three left: no quorum, so writes fail with a typed error
    // naming the members, within the timeouts.
    let start = tokio::time::Instant::now();
    let e = c
        .put("/t/k", b"w", LeaseId(0))
        .await
        .expect_err("no quorum");
    assert!(matches!(e, EtcdError::Unavailable { tried: 4, .. }), "{e}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    etcd.restart(0).expect("restart");
    let mut ok = false;
    for _ in 0..50 {
        if c.put("/t/k", b"w", LeaseId(0)).await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "writes resume with two of three members");
    assert_eq!(c.get("/t/k").await.expect("get").expect("k").value, b"w");
}
