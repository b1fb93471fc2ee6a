//! The [`Locator`]: a directory behind a cache, as daemons use it.
//!
//! Lookups are cached for `ttl` (found) or `negative_ttl` (no such account).
//! When the directory cannot answer, the last known entry is served for up to
//! `stale_for`, so an outage of the directory does not become an outage of
//! mail for the accounts that were recently active. An address never seen
//! before gets [`LookupError::Unavailable`] then, which the protocols turn
//! into a temporary failure, never into "no such user".

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use shared::Address;
use shared::blocking::Blocking;
use shared::config::{Problems, Validate};
use tokio::time::Instant;

use crate::directory::Directory;
use crate::error::DirectoryError;
use crate::metrics::LocatorMetrics;
use crate::model::{Account, AccountState, Cluster};

/// The `locator.cache` settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Most entries kept (accounts and "no such account" answers).
    pub capacity: u64,
    /// How long a found account is served without asking the directory.
    #[serde(with = "shared::config::duration")]
    pub ttl: Duration,
    /// How long "no such account" is believed; short, so a new account works
    /// soon after it is provisioned.
    #[serde(with = "shared::config::duration")]
    pub negative_ttl: Duration,
    /// How long past its TTL an entry may still be served while the directory
    /// is unreachable.
    #[serde(with = "shared::config::duration")]
    pub stale_for: Duration,
    /// After the directory failed, how long lookups are answered from the
    /// cache alone before the directory is tried again, so an outage costs
    /// one timeout per `retry_after` rather than one per lookup.
    #[serde(with = "shared::config::duration")]
    pub retry_after: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            capacity: 100_000,
            ttl: Duration::from_secs(60),
            negative_ttl: Duration::from_secs(10),
            stale_for: Duration::from_secs(24 * 3600),
            retry_after: Duration::from_secs(2),
        }
    }
}

impl Validate for CacheConfig {
    fn validate(&self, at: &str, p: &mut Problems) {
        if self.negative_ttl > self.ttl {
            p.push(at, "negative_ttl", "must not be longer than ttl");
        }
        if self.stale_for < self.ttl {
            p.push(at, "stale_for", "must be at least ttl");
        }
    }
}

/// A lookup that could not be answered, neither by the directory nor the cache.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    #[error("directory temporarily unavailable: {0}")]
    Unavailable(String),
}

/// The result of checking a login.
#[derive(Debug, Clone)]
pub enum AuthOutcome {
    /// Right password, active account.
    Ok(Arc<Account>),
    /// Wrong password, no such account, no password set, or an unusable
    /// hash: the client cannot tell these apart, the logs can.
    Failed,
    /// Right password, but the account is suspended.
    Suspended(Arc<Account>),
    /// The directory could not answer, or the account is being moved.
    Unavailable(String),
}

/// The key of a failed guess: SHA-256 of the account and the password,
/// kept in memory only.
fn guess_digest(address: &Address, password: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(address.to_string().as_bytes());
    h.update([0]);
    h.update(password);
    h.finalize().into()
}

#[derive(Clone)]
struct Entry {
    account: Option<Arc<Account>>,
    fetched: Instant,
}

pub struct Locator {
    dir: Arc<dyn Directory>,
    cfg: CacheConfig,
    accounts: moka::future::Cache<Address, Entry>,
    clusters: moka::future::Cache<String, (Option<Arc<Cluster>>, Instant)>,
    /// Guesses that failed lately (a digest of account and password), for
    /// `negative_ttl`: a guesser repeating them costs no password hash, so
    /// it cannot keep the hashing pool from the account's owner. A guess
    /// that failed reveals nothing new when it fails again faster.
    failed_guesses: moka::future::Cache<[u8; 32], ()>,
    metrics: LocatorMetrics,
    blocking: Blocking,
    /// Set while the directory fails to answer.
    down: std::sync::Mutex<Option<Outage>>,
}

struct Outage {
    since: Instant,
    last_try: Instant,
}

impl Locator {
    pub fn new(dir: Arc<dyn Directory>, cfg: CacheConfig, metrics: LocatorMetrics) -> Self {
        let accounts = moka::future::Cache::builder()
            .max_capacity(cfg.capacity)
            .time_to_live(cfg.stale_for)
            .build();
        let clusters = moka::future::Cache::builder()
            .max_capacity(10_000)
            .time_to_live(cfg.stale_for)
            .build();
        let failed_guesses = moka::future::Cache::builder()
            .max_capacity(cfg.capacity)
            .time_to_live(cfg.negative_ttl)
            .build();
        Locator {
            dir,
            cfg,
            accounts,
            clusters,
            failed_guesses,
            metrics,
            blocking: Blocking::per_core(),
            down: std::sync::Mutex::new(None),
        }
    }

