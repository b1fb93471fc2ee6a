//! Dynamic-cluster benchmark: logins/s and LMTP deliveries/s against
//! clusters of 1, 2 and 3 nodes (one store, one local etcd each), sessions
//! spread over the nodes as a frontend without an owner hint would; and
//! the cost of the extra hop when a session lands on a node that does not
//! own its account (logins/s and NOOP round trips, owner vs. non-owner, on
//! the 3-node cluster). One run, ratios to the 1-node cluster and to the
//! owner; everything on loopback.
//!
//! ```text
//! cargo build --release -p tests --bin cluster-bench -p ops
//! target/release/cluster-bench
//! ```

// A benchmark times real work on the wall clock: std::time::Instant is
// meant here (no test pauses this clock).
#![allow(clippy::disallowed_types)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use tests::backend::Backend;
use tests::load::phases::lmtp_one;
use tests::load::{Proto, Session};
use tests::servers::EtcdCluster;

#[derive(Parser)]
struct Args {
    /// Accounts user1..userN@example.com (PLAIN passwords: the bench
    /// measures the cluster, not a password hash).
    #[arg(long, default_value_t = 200)]
    users: usize,
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Length of each phase.
    #[arg(long, default_value_t = 8.0)]
    seconds: f64,
    /// NOOP round trips per hop measurement.
    #[arg(long, default_value_t = 2000)]
    noops: usize,
}

const PASSWORD: &str = "pass";

fn user(k: usize) -> String {
    format!("user{k}@example.com")
}

