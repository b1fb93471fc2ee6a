//! A bounded load generator for any IMAP or POP3 endpoint on loopback.
//!
//! ```text
//! loadgen --target 127.0.0.1:143 --proto imap --user-pattern user%d@example.com \
//!         --password pass --users 1000 --clients 20 --seconds 10 logins
//! loadgen ... idle --connections 1000 --pids 1234,5678
//! loadgen ... fetch --fetch-user bulk@example.com
//! ```
//!
//! - `logins`: `--clients` concurrent clients loop connect, LOGIN, SELECT
//!   INBOX, LOGOUT (POP3: USER, PASS, STAT, QUIT) for `--seconds` or
//!   `--max-sessions`; sessions per second.
//! - `idle`: opens `--connections` logged-in connections and reports the
//!   growth of the summed VmRSS (and PSS) of `--pids` and all their
//!   descendants, per connection.
//! - `fetch`: `FETCH 1:* BODY.PEEK[]` of one user's INBOX, `--reps` times;
//!   MB/s of reply.

use std::net::SocketAddr;

use clap::{Parser, Subcommand};

use tests::load::{Proto, Target, mem, phases, raise_nofile};

#[derive(Parser)]
struct Args {
    /// HOST:PORT, loopback only.
    #[arg(long, global = true, default_value = "127.0.0.1:143")]
    target: SocketAddr,
    #[arg(long, global = true, value_enum, default_value = "imap")]
    proto: Proto,
    /// Login names, `%d` replaced by 1..=users.
    #[arg(long, global = true, default_value = "user%d@example.com")]
    user_pattern: String,
    #[arg(long, global = true, default_value = "pass")]
    password: String,
    #[arg(long, global = true, default_value_t = 1000)]
    users: usize,
    /// Concurrent clients (idle: connections opened at a time).
    #[arg(long, global = true, default_value_t = 20)]
    clients: usize,
    /// Length of the logins phase; the other phases stop after 10x this.
    #[arg(long, global = true, default_value_t = 10.0)]
    seconds: f64,
    /// Print the result as JSON.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Logins per second.
    Logins {
        /// Stop after this many sessions even if time remains.
        #[arg(long, default_value_t = 1_000_000)]
        max_sessions: u64,
    },
    /// Memory per idle authenticated connection.
    Idle {
        #[arg(long, default_value_t = 1000)]
        connections: usize,
        /// Server processes whose trees are measured.
        #[arg(long, value_delimiter = ',', required = true)]
        pids: Vec<u32>,
    },
    /// Bulk FETCH throughput (IMAP).
    Fetch {
        /// Default: the first user of the pattern.
        #[arg(long)]
        fetch_user: Option<String>,
        #[arg(long, default_value_t = 5)]
        reps: usize,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let t = Target::new(
        args.target,
        args.proto,
        &args.user_pattern,
        &args.password,
        args.users,
    )?;
    let load = mem::load_average();
    match args.mode {
        Mode::Logins { max_sessions } => {
            let r = phases::logins(&t, args.clients, args.seconds, max_sessions).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!(
                    "logins {}: {:.0}/s ({} sessions, {} errors, {} clients, {:.1} s; load {load})",
                    t.addr, r.per_second, r.sessions, r.errors, r.clients, r.seconds
                );
            }
            if let Some(e) = r.first_error {
                eprintln!("first error: {e}");
            }
        }
        Mode::Idle { connections, pids } => {
            let nofile = raise_nofile();
            let k = fit_connections(connections, nofile);
            let r = phases::idle(&t, k, &pids, args.clients, args.seconds * 10.0).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!(
                    "idle {}: {:.1} KiB RSS ({:.1} KiB PSS) per connection; {} of {} opened in {:.1} s, \
                     {} errors; RSS {} -> {} KiB over {} -> {} processes; load {load}",
                    t.addr,
                    r.kib_per_connection,
                    r.pss_kib_per_connection,
                    r.opened,
                    r.requested,
                    r.open_seconds,
                    r.errors,
                    r.before.rss_kib,
                    r.after.rss_kib,
                    r.before.processes,
                    r.after.processes
                );
            }
            if let Some(e) = r.first_error {
                eprintln!("first error: {e}");
            }
        }
        Mode::Fetch { fetch_user, reps } => {
            let user = fetch_user.unwrap_or_else(|| t.user(0));
            let r = phases::fetch(&t, &user, reps, args.seconds * 10.0).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!(
                    "fetch {} as {}: {:.1} MB/s median ({} bytes per FETCH, runs {:?}); load {load}",
                    t.addr, r.user, r.median_mb_per_second, r.bytes_per_fetch, r.mb_per_second
                );
            }
        }
    }
    Ok(())
}

/// Fewer connections than asked when the open-files limit is too low for
/// them (one descriptor each here, plus slack), saying so.
fn fit_connections(want: usize, nofile: u64) -> usize {
    let room = nofile.saturating_sub(64) as usize;
    if want > room {
        eprintln!(
            "the open-files limit is {nofile}: opening {room} connections instead of {want} \
             (raise it with `ulimit -n 65536` as root)"
        );
        return room;
    }
    want
}