    pub fn directory(&self) -> &Arc<dyn Directory> {
        &self.dir
    }

    /// The account `address` (primary or alias) belongs to.
    pub async fn lookup(&self, address: &Address) -> Result<Option<Arc<Account>>, LookupError> {
        let timer = shared::metrics::Timer::start(&self.metrics.lookup_seconds);
        let r = self.lookup_inner(address).await;
        timer.observe();
        r
    }

    async fn lookup_inner(&self, address: &Address) -> Result<Option<Arc<Account>>, LookupError> {
        let cached = self.accounts.get(address).await;
        if let Some(e) = &cached {
            let ttl = if e.account.is_some() {
                self.cfg.ttl
            } else {
                self.cfg.negative_ttl
            };
            if e.fetched.elapsed() < ttl {
                self.metrics.lookup(if e.account.is_some() {
                    "hit"
                } else {
                    "negative_hit"
                });
                return Ok(e.account.clone());
            }
        }
        if let Some(since) = self.known_down() {
            return match cached {
                Some(e) => {
                    self.metrics.lookup("stale");
                    Ok(e.account)
                }
                None => {
                    self.metrics.lookup("unavailable");
                    Err(LookupError::Unavailable(format!(
                        "directory down for {}s",
                        since.elapsed().as_secs()
                    )))
                }
            };
        }
        let start = Instant::now();
        let answer = self.dir.lookup(address).await;
        let secs = start.elapsed().as_secs_f64();
        self.note_health(answer.as_ref().err());
        match answer {
            Ok(found) => {
                self.metrics.query("lookup", "ok", secs);
                self.metrics.lookup("miss");
                let account = found.map(Arc::new);
                let entry = Entry {
                    account: account.clone(),
                    fetched: Instant::now(),
                };
                self.accounts.insert(address.clone(), entry).await;
                self.metrics
                    .cache_entries
                    .set(self.accounts.entry_count() as i64);
                Ok(account)
            }
            Err(e) => {
                self.metrics.query("lookup", e.kind(), secs);
                match cached {
                    Some(e2) => {
                        tracing::warn!(%address, error = %e, "directory failed, serving cached entry");
                        self.metrics.lookup("stale");
                        Ok(e2.account)
                    }
                    None => {
                        tracing::warn!(%address, error = %e, "directory failed, no cached entry");
                        self.metrics.lookup("unavailable");
                        Err(LookupError::Unavailable(e.to_string()))
                    }
                }
            }
        }
    }

    /// While the directory is known to be down and no retry is due: since
    /// when. A caller that finds a retry due claims it (the others keep
    /// answering from the cache) and asks the directory.
    fn known_down(&self) -> Option<Instant> {
        let mut g = self.down.lock().unwrap_or_else(|p| p.into_inner());
        let d = g.as_mut()?;
        if d.last_try.elapsed() < self.cfg.retry_after {
            return Some(d.since);
        }
        d.last_try = Instant::now();
        None
    }

    /// Records whether the directory answered; only transient errors (it is
    /// unreachable or too slow) count as down.
    fn note_health(&self, err: Option<&DirectoryError>) {
        let mut g = self.down.lock().unwrap_or_else(|p| p.into_inner());
        match (err, g.as_mut()) {
            (None, Some(d)) => {
                tracing::info!(after = ?d.since.elapsed(), "directory answers again");
                *g = None;
            }
            (Some(e), None) if e.is_transient() => {
                tracing::warn!(error = %e, "directory unreachable; answering from the cache");
                let now = Instant::now();
                *g = Some(Outage {
                    since: now,
                    last_try: now,
                });
            }
            (Some(e), Some(d)) if e.is_transient() => d.last_try = Instant::now(),
            _ => {}
        }
    }

