//! IMAP benchmark: Tandem's backend node against Debian's Dovecot 2.3 on the
//! same machine in the same run, over byte-identical Maildirs written
//! straight to disk (see `tests::bench::corpus`), one server at a time.
//!
//! - SELECT of a `--messages` mailbox the first time (no index yet: each
//!   server scans the Maildir and writes its UID list) and the second time
//!   (a new session); then `UID FETCH 1:* (FLAGS RFC822.SIZE ENVELOPE)` on
//!   it twice in that session (Dovecot caches envelopes after the first).
//! - `SEARCH TEXT <word>` in a `--search-messages` mailbox where the word is
//!   in the body of one message in 1,000: median of `--search-runs`.
//! - APPEND: `--append-clients` clients, each APPENDing 4 KiB messages to
//!   its own INBOX for `--seconds`; messages per second.
//! - Memory per idle session: `--sessions` connections, each LOGIN and
//!   SELECT INBOX of its own account (`--idle-messages` messages); growth
//!   of the server's memory (all its processes) divided by the sessions.
//!
//! ```text
//! cargo run --release -p tests --bin imap-bench
//! cargo run --release -p tests --bin imap-bench -- --quick
//! ```

// A benchmark times real work on the wall clock: std::time::Instant is
// meant here (no test pauses this clock).
#![allow(clippy::disallowed_types)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use clap::Parser;
use tokio::task::JoinSet;

use tests::backend::Backend;
use tests::bench::corpus::{self, NEEDLE, Spec};
use tests::bench::imap::Imap;
use tests::bench::procmem::{self, Memory};
use tests::servers::Dovecot;

#[derive(Parser)]
struct Args {
    /// Messages in the mailbox that is SELECTed and FETCHed.
    #[arg(long, default_value_t = 100_000)]
    messages: usize,
    /// Messages in the mailbox that is searched.
    #[arg(long, default_value_t = 10_000)]
    search_messages: usize,
    #[arg(long, default_value_t = 5)]
    search_runs: usize,
    #[arg(long, default_value_t = 4)]
    append_clients: usize,
    /// Length of the APPEND phase.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Idle authenticated sessions for the memory measurement.
    #[arg(long, default_value_t = 1000)]
    sessions: usize,
    /// Messages in the INBOX of each idle session's account.
    #[arg(long, default_value_t = 20)]
    idle_messages: usize,
    /// A small smoke run: 5,000 and 2,000 messages, 100 sessions, 3 s.
    #[arg(long)]
    quick: bool,
    /// Phases to run: select, search, append, sessions.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "select,search,append,sessions"
    )]
    phases: Vec<String>,
    /// Systems to run: tandem, dovecot.
    #[arg(long, value_delimiter = ',', default_value = "tandem,dovecot")]
    systems: Vec<String>,
    #[arg(long)]
    json: bool,
}

impl Args {
    fn phase(&self, p: &str) -> bool {
        self.phases.iter().any(|x| x == p)
    }
    fn big(&self) -> Spec {
        Spec {
            count: self.messages,
            seed: 1,
            needle_every: 0,
        }
    }
    fn searched(&self) -> Spec {
        Spec {
            count: self.search_messages,
            seed: 2,
            needle_every: 1000,
        }
    }
    fn idle(&self, i: usize) -> Spec {
        Spec {
            count: self.idle_messages,
            seed: 100 + i as u64,
            needle_every: 0,
        }
    }
}

/// Every phase (and the filling) ends within this.
const PHASE_LIMIT: Duration = Duration::from_secs(900);
const PASSWORD: &str = "secret";
const BIG: &str = "big@example.com";
const SEARCH: &str = "search@example.com";

fn appender(k: usize) -> String {
    format!("append{k}@example.com")
}

fn idler(i: usize) -> String {
    format!("idle{i}@example.com")
}

