//! The SQL directory: SQLite (the embedded default), PostgreSQL and
//! MySQL/MariaDB through sqlx's `Any` driver.
//!
//! The schema is created and upgraded by migrations embedded in the binary
//! (`locator/migrations/<dialect>`), run when the directory is opened. Every
//! provisioning change runs in one transaction; uniqueness of addresses across
//! accounts and aliases is enforced by the database (one `addresses` table),
//! the checks before it exist to produce messages a person can act on.

mod dialect;
mod queries;

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use shared::{Address, Domain};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor, Row};

pub use dialect::Dialect;
use dialect::map_error;
use queries::Queries;

use crate::directory::{Directory, Result};
use crate::error::DirectoryError;
use crate::model::{
    Account, AccountChange, AccountState, Cluster, ClusterState, NewAccount, Node, check_id,
};

static MIGRATE_SQLITE: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static MIGRATE_POSTGRES: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");
static MIGRATE_MYSQL: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/mysql");

/// Settings for [`SqlDirectory::open`].
#[derive(Debug, Clone)]
pub struct SqlOptions {
    pub max_connections: u32,
    /// Bound on every statement and on waiting for a pooled connection; past
    /// it the directory counts as unavailable.
    pub timeout: Duration,
    /// Open even when the database cannot be reached (daemons must start and
    /// serve from cache during an outage); the schema is then not migrated.
    pub lazy: bool,
}

impl Default for SqlOptions {
    fn default() -> Self {
        SqlOptions {
            max_connections: 16,
            timeout: Duration::from_secs(3),
            lazy: false,
        }
    }
}

pub struct SqlDirectory {
    pool: AnyPool,
    dialect: Dialect,
    q: &'static Queries,
    timeout: Duration,
}

impl SqlDirectory {
    /// Opens with default options, creating or upgrading the schema.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self> {
        let opts = SqlOptions {
            max_connections,
            ..SqlOptions::default()
        };
        Self::open(url, &opts).await
    }

    pub async fn open(url: &str, opts: &SqlOptions) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let dialect = Dialect::from_url(url)?;
        if dialect == Dialect::Sqlite {
            create_parent_dir(url)?;
        }
        let pool_opts = AnyPoolOptions::new()
            .max_connections(opts.max_connections.max(1))
            .acquire_timeout(opts.timeout)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if dialect == Dialect::Sqlite {
                        // WAL lets lookups read while the CLI writes; the busy
                        // timeout turns lock contention into waiting, not errors.
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA busy_timeout = 5000").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                        conn.execute("PRAGMA synchronous = NORMAL").await?;
                    }
                    Ok(())
                })
            });
        let url = dialect.connect_url(url);
        let pool = if opts.lazy {
            pool_opts.connect_lazy(&url).map_err(map_error)?
        } else {
            pool_opts.connect(&url).await.map_err(map_error)?
        };
        let dir = SqlDirectory {
            pool,
            dialect,
            q: Queries::get(dialect),
            timeout: opts.timeout,
        };
        if !opts.lazy {
            dir.migrate().await?;
        }
        Ok(dir)
    }

    /// Creates or upgrades the schema.
    pub async fn migrate(&self) -> Result<()> {
        let m = match self.dialect {
            Dialect::Sqlite => &MIGRATE_SQLITE,
            Dialect::Postgres => &MIGRATE_POSTGRES,
            Dialect::MySql => &MIGRATE_MYSQL,
        };
        m.run(&self.pool).await.map_err(|e| match e {
            sqlx::migrate::MigrateError::Execute(e) => map_error(e),
            other => DirectoryError::Backend(format!("schema migration failed: {other}")),
        })
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Starts a write transaction. SQLite's default deferred transaction
    /// takes a read lock first and fails with "database is locked" when it
    /// later needs to write while another writer waits; IMMEDIATE takes the
    /// write lock up front, so concurrent writers queue on the busy timeout.
    async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        let tx = if self.dialect == Dialect::Sqlite {
            self.pool.begin_with("BEGIN IMMEDIATE").await
        } else {
            self.pool.begin().await
        };
        tx.map_err(map_error)
    }

    /// Runs `f` under the statement timeout.
    async fn timed<T>(&self, f: impl Future<Output = Result<T>>) -> Result<T> {
        match tokio::time::timeout(self.timeout, f).await {
            Ok(r) => r,
            Err(_) => Err(DirectoryError::Unavailable(format!(
                "{} did not answer within {:?}",
                self.dialect.name(),
                self.timeout
            ))),
        }
    }

    async fn count(&self, sql: &'static str, arg: &str) -> Result<i64> {
        let row = sqlx::query(sql)
            .bind(arg)
            .fetch_one(&self.pool)
            .await
            .map_err(map_error)?;
        row.try_get::<i64, _>(0).map_err(map_error)
    }

    async fn load_accounts(&self, sql: &'static str, arg: Option<&str>) -> Result<Vec<Account>> {
        let mut query = sqlx::query(sql);
        if let Some(a) = arg {
            query = query.bind(a);
        }
        let rows = query.fetch_all(&self.pool).await.map_err(map_error)?;
        accounts_from_rows(&rows)
    }
}

