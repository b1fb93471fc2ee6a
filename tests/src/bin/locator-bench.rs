//! Locator benchmark: provisions N accounts in each directory backend
//! (SQLite, PostgreSQL, MariaDB, LDAP, each a real server on loopback) and
//! measures lookups per second straight from the directory (uncached) and
//! through the locator's cache, as ratios against SQLite in the same run.
//!
//! ```text
//! cargo run --release -p tests --bin locator-bench -- --accounts 100000
//! ```

// A benchmark times real work on the wall clock: std::time::Instant is
// meant here (no test pauses this clock).
#![allow(clippy::disallowed_types)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use locator::ldap::{LdapConfig, LdapDirectory};
use locator::model::{AccountState, ClusterState, NewAccount};
use locator::sql::{SqlDirectory, SqlOptions};
use locator::{CacheConfig, Directory, Locator, LocatorMetrics};
use shared::{Address, Domain};
use tests::servers::{MariaDb, Postgres, Slapd};

#[derive(Parser)]
struct Args {
    /// Accounts provisioned in each backend.
    #[arg(long, default_value_t = 100_000)]
    accounts: u32,
    /// Concurrent clients, for provisioning and lookups.
    #[arg(long, default_value_t = 32)]
    concurrency: u32,
    /// Seconds each lookup phase runs.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Backends to run: sqlite, postgres, mariadb, ldap.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "sqlite,postgres,mariadb,ldap"
    )]
    backends: Vec<String>,
    /// One JSON document on stdout instead of the table.
    #[arg(long)]
    json: bool,
}

#[derive(serde::Serialize)]
struct Row {
    backend: String,
    accounts: u32,
    provision_per_sec: f64,
    uncached_per_sec: f64,
    uncached_p50_us: u64,
    uncached_p99_us: u64,
    cached_per_sec: f64,
}

fn address(i: u32) -> Address {
    Address::parse(&format!("user{i:07}@bench.example")).expect("address")
}

async fn provision(dir: &Arc<dyn Directory>, args: &Args) -> anyhow::Result<f64> {
    dir.add_domain(&Domain::parse("bench.example")?).await?;
    dir.add_cluster("c1", ClusterState::Open, 1).await?;
    // One stored hash for all: hashing is not what is measured here.
    let hash = shared::password::hash_with(shared::password::Scheme::Ssha512, b"pw")?;
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency {
        let (dir, next, hash, n) = (dir.clone(), next.clone(), hash.clone(), args.accounts);
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as u32;
                if i >= n {
                    return Ok::<_, anyhow::Error>(());
                }
                let acct = NewAccount {
                    address: address(i),
                    password: Some(hash.clone()),
                    cluster: "c1".into(),
                    state: AccountState::Active,
                    quota: 0,
                };
                dir.add_account(&acct)
                    .await
                    .with_context(|| format!("account {i}"))?;
                if i.is_multiple_of(20_000) && i > 0 {
                    eprintln!("  provisioned {i}");
                }
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(f64::from(args.accounts) / start.elapsed().as_secs_f64())
}

/// Runs `lookup` from `concurrency` tasks for `seconds` on random accounts;
/// lookups per second and latency percentiles (µs).
async fn measure<F, Fut>(args: &Args, keys: u32, lookup: F) -> (f64, u64, u64)
where
    F: Fn(Address) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let mut tasks = Vec::new();
    for t in 0..args.concurrency {
        let lookup = lookup.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(1 << 16);
            let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ u64::from(t);
            while Instant::now() < deadline {
                // xorshift: cheap, and different per task.
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let a = address((x % u64::from(keys)) as u32);
                let t0 = Instant::now();
                assert!(lookup(a).await, "a provisioned account was not found");
                lat.push(t0.elapsed().as_micros() as u64);
            }
            lat
        }));
    }
    let start = Instant::now();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("lookup task"));
    }
    let secs = start.elapsed().as_secs_f64();
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    (all.len() as f64 / secs, pct(0.50), pct(0.99))
}

