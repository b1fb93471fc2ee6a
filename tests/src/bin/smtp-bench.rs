//! SMTP benchmark: Tandem's frontend against Debian's Postfix, both taking
//! mail over SMTP on loopback and handing it by LMTP to the same Tandem
//! backend node (fsync on), in the same run. Postfix's own `smtp-source` is
//! the load generator for both.
//!
//! For each target: `--clients` concurrent smtp-source processes, each
//! sending `--messages` messages of `--size` bytes to one account of its
//! own over `--sessions` parallel sessions. Two figures:
//! - accepted/s: messages answered 250, over the time smtp-source took;
//! - delivered/s: messages in the backend's Maildirs, over the time from
//!   the first connection until the last one is there (end to end: SMTP,
//!   the relay's queue or immediate delivery, LMTP, fsync in the store).
//!
//! ```text
//! cargo build --release -p ops -p tests --bin smtp-bench
//! TANDEM_BIN=target/release/tandem target/release/smtp-bench   # as root: Postfix's master needs it
//! ```

// A benchmark times real work on the wall clock: std::time::Instant is
// meant here (no test pauses this clock).
#![allow(clippy::disallowed_types)]

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;

use tests::backend::Backend;
use tests::frontend::Frontend;
use tests::servers::Postfix;

#[derive(Parser)]
struct Args {
    /// Concurrent smtp-source processes, each to its own account.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Parallel SMTP sessions per smtp-source.
    #[arg(long, default_value_t = 4)]
    sessions: usize,
    /// Messages per smtp-source.
    #[arg(long, default_value_t = 2000)]
    messages: usize,
    /// Message size in bytes.
    #[arg(long, default_value_t = 4096)]
    size: usize,
    #[arg(long)]
    json: bool,
}

struct Figures {
    accepted_per_s: f64,
    delivered_per_s: f64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let smtp_source = tests::clients::require("smtp-source", "postfix");
    let backend = Backend::start().context("start the backend")?;
    let users: Vec<String> = (0..args.clients)
        .map(|i| format!("bench{i}@example.com"))
        .collect();
    for u in &users {
        backend.add_account(u, "pw")?;
    }
    let frontend = Frontend::start(&backend, "").context("start the frontend")?;
    let postfix =
        Postfix::start_relay(&["example.com"], backend.lmtp_addr()).context("start Postfix")?;

    let tandem = run(&args, &smtp_source, frontend.smtp_addr(), &backend, &users)?;
    let peer = run(&args, &smtp_source, postfix.addr(), &backend, &users)?;
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "tandem": {"accepted_per_s": tandem.accepted_per_s, "delivered_per_s": tandem.delivered_per_s},
                "postfix": {"accepted_per_s": peer.accepted_per_s, "delivered_per_s": peer.delivered_per_s},
            })
        );
        return Ok(());
    }
    println!(
        "{} clients x {} sessions, {} messages of {} bytes each, to {} accounts\n",
        args.clients,
        args.sessions,
        args.messages,
        args.size,
        users.len()
    );
    println!("| system | accepted msg/s | delivered msg/s (end to end) |");
    println!("|---|---:|---:|");
    println!(
        "| Tandem frontend | {:.0} | {:.0} |",
        tandem.accepted_per_s, tandem.delivered_per_s
    );
    println!(
        "| Postfix 3.7 | {:.0} | {:.0} |",
        peer.accepted_per_s, peer.delivered_per_s
    );
    println!(
        "| **ratio Tandem ÷ Postfix** | **{:.2}×** | **{:.2}×** |",
        ratio(tandem.accepted_per_s, peer.accepted_per_s),
        ratio(tandem.delivered_per_s, peer.delivered_per_s)
    );
    Ok(())
}

/// Messages in the `new/` of every account.
fn delivered(backend: &Backend, users: &[String]) -> usize {
    users
        .iter()
        .map(|u| std::fs::read_dir(backend.maildir(u).join("new")).map_or(0, |d| d.count()))
        .sum()
}

fn run(
    args: &Args,
    smtp_source: &std::path::Path,
    target: SocketAddr,
    backend: &Backend,
    users: &[String],
) -> anyhow::Result<Figures> {
    let before = delivered(backend, users);
    let want = before + args.clients * args.messages;
    let started = Instant::now();
    let children = users
        .iter()
        .map(|u| {
            Command::new(smtp_source)
                .args(["-s", &args.sessions.to_string()])
                .args(["-m", &args.messages.to_string()])
                .args(["-l", &args.size.to_string()])
                .args(["-f", "sender@example.org", "-t", u])
                .arg(target.to_string())
                .spawn()
                .context("run smtp-source")
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    for mut c in children {
        let status = c.wait()?;
        if !status.success() {
            bail!("smtp-source against {target} failed: {status}");
        }
    }
    let accepted = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(600);
    while delivered(backend, users) < want {
        if Instant::now() > deadline {
            bail!(
                "{target}: only {} of {} messages delivered after 10 minutes",
                delivered(backend, users) - before,
                want - before
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let done = started.elapsed();
    let n = (args.clients * args.messages) as f64;
    Ok(Figures {
        accepted_per_s: n / accepted.as_secs_f64(),
        delivered_per_s: n / done.as_secs_f64(),
    })
}
