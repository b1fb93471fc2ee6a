//! The directory conformance suite on MariaDB (MySQL protocol) (a throw-away cluster on
//! loopback, one fresh database per case).

use std::sync::Arc;

use locator::sql::SqlDirectory;
use tests::conformance::Fixture;
use tests::servers::mariadb;

async fn mariadb() -> Fixture {
    let url = tokio::task::spawn_blocking(|| mariadb::shared().new_database())
        .await
        .expect("join")
        .expect("create database");
    let dir = SqlDirectory::connect(&url, 4).await.expect("open mariadb");
    Fixture {
        dir: Arc::new(dir),
        keep: vec![],
    }
}

tests::conformance_suite!(mariadb);
