//! The locator through a directory outage, on every directory backend.
//!
//! Each test owns its server (not the shared one), kills it with lookups
//! cached, and checks what a frontend would see: known accounts are still
//! found and can still log in (stale entries), an account never seen is
//! "temporarily unavailable" (never "no such account"), answers stay fast
//! while the server is down, and everything recovers when it is back.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use locator::ldap::{LdapConfig, LdapDirectory};
use locator::model::{AccountState, ClusterState, NewAccount};
use locator::sql::{SqlDirectory, SqlOptions};
use locator::{AuthOutcome, CacheConfig, Directory, Locator, LocatorMetrics, LookupError};
use shared::{Address, Domain};
use tests::servers::{mariadb::MariaDb, postgres::Postgres, slapd::Slapd};

const TIMEOUT: Duration = Duration::from_secs(2);
/// Longer than the checks made during the outage take, so none of them
/// should wait for the dead server a second time.
const RETRY_AFTER: Duration = Duration::from_secs(4);

fn addr(s: &str) -> Address {
    Address::parse(s).expect("address")
}

fn account(address: &str) -> NewAccount {
    NewAccount {
        address: addr(address),
        password: Some(
            shared::password::hash_with(shared::password::Scheme::Ssha512, b"secret")
                .expect("hash"),
        ),
        cluster: "c1".into(),
        state: AccountState::Active,
        quota: 0,
    }
}

fn lookups(m: &LocatorMetrics, result: &'static str) -> u64 {
    m.lookups
        .get_or_create(&locator::metrics::ResultLabel { result })
        .get()
}

/// The server under test, stopped and started from the scenario.
trait Server {
    fn stop(&mut self);
    fn start_again(&mut self) -> anyhow::Result<()>;
}

macro_rules! server {
    ($t:ty) => {
        impl Server for $t {
            fn stop(&mut self) {
                <$t>::stop(self)
            }
            fn start_again(&mut self) -> anyhow::Result<()> {
                <$t>::start_again(self)
            }
        }
    };
}
server!(Postgres);
server!(MariaDb);
server!(Slapd);

async fn scenario(dir: Arc<dyn Directory>, server: &mut dyn Server) {
    dir.add_domain(&Domain::parse("example.com").expect("domain"))
        .await
        .expect("add domain");
    dir.add_cluster("c1", ClusterState::Open, 1)
        .await
        .expect("add cluster");
    dir.add_account(&account("known@example.com"))
        .await
        .expect("add account");

    let cfg = CacheConfig {
        capacity: 1000,
        ttl: Duration::from_millis(300),
        negative_ttl: Duration::from_millis(100),
        stale_for: Duration::from_secs(3600),
        retry_after: RETRY_AFTER,
    };
    let metrics = LocatorMetrics::default();
    let locator = Locator::new(dir.clone(), cfg, metrics.clone());
    let known = addr("known@example.com");
    let never = addr("never@example.com");
    assert!(locator.lookup(&known).await.expect("lookup").is_some());
    assert!(matches!(
        locator.authenticate(&known, b"secret").await,
        AuthOutcome::Ok(_)
    ));
    assert!(locator.cluster("c1").await.expect("cluster").is_some());

    tokio::task::block_in_place(|| server.stop());
    tokio::time::sleep(Duration::from_millis(400)).await; // past the TTL

    let t = Instant::now();
    let found = locator.lookup(&known).await.expect("stale entry served");
    assert_eq!(found.expect("still known").cluster, "c1");
    assert!(
        t.elapsed() < TIMEOUT * 3,
        "first lookup in the outage took {:?}",
        t.elapsed()
    );
    assert_eq!(lookups(&metrics, "stale"), 1);
    assert!(
        matches!(
            locator.authenticate(&known, b"secret").await,
            AuthOutcome::Ok(_)
        ),
        "a known user can still log in"
    );
    assert!(
        matches!(
            locator.authenticate(&known, b"wrong").await,
            AuthOutcome::Failed
        ),
        "and a wrong password still fails"
    );
    assert!(
        locator.cluster("c1").await.expect("cluster").is_some(),
        "the home cluster is still known"
    );
    let t = Instant::now();
    match locator.lookup(&never).await {
        Err(LookupError::Unavailable(_)) => {}
        other => panic!("an account never seen must be unavailable, got {other:?}"),
    }
    assert!(
        t.elapsed() < Duration::from_millis(100),
        "while the directory is known down, answers come from the cache at once ({:?})",
        t.elapsed()
    );
    assert!(matches!(
        locator.authenticate(&never, b"secret").await,
        AuthOutcome::Unavailable(_)
    ));

    tokio::task::block_in_place(|| server.start_again()).expect("restart the server");
    // Pools reconnect on their own; provisioning and lookups work again.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match dir.add_account(&account("new@example.com")).await {
            Ok(_) => break,
            Err(e) if Instant::now() < deadline && e.is_transient() => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Err(e) => panic!("provisioning after the restart: {e}"),
        }
    }
    tokio::time::sleep(RETRY_AFTER).await;
    let new = addr("new@example.com");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match locator.lookup(&new).await {
            Ok(Some(a)) => {
                assert_eq!(a.address, new);
                break;
            }
            _ if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(200)).await,
            r => panic!("the new account is not found after the restart: {r:?}"),
        }
    }
    assert!(
        locator
            .lookup(&never)
            .await
            .expect("answers again")
            .is_none(),
        "an unknown account is now \"no such account\""
    );
}

fn sql_options() -> SqlOptions {
    SqlOptions {
        max_connections: 4,
        timeout: TIMEOUT,
        lazy: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage() {
    let mut server = tokio::task::block_in_place(Postgres::start).expect("start PostgreSQL");
    let url = tokio::task::block_in_place(|| server.new_database()).expect("database");
    let dir = SqlDirectory::open(&url, &sql_options())
        .await
        .expect("open");
    scenario(Arc::new(dir), &mut server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_outage() {
    let mut server = tokio::task::block_in_place(MariaDb::start).expect("start MariaDB");
    let url = tokio::task::block_in_place(|| server.new_database()).expect("database");
    let dir = SqlDirectory::open(&url, &sql_options())
        .await
        .expect("open");
    scenario(Arc::new(dir), &mut server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ldap_outage() {
    let mut server = tokio::task::block_in_place(Slapd::start).expect("start slapd");
    let base = tokio::task::block_in_place(|| server.new_base()).expect("base");
    let tmp = tempfile::tempdir().expect("temp dir");
    let topology = SqlDirectory::connect(&format!("sqlite://{}/l.db", tmp.path().display()), 2)
        .await
        .expect("sqlite");
    let mut cfg = LdapConfig::new(&server.url(), &base);
    cfg.bind_dn = server.admin_dn().into();
    cfg.bind_password = Some(server.admin_password().into());
    cfg.timeout = TIMEOUT;
    let dir = LdapDirectory::connect(&cfg, Arc::new(topology))
        .await
        .expect("open ldap");
    scenario(Arc::new(dir), &mut server).await;
}
