//! Backend benchmark: Tandem's backend node against Debian's Dovecot on the
//! same machine in the same run, both fsyncing deliveries.
//!
//! - LMTP: concurrent clients deliver 4 KiB messages (one connection each,
//!   pipelined MAIL/RCPT/DATA, transactions back to back) for `--seconds`;
//!   deliveries per second.
//! - POP3: one mailbox of `--messages` messages of 64 KiB; concurrent
//!   clients log in, RETR every message, QUIT; megabytes per second.
//!
//! ```text
//! cargo run --release -p tests --bin backend-bench -- --seconds 10
//! ```

// A benchmark times real work on the wall clock: std::time::Instant is
// meant here (no test pauses this clock).
#![allow(clippy::disallowed_types)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use tests::backend::Backend;
use tests::servers::Dovecot;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Concurrent LMTP clients.
    #[arg(long, default_value_t = 8)]
    lmtp_clients: usize,
    /// Concurrent POP3 clients.
    #[arg(long, default_value_t = 4)]
    pop3_clients: usize,
    /// Recipients spread over this many accounts.
    #[arg(long, default_value_t = 50)]
    users: usize,
    /// Messages in the POP3 mailbox.
    #[arg(long, default_value_t = 200)]
    messages: usize,
    /// Phases to run: lmtp, pop3.
    #[arg(long, value_delimiter = ',', default_value = "lmtp,pop3")]
    phases: Vec<String>,
    #[arg(long)]
    json: bool,
}

struct Client {
    r: BufReader<OwnedReadHalf>,
    w: OwnedWriteHalf,
    line: String,
}

impl Client {
    async fn connect(addr: SocketAddr) -> anyhow::Result<Client> {
        let s = TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        let (r, w) = s.into_split();
        Ok(Client {
            r: BufReader::with_capacity(256 * 1024, r),
            w,
            line: String::new(),
        })
    }

    async fn line(&mut self) -> anyhow::Result<&str> {
        self.line.clear();
        if self.r.read_line(&mut self.line).await? == 0 {
            bail!("connection closed");
        }
        Ok(self.line.trim_end())
    }

    /// Reads a reply (multi-line aware) and checks its first digit.
    async fn reply(&mut self, want: u8) -> anyhow::Result<()> {
        loop {
            let l = self.line().await?;
            let b = l.as_bytes();
            if b.len() < 4 {
                bail!("short reply {l:?}");
            }
            if b[3] != b'-' {
                if b[0] != want {
                    bail!("unexpected reply {l:?}");
                }
                return Ok(());
            }
        }
    }

    async fn pop_ok(&mut self) -> anyhow::Result<()> {
        let l = self.line().await?;
        if !l.starts_with("+OK") {
            bail!("POP3 error {l:?}");
        }
        Ok(())
    }

    /// Reads a multi-line POP3 answer to the end; its size in bytes.
    async fn pop_multi(&mut self) -> anyhow::Result<u64> {
        let mut bytes = 0;
        let mut buf = Vec::with_capacity(8192);
        loop {
            buf.clear();
            let n = self.r.read_until(b'\n', &mut buf).await?;
            if n == 0 {
                bail!("connection closed in a multi-line answer");
            }
            if buf == b".\r\n" {
                return Ok(bytes);
            }
            bytes += n as u64;
        }
    }
}

fn reader(k: usize) -> String {
    format!("reader{k}@example.com")
}

fn user(i: usize) -> String {
    format!("user{i}@example.com")
}

fn message(size: usize, n: u64) -> Vec<u8> {
    let mut m = format!(
        "From: bench@example.org\r\nTo: someone@example.com\r\nSubject: bench {n}\r\nMessage-ID: <{n}@bench>\r\n\r\n"
    )
    .into_bytes();
    let line = b"The quick brown fox jumps over the lazy dog, again and again and again.\r\n";
    while m.len() < size {
        m.extend_from_slice(line);
    }
    m.extend_from_slice(b".\r\n");
    m
}

async fn lmtp_client(
    addr: SocketAddr,
    users: usize,
    id: usize,
    until: Instant,
    done: Arc<AtomicU64>,
) -> anyhow::Result<()> {
    let mut c = Client::connect(addr).await?;
    c.reply(b'2').await?;
    c.w.write_all(b"LHLO bench.example\r\n").await?;
    c.reply(b'2').await?;
    let mut n = id as u64 * 1_000_000;
    while Instant::now() < until {
        n += 1;
        let rcpt = user(n as usize % users);
        let head = format!("MAIL FROM:<bench@example.org>\r\nRCPT TO:<{rcpt}>\r\nDATA\r\n");
        c.w.write_all(head.as_bytes()).await?;
        c.reply(b'2').await?;
        c.reply(b'2').await?;
        c.reply(b'3').await?;
        c.w.write_all(&message(4096, n)).await?;
        c.reply(b'2').await?;
        done.fetch_add(1, Ordering::Relaxed);
    }
    c.w.write_all(b"QUIT\r\n").await?;
    Ok(())
}

/// Deliveries per second.
async fn lmtp_phase(addr: SocketAddr, args: &Args) -> anyhow::Result<f64> {
    let until = Instant::now() + Duration::from_secs(args.seconds);
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..args.lmtp_clients)
        .map(|i| tokio::spawn(lmtp_client(addr, args.users, i, until, done.clone())))
        .collect();
    for t in tasks {
        t.await??;
    }
    Ok(done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64())
}