fn users(args: &Args) -> Vec<String> {
    let mut u = vec![BIG.to_owned(), SEARCH.to_owned()];
    u.extend((0..args.append_clients).map(appender));
    u.extend((0..args.sessions).map(idler));
    u
}

/// `/proc/loadavg`'s three averages, printed and kept for the report.
fn load(system: &str, phase: &str, notes: &mut Vec<String>) {
    let l = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let avg: Vec<&str> = l.split_whitespace().take(3).collect();
    let note = format!("{system} {phase}: load {}", avg.join(" "));
    eprintln!("{note}");
    notes.push(note);
}

#[derive(serde::Serialize)]
struct Result {
    system: String,
    fill_s: f64,
    select_first_s: f64,
    select_second_s: f64,
    fetch_first_s: f64,
    fetch_second_s: f64,
    search_median_ms: f64,
    search_first_ms: f64,
    appends_per_sec: f64,
    session_rss_kib: f64,
    session_pss_kib: f64,
    memory_before: Memory,
    memory_after: Memory,
    notes: Vec<String>,
}

impl Result {
    fn new(system: String) -> Result {
        Result {
            system,
            fill_s: f64::NAN,
            select_first_s: f64::NAN,
            select_second_s: f64::NAN,
            fetch_first_s: f64::NAN,
            fetch_second_s: f64::NAN,
            search_median_ms: f64::NAN,
            search_first_ms: f64::NAN,
            appends_per_sec: f64::NAN,
            session_rss_kib: f64::NAN,
            session_pss_kib: f64::NAN,
            memory_before: Memory::default(),
            memory_after: Memory::default(),
            notes: Vec::new(),
        }
    }
}

/// Writes every account's mail under `maildir(account)`.
fn fill(args: &Args, maildir: &(dyn Fn(&str) -> PathBuf + Sync)) -> anyhow::Result<()> {
    std::thread::scope(|s| {
        let big = s.spawn(|| corpus::fill(&maildir(BIG), args.big()));
        corpus::fill(&maildir(SEARCH), args.searched())?;
        for k in 0..args.append_clients {
            corpus::fill(
                &maildir(&appender(k)),
                Spec {
                    count: 0,
                    ..args.big()
                },
            )?;
        }
        for i in 0..args.sessions {
            corpus::fill(&maildir(&idler(i)), args.idle(i))?;
        }
        big.join()
            .map_err(|_| anyhow::anyhow!("fill thread panicked"))??;
        Ok(())
    })
}

fn secs(t: Instant) -> f64 {
    t.elapsed().as_secs_f64()
}

async fn select_phase(addr: SocketAddr, args: &Args, r: &mut Result) -> anyhow::Result<()> {
    let n = args.messages as u32;
    let mut c = Imap::login(addr, BIG, PASSWORD, None).await?;
    c.timeout = PHASE_LIMIT;
    let t = Instant::now();
    let s = c.command("SELECT INBOX").await?;
    r.select_first_s = secs(t);
    ensure!(
        s.exists == Some(n),
        "first SELECT: {:?} EXISTS, want {n}",
        s.exists
    );
    c.logout().await;

    let mut c = Imap::login(addr, BIG, PASSWORD, None).await?;
    c.timeout = PHASE_LIMIT;
    let t = Instant::now();
    let s = c.command("SELECT INBOX").await?;
    r.select_second_s = secs(t);
    ensure!(s.exists == Some(n), "second SELECT: {:?} EXISTS", s.exists);
    for first in [true, false] {
        let t = Instant::now();
        let s = c
            .command("UID FETCH 1:* (FLAGS RFC822.SIZE ENVELOPE)")
            .await?;
        let took = secs(t);
        ensure!(s.fetches == n as usize, "FETCH: {} responses", s.fetches);
        eprintln!(
            "  UID FETCH: {} responses, {:.1} MB in {took:.2} s",
            s.fetches,
            s.bytes as f64 / 1e6
        );
        if first {
            r.fetch_first_s = took;
        } else {
            r.fetch_second_s = took;
        }
    }
    c.logout().await;
    Ok(())
}

