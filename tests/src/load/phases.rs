//! The load phases; every one stops at a count and at a deadline, whichever
//! comes first.

// A benchmark times real work on the wall clock: std::time::Instant is
// meant here (no test pauses this clock).
#![allow(clippy::disallowed_types)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tokio::task::JoinSet;
use tokio::time::timeout;

use super::mem::{TreeMem, tree_mem};
use super::{Session, Target};

/// Longest a single session (or connection setup) may take before it
/// counts as an error.
const SESSION_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Serialize)]
pub struct Logins {
    pub clients: usize,
    pub sessions: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub seconds: f64,
    pub per_second: f64,
}

/// `clients` concurrent clients loop connect, login, select, logout for
/// `seconds` or until `max_sessions` sessions have started.
pub async fn logins(
    target: &Target,
    clients: usize,
    seconds: f64,
    max_sessions: u64,
) -> anyhow::Result<Logins> {
    let until = Instant::now() + Duration::from_secs_f64(seconds);
    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let first_error = Arc::new(Mutex::new(None::<String>));
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    for _ in 0..clients.max(1) {
        let (t, next, done, errors, first_error) = (
            target.clone(),
            next.clone(),
            done.clone(),
            errors.clone(),
            first_error.clone(),
        );
        tasks.spawn(async move {
            while Instant::now() < until {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= max_sessions {
                    break;
                }
                let user = t.user(n);
                match timeout(SESSION_TIMEOUT, session(&t, &user)).await {
                    Ok(Ok(())) => {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    failed => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        let e = match failed {
                            Ok(Err(e)) => format!("{e:#}"),
                            _ => format!("{user}: no answer within {SESSION_TIMEOUT:?}"),
                        };
                        first_error.lock().await.get_or_insert(e);
                        // A refusing server must not turn this into a busy loop.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let secs = start.elapsed().as_secs_f64();
    let sessions = done.load(Ordering::Relaxed);
    let first_error = first_error.lock().await.take();
    Ok(Logins {
        clients,
        sessions,
        errors: errors.load(Ordering::Relaxed),
        first_error,
        seconds: secs,
        per_second: sessions as f64 / secs,
    })
}

async fn session(t: &Target, user: &str) -> anyhow::Result<()> {
    let mut s = Session::connect(t.addr, t.proto).await?;
    s.login_select(user, &t.password).await?;
    s.logout().await
}

#[derive(Debug, Clone, Serialize)]
pub struct Idle {
    pub requested: usize,
    pub opened: usize,
    pub errors: u64,
    pub first_error: Option<String>,
    pub before: TreeMem,
    pub after: TreeMem,
    /// RSS growth per opened connection.
    pub kib_per_connection: f64,
    /// PSS growth per opened connection.
    pub pss_kib_per_connection: f64,
    pub open_seconds: f64,
}

/// Opens `k` logged-in connections (`parallel` at a time, for at most
/// `max_seconds`) and measures the resident memory of the trees of `pids`
/// before and after; the connections are closed on return.
pub async fn idle(
    target: &Target,
    k: usize,
    pids: &[u32],
    parallel: usize,
    max_seconds: f64,
) -> anyhow::Result<Idle> {
    // Let the effects of whatever ran before settle.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = tree_mem(pids);
    let until = Instant::now() + Duration::from_secs_f64(max_seconds);
    let start = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let first_error = Arc::new(Mutex::new(None::<String>));
    let mut tasks = JoinSet::new();
    for _ in 0..parallel.clamp(1, k.max(1)) {
        let (t, next, errors, first_error) = (
            target.clone(),
            next.clone(),
            errors.clone(),
            first_error.clone(),
        );
        tasks.spawn(async move {
            let mut held = Vec::new();
            while Instant::now() < until {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= k as u64 {
                    break;
                }
                let user = t.user(n);
                let open = async {
                    let mut s = Session::connect(t.addr, t.proto).await?;
                    s.login_select(&user, &t.password).await?;
                    anyhow::Ok(s)
                };
                match timeout(SESSION_TIMEOUT, open).await {
                    Ok(Ok(s)) => held.push(s),
                    failed => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        let e = match failed {
                            Ok(Err(e)) => format!("{e:#}"),
                            _ => format!("{user}: no answer within {SESSION_TIMEOUT:?}"),
                        };
                        first_error.lock().await.get_or_insert(e);
                    }
                }
            }
            held
        });
    }
    let mut held = Vec::with_capacity(k);
    while let Some(r) = tasks.join_next().await {
        held.extend(r.context("an idle-phase task panicked")?);
    }
    let open_seconds = start.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = tree_mem(pids);
    let opened = held.len();
    drop(held);
    let first_error = first_error.lock().await.take();
    let per = |a: u64, b: u64| (a as f64 - b as f64) / opened.max(1) as f64;
    Ok(Idle {
        requested: k,
        opened,
        errors: errors.load(Ordering::Relaxed),
        first_error,
        before,
        after,
        kib_per_connection: per(after.rss_kib, before.rss_kib),
        pss_kib_per_connection: per(after.pss_kib, before.pss_kib),
        open_seconds,
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct Fetch {
    pub user: String,
    pub bytes_per_fetch: u64,
    pub mb_per_second: Vec<f64>,
    pub median_mb_per_second: f64,
}

/// Logs in as `user` and runs `FETCH 1:* BODY.PEEK[]` up to `reps` times
/// (stopping after `max_seconds`); megabytes (10^6 bytes of reply) per second.
pub async fn fetch(
    target: &Target,
    user: &str,
    reps: usize,
    max_seconds: f64,
) -> anyhow::Result<Fetch> {
    let until = Instant::now() + Duration::from_secs_f64(max_seconds);
    let mut s = Session::connect(target.addr, target.proto).await?;
    if target.proto != super::Proto::Imap {
        bail!("the fetch phase is IMAP only");
    }
    s.login_select(user, &target.password).await?;
    let mut rates = Vec::new();
    let mut bytes = 0;
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        bytes = s.imap("FETCH 1:* BODY.PEEK[]").await.context("FETCH")?;
        rates.push(bytes as f64 / 1e6 / t.elapsed().as_secs_f64());
        if Instant::now() > until {
            break;
        }
    }
    s.logout().await?;
    let mut sorted = rates.clone();
    sorted.sort_by(f64::total_cmp);
    Ok(Fetch {
        user: user.to_owned(),
        bytes_per_fetch: bytes,
        median_mb_per_second: sorted[sorted.len() / 2],
        mb_per_second: rates,
    })
}

/// Delivers `count` messages of about `size` bytes to `rcpt` over one LMTP
/// connection (RFC 2033), to fill a mailbox for [`fetch`].
pub async fn lmtp_fill(
    lmtp: SocketAddr,
    rcpt: &str,
    count: usize,
    size: usize,
) -> anyhow::Result<()> {
    let s = TcpStream::connect(lmtp).await?;
    let (r, mut w) = s.into_split();
    let mut r = BufReader::new(r);
    lmtp_reply(&mut r, '2').await?;
    w.write_all(b"LHLO bench.example\r\n").await?;
    lmtp_reply(&mut r, '2').await?;
    for n in 0..count {
        let head = format!("MAIL FROM:<bench@example.org>\r\nRCPT TO:<{rcpt}>\r\nDATA\r\n");
        w.write_all(head.as_bytes()).await?;
        lmtp_reply(&mut r, '2').await?;
        lmtp_reply(&mut r, '2').await?;
        lmtp_reply(&mut r, '3').await?;
        w.write_all(&message(size, n)).await?;
        lmtp_reply(&mut r, '2').await?;
    }
    w.write_all(b"QUIT\r\n").await?;
    Ok(())
}

/// Delivers one message with `subject` to `rcpt` over LMTP; Ok only when
/// the server acknowledged it (250 after DATA).
pub async fn lmtp_one(lmtp: SocketAddr, rcpt: &str, subject: &str) -> anyhow::Result<()> {
    let s = TcpStream::connect(lmtp).await?;
    let (r, mut w) = s.into_split();
    let mut r = BufReader::new(r);
    lmtp_reply(&mut r, '2').await?;
    let head = format!(
        "LHLO load.example\r\nMAIL FROM:<load@example.org>\r\nRCPT TO:<{rcpt}>\r\nDATA\r\n"
    );
    w.write_all(head.as_bytes()).await?;
    for want in ['2', '2', '2', '3'] {
        lmtp_reply(&mut r, want).await?;
    }
    let body = format!("From: load@example.org\r\nSubject: {subject}\r\n\r\nload\r\n.\r\n");
    w.write_all(body.as_bytes()).await?;
    lmtp_reply(&mut r, '2').await?;
    let _ = w.write_all(b"QUIT\r\n").await;
    Ok(())
}

/// Reads one (possibly multi-line) LMTP reply; fails unless its code
/// starts with `want`.
async fn lmtp_reply(
    r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    want: char,
) -> anyhow::Result<()> {
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).await? == 0 {
            bail!("LMTP connection closed");
        }
        if line.as_bytes().get(3) != Some(&b'-') {
            if !line.starts_with(want) {
                bail!("LMTP: {}", line.trim_end());
            }
            return Ok(());
        }
    }
}

/// A plain-text message of about `size` bytes, dot-terminated for DATA.
fn message(size: usize, n: usize) -> Vec<u8> {
    let mut m = format!(
        "From: bench@example.org\r\nTo: bulk@example.com\r\nSubject: bulk {n}\r\nMessage-ID: <{n}@bench.example>\r\n\r\n"
    )
    .into_bytes();
    let line = b"The quick brown fox jumps over the lazy dog, again and again and again.\r\n";
    while m.len() + line.len() <= size {
        m.extend_from_slice(line);
    }
    m.extend_from_slice(b".\r\n");
    m
}