fn create_parent_dir(url: &str) -> Result<()> {
    if let Some(parent) = Dialect::sqlite_path(url).and_then(|p| std::path::Path::new(p).parent())
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent).map_err(|e| {
            DirectoryError::Unavailable(format!("cannot create {}: {e}", parent.display()))
        })?;
    }
    Ok(())
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn corrupt(what: &str, detail: impl std::fmt::Display) -> DirectoryError {
    DirectoryError::Backend(format!("unusable {what} in the database: {detail}"))
}

/// Folds `account_columns!` rows (one per alias) into accounts, in row order.
fn accounts_from_rows(rows: &[AnyRow]) -> Result<Vec<Account>> {
    let mut out: Vec<Account> = Vec::new();
    for row in rows {
        let address: String = row.try_get(0).map_err(map_error)?;
        let alias: Option<String> = row.try_get(6).map_err(map_error)?;
        let same = out.last().is_some_and(|a| a.address.as_str() == address);
        if !same {
            let state: String = row.try_get(3).map_err(map_error)?;
            let quota: i64 = row.try_get(4).map_err(map_error)?;
            out.push(Account {
                address: Address::parse(&address).map_err(|e| corrupt("account address", e))?,
                aliases: Vec::new(),
                password: row.try_get(1).map_err(map_error)?,
                cluster: row.try_get(2).map_err(map_error)?,
                state: state.parse().map_err(|e| corrupt("account state", e))?,
                quota: u64::try_from(quota).unwrap_or(0),
                created: row.try_get(5).map_err(map_error)?,
                dn: None,
            });
        }
        if let (Some(alias), Some(account)) = (alias, out.last_mut()) {
            account
                .aliases
                .push(Address::parse(&alias).map_err(|e| corrupt("alias", e))?);
        }
    }
    Ok(out)
}

fn node_from_row(row: &AnyRow) -> Result<(String, Node)> {
    Ok((
        row.try_get(0).map_err(map_error)?,
        Node {
            id: row.try_get(1).map_err(map_error)?,
            imap: row.try_get(2).map_err(map_error)?,
            pop3: row.try_get(3).map_err(map_error)?,
            lmtp: row.try_get(4).map_err(map_error)?,
            http: row.try_get(5).map_err(map_error)?,
            internal: row.try_get(6).map_err(map_error)?,
        },
    ))
}

fn cluster_from_row(row: &AnyRow) -> Result<Cluster> {
    let state: String = row.try_get(1).map_err(map_error)?;
    let weight: i64 = row.try_get(2).map_err(map_error)?;
    Ok(Cluster {
        id: row.try_get(0).map_err(map_error)?,
        state: state.parse().map_err(|e| corrupt("cluster state", e))?,
        weight: u32::try_from(weight).unwrap_or(0),
        nodes: Vec::new(),
    })
}

