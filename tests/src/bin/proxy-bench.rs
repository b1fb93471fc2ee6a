//! Proxy benchmark: Tandem's frontend against Dovecot as a proxy and nginx's
//! mail proxy, all in front of the same Dovecot IMAP backend, and against
//! that backend reached directly; one run, everything on loopback in
//! temporary directories.
//!
//! Phases, per target: logins/s (connect, LOGIN, SELECT INBOX, LOGOUT) at
//! `--clients` concurrent clients; bulk `FETCH 1:* BODY.PEEK[]` of a
//! `--messages`-message INBOX; memory per idle authenticated connection
//! (`--connections` of them) of the proxy's processes, or of the backend's
//! for the direct row. Printed as a markdown table with ratios to direct.
//!
//! ```text
//! cargo build --release -p tests --bin proxy-bench -p ops
//! target/release/proxy-bench
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use serde::Serialize;

use tests::backend::{Backend, PROXY_IDENTITY, PROXY_SECRET};
use tests::frontend::Frontend;
use tests::load::peers::{DovecotBackend, DovecotProxy, NginxMail};
use tests::load::phases::{self, Fetch, Idle, Logins};
use tests::load::{Proto, Target, mem, raise_nofile};

#[derive(Parser)]
struct Args {
    /// Accounts user1..userN@example.com.
    #[arg(long, default_value_t = 1000)]
    users: usize,
    #[arg(long, default_value_t = 20)]
    clients: usize,
    /// Length of each logins phase.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Idle connections opened per target.
    #[arg(long, default_value_t = 1000)]
    connections: usize,
    /// Messages in the bulk-FETCH mailbox, and their size.
    #[arg(long, default_value_t = 1000)]
    messages: usize,
    #[arg(long, default_value_t = 10 * 1024)]
    message_size: usize,
    #[arg(long, default_value_t = 5)]
    fetch_reps: usize,
    /// nginx worker processes (Dovecot's proxy has 2 login processes).
    #[arg(long, default_value_t = 2)]
    nginx_workers: usize,
    /// Targets, in order: direct, tandem, dovecot-proxy, nginx.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "direct,tandem,dovecot-proxy,nginx"
    )]
    targets: Vec<String>,
    /// Phases: logins, fetch, idle.
    #[arg(long, value_delimiter = ',', default_value = "logins,fetch,idle")]
    phases: Vec<String>,
    #[arg(long)]
    json: bool,
}

const PASSWORD: &str = "pass";
const PATTERN: &str = "user%d@example.com";
const BULK: &str = "bulk@example.com";
/// The Tandem frontend connects to backends from here (tests::frontend).
const FRONTEND_SOURCE: &str = "127.0.0.2";

#[derive(Default, Serialize)]
struct Row {
    name: String,
    /// Whose memory the idle phase measures.
    measured: String,
    skipped: Option<String>,
    logins: Option<Logins>,
    logins_load: Option<String>,
    fetch: Option<Fetch>,
    fetch_load: Option<String>,
    idle: Option<Idle>,
    idle_load: Option<String>,
    failures: Vec<String>,
}

struct Running {
    addr: SocketAddr,
    pids: Vec<u32>,
    row: Row,
}

/// The servers that stay up for the whole run; dropped (and stopped) last.
struct Servers {
    _nginx: Option<NginxMail>,
    _proxy: Option<DovecotProxy>,
    _frontend: Option<Frontend>,
    _tandem: Option<Backend>,
    dovecot: DovecotBackend,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let nofile = raise_nofile();
    // Here one descriptor per idle connection, two in each proxy; the
    // servers inherit this limit.
    let room = (nofile.saturating_sub(200) / 2) as usize;
    let connections = if args.connections > room {
        eprintln!(
            "open-files limit {nofile}: {room} idle connections instead of {} (run `ulimit -n 65536` first)",
            args.connections
        );
        room
    } else {
        args.connections
    };
    let users: Vec<(String, String)> = (1..=args.users)
        .map(|k| (PATTERN.replace("%d", &k.to_string()), PASSWORD.to_owned()))
        .chain([(BULK.to_owned(), PASSWORD.to_owned())])
        .collect();
    let want = |t: &str| args.targets.iter().any(|x| x == t);

