//! A real `tandem backend` process for tests: its own SQLite locator, store
//! and loopback ports in a temporary directory, provisioned with the
//! `tandem` CLI the way an operator would.
//!
//! ```no_run
//! let b = tests::backend::Backend::start().unwrap();
//! b.add_account("alice@example.com", "secret").unwrap();
//! // talk to b.lmtp_addr(), b.pop3_addr() ...
//! ```

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, bail};
use rustix::process::Signal;

use crate::servers::{InstanceDir, Process, free_port, log_tail};

/// Domain and cluster every test backend starts with.
pub const DOMAIN: &str = "example.com";
pub const CLUSTER: &str = "c1";
pub const NODE: &str = "n1";
/// The trusted proxy login frontends use.
pub const PROXY_IDENTITY: &str = "tandem-proxy";
pub const PROXY_SECRET: &str = "proxy-secret-for-tests-only";

pub struct Backend {
    // Fields drop in order: the process before its directory.
    process: Option<Process>,
    dir: InstanceDir,
    config: PathBuf,
    lmtp: SocketAddr,
    pop3: SocketAddr,
    imap: SocketAddr,
    admin: SocketAddr,
    locator_db: PathBuf,
    node: String,
    store: PathBuf,
}

impl Backend {
    /// Provisions a locator (domain example.com, cluster c1 with node n1)
    /// and starts the node; returns once `/health` answers.
    pub fn start() -> anyhow::Result<Backend> {
        Self::start_with("")
    }

    /// Like [`start`](Self::start), with `extra` appended to the `backend:`
    /// section (indented by two spaces, e.g. `"  lmtp:\n    max_message_size: 1000\n"`).
    pub fn start_with(extra: &str) -> anyhow::Result<Backend> {
        Self::start_node(None, None, CLUSTER, NODE, extra)
    }

    /// Another node of `first`'s cluster: same locator, same store (the
    /// cluster's shared filesystem). `extra` as for
    /// [`start_with`](Self::start_with); a top-level section such as
    /// `etcd:` may follow it, unindented.
    pub fn start_peer(first: &Backend, node: &str, extra: &str) -> anyhow::Result<Backend> {
        Self::start_node(
            Some(first.locator_db()),
            Some(first.store_root()),
            CLUSTER,
            node,
            extra,
        )
    }

    /// Another node, of `cluster` (created if missing), registered in the
    /// locator of `first`, with its own store: for several clusters behind
    /// one frontend.
    pub fn start_beside(first: &Backend, cluster: &str, node: &str) -> anyhow::Result<Backend> {
        Self::start_node(Some(first.locator_db()), None, cluster, node, "")
    }

    fn start_node(
        locator: Option<PathBuf>,
        shared_store: Option<PathBuf>,
        cluster: &str,
        node: &str,
        extra: &str,
    ) -> anyhow::Result<Backend> {
        let dir = InstanceDir::create("backend")?;
        let port = |_| -> anyhow::Result<SocketAddr> {
            Ok(SocketAddr::from(([127, 0, 0, 1], free_port()?)))
        };
        let (lmtp, pop3, admin, imap) = (port(0)?, port(1)?, port(2)?, port(3)?);
        let store = match shared_store {
            Some(s) => s,
            None => {
                let store = dir.path().join("store");
                std::fs::create_dir(&store)
                    .with_context(|| format!("create {}", store.display()))?;
                store
            }
        };
        let config = dir.path().join("tandem.yaml");
        let first = locator.is_none();
        let db = locator.unwrap_or_else(|| dir.path().join("locator.db"));
        let text = format!(
            "locator:\n  sql:\n    url: sqlite://{db}\n  cache:\n    ttl: 1s\n    negative_ttl: 1s\n    stale_for: 1h\n    retry_after: 1s\n\
             backend:\n  cluster: {cluster}\n  store_root: {store}\n  hostname: backend.test\n\
             \x20 proxy_login:\n    identity: {PROXY_IDENTITY}\n    secret: {PROXY_SECRET}\n\
             \x20 listen:\n    lmtp: {lmtp}\n    pop3: {pop3}\n    imap: {imap}\n    admin: {admin}\n\
             \x20 pop3:\n    auth_failure_delay: 100ms\n\
             \x20 imap:\n    auth_failure_delay: 100ms\n{proxied}{extra}",
            db = db.display(),
            // Test frontends connect from 127.0.0.2 (see tests::frontend).
            proxied = if extra.contains("proxy_protocol_from") {
                ""
            } else {
                "  proxy_protocol_from: [127.0.0.2/32]\n"
            },
            store = store.display(),
        );
        std::fs::write(&config, text).with_context(|| format!("write {}", config.display()))?;
        let mut b = Backend {
            process: None,
            dir,
            config,
            lmtp,
            pop3,
            imap,
            admin,
            locator_db: db,
            node: node.to_owned(),
            store: store.clone(),
        };
        if first {
            b.tandem_ok(&["domain", "add", DOMAIN])?;
        }
        if b.tandem(&["cluster", "show", cluster]).status.code() != Some(0) {
            b.tandem_ok(&["cluster", "add", cluster])?;
        }
        let (l, p, i) = (lmtp.to_string(), pop3.to_string(), imap.to_string());
        b.tandem_ok(&[
            "cluster", "node", "add", cluster, node, "--lmtp", &l, "--pop3", &p, "--imap", &i,
        ])?;
        b.restart()?;
        Ok(b)
    }