async fn search_phase(addr: SocketAddr, args: &Args, r: &mut Result) -> anyhow::Result<()> {
    let mut c = Imap::login(addr, SEARCH, PASSWORD, Some("INBOX")).await?;
    c.timeout = PHASE_LIMIT;
    let want = args.searched().needles();
    let mut ms = Vec::new();
    for _ in 0..args.search_runs.max(1) {
        let t = Instant::now();
        let s = c.command(&format!("SEARCH TEXT {NEEDLE}")).await?;
        ms.push(secs(t) * 1e3);
        ensure!(
            s.search.len() == want,
            "SEARCH found {:?}, want {want}",
            s.search
        );
    }
    r.search_first_ms = ms[0];
    ms.sort_by(f64::total_cmp);
    r.search_median_ms = ms[ms.len() / 2];
    eprintln!("  SEARCH: {want} hits, runs {ms:.1?} ms");
    c.logout().await;
    Ok(())
}

/// A 4 KiB message with CRLF line ends, as IMAP sends it.
fn message(n: u64) -> Vec<u8> {
    let mut m = format!(
        "From: Bench <bench@example.org>\r\nTo: someone@example.com\r\nSubject: append {n}\r\n\
         Date: Thu, 01 Jan 2026 00:00:00 +0000\r\nMessage-ID: <{n}@append.bench>\r\n\r\n"
    )
    .into_bytes();
    let line = b"The quick brown fox jumps over the lazy dog, again and again and again.\r\n";
    while m.len() + line.len() <= 4096 {
        m.extend_from_slice(line);
    }
    m
}

async fn append_phase(addr: SocketAddr, args: &Args, r: &mut Result) -> anyhow::Result<()> {
    let until = Instant::now() + Duration::from_secs(args.seconds);
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    for k in 0..args.append_clients {
        let done = done.clone();
        tasks.spawn(async move {
            let mut c = Imap::login(addr, &appender(k), PASSWORD, None).await?;
            let mut n = k as u64 * 1_000_000;
            while Instant::now() < until {
                n += 1;
                c.append("INBOX", &message(n)).await?;
                done.fetch_add(1, Ordering::Relaxed);
            }
            c.logout().await;
            anyhow::Ok(())
        });
    }
    while let Some(t) = tasks.join_next().await {
        t??;
    }
    r.appends_per_sec = done.load(Ordering::Relaxed) as f64 / secs(start);
    Ok(())
}