    eprintln!("starting the Dovecot backend with {} users", users.len());
    let dovecot = tokio::task::block_in_place(|| {
        DovecotBackend::start(&users, (PROXY_IDENTITY, PROXY_SECRET), FRONTEND_SOURCE)
    })
    .context("Dovecot backend")?;
    let mut rows = Vec::new();
    rows.push(Running {
        addr: dovecot.imap,
        pids: vec![dovecot.pid()],
        row: Row {
            name: "direct (Dovecot backend)".into(),
            measured: "backend, all processes".into(),
            ..Row::default()
        },
    });
    let mut servers = Servers {
        _nginx: None,
        _proxy: None,
        _frontend: None,
        _tandem: None,
        dovecot,
    };
    if want("tandem") {
        let name = "Tandem frontend".to_owned();
        match tokio::task::block_in_place(|| start_tandem(&servers.dovecot, &users)) {
            Ok((b, fe)) => {
                rows.push(Running {
                    addr: fe.imap_addr(),
                    pids: fe.pid().into_iter().collect(),
                    row: Row {
                        name,
                        measured: "frontend process".into(),
                        ..Row::default()
                    },
                });
                servers._tandem = Some(b);
                servers._frontend = Some(fe);
            }
            Err(e) => rows.push(skipped(name, format!("{e:#}"))),
        }
    }
    if want("dovecot-proxy") {
        let name = "Dovecot proxy".to_owned();
        match tokio::task::block_in_place(|| DovecotProxy::start(servers.dovecot.imap)) {
            Ok(p) => {
                rows.push(Running {
                    addr: p.imap,
                    pids: vec![p.pid()],
                    row: Row {
                        name,
                        measured: "proxy, all processes".into(),
                        ..Row::default()
                    },
                });
                servers._proxy = Some(p);
            }
            Err(e) => rows.push(skipped(name, format!("{e:#}"))),
        }
    }
    if want("nginx") {
        let name = "nginx mail proxy".to_owned();
        match tokio::task::block_in_place(|| {
            NginxMail::start(servers.dovecot.imap, args.nginx_workers)
        }) {
            Ok(n) => {
                rows.push(Running {
                    addr: n.imap,
                    pids: vec![n.pid()],
                    row: Row {
                        name,
                        measured: "master + workers".into(),
                        ..Row::default()
                    },
                });
                servers._nginx = Some(n);
            }
            Err(e) => rows.push(skipped(name, format!("{e:#}"))),
        }
    }
    if !want("direct") {
        rows[0].row.skipped = Some("not asked for (--targets)".into());
    }

    let target = |addr| Target::new(addr, Proto::Imap, PATTERN, PASSWORD, args.users);
    let phase = |p: &str| args.phases.iter().any(|x| x == p);
    let live = |r: &Running| r.row.skipped.is_none() && !r.pids.is_empty();

    if phase("fetch") {
        eprintln!(
            "filling {BULK} with {} messages of {} bytes",
            args.messages, args.message_size
        );
        phases::lmtp_fill(servers.dovecot.lmtp, BULK, args.messages, args.message_size)
            .await
            .context("fill the bulk mailbox over LMTP")?;
    }
    // Every user logs in once (directly) so that no measured login is the
    // one that creates a Maildir.
    let warm = phases::logins(
        &target(servers.dovecot.imap)?,
        args.clients,
        60.0,
        args.users as u64,
    )
    .await?;
    eprintln!(
        "warm-up: {} first logins, {} errors",
        warm.sessions, warm.errors
    );

    if phase("logins") {
        for r in rows.iter_mut().filter(|r| live(r)) {
            let t = target(r.addr)?;
            // The same short warm-up for each target (caches, prestarted
            // processes), unmeasured.
            let _ = phases::logins(&t, args.clients, 2.0, 1_000_000).await;
            let load = mem::load_average();
            eprintln!("logins {} (load {load})", r.row.name);
            match phases::logins(&t, args.clients, args.seconds, 1_000_000).await {
                Ok(l) => {
                    if let Some(e) = &l.first_error {
                        r.row
                            .failures
                            .push(format!("logins: {} errors, first: {e}", l.errors));
                    }
                    r.row.logins = Some(l);
                }
                Err(e) => r.row.failures.push(format!("logins: {e:#}")),
            }
            r.row.logins_load = Some(load);
        }
    }
    if phase("fetch") {
        for r in rows.iter_mut().filter(|r| live(r)) {
            let t = target(r.addr)?;
            let load = mem::load_average();
            eprintln!("fetch {} (load {load})", r.row.name);
            match phases::fetch(&t, BULK, args.fetch_reps, 120.0).await {
                Ok(f) => r.row.fetch = Some(f),
                Err(e) => r.row.failures.push(format!("fetch: {e:#}")),
            }
            r.row.fetch_load = Some(load);
        }
    }
    if phase("idle") {
        // The backend's imap processes of the earlier phases wait for a
        // next session for up to its idle_kill (20 s); let them go, so that
        // the direct row counts the processes its connections start.
        eprintln!("waiting 25 s for the backend's idle processes to exit");
        tokio::time::sleep(Duration::from_secs(25)).await;
        for r in rows.iter_mut().filter(|r| live(r)) {
            let t = target(r.addr)?;
            let load = mem::load_average();
            eprintln!("idle {} x{connections} (load {load})", r.row.name);
            match phases::idle(&t, connections, &r.pids, args.clients, 180.0).await {
                Ok(i) => {
                    if let Some(e) = &i.first_error {
                        r.row
                            .failures
                            .push(format!("idle: {} errors, first: {e}", i.errors));
                    }
                    r.row.idle = Some(i);
                }
                Err(e) => r.row.failures.push(format!("idle: {e:#}")),
            }
            r.row.idle_load = Some(load);
            // The backend's imap processes of this target's connections
            // linger for its idle_kill (20 s) waiting for a next session;
            // with a thousand of them awake at every connect, the next
            // target would be measured on a loaded machine. Let them go.
            tokio::time::sleep(Duration::from_secs(25)).await;
        }
    }
    drop(servers);