/// What an address is used for, if anything.
enum Owner {
    Free,
    Account,
    AliasOf(String),
}

async fn owner_of<'c, E>(q: &'static Queries, ex: E, address: &str) -> Result<Owner>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    let row = sqlx::query(q.address_owner.as_str())
        .bind(address)
        .fetch_optional(ex)
        .await
        .map_err(map_error)?;
    Ok(match row {
        None => Owner::Free,
        Some(r) => {
            let primary: i64 = r.try_get(1).map_err(map_error)?;
            if primary != 0 {
                Owner::Account
            } else {
                Owner::AliasOf(r.try_get(0).map_err(map_error)?)
            }
        }
    })
}

fn taken(address: &str, owner: Owner) -> Result<()> {
    match owner {
        Owner::Free => Ok(()),
        Owner::Account => Err(DirectoryError::Conflict(format!(
            "{address} is already an account"
        ))),
        Owner::AliasOf(a) => Err(DirectoryError::Conflict(format!(
            "{address} is already an alias of {a}"
        ))),
    }
}

fn no_domain(domain: &str) -> DirectoryError {
    DirectoryError::NotFound(format!(
        "domain {domain} does not exist: add it with `tandem domain add {domain}`"
    ))
}

fn no_cluster(id: &str) -> DirectoryError {
    DirectoryError::NotFound(format!(
        "cluster {id} does not exist: add it with `tandem cluster add {id}`"
    ))
}

fn no_account(address: &str) -> DirectoryError {
    DirectoryError::NotFound(format!("no account {address}"))
}