    /// A cluster and its nodes, cached like accounts.
    pub async fn cluster(&self, id: &str) -> Result<Option<Arc<Cluster>>, LookupError> {
        let cached = self.clusters.get(id).await;
        if let Some((c, at)) = &cached
            && at.elapsed() < self.cfg.ttl
        {
            return Ok(c.clone());
        }
        if self.known_down().is_some() {
            return match cached {
                Some((c, _)) => Ok(c),
                None => Err(LookupError::Unavailable("directory down".into())),
            };
        }
        let start = Instant::now();
        let answer = self.dir.cluster(id).await;
        self.note_health(answer.as_ref().err());
        match answer {
            Ok(c) => {
                self.metrics
                    .query("cluster", "ok", start.elapsed().as_secs_f64());
                let c = c.map(Arc::new);
                self.clusters
                    .insert(id.to_owned(), (c.clone(), Instant::now()))
                    .await;
                Ok(c)
            }
            Err(e) => {
                self.metrics
                    .query("cluster", e.kind(), start.elapsed().as_secs_f64());
                match cached {
                    Some((c, _)) => Ok(c),
                    None => Err(LookupError::Unavailable(e.to_string())),
                }
            }
        }
    }

    /// Checks a login. Takes the same time whether or not the account exists,
    /// and reveals a suspension only to someone who knows the password.
    pub async fn authenticate(&self, address: &Address, password: &[u8]) -> AuthOutcome {
        let outcome = self.authenticate_inner(address, password).await;
        self.metrics.auth(match &outcome {
            AuthOutcome::Ok(_) => "ok",
            AuthOutcome::Failed => "failed",
            AuthOutcome::Suspended(_) => "suspended",
            AuthOutcome::Unavailable(_) => "unavailable",
        });
        outcome
    }

    async fn authenticate_inner(&self, address: &Address, password: &[u8]) -> AuthOutcome {
        let guess = guess_digest(address, password);
        if self.failed_guesses.contains_key(&guess) {
            return AuthOutcome::Failed;
        }
        let outcome = self.check_password(address, password).await;
        if matches!(outcome, AuthOutcome::Failed) {
            self.failed_guesses.insert(guess, ()).await;
        }
        outcome
    }

    async fn check_password(&self, address: &Address, password: &[u8]) -> AuthOutcome {
        let account = match self.lookup(address).await {
            Err(LookupError::Unavailable(why)) => return AuthOutcome::Unavailable(why),
            Ok(Some(a)) => a,
            Ok(None) => {
                let pw = password.to_vec();
                let _ = self
                    .blocking
                    .run(move || shared::password::dummy_verify(&pw))
                    .await;
                return AuthOutcome::Failed;
            }
        };
        let verified = match self.dir.verify_by_bind(&account, password).await {
            Ok(Some(ok)) => ok,
            Ok(None) => self.verify_hash(&account, password).await,
            Err(DirectoryError::Unavailable(why)) => return AuthOutcome::Unavailable(why),
            Err(e) => {
                tracing::error!(account = %account.address, error = %e, "password check by bind failed");
                false
            }
        };
        if !verified {
            return AuthOutcome::Failed;
        }
        match account.state {
            AccountState::Active => AuthOutcome::Ok(account),
            AccountState::Suspended => AuthOutcome::Suspended(account),
            AccountState::Moving => {
                AuthOutcome::Unavailable(format!("account {} is being moved", account.address))
            }
        }
    }

    async fn verify_hash(&self, account: &Account, password: &[u8]) -> bool {
        let Some(stored) = account.password.clone() else {
            let pw = password.to_vec();
            let _ = self
                .blocking
                .run(move || shared::password::dummy_verify(&pw))
                .await;
            return false;
        };
        let pw = password.to_vec();
        match self
            .blocking
            .run(move || shared::password::verify(&pw, &stored))
            .await
        {
            Ok(Ok(ok)) => ok,
            Ok(Err(e)) => {
                self.metrics.auth("hash_error");
                tracing::error!(account = %account.address, error = %e, "stored password hash is unusable");
                false
            }
            Err(e) => {
                tracing::error!(error = %e, "password check did not run");
                false
            }
        }
    }

    /// Forgets what is cached about `address`, after provisioning changed it.
    pub async fn invalidate(&self, address: &Address) {
        self.accounts.invalidate(address).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ClusterState, NewAccount};
    use crate::sql::SqlDirectory;
    use shared::Domain;

