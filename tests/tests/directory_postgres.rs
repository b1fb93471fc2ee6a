//! The directory conformance suite on PostgreSQL (a throw-away cluster on
//! loopback, one fresh database per case).

use std::sync::Arc;

use locator::sql::SqlDirectory;
use tests::conformance::Fixture;
use tests::servers::postgres;

async fn postgres() -> Fixture {
    let url = tokio::task::spawn_blocking(|| postgres::shared().new_database())
        .await
        .expect("join")
        .expect("create database");
    let dir = SqlDirectory::connect(&url, 4).await.expect("open postgres");
    Fixture {
        dir: Arc::new(dir),
        keep: vec![],
    }
}

tests::conformance_suite!(postgres);
