//! A real `tandem frontend` process for tests, in front of the backends of
//! one locator (see [`Backend::start_beside`](crate::backend::Backend::start_beside)).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;

use anyhow::Context;
use rustix::process::Signal;

use crate::backend::{Backend, PROXY_IDENTITY, PROXY_SECRET, http_get, tandem_bin};
use crate::servers::{InstanceDir, Process, free_port};

pub struct Frontend {
    process: Option<Process>,
    dir: InstanceDir,
    pop3: SocketAddr,
    imap: SocketAddr,
    smtp: SocketAddr,
    submission: SocketAddr,
    /// Only when the frontend has a `tls:` section.
    submissions: Option<SocketAddr>,
    admin: SocketAddr,
}

impl Frontend {
    /// Starts a frontend on the locator of `backend`; `extra` is appended
    /// to the `frontend:` section (two-space indent). It listens for IMAP,
    /// POP3, SMTP (MX) and submission, and for submissions too when `extra`
    /// has a `  tls:` section.
    pub fn start(backend: &Backend, extra: &str) -> anyhow::Result<Frontend> {
        Frontend::start_with_queue(backend, "", extra)
    }

    /// Like [`start`](Self::start), with `queue_extra` added to the
    /// `frontend.queue` section (four-space indent, e.g. a smarthost).
    pub fn start_with_queue(
        backend: &Backend,
        queue_extra: &str,
        extra: &str,
    ) -> anyhow::Result<Frontend> {
        let dir = InstanceDir::create("frontend")?;
        let pop3 = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let imap = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let smtp = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let submission = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let submissions = if extra.contains("  tls:") {
            Some(SocketAddr::from(([127, 0, 0, 1], free_port()?)))
        } else {
            None
        };
        let admin = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let config = dir.path().join("tandem.yaml");
        let text = format!(
            "locator:\n  sql:\n    url: sqlite://{db}\n  cache:\n    ttl: 1s\n    negative_ttl: 1s\n    stale_for: 1h\n    retry_after: 1s\n\
             frontend:\n  source_address: 127.0.0.2\n  backend_login:\n    identity: {PROXY_IDENTITY}\n    secret: {PROXY_SECRET}\n\
             \x20 listen:\n    imap: {imap}\n    pop3: {pop3}\n    smtp: {smtp}\n    submission: {submission}\n{submissions}    admin: {admin}\n\
             \x20 queue:\n    dir: {queue}\n{queue_extra}\
             \x20 limits:\n    auth_failure_delay: 100ms\n    connect_timeout: 1s\n{extra}",
            db = backend.locator_db().display(),
            queue = dir.path().join("queue").display(),
            submissions = submissions
                .map(|a| format!("    submissions: {a}\n"))
                .unwrap_or_default(),
        );
        std::fs::write(&config, text).with_context(|| format!("write {}", config.display()))?;
        let p = spawn(dir.path(), admin)?;
        Ok(Frontend {
            process: Some(p),
            dir,
            pop3,
            imap,
            smtp,
            submission,
            submissions,
            admin,
        })
    }

    pub fn pop3_addr(&self) -> SocketAddr {
        self.pop3
    }

    pub fn imap_addr(&self) -> SocketAddr {
        self.imap
    }

    /// The MX listener (port 25 in production).
    pub fn smtp_addr(&self) -> SocketAddr {
        self.smtp
    }

    /// The submission listener (587: STARTTLS, then AUTH).
    pub fn submission_addr(&self) -> SocketAddr {
        self.submission
    }

    /// The submissions listener (465, implicit TLS), when `extra` gave the
    /// frontend a `tls:` section.
    pub fn submissions_addr(&self) -> Option<SocketAddr> {
        self.submissions
    }

    /// The frontend's spool directory.
    pub fn queue_dir(&self) -> PathBuf {
        self.dir.path().join("queue")
    }

    /// The frontend's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(Process::pid)
    }

    pub fn metrics(&self) -> String {
        http_get(self.admin, "/metrics")
            .map(|(_, b)| b)
            .unwrap_or_default()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("frontend.log")
    }

    /// Sends SIGTERM and returns at once: the frontend drains.
    pub fn terminate(&self) {
        if let Some(pid) = self.pid() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
    }

    /// The status `/health` answers, if the admin endpoint answers at all.
    pub fn health(&self) -> Option<u16> {
        http_get(self.admin, "/health").map(|(code, _)| code)
    }

    pub fn stop(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.stop();
        }
    }

    /// SIGKILL, as a crash would: no drain, the spool is left as it is.
    pub fn kill(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.kill();
        }
    }

    /// Starts the daemon again on the same config, ports and spool (after
    /// [`kill`](Self::kill) or [`stop`](Self::stop)).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        if self.process.is_none() {
            self.process = Some(spawn(self.dir.path(), self.admin)?);
        }
        Ok(())
    }
}

/// `tandem frontend` on `dir/tandem.yaml`, logging to `dir/frontend.log`;
/// returns once `/health` answers 200.
fn spawn(dir: &std::path::Path, admin: SocketAddr) -> anyhow::Result<Process> {
    let mut cmd = Command::new(tandem_bin());
    cmd.arg("--config")
        .arg(dir.join("tandem.yaml"))
        .arg("frontend")
        .env("TANDEM_LOG", "info");
    let mut p = Process::spawn(
        "tandem frontend",
        cmd,
        &dir.join("frontend.log"),
        Signal::TERM,
    )?;
    p.wait_ready(|| http_get(admin, "/health").is_some_and(|(s, _)| s == 200))?;
    Ok(p)
}
