//! The directory conformance suite on SQLite, the embedded default.

use std::sync::Arc;

use locator::sql::SqlDirectory;
use tests::conformance::Fixture;

async fn sqlite() -> Fixture {
    let tmp = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}/locator.db", tmp.path().display());
    let dir = SqlDirectory::connect(&url, 4).await.expect("open sqlite");
    Fixture {
        dir: Arc::new(dir),
        keep: vec![Box::new(tmp)],
    }
}

tests::conformance_suite!(sqlite);
