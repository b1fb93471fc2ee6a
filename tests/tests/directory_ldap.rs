//! The directory conformance suite on LDAP: accounts in a throw-away slapd
//! (one fresh base per case), clusters and nodes in the SQLite store.

use std::sync::Arc;

use locator::ldap::{LdapConfig, LdapDirectory};
use locator::sql::SqlDirectory;
use tests::conformance::Fixture;
use tests::servers::slapd;

async fn ldap() -> Fixture {
    let tmp = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}/locator.db", tmp.path().display());
    let topology = SqlDirectory::connect(&url, 4).await.expect("open sqlite");
    let (server, base) = tokio::task::spawn_blocking(|| {
        let server = slapd::shared();
        (server, server.new_base())
    })
    .await
    .expect("join");
    let base = base.expect("create base entry");
    let mut cfg = LdapConfig::new(&server.url(), &base);
    cfg.bind_dn = server.admin_dn().into();
    cfg.bind_password = Some(server.admin_password().into());
    let dir = LdapDirectory::connect(&cfg, Arc::new(topology))
        .await
        .expect("open ldap");
    Fixture {
        dir: Arc::new(dir),
        keep: vec![Box::new(tmp)],
    }
}

tests::conformance_suite!(ldap);