async fn fill(lmtp: SocketAddr, rcpt: &str, count: usize) -> anyhow::Result<()> {
    let mut c = Client::connect(lmtp).await?;
    c.reply(b'2').await?;
    c.w.write_all(b"LHLO bench.example\r\n").await?;
    c.reply(b'2').await?;
    for n in 0..count {
        let head = format!("MAIL FROM:<bench@example.org>\r\nRCPT TO:<{rcpt}>\r\nDATA\r\n");
        c.w.write_all(head.as_bytes()).await?;
        c.reply(b'2').await?;
        c.reply(b'2').await?;
        c.reply(b'3').await?;
        c.w.write_all(&message(64 * 1024, n as u64)).await?;
        c.reply(b'2').await?;
    }
    Ok(())
}

async fn pop3_client(
    addr: SocketAddr,
    user: String,
    messages: usize,
    until: Instant,
    bytes: Arc<AtomicU64>,
) -> anyhow::Result<()> {
    while Instant::now() < until {
        let mut c = Client::connect(addr).await?;
        c.pop_ok().await?;
        c.w.write_all(format!("USER {user}\r\nPASS secret\r\n").as_bytes())
            .await?;
        c.pop_ok().await?;
        c.pop_ok().await?;
        for i in 1..=messages {
            c.w.write_all(format!("RETR {i}\r\n").as_bytes()).await?;
            c.pop_ok().await?;
            bytes.fetch_add(c.pop_multi().await?, Ordering::Relaxed);
        }
        c.w.write_all(b"QUIT\r\n").await?;
        c.pop_ok().await?;
        let mut rest = Vec::new();
        let _ = c.r.read_to_end(&mut rest).await;
    }
    Ok(())
}

/// Megabytes per second retrieved.
async fn pop3_phase(addr: SocketAddr, args: &Args) -> anyhow::Result<f64> {
    let until = Instant::now() + Duration::from_secs(args.seconds);
    let bytes = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..args.pop3_clients)
        .map(|k| {
            tokio::spawn(pop3_client(
                addr,
                reader(k),
                args.messages,
                until,
                bytes.clone(),
            ))
        })
        .collect();
    for t in tasks {
        t.await??;
    }
    Ok(bytes.load(Ordering::Relaxed) as f64 / 1e6 / start.elapsed().as_secs_f64())
}

#[derive(serde::Serialize)]
struct Result {
    system: &'static str,
    lmtp_deliveries_per_sec: f64,
    pop3_retr_mb_per_sec: f64,
}

async fn run(
    system: &'static str,
    lmtp: SocketAddr,
    pop3: SocketAddr,
    args: &Args,
) -> anyhow::Result<Result> {
    let phase = |p: &str| args.phases.iter().any(|x| x == p);
    let mut r = Result {
        system,
        lmtp_deliveries_per_sec: f64::NAN,
        pop3_retr_mb_per_sec: f64::NAN,
    };
    if phase("lmtp") {
        eprintln!("{system}: LMTP for {} s", args.seconds);
        r.lmtp_deliveries_per_sec = lmtp_phase(lmtp, args).await.context("lmtp")?;
    }
    if phase("pop3") {
        eprintln!(
            "{system}: filling the POP3 mailbox with {} messages",
            args.messages
        );
        // One mailbox per client: a POP3 session locks its maildrop.
        for k in 0..args.pop3_clients {
            fill(lmtp, &reader(k), args.messages)
                .await
                .context("fill")?;
        }
        eprintln!("{system}: POP3 for {} s", args.seconds);
        r.pop3_retr_mb_per_sec = pop3_phase(pop3, args).await.context("pop3")?;
    }
    Ok(r)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut users: Vec<String> = (0..args.users).map(user).collect();
    users.extend((0..args.pop3_clients).map(reader));

    let backend = tokio::task::block_in_place(|| -> anyhow::Result<Backend> {
        let b = Backend::start()?;
        let mut list = String::new();
        for u in &users {
            list.push_str(&format!("{u}:{{PLAIN}}secret\n"));
        }
        let file = b.config().with_file_name("users.passwd");
        std::fs::write(&file, list)?;
        b.tandem_ok(&["account", "import", &file.display().to_string()])?;
        Ok(b)
    })?;
    let tandem = run("tandem", backend.lmtp_addr(), backend.pop3_addr(), &args).await?;
    drop(backend);

    let pairs: Vec<(&str, &str)> = users.iter().map(|u| (u.as_str(), "secret")).collect();
    let dovecot = tokio::task::block_in_place(|| Dovecot::start(&pairs))?;
    let peer = run("dovecot", dovecot.lmtp_addr(), dovecot.pop3_addr(), &args).await?;

    if args.json {
        println!("{}", serde_json::to_string_pretty(&[&tandem, &peer])?);
        return Ok(());
    }
    println!(
        "{:<8} {:>16} {:>16}",
        "system", "LMTP deliveries/s", "POP3 RETR MB/s"
    );
    for r in [&tandem, &peer] {
        println!(
            "{:<8} {:>16.0} {:>16.1}",
            r.system, r.lmtp_deliveries_per_sec, r.pop3_retr_mb_per_sec
        );
    }
    println!(
        "ratio tandem/dovecot: LMTP {:.2}x, POP3 {:.2}x",
        tandem.lmtp_deliveries_per_sec / peer.lmtp_deliveries_per_sec,
        tandem.pop3_retr_mb_per_sec / peer.pop3_retr_mb_per_sec
    );
    Ok(())
}