async fn bench(name: &str, dir: Arc<dyn Directory>, args: &Args) -> anyhow::Result<Row> {
    eprintln!("{name}: provisioning {} accounts", args.accounts);
    let provision_per_sec = provision(&dir, args).await?;
    eprintln!("{name}: {provision_per_sec:.0} accounts/s; uncached lookups");
    let d = dir.clone();
    let (uncached, p50, p99) = measure(args, args.accounts, move |a| {
        let d = d.clone();
        async move { matches!(d.lookup(&a).await, Ok(Some(_))) }
    })
    .await;
    // The cache holds the hot set a frontend sees; warm it, then measure.
    let hot = args.accounts.min(10_000);
    let cfg = CacheConfig {
        capacity: u64::from(hot) * 2,
        ttl: Duration::from_secs(3600),
        ..CacheConfig::default()
    };
    let loc = Arc::new(Locator::new(dir, cfg, LocatorMetrics::default()));
    for i in 0..hot {
        loc.lookup(&address(i)).await?;
    }
    eprintln!("{name}: cached lookups");
    let l = loc.clone();
    let (cached, _, _) = measure(args, hot, move |a| {
        let l = l.clone();
        async move { matches!(l.lookup(&a).await, Ok(Some(_))) }
    })
    .await;
    Ok(Row {
        backend: name.into(),
        accounts: args.accounts,
        provision_per_sec,
        uncached_per_sec: uncached,
        uncached_p50_us: p50,
        uncached_p99_us: p99,
        cached_per_sec: cached,
    })
}

fn sql_options(args: &Args) -> SqlOptions {
    SqlOptions {
        max_connections: args.concurrency,
        timeout: Duration::from_secs(10),
        lazy: false,
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::tls::install_crypto_provider();
    let args = Args::parse();
    let tmp = tempfile::tempdir()?;
    let mut rows = Vec::new();
    for b in &args.backends {
        let row = match b.as_str() {
            "sqlite" => {
                let url = format!("sqlite://{}/bench.db", tmp.path().display());
                let dir = SqlDirectory::open(&url, &sql_options(&args)).await?;
                bench("sqlite", Arc::new(dir), &args).await?
            }
            "postgres" => {
                let server = tokio::task::block_in_place(Postgres::start)?;
                let url = tokio::task::block_in_place(|| server.new_database())?;
                let dir = SqlDirectory::open(&url, &sql_options(&args)).await?;
                bench("postgres", Arc::new(dir), &args).await?
            }
            "mariadb" => {
                let server = tokio::task::block_in_place(MariaDb::start)?;
                let url = tokio::task::block_in_place(|| server.new_database())?;
                let dir = SqlDirectory::open(&url, &sql_options(&args)).await?;
                bench("mariadb", Arc::new(dir), &args).await?
            }
            "ldap" => {
                let server = tokio::task::block_in_place(Slapd::start)?;
                let base = tokio::task::block_in_place(|| server.new_base())?;
                let topo = format!("sqlite://{}/topology.db", tmp.path().display());
                let topology = SqlDirectory::connect(&topo, 4).await?;
                let mut cfg = LdapConfig::new(&server.url(), &base);
                cfg.bind_dn = server.admin_dn().into();
                cfg.bind_password = Some(server.admin_password().into());
                cfg.pool_size = args.concurrency as usize;
                let dir = LdapDirectory::connect(&cfg, Arc::new(topology)).await?;
                bench("ldap", Arc::new(dir), &args).await?
            }
            other => anyhow::bail!("unknown backend {other:?} (sqlite, postgres, mariadb, ldap)"),
        };
        rows.push(row);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    let base = rows.first().map_or(1.0, |r| r.uncached_per_sec);
    println!(
        "{:<9} {:>9} {:>12} {:>13} {:>9} {:>9} {:>13} {:>14} {:>10}",
        "backend",
        "accounts",
        "provision/s",
        "uncached/s",
        "p50 µs",
        "p99 µs",
        "cached/s",
        "cached÷uncached",
        "÷first"
    );
    for r in &rows {
        println!(
            "{:<9} {:>9} {:>12.0} {:>13.0} {:>9} {:>9} {:>13.0} {:>14.1}x {:>9.2}x",
            r.backend,
            r.accounts,
            r.provision_per_sec,
            r.uncached_per_sec,
            r.uncached_p50_us,
            r.uncached_p99_us,
            r.cached_per_sec,
            r.cached_per_sec / r.uncached_per_sec,
            r.uncached_per_sec / base
        );
    }
    Ok(())
}