    let rows: Vec<Row> = rows.into_iter().map(|r| r.row).collect();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print_table(&rows, &args, connections);
    }
    Ok(())
}

fn skipped(name: String, why: String) -> Running {
    eprintln!("{name}: skipped: {why}");
    Running {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        pids: Vec::new(),
        row: Row {
            name,
            skipped: Some(why),
            ..Row::default()
        },
    }
}

/// A Tandem locator (with its own, unused, Tandem node) whose cluster `dc`
/// is the Dovecot backend, the accounts on it, and a frontend.
fn start_tandem(
    dovecot: &DovecotBackend,
    users: &[(String, String)],
) -> anyhow::Result<(Backend, Frontend)> {
    let b = Backend::start().context("Tandem locator and node")?;
    b.tandem_ok(&["cluster", "add", "dc"])?;
    let imap = dovecot.imap_proxied.to_string();
    b.tandem_ok(&["cluster", "node", "add", "dc", "dovecot", "--imap", &imap])?;
    let list: String = users
        .iter()
        .map(|(u, p)| format!("{u}:{{PLAIN}}{p}\n"))
        .collect();
    let file = b.config().with_file_name("users.passwd");
    std::fs::write(&file, list)?;
    b.tandem_ok(&[
        "account",
        "import",
        &file.display().to_string(),
        "--cluster",
        "dc",
    ])?;
    // Every bench client comes from 127.0.0.1.
    let fe = Frontend::start(&b, "    max_per_ip: 100000\n    max_connections: 100000\n")?;
    Ok((b, fe))
}

fn ratio(x: Option<f64>, base: Option<f64>) -> String {
    match (x, base) {
        // Proxy memory per connection is a small fraction of a backend's.
        (Some(x), Some(b)) if b > 0.0 && x / b < 0.1 => format!("{:.4}", x / b),
        (Some(x), Some(b)) if b > 0.0 => format!("{:.2}", x / b),
        _ => "–".into(),
    }
}

fn num(x: Option<f64>, digits: usize) -> String {
    x.map_or("–".into(), |v| format!("{v:.digits$}"))
}

fn print_table(rows: &[Row], args: &Args, connections: usize) {
    let logins = |r: &Row| r.logins.as_ref().map(|l| l.per_second);
    let rss = |r: &Row| r.idle.as_ref().map(|i| i.kib_per_connection);
    let pss = |r: &Row| r.idle.as_ref().map(|i| i.pss_kib_per_connection);
    let fetch = |r: &Row| r.fetch.as_ref().map(|f| f.median_mb_per_second);
    let base = &rows[0];
    println!(
        "{} clients, {} s per logins phase, {} users; {connections} idle connections; \
         FETCH 1:* BODY.PEEK[] of {} messages of {} bytes, median of {}\n",
        args.clients, args.seconds, args.users, args.messages, args.message_size, args.fetch_reps
    );
    println!(
        "| target | logins/s | × direct | KiB RSS per idle conn | × direct | KiB PSS per idle conn | bulk FETCH MB/s | × direct | memory of | load avg (logins / fetch / idle) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---|---|");
    for r in rows {
        if let Some(why) = &r.skipped {
            println!("| {} | skipped: {why} | | | | | | | | |", r.name);
            continue;
        }
        let load = |l: &Option<String>| l.clone().unwrap_or_else(|| "–".into());
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} / {} / {} |",
            r.name,
            num(logins(r), 0),
            ratio(logins(r), logins(base)),
            num(rss(r), 1),
            ratio(rss(r), rss(base)),
            num(pss(r), 1),
            num(fetch(r), 1),
            ratio(fetch(r), fetch(base)),
            r.measured,
            load(&r.logins_load),
            load(&r.fetch_load),
            load(&r.idle_load),
        );
    }
    for r in rows {
        for f in &r.failures {
            println!("\n{}: {f}", r.name);
        }
        if let Some(i) = &r.idle
            && i.opened < i.requested
        {
            println!(
                "\n{}: only {} of {} idle connections opened",
                r.name, i.opened, i.requested
            );
        }
    }
}