    async fn setup() -> (tempfile::TempDir, Arc<SqlDirectory>) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/l.db", dir.path().display());
        let d = Arc::new(SqlDirectory::connect(&url, 2).await.unwrap());
        d.add_domain(&Domain::parse("example.com").unwrap())
            .await
            .unwrap();
        d.add_cluster("c1", ClusterState::Open, 1).await.unwrap();
        (dir, d)
    }

    fn new_account(addr: &str, password: Option<String>, state: AccountState) -> NewAccount {
        NewAccount {
            address: Address::parse(addr).unwrap(),
            password,
            cluster: "c1".into(),
            state,
            quota: 0,
        }
    }

    #[tokio::test]
    async fn authenticate_outcomes() {
        let (_t, d) = setup().await;
        let h = shared::password::hash_with(shared::password::Scheme::Ssha512, b"pw").ok();
        d.add_account(&new_account(
            "a@example.com",
            h.clone(),
            AccountState::Active,
        ))
        .await
        .unwrap();
        d.add_account(&new_account("s@example.com", h, AccountState::Suspended))
            .await
            .unwrap();
        d.add_account(&new_account("n@example.com", None, AccountState::Active))
            .await
            .unwrap();
        d.add_account(&new_account(
            "x@example.com",
            Some("{WHAT}pw".into()),
            AccountState::Active,
        ))
        .await
        .unwrap();
        let l = Locator::new(d, CacheConfig::default(), LocatorMetrics::default());
        let a = |s: &str| Address::parse(s).unwrap();
        assert!(matches!(
            l.authenticate(&a("A@Example.com"), b"pw").await,
            AuthOutcome::Ok(_)
        ));
        assert!(matches!(
            l.authenticate(&a("a@example.com"), b"nope").await,
            AuthOutcome::Failed
        ));
        assert!(matches!(
            l.authenticate(&a("s@example.com"), b"pw").await,
            AuthOutcome::Suspended(_)
        ));
        assert!(matches!(
            l.authenticate(&a("s@example.com"), b"no").await,
            AuthOutcome::Failed
        ));
        assert!(matches!(
            l.authenticate(&a("n@example.com"), b"").await,
            AuthOutcome::Failed
        ));
        assert!(matches!(
            l.authenticate(&a("x@example.com"), b"pw").await,
            AuthOutcome::Failed
        ));
        assert!(matches!(
            l.authenticate(&a("ghost@example.com"), b"pw").await,
            AuthOutcome::Failed
        ));
    }

    /// A directory that can be switched off, for the cache's own logic; the
    /// real servers are stopped in `tests/tests/locator_outage.rs`.
    struct Switchable {
        inner: Arc<SqlDirectory>,
        down: std::sync::atomic::AtomicBool,
    }

    #[async_trait::async_trait]
    impl Directory for Switchable {
        fn kind(&self) -> &'static str {
            "switchable"
        }
        async fn lookup(&self, address: &Address) -> crate::directory::Result<Option<Account>> {
            if self.down.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(DirectoryError::Unavailable("switched off".into()));
            }
            self.inner.lookup(address).await
        }
        async fn add_domain(&self, d: &Domain) -> crate::directory::Result<()> {
            self.inner.add_domain(d).await
        }
        async fn remove_domain(&self, d: &Domain) -> crate::directory::Result<()> {
            self.inner.remove_domain(d).await
        }
        async fn domains(&self) -> crate::directory::Result<Vec<Domain>> {
            self.inner.domains().await
        }
        async fn add_account(&self, a: &NewAccount) -> crate::directory::Result<Account> {
            self.inner.add_account(a).await
        }
        async fn update_account(
            &self,
            a: &Address,
            c: &crate::model::AccountChange,
        ) -> crate::directory::Result<Account> {
            self.inner.update_account(a, c).await
        }
        async fn remove_account(&self, a: &Address) -> crate::directory::Result<()> {
            self.inner.remove_account(a).await
        }
        async fn accounts(&self, d: Option<&Domain>) -> crate::directory::Result<Vec<Account>> {
            self.inner.accounts(d).await
        }
        async fn add_alias(&self, a: &Address, b: &Address) -> crate::directory::Result<()> {
            self.inner.add_alias(a, b).await
        }
        async fn remove_alias(&self, a: &Address) -> crate::directory::Result<()> {
            self.inner.remove_alias(a).await
        }
        async fn add_cluster(
            &self,
            id: &str,
            s: ClusterState,
            w: u32,
        ) -> crate::directory::Result<()> {
            self.inner.add_cluster(id, s, w).await
        }
        async fn update_cluster(
            &self,
            id: &str,
            s: Option<ClusterState>,
            w: Option<u32>,
        ) -> crate::directory::Result<()> {
            self.inner.update_cluster(id, s, w).await
        }
        async fn remove_cluster(&self, id: &str) -> crate::directory::Result<()> {
            self.inner.remove_cluster(id).await
        }
        async fn clusters(&self) -> crate::directory::Result<Vec<Cluster>> {
            self.inner.clusters().await
        }
        async fn cluster(&self, id: &str) -> crate::directory::Result<Option<Cluster>> {
            self.inner.cluster(id).await
        }
        async fn add_node(&self, c: &str, n: &crate::model::Node) -> crate::directory::Result<()> {
            self.inner.add_node(c, n).await
        }
        async fn remove_node(&self, c: &str, n: &str) -> crate::directory::Result<()> {
            self.inner.remove_node(c, n).await
        }
        async fn account_counts(
            &self,
        ) -> crate::directory::Result<std::collections::BTreeMap<String, u64>> {
            self.inner.account_counts().await
        }
    }

    fn count(m: &LocatorMetrics, result: &'static str) -> u64 {
        m.lookups
            .get_or_create(&crate::metrics::ResultLabel { result })
            .get()
    }

    fn queries(m: &LocatorMetrics, result: &'static str) -> u64 {
        m.queries
            .get_or_create(&crate::metrics::QueryLabels {
                op: "lookup",
                result,
            })
            .get()
    }

    #[tokio::test]
    async fn ttl_negative_ttl_and_stale() {
        let (_t, d) = setup().await;
        d.add_account(&new_account("a@example.com", None, AccountState::Active))
            .await
            .unwrap();
        let sw = Arc::new(Switchable {
            inner: d.clone(),
            down: false.into(),
        });
        let cfg = CacheConfig {
            capacity: 100,
            ttl: Duration::from_millis(300),
            negative_ttl: Duration::from_millis(100),
            stale_for: Duration::from_secs(60),
            retry_after: Duration::from_millis(200),
        };
        let m = LocatorMetrics::default();
        let l = Locator::new(sw.clone(), cfg, m.clone());
        let a = Address::parse("a@example.com").unwrap();
        let ghost = Address::parse("ghost@example.com").unwrap();
        let never = Address::parse("never@example.com").unwrap();

        assert!(l.lookup(&a).await.unwrap().is_some());
        assert!(l.lookup(&ghost).await.unwrap().is_none());
        assert_eq!((count(&m, "miss"), count(&m, "hit")), (2, 0));
        assert!(l.lookup(&a).await.unwrap().is_some());
        assert!(l.lookup(&ghost).await.unwrap().is_none());
        assert_eq!((count(&m, "hit"), count(&m, "negative_hit")), (1, 1));

        // A new account is seen once the negative entry expires.
        d.add_account(&new_account(
            "ghost@example.com",
            None,
            AccountState::Active,
        ))
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(
            l.lookup(&ghost).await.unwrap().is_some(),
            "negative_ttl expired"
        );

        // Directory down: known entries are served stale, unknown ones are
        // temporarily unavailable, never "no such account".
        sw.down.store(true, std::sync::atomic::Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert!(l.lookup(&a).await.unwrap().is_some());
        assert_eq!(count(&m, "stale"), 1);
        assert!(matches!(
            l.lookup(&never).await,
            Err(LookupError::Unavailable(_))
        ));
        assert_eq!(count(&m, "unavailable"), 1);
        assert_eq!(
            queries(&m, "unavailable"),
            1,
            "within retry_after the cache answers alone"
        );

        // Back: fresh answers again, once retry_after has passed.
        sw.down.store(false, std::sync::atomic::Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(l.lookup(&never).await.unwrap().is_none());
        d.remove_account(&a).await.unwrap();
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert!(
            l.lookup(&a).await.unwrap().is_none(),
            "a removed account disappears after ttl"
        );
    }

    #[tokio::test]
    async fn metrics_are_served() {
        let (_t, d) = setup().await;
        let mut reg = prometheus_client::registry::Registry::default();
        let m = LocatorMetrics::register(&mut reg);
        let l = Locator::new(d, CacheConfig::default(), m);
        let a = Address::parse("x@example.com").unwrap();
        l.lookup(&a).await.unwrap();
        l.lookup(&a).await.unwrap();
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &reg).unwrap();
        for want in [
            "tandem_locator_lookups_total{result=\"miss\"} 1",
            "tandem_locator_lookups_total{result=\"negative_hit\"} 1",
            "tandem_locator_directory_queries_total{op=\"lookup\",result=\"ok\"} 1",
            "tandem_locator_lookup_seconds_count 2",
            "tandem_locator_directory_query_seconds_bucket{",
        ] {
            assert!(text.contains(want), "missing {want} in\n{text}");
        }
    }
}
