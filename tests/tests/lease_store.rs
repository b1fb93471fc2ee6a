//! The lease-store contract suite (`shared::lease::conformance`) against a
//! real etcd: one single-member cluster per case, on the real clock. The
//! in-memory store runs the same cases as `shared`'s unit tests.

use std::sync::Arc;
use std::time::Duration;

use shared::etcd::{Client, EtcdConfig, EtcdMetrics};
use shared::lease::conformance::Fixture;
use tests::servers::EtcdCluster;

async fn etcd() -> Fixture {
    let cluster = tokio::task::spawn_blocking(|| EtcdCluster::start(1))
        .await
        .expect("join")
        .expect("etcd");
    let cfg = EtcdConfig {
        endpoints: cluster.endpoints(),
        prefix: "/t".into(),
        lease_ttl: Duration::from_secs(3),
        request_timeout: Duration::from_secs(2),
        release_idle_after: Duration::from_secs(60),
    };
    let client = Client::new(&cfg, EtcdMetrics::default()).expect("client");
    Fixture {
        store: Arc::new(client),
        keep: vec![Box::new(cluster)],
    }
}

shared::lease_store_suite!(real: etcd);