    /// The SQLite file of the locator this node uses.
    pub fn locator_db(&self) -> PathBuf {
        self.locator_db.clone()
    }

    pub fn lmtp_addr(&self) -> SocketAddr {
        self.lmtp
    }

    pub fn pop3_addr(&self) -> SocketAddr {
        self.pop3
    }

    pub fn imap_addr(&self) -> SocketAddr {
        self.imap
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
    }

    pub fn config(&self) -> &Path {
        &self.config
    }

    pub fn store_root(&self) -> PathBuf {
        self.store.clone()
    }

    /// The account's Maildir (INBOX) under the store root.
    pub fn maildir(&self, address: &str) -> PathBuf {
        let a = shared::Address::parse(address).expect("a valid address");
        backend::store::path::account_dir(&self.store_root(), &a).expect("a storable address")
    }

    /// The messages in an account's INBOX (`new` and `cur`), as stored.
    pub fn inbox(&self, address: &str) -> Vec<String> {
        let dir = self.maildir(address);
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            if let Ok(entries) = std::fs::read_dir(dir.join(sub)) {
                out.extend(
                    entries
                        .flatten()
                        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default()),
                );
            }
        }
        out
    }

    /// Runs `tandem --config <this config> ARGS`.
    pub fn tandem(&self, args: &[&str]) -> Output {
        self.tandem_with_stdin(args, None)
    }

    /// Runs the CLI, failing with its output unless it exits 0.
    pub fn tandem_ok(&self, args: &[&str]) -> anyhow::Result<String> {
        check(args, self.tandem(args))
    }

    /// Adds an account with a password (through `--password-stdin`).
    pub fn add_account(&self, address: &str, password: &str) -> anyhow::Result<()> {
        let args = ["account", "add", address, "--password-stdin"];
        check(&args, self.tandem_with_stdin(&args, Some(password))).map(drop)
    }

    /// Adds an account on a given cluster.
    pub fn add_account_on(
        &self,
        address: &str,
        password: &str,
        cluster: &str,
    ) -> anyhow::Result<()> {
        let args = [
            "account",
            "add",
            address,
            "--cluster",
            cluster,
            "--password-stdin",
        ];
        check(&args, self.tandem_with_stdin(&args, Some(password))).map(drop)
    }

    fn tandem_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = Command::new(tandem_bin());
        cmd.arg("--config").arg(&self.config).args(args);
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("run tandem");
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            use std::io::Write;
            let _ = writeln!(pipe, "{input}");
        }
        child.wait_with_output().expect("wait for tandem")
    }

    /// Starts the daemon (again, after [`kill`](Self::kill) or
    /// [`stop`](Self::stop)); returns once `/health` answers 200.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        if self.process.is_some() {
            return Ok(());
        }
        let mut cmd = Command::new(tandem_bin());
        cmd.arg("--config")
            .arg(&self.config)
            .args(["backend", "--node", &self.node])
            .env("TANDEM_LOG", "info");
        let log = self.dir.path().join("backend.log");
        let mut p = Process::spawn("tandem backend", cmd, &log, Signal::TERM)?;
        let admin = self.admin;
        p.wait_ready(|| http_status(admin, "/health") == Some(200))?;
        self.process = Some(p);
        Ok(())
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.kill();
        }
    }

    /// SIGTERM and wait: the graceful drain.
    pub fn stop(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.stop();
        }
    }

    /// Whether the daemon process is still running.
    pub fn is_running(&mut self) -> bool {
        self.process
            .as_mut()
            .is_some_and(|p| p.exit_status().is_none())
    }

    /// The daemon's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(Process::pid)
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("backend.log")).unwrap_or_default()
    }

    /// The end of the log, for assertion messages.
    pub fn log_tail(&self) -> String {
        log_tail(&self.dir.path().join("backend.log"))
    }

    /// `/metrics` as text.
    pub fn metrics(&self) -> String {
        http_get(self.admin, "/metrics")
            .map(|(_, body)| body)
            .unwrap_or_default()
    }
}

fn check(args: &[&str], out: Output) -> anyhow::Result<String> {
    if !out.status.success() {
        bail!(
            "tandem {} failed ({}):\n{}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The `tandem` binary of this build, built once per test process so that
/// `cargo test -p tests` alone also tests the current code.
pub fn tandem_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("TANDEM_BIN") {
            return PathBuf::from(p);
        }
        // <target>/<profile>/deps/<test binary>, or <target>/<profile>/<bin>
        let exe = std::env::current_exe().expect("current exe");
        let mut profile_dir = exe.parent().expect("exe in a directory").to_owned();
        if profile_dir.file_name().is_some_and(|n| n == "deps") {
            profile_dir.pop();
        }
        let release = profile_dir.file_name().is_some_and(|n| n == "release");
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("workspace root");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(workspace)
            .args(["build", "--quiet", "-p", "ops", "--bin", "tandem"]);
        if release {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build for the tandem binary");
        assert!(status.success(), "cargo build -p ops --bin tandem failed");
        profile_dir.join("tandem")
    })
}

/// GET `path` from `addr`; the status code and body.
pub fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Some((status, body))
}

fn http_status(addr: SocketAddr, path: &str) -> Option<u16> {
    http_get(addr, path).map(|(s, _)| s)
}