/// `clients` loops for `seconds`, each iteration `op(n)`; successes/s.
async fn rate<F, Fut>(clients: usize, seconds: f64, op: F) -> (f64, u64)
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let op = Arc::new(op);
    let next = Arc::new(AtomicU64::new(0));
    let (ok, errors) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let until = Instant::now() + Duration::from_secs_f64(seconds);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (op, next, ok, errors) = (op.clone(), next.clone(), ok.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < until {
                let n = next.fetch_add(1, Ordering::Relaxed);
                match tokio::time::timeout(Duration::from_secs(10), op(n)).await {
                    Ok(Ok(())) => ok.fetch_add(1, Ordering::Relaxed),
                    Ok(Err(e)) => {
                        if errors.fetch_add(1, Ordering::Relaxed) == 0 {
                            eprintln!("first error: {e:#}");
                        }
                        0
                    }
                    Err(_) => errors.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    (
        ok.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64(),
        errors.load(Ordering::Relaxed),
    )
}

async fn login(addr: SocketAddr, user: String) -> anyhow::Result<()> {
    let mut s = Session::connect(addr, Proto::Imap).await?;
    s.login_select(&user, PASSWORD).await?;
    s.logout().await
}

/// Median NOOP round trip in µs over one logged-in session.
async fn noop_micros(addr: SocketAddr, user: &str, n: usize) -> anyhow::Result<f64> {
    let mut s = Session::connect(addr, Proto::Imap).await?;
    s.login_select(user, PASSWORD).await?;
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        s.imap("NOOP").await?;
        times.push(t.elapsed().as_secs_f64() * 1e6);
    }
    s.logout().await?;
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

struct Cluster {
    _etcd: EtcdCluster,
    nodes: Vec<Backend>,
}

fn start(n: usize, users: usize) -> anyhow::Result<Cluster> {
    let etcd = EtcdCluster::start(1)?;
    let yaml = format!(
        "  limits:\n    max_per_ip: 100000\n    max_connections: 100000\netcd:\n  endpoints: [{}]\n",
        etcd.endpoints().join(", ")
    );
    let first = Backend::start_with(&yaml).context("n1")?;
    let list: String = (1..=users)
        .map(|k| format!("{}:{{PLAIN}}{PASSWORD}\n", user(k)))
        .collect();
    let file = first.config().with_file_name("users.passwd");
    std::fs::write(&file, list)?;
    first.tandem_ok(&[
        "account",
        "import",
        &file.display().to_string(),
        "--cluster",
        "c1",
    ])?;
    let mut nodes = vec![first];
    for i in 2..=n {
        let b = Backend::start_peer(&nodes[0], &format!("n{i}"), &yaml)?;
        nodes.push(b);
    }
    Ok(Cluster { _etcd: etcd, nodes })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut rows = Vec::new();
    let mut hop = None;
    for n in 1..=3 {
        eprintln!("cluster of {n} node(s)");
        let c = tokio::task::block_in_place(|| start(n, args.users))?;
        let imap: Arc<Vec<SocketAddr>> = Arc::new(c.nodes.iter().map(Backend::imap_addr).collect());
        let lmtp: Arc<Vec<SocketAddr>> = Arc::new(c.nodes.iter().map(Backend::lmtp_addr).collect());
        let users = args.users as u64;
        // Spread like a blind frontend: session i to node i mod n, user i
        // mod users, so each node also lands on accounts others own.
        let i2 = imap.clone();
        let (logins, login_errors) = rate(args.clients, args.seconds, move |i| {
            let addr = i2[(i % i2.len() as u64) as usize];
            login(addr, user((i / 3 % users) as usize + 1))
        })
        .await;
        let l2 = lmtp.clone();
        let (deliveries, delivery_errors) = rate(args.clients, args.seconds, move |i| {
            let addr = l2[(i % l2.len() as u64) as usize];
            let rcpt = user((i % users) as usize + 1);
            async move { lmtp_one(addr, &rcpt, &format!("bench {i}")).await }
        })
        .await;
        rows.push((n, logins, login_errors, deliveries, delivery_errors));
        for b in &c.nodes {
            if let Some(l) = b.log().lines().find(|l| l.contains("cannot proxy")) {
                eprintln!("{l}");
            }
        }
        if n == 3 {
            // Whoever owns user1 now, and another node that proxies to it.
            login(imap[0], user(1)).await?;
            let status = c.nodes[0].tandem_ok(&["--json", "cluster", "status", "c1"])?;
            let status: serde_json::Value = serde_json::from_str(&status)?;
            let owner_id = status
                .as_array()
                .into_iter()
                .flatten()
                .find(|n| {
                    n["owned"]
                        .as_array()
                        .is_some_and(|o| o.iter().any(|a| a == user(1).as_str()))
                })
                .and_then(|n| n["id"].as_str())
                .context("nobody owns user1")?
                .to_owned();
            let k: usize = owner_id.trim_start_matches('n').parse::<usize>()? - 1;
            let (owner, other) = (imap[k], imap[(k + 1) % 3]);
            eprintln!("user1 is owned by {owner_id}");
            let (direct, _) = rate(args.clients, args.seconds / 2.0, move |_| {
                login(owner, user(1))
            })
            .await;
            let (proxied, _) = rate(args.clients, args.seconds / 2.0, move |_| {
                login(other, user(1))
            })
            .await;
            let noop_direct = noop_micros(owner, &user(1), args.noops).await?;
            let noop_proxied = noop_micros(other, &user(1), args.noops).await?;
            hop = Some((direct, proxied, noop_direct, noop_proxied));
        }
    }
    println!("| nodes | logins/s | vs 1 node | deliveries/s | vs 1 node | errors |");
    println!("|---|---|---|---|---|---|");
    let (base_l, base_d) = (rows[0].1, rows[0].3);
    for (n, l, le, d, de) in &rows {
        println!(
            "| {n} | {l:.0} | {:.2}x | {d:.0} | {:.2}x | {} |",
            l / base_l,
            d / base_d,
            le + de
        );
    }
    if let Some((direct, proxied, nd, np)) = hop {
        println!();
        println!("| one account, 3 nodes | owner | non-owner (proxied) | ratio |");
        println!("|---|---|---|---|");
        println!(
            "| logins/s | {direct:.0} | {proxied:.0} | {:.2}x |",
            proxied / direct
        );
        println!(
            "| NOOP round trip (median µs) | {nd:.0} | {np:.0} | {:.2}x |",
            np / nd
        );
    }
    Ok(())
}
