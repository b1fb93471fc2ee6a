//! A bounded soak of a 3-node cluster on a real 3-member etcd: random
//! SIGKILLs and restarts of nodes under mixed IMAP APPEND, POP3 and LMTP
//! load. Every acknowledged message must be there exactly once at the end,
//! and the longest time an account could not be opened anywhere is
//! reported.
//!
//! Ignored by default (it runs for minutes): `cargo test -p tests --test
//! cluster_soak -- --ignored --nocapture` (TANDEM_SOAK_SECS, default 120).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use rand::Rng;
use tests::backend::Backend;
use tests::clients::imap_subjects;
use tests::load::phases::lmtp_one;
use tests::load::{Proto, Session};
use tests::servers::EtcdCluster;

const ACCOUNTS: usize = 4;
const PASS: &str = "soak-pw";
const TTL_SECS: u64 = 3;

fn account(i: usize) -> String {
    format!("soak{i}@example.com")
}

#[derive(Default)]
struct Ledger {
    /// Subjects acknowledged per account.
    acked: Mutex<HashMap<String, Vec<String>>>,
    next: AtomicU64,
    attempts: AtomicU64,
    failures: AtomicU64,
}

impl Ledger {
    fn subject(&self, kind: &str) -> String {
        format!("{kind}-{}", self.next.fetch_add(1, Ordering::Relaxed))
    }

    fn ack(&self, account: &str, subject: String) {
        let mut a = self.acked.lock().unwrap_or_else(|p| p.into_inner());
        a.entry(account.to_owned()).or_default().push(subject);
    }
}

async fn imap_append(addr: SocketAddr, user: &str, subject: &str) -> anyhow::Result<()> {
    let mut s = Session::connect(addr, Proto::Imap).await?;
    s.login_select(user, PASS).await?;
    let msg = format!("Subject: {subject}\r\n\r\nsoak\r\n");
    s.imap(&format!("APPEND INBOX {{{}+}}\r\n{msg}", msg.len()))
        .await?;
    s.logout().await
}

async fn pop3_stat(addr: SocketAddr, user: &str) -> anyhow::Result<()> {
    let mut s = Session::connect(addr, Proto::Pop3).await?;
    s.login_select(user, PASS).await?;
    s.logout().await
}

async fn imap_open(addr: SocketAddr, user: &str) -> anyhow::Result<()> {
    let mut s = Session::connect(addr, Proto::Imap).await?;
    s.login_select(user, PASS).await?;
    s.logout().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "soak: runs for minutes"]