#[async_trait]
impl Directory for SqlDirectory {
    fn kind(&self) -> &'static str {
        self.dialect.name()
    }

    async fn lookup(&self, address: &Address) -> Result<Option<Account>> {
        self.timed(async {
            let mut found = self
                .load_accounts(self.q.lookup.as_str(), Some(address.as_str()))
                .await?;
            Ok(found.pop())
        })
        .await
    }

    async fn add_domain(&self, domain: &Domain) -> Result<()> {
        self.timed(async {
            let res = sqlx::query(self.q.insert_domain.as_str())
                .bind(domain.as_str())
                .bind(shared::time::now())
                .execute(&self.pool)
                .await
                .map_err(map_error);
            match res {
                Err(DirectoryError::Conflict(_)) => Err(DirectoryError::Conflict(format!(
                    "domain {domain} already exists"
                ))),
                other => other.map(|_| ()),
            }
        })
        .await
    }

    async fn remove_domain(&self, domain: &Domain) -> Result<()> {
        self.timed(async {
            let d = domain.as_str();
            let accounts = self.count(self.q.domain_accounts.as_str(), d).await?;
            let aliases = self.count(self.q.domain_aliases.as_str(), &format!("%@{d}")).await?;
            if accounts > 0 || aliases > 0 {
                return Err(DirectoryError::Invalid(format!(
                    "domain {d} still has {accounts} accounts and {aliases} aliases; remove them first"
                )));
            }
            let r = sqlx::query(self.q.delete_domain.as_str())
                .bind(d)
                .execute(&self.pool)
                .await
                .map_err(map_error)?;
            if r.rows_affected() == 0 {
                return Err(DirectoryError::NotFound(format!("domain {d} does not exist")));
            }
            Ok(())
        })
        .await
    }

    async fn domains(&self) -> Result<Vec<Domain>> {
        self.timed(async {
            let rows = sqlx::query(self.q.domains.as_str())
                .fetch_all(&self.pool)
                .await
                .map_err(map_error)?;
            rows.iter()
                .map(|r| {
                    let name: String = r.try_get(0).map_err(map_error)?;
                    Domain::parse(&name).map_err(|e| corrupt("domain", e))
                })
                .collect()
        })
        .await
    }

    async fn add_account(&self, account: &NewAccount) -> Result<Account> {
        check_id("cluster", &account.cluster)?;
        self.timed(async {
            let address = account.address.as_str();
            let mut tx = self.begin().await?;
            let domain = account.address.domain();
            if sqlx::query(self.q.domain_exists.as_str())
                .bind(domain)
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_error)?
                .is_none()
            {
                return Err(no_domain(domain));
            }
            if sqlx::query(self.q.cluster_row.as_str())
                .bind(&account.cluster)
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_error)?
                .is_none()
            {
                return Err(no_cluster(&account.cluster));
            }
            taken(address, owner_of(self.q, &mut *tx, address).await?)?;
            let created = shared::time::now();
            sqlx::query(self.q.insert_account.as_str())
                .bind(address)
                .bind(domain)
                .bind(account.password.clone())
                .bind(&account.cluster)
                .bind(account.state.as_str())
                .bind(to_i64(account.quota))
                .bind(created)
                .execute(&mut *tx)
                .await
                .map_err(map_error)?;
            sqlx::query(self.q.insert_address.as_str())
                .bind(address)
                .bind(address)
                .bind(1_i64)
                .execute(&mut *tx)
                .await
                .map_err(map_error)?;
            tx.commit().await.map_err(map_error)?;
            Ok(Account {
                address: account.address.clone(),
                aliases: Vec::new(),
                password: account.password.clone(),
                cluster: account.cluster.clone(),
                state: account.state,
                quota: account.quota,
                created,
                dn: None,
            })
        })
        .await
    }

    async fn update_account(&self, address: &Address, change: &AccountChange) -> Result<Account> {
        if let Some(c) = &change.cluster {
            check_id("cluster", c)?;
        }
        self.timed(async {
            let a = address.as_str();
            let mut tx = self.begin().await?;
            let row = sqlx::query(self.q.account_row.as_str())
                .bind(a)
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_error)?;
            let Some(row) = row else {
                return Err(match owner_of(self.q, &mut *tx, a).await? {
                    Owner::AliasOf(owner) => DirectoryError::NotFound(format!(
                        "{a} is an alias of {owner}, not an account"
                    )),
                    _ => no_account(a),
                });
            };
            let mut password: Option<String> = row.try_get(0).map_err(map_error)?;
            let mut cluster: String = row.try_get(1).map_err(map_error)?;
            let state: String = row.try_get(2).map_err(map_error)?;
            let mut state: AccountState = state.parse().map_err(|e| corrupt("account state", e))?;
            let mut quota: i64 = row.try_get(3).map_err(map_error)?;
            if let Some(p) = &change.password {
                password = p.clone();
            }
            if let Some(c) = &change.cluster {
                if sqlx::query(self.q.cluster_row.as_str())
                    .bind(c)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(map_error)?
                    .is_none()
                {
                    return Err(no_cluster(c));
                }
                cluster = c.clone();
            }
            if let Some(s) = change.state {
                state = s;
            }
            if let Some(q) = change.quota {
                quota = to_i64(q);
            }
            sqlx::query(self.q.update_account.as_str())
                .bind(password)
                .bind(cluster)
                .bind(state.as_str())
                .bind(quota)
                .bind(a)
                .execute(&mut *tx)
                .await
                .map_err(map_error)?;
            tx.commit().await.map_err(map_error)?;
            Ok(())
        })
        .await?;
        self.lookup(address)
            .await?
            .ok_or_else(|| no_account(address.as_str()))
    }

    async fn remove_account(&self, address: &Address) -> Result<()> {
        self.timed(async {
            let a = address.as_str();
            let mut tx = self.begin().await?;
            match owner_of(self.q, &mut *tx, a).await? {
                Owner::Account => {}
                Owner::AliasOf(owner) => {
                    return Err(DirectoryError::NotFound(format!(
                        "{a} is an alias of {owner}, not an account: remove it with `tandem alias rm {a}`"
                    )));
                }
                Owner::Free => return Err(no_account(a)),
            }
            sqlx::query(self.q.delete_addresses_of.as_str())
                .bind(a)
                .execute(&mut *tx)
                .await
                .map_err(map_error)?;
            sqlx::query(self.q.delete_account.as_str())
                .bind(a)
                .execute(&mut *tx)
                .await
                .map_err(map_error)?;
            tx.commit().await.map_err(map_error)
        })
        .await
    }

    async fn accounts(&self, domain: Option<&Domain>) -> Result<Vec<Account>> {
        self.timed(async {
            match domain {
                Some(d) => {
                    self.load_accounts(self.q.accounts_in_domain.as_str(), Some(d.as_str()))
                        .await
                }
                None => self.load_accounts(self.q.accounts_all.as_str(), None).await,
            }
        })
        .await
    }

    async fn add_alias(&self, alias: &Address, account: &Address) -> Result<()> {
        self.timed(async {
            let mut tx = self.begin().await?;
            if sqlx::query(self.q.domain_exists.as_str())
                .bind(alias.domain())
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_error)?
                .is_none()
            {
                return Err(no_domain(alias.domain()));
            }
            match owner_of(self.q, &mut *tx, account.as_str()).await? {
                Owner::Account => {}
                Owner::AliasOf(owner) => {
                    return Err(DirectoryError::Invalid(format!(
                        "{account} is itself an alias of {owner}; point {alias} at {owner}"
                    )));
                }
                Owner::Free => return Err(no_account(account.as_str())),
            }
            taken(
                alias.as_str(),
                owner_of(self.q, &mut *tx, alias.as_str()).await?,
            )?;
            sqlx::query(self.q.insert_address.as_str())
                .bind(alias.as_str())
                .bind(account.as_str())
                .bind(0_i64)
                .execute(&mut *tx)
                .await
                .map_err(map_error)?;
            tx.commit().await.map_err(map_error)
        })
        .await
    }

    async fn remove_alias(&self, alias: &Address) -> Result<()> {
        self.timed(async {
            let a = alias.as_str();
            let r = sqlx::query(self.q.delete_alias.as_str())
                .bind(a)
                .execute(&self.pool)
                .await
                .map_err(map_error)?;
            if r.rows_affected() > 0 {
                return Ok(());
            }
            match owner_of(self.q, &self.pool, a).await? {
                Owner::Account => Err(DirectoryError::Invalid(format!(
                    "{a} is an account, not an alias: remove it with `tandem account rm {a}`"
                ))),
                _ => Err(DirectoryError::NotFound(format!("no alias {a}"))),
            }
        })
        .await
    }

    async fn add_cluster(&self, id: &str, state: ClusterState, weight: u32) -> Result<()> {
        check_id("cluster", id)?;
        self.timed(async {
            let r = sqlx::query(self.q.insert_cluster.as_str())
                .bind(id)
                .bind(state.as_str())
                .bind(i64::from(weight))
                .bind(shared::time::now())
                .execute(&self.pool)
                .await
                .map_err(map_error);
            match r {
                Err(DirectoryError::Conflict(_)) => Err(DirectoryError::Conflict(format!(
                    "cluster {id} already exists"
                ))),
                other => other.map(|_| ()),
            }
        })
        .await
    }

    async fn update_cluster(
        &self,
        id: &str,
        state: Option<ClusterState>,
        weight: Option<u32>,
    ) -> Result<()> {
        self.timed(async {
            let mut tx = self.begin().await?;
            let row = sqlx::query(self.q.cluster_row.as_str())
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_error)?
                .ok_or_else(|| no_cluster(id))?;
            let current = cluster_from_row(&row)?;
            sqlx::query(self.q.update_cluster.as_str())
                .bind(state.unwrap_or(current.state).as_str())
                .bind(i64::from(weight.unwrap_or(current.weight)))
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(map_error)?;
            tx.commit().await.map_err(map_error)
        })
        .await
    }

    async fn remove_cluster(&self, id: &str) -> Result<()> {
        self.timed(async {
            let accounts = self.count(self.q.cluster_accounts.as_str(), id).await?;
            let nodes = self.count(self.q.cluster_nodes_count.as_str(), id).await?;
            if accounts > 0 || nodes > 0 {
                return Err(DirectoryError::Invalid(format!(
                    "cluster {id} still has {accounts} accounts and {nodes} nodes; move or remove them first"
                )));
            }
            let r = sqlx::query(self.q.delete_cluster.as_str())
                .bind(id)
                .execute(&self.pool)
                .await
                .map_err(map_error)?;
            if r.rows_affected() == 0 {
                return Err(no_cluster(id));
            }
            Ok(())
        })
        .await
    }

    async fn clusters(&self) -> Result<Vec<Cluster>> {
        self.timed(async {
            let rows = sqlx::query(self.q.clusters.as_str())
                .fetch_all(&self.pool)
                .await
                .map_err(map_error)?;
            let mut clusters = rows
                .iter()
                .map(cluster_from_row)
                .collect::<Result<Vec<_>>>()?;
            let nodes = sqlx::query(self.q.nodes_all.as_str())
                .fetch_all(&self.pool)
                .await
                .map_err(map_error)?;
            for row in &nodes {
                let (cid, node) = node_from_row(row)?;
                if let Some(c) = clusters.iter_mut().find(|c| c.id == cid) {
                    c.nodes.push(node);
                }
            }
            Ok(clusters)
        })
        .await
    }

    async fn cluster(&self, id: &str) -> Result<Option<Cluster>> {
        self.timed(async {
            let Some(row) = sqlx::query(self.q.cluster_row.as_str())
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(map_error)?
            else {
                return Ok(None);
            };
            let mut cluster = cluster_from_row(&row)?;
            let nodes = sqlx::query(self.q.nodes_of.as_str())
                .bind(id)
                .fetch_all(&self.pool)
                .await
                .map_err(map_error)?;
            for row in &nodes {
                cluster.nodes.push(node_from_row(row)?.1);
            }
            Ok(Some(cluster))
        })
        .await
    }

    async fn add_node(&self, cluster: &str, node: &Node) -> Result<()> {
        node.validate()?;
        self.timed(async {
            let mut tx = self.begin().await?;
            if sqlx::query(self.q.cluster_row.as_str())
                .bind(cluster)
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_error)?
                .is_none()
            {
                return Err(no_cluster(cluster));
            }
            if sqlx::query(self.q.node_exists.as_str())
                .bind(cluster)
                .bind(&node.id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_error)?
                .is_some()
            {
                return Err(DirectoryError::Conflict(format!(
                    "node {} already exists in cluster {cluster}",
                    node.id
                )));
            }
            sqlx::query(self.q.insert_node.as_str())
                .bind(cluster)
                .bind(&node.id)
                .bind(node.imap.clone())
                .bind(node.pop3.clone())
                .bind(node.lmtp.clone())
                .bind(node.http.clone())
                .bind(node.internal.clone())
                .execute(&mut *tx)
                .await
                .map_err(map_error)?;
            tx.commit().await.map_err(map_error)
        })
        .await
    }

    async fn remove_node(&self, cluster: &str, node: &str) -> Result<()> {
        self.timed(async {
            let r = sqlx::query(self.q.delete_node.as_str())
                .bind(cluster)
                .bind(node)
                .execute(&self.pool)
                .await
                .map_err(map_error)?;
            if r.rows_affected() == 0 {
                return Err(DirectoryError::NotFound(format!(
                    "no node {node} in cluster {cluster}"
                )));
            }
            Ok(())
        })
        .await
    }

    async fn account_counts(&self) -> Result<BTreeMap<String, u64>> {
        self.timed(async {
            let rows = sqlx::query(self.q.account_counts.as_str())
                .fetch_all(&self.pool)
                .await
                .map_err(map_error)?;
            rows.iter()
                .map(|r| {
                    let id: String = r.try_get(0).map_err(map_error)?;
                    let n: i64 = r.try_get(1).map_err(map_error)?;
                    Ok((id, u64::try_from(n).unwrap_or(0)))
                })
                .collect()
        })
        .await
    }
}