async fn sessions_phase(
    addr: SocketAddr,
    pid: u32,
    args: &Args,
    r: &mut Result,
) -> anyhow::Result<()> {
    tokio::time::sleep(Duration::from_secs(1)).await;
    r.memory_before = procmem::tree(pid);
    let mut open = Vec::with_capacity(args.sessions);
    // 32 logins at a time: a client population arriving, not a flood.
    for chunk in (0..args.sessions).collect::<Vec<_>>().chunks(32) {
        let mut set = JoinSet::new();
        for &i in chunk {
            set.spawn(async move { Imap::login(addr, &idler(i), PASSWORD, Some("INBOX")).await });
        }
        while let Some(c) = set.join_next().await {
            open.push(c??);
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    r.memory_after = procmem::tree(pid);
    let (b, a) = (r.memory_before, r.memory_after);
    let k = open.len() as f64;
    r.session_rss_kib = (a.rss_kib as f64 - b.rss_kib as f64) / k;
    r.session_pss_kib = (a.pss_kib as f64 - b.pss_kib as f64) / k;
    eprintln!(
        "  {} sessions: {} -> {} processes, RSS {} -> {} KiB, PSS {} -> {} KiB",
        open.len(),
        b.processes,
        a.processes,
        b.rss_kib,
        a.rss_kib,
        b.pss_kib,
        a.pss_kib
    );
    drop(open);
    Ok(())
}

async fn bounded<F: Future<Output = anyhow::Result<()>>>(what: &str, f: F) -> anyhow::Result<()> {
    tokio::time::timeout(PHASE_LIMIT, f)
        .await
        .with_context(|| format!("{what}: over {} s", PHASE_LIMIT.as_secs()))?
        .with_context(|| what.to_owned())
}

async fn run(
    system: String,
    addr: SocketAddr,
    pid: u32,
    args: &Args,
    mut r: Result,
) -> anyhow::Result<Result> {
    let mut notes = std::mem::take(&mut r.notes);
    if args.phase("select") {
        load(&system, "select+fetch", &mut notes);
        bounded("select", select_phase(addr, args, &mut r)).await?;
        eprintln!(
            "  SELECT {:.2} s / {:.2} s, FETCH {:.2} s / {:.2} s",
            r.select_first_s, r.select_second_s, r.fetch_first_s, r.fetch_second_s
        );
    }
    if args.phase("search") {
        load(&system, "search", &mut notes);
        bounded("search", search_phase(addr, args, &mut r)).await?;
    }
    if args.phase("append") {
        load(&system, "append", &mut notes);
        bounded("append", append_phase(addr, args, &mut r)).await?;
        eprintln!("  APPEND {:.0}/s", r.appends_per_sec);
    }
    if args.phase("sessions") {
        load(&system, "sessions", &mut notes);
        bounded("sessions", sessions_phase(addr, pid, args, &mut r)).await?;
    }
    r.notes = notes;
    Ok(r)
}

fn tandem(args: &Args, users: &[String]) -> anyhow::Result<(Backend, Result)> {
    let mut r = Result::new("Tandem".into());
    let b =
        Backend::start_with("  limits:\n    max_connections: 100000\n    max_per_ip: 100000\n")?;
    let list: String = users
        .iter()
        .map(|u| format!("{u}:{{PLAIN}}{PASSWORD}\n"))
        .collect();
    let file = b.config().with_file_name("users.passwd");
    std::fs::write(&file, list)?;
    b.tandem_ok(&["account", "import", &file.display().to_string()])?;
    load("tandem", "fill", &mut r.notes);
    let t = Instant::now();
    fill(args, &|u: &str| b.maildir(u))?;
    r.fill_s = secs(t);
    Ok((b, r))
}

fn dovecot(args: &Args, users: &[String]) -> anyhow::Result<(Dovecot, Result)> {
    let version = Command::new("dovecot")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let version = version.split_whitespace().next().unwrap_or("");
    let mut r = Result::new(format!("Dovecot {version}"));
    let pairs: Vec<(&str, &str)> = users.iter().map(|u| (u.as_str(), PASSWORD)).collect();
    let d = Dovecot::start_imap_users(&pairs, args.sessions)?;
    load("dovecot", "fill", &mut r.notes);
    let t = Instant::now();
    fill(args, &|u: &str| d.maildir(u))?;
    chown_nobody(&d.dir().join("mail"))?;
    r.fill_s = secs(t);
    Ok((d, r))
}

fn chown_nobody(path: &Path) -> anyhow::Result<()> {
    let ok = Command::new("chown")
        .arg("-R")
        .arg("nobody:nogroup")
        .arg(path)
        .status()?
        .success();
    ensure!(ok, "chown -R nobody {}", path.display());
    Ok(())
}

/// The soft limit on open files must cover the idle sessions.
fn check_files(sessions: usize) -> anyhow::Result<()> {
    let limits = std::fs::read_to_string("/proc/self/limits")?;
    let soft = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(usize::MAX);
    if soft < sessions + 200 {
        bail!(
            "ulimit -n is {soft}: raise it above {} for --sessions {sessions}",
            sessions + 200
        );
    }
    Ok(())
}

fn cell(v: f64, digits: usize) -> String {
    if v.is_nan() {
        "–".into()
    } else {
        format!("{v:.digits$}")
    }
}

fn print_table(rows: &[&Result]) {
    println!(
        "| system | SELECT 1st s | SELECT 2nd s | UID FETCH 1st s | UID FETCH 2nd s | \
         SEARCH TEXT ms (median) | APPEND msg/s | KiB/session RSS | KiB/session PSS |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.system,
            cell(r.select_first_s, 3),
            cell(r.select_second_s, 3),
            cell(r.fetch_first_s, 2),
            cell(r.fetch_second_s, 2),
            cell(r.search_median_ms, 1),
            cell(r.appends_per_sec, 0),
            cell(r.session_rss_kib, 0),
            cell(r.session_pss_kib, 0),
        );
    }
    if let [t, d] = rows {
        // Each ratio reads "how many times better Tandem is": time and memory
        // as Dovecot ÷ Tandem, the APPEND rate as Tandem ÷ Dovecot.
        let x = |better: f64, worse: f64| {
            let v = better / worse;
            if v.is_nan() {
                "–".into()
            } else {
                format!("**{v:.2}×**")
            }
        };
        println!(
            "| **Tandem advantage** | {} | {} | {} | {} | {} | {} | {} | {} |",
            x(d.select_first_s, t.select_first_s),
            x(d.select_second_s, t.select_second_s),
            x(d.fetch_first_s, t.fetch_first_s),
            x(d.fetch_second_s, t.fetch_second_s),
            x(d.search_median_ms, t.search_median_ms),
            x(t.appends_per_sec, d.appends_per_sec),
            x(d.session_rss_kib, t.session_rss_kib),
            x(d.session_pss_kib, t.session_pss_kib),
        );
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    if args.quick {
        args.messages = 5_000;
        args.search_messages = 2_000;
        args.search_runs = 3;
        args.seconds = 3;
        args.sessions = 100;
    }
    check_files(args.sessions)?;
    let users = users(&args);
    let mut results = Vec::new();
    for system in args.systems.clone() {
        let r = match system.as_str() {
            "tandem" => {
                let (b, r) = tokio::task::block_in_place(|| tandem(&args, &users))?;
                eprintln!("tandem: filled in {:.1} s", r.fill_s);
                let pid = b.pid().context("tandem is not running")?;
                let out = run(system, b.imap_addr(), pid, &args, r).await;
                if out.is_err() {
                    eprintln!("end of the tandem log:\n{}", b.log_tail());
                }
                tokio::task::block_in_place(|| drop(b));
                out?
            }
            "dovecot" => {
                let (d, r) = tokio::task::block_in_place(|| dovecot(&args, &users))?;
                eprintln!("dovecot: filled in {:.1} s", r.fill_s);
                let pid = d.pid().context("dovecot is not running")?;
                let addr = d.imap_addr().context("dovecot has no IMAP listener")?;
                let out = run(system, addr, pid, &args, r).await;
                if out.is_err() {
                    let log = d.log();
                    let lines: Vec<&str> = log.lines().collect();
                    let tail = &lines[lines.len().saturating_sub(20)..];
                    eprintln!("end of the dovecot log:\n{}", tail.join("\n"));
                }
                tokio::task::block_in_place(|| drop(d));
                out?
            }
            other => bail!("unknown system {other:?} (tandem, dovecot)"),
        };
        results.push(r);
    }

    if args.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
        return Ok(());
    }
    println!(
        "{} messages (SELECT, FETCH), SEARCH in {}, {} APPEND clients for {} s, {} idle sessions\n",
        args.messages, args.search_messages, args.append_clients, args.seconds, args.sessions
    );
    print_table(&results.iter().collect::<Vec<_>>());
    println!();
    for r in &results {
        println!(
            "- {}: filled in {:.1} s; {}",
            r.system,
            r.fill_s,
            r.notes.join("; ")
        );
    }
    Ok(())
}