async fn random_node_kills_lose_and_duplicate_nothing() {
    let secs: u64 = std::env::var("TANDEM_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120);
    let etcd = EtcdCluster::start(3).expect("etcd");
    let yaml = format!(
        "etcd:\n  endpoints: [{}]\n  lease_ttl: {TTL_SECS}s\n  request_timeout: 500ms\n  release_idle_after: 5s\n",
        etcd.endpoints().join(", ")
    );
    let first = Backend::start_with(&yaml).expect("n1");
    for i in 0..ACCOUNTS {
        first.add_account(&account(i), PASS).expect("account");
    }
    let mut nodes = vec![first];
    for n in ["n2", "n3"] {
        let b = Backend::start_peer(&nodes[0], n, &yaml).expect("node");
        nodes.push(b);
    }
    let imap: Vec<SocketAddr> = nodes.iter().map(Backend::imap_addr).collect();
    let pop3: Vec<SocketAddr> = nodes.iter().map(Backend::pop3_addr).collect();
    let lmtp: Vec<SocketAddr> = nodes.iter().map(Backend::lmtp_addr).collect();

    let ledger = Arc::new(Ledger::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    // Two IMAP appenders, one LMTP deliverer, one POP3 reader.
    for kind in ["imap", "imap", "lmtp", "pop3"] {
        let (ledger, stop) = (ledger.clone(), stop.clone());
        let (imap, pop3, lmtp) = (imap.clone(), pop3.clone(), lmtp.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let (a, n) = {
                    let mut rng = rand::rng();
                    (rng.random_range(0..ACCOUNTS), rng.random_range(0..3))
                };
                let user = account(a);
                let subject = ledger.subject(kind);
                ledger.attempts.fetch_add(1, Ordering::Relaxed);
                let r = match kind {
                    "imap" => imap_append(imap[n], &user, &subject).await,
                    "lmtp" => lmtp_one(lmtp[n], &user, &subject).await,
                    _ => pop3_stat(pop3[n], &user).await,
                };
                match r {
                    Ok(()) if kind != "pop3" => ledger.ack(&user, subject),
                    Ok(()) => {}
                    Err(_) => {
                        ledger.failures.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        }));
    }
    // The prober: how long was each account not openable on any node?
    let gaps = Arc::new(Mutex::new(vec![Duration::ZERO; ACCOUNTS]));
    {
        let (stop, gaps, imap) = (stop.clone(), gaps.clone(), imap.clone());
        tasks.push(tokio::spawn(async move {
            let mut last_ok = [Instant::now(); ACCOUNTS];
            while !stop.load(Ordering::Relaxed) {
                for (a, ok_at) in last_ok.iter_mut().enumerate() {
                    let mut ok = false;
                    let user = account(a);
                    for addr in &imap {
                        let probe =
                            tokio::time::timeout(Duration::from_secs(2), imap_open(*addr, &user));
                        if matches!(probe.await, Ok(Ok(()))) {
                            ok = true;
                            break;
                        }
                    }
                    if ok {
                        *ok_at = Instant::now();
                    } else {
                        let mut g = gaps.lock().unwrap_or_else(|p| p.into_inner());
                        g[a] = g[a].max(ok_at.elapsed());
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }));
    }

    // Chaos: SIGKILL a random node, restart it a little later.
    let start = Instant::now();
    let mut kills = 0;
    while start.elapsed() < Duration::from_secs(secs) {
        let (pause, down, victim) = {
            let mut rng = rand::rng();
            (
                rng.random_range(3_000..7_000),
                rng.random_range(500..4_000),
                rng.random_range(0..3),
            )
        };
        tokio::time::sleep(Duration::from_millis(pause)).await;
        tokio::task::block_in_place(|| nodes[victim].kill());
        kills += 1;
        tokio::time::sleep(Duration::from_millis(down)).await;
        tokio::task::block_in_place(|| nodes[victim].restart()).expect("restart");
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }

    // Count: every acknowledged subject exactly once, UIDs unique.
    let acked = ledger
        .acked
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let (mut lost, mut dups, mut total, mut present) = (0, 0, 0, 0);
    for a in 0..ACCOUNTS {
        let user = account(a);
        let list = tokio::task::block_in_place(|| imap_subjects(imap[0], &user, PASS));
        let mut seen: HashMap<&str, usize> = HashMap::new();
        let mut uids = HashSet::new();
        for (uid, subject) in &list {
            assert!(uids.insert(*uid), "UID {uid} twice in {user}");
            *seen.entry(subject.as_str()).or_default() += 1;
        }
        present += seen.len();
        dups += seen.values().filter(|&&n| n > 1).count();
        for s in acked.get(&user).into_iter().flatten() {
            total += 1;
            if !seen.contains_key(s.as_str()) {
                lost += 1;
                eprintln!("lost: {user} {s}");
            }
        }
    }
    let longest = gaps
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .copied()
        .max()
        .unwrap_or_default();
    eprintln!(
        "soak {secs}s: {kills} node kills; {} operations ({} failed while nodes were down); \
         {total} messages acknowledged, {present} present, lost {lost}, duplicated {dups}; \
         longest unavailability of an account {longest:?} (lease ttl {TTL_SECS}s)",
        ledger.attempts.load(Ordering::Relaxed),
        ledger.failures.load(Ordering::Relaxed),
    );
    assert_eq!((lost, dups), (0, 0));
    assert!(total > 0);
}
