//! Debian's Postfix as the MTA we measure the frontend's SMTP against: an
//! instance of its own (config, queue and log in a throw-away directory),
//! listening on a loopback port and handing the mail of the given domains
//! to an LMTP server, the way a classic Postfix + Dovecot site runs.
//!
//! Postfix's `master` must start as root (it drops to the `postfix` user for
//! every service), so this needs the tests to run as root, as CI does.

use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::chown;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use rustix::process::Signal;

use super::{
    InstanceDir, Process, find_binary, free_port, missing, run, running_as_root, system_user,
};

const INSTALL: &str = "the Debian package `postfix` (apt-get install postfix)";

pub struct Postfix {
    process: Option<Process>,
    dir: InstanceDir,
    addr: SocketAddr,
}

impl Postfix {
    /// Accepts mail on a loopback port from loopback clients (no auth, no
    /// TLS: the benchmark's client is trusted) for `domains`, and delivers
    /// it by LMTP to `lmtp`. Its own queue fsyncs like any Postfix.
    pub fn start_relay(domains: &[&str], lmtp: SocketAddr) -> anyhow::Result<Postfix> {
        let postfix = find_binary(&["postfix"], &[]).ok_or_else(|| missing("postfix", INSTALL))?;
        if !running_as_root() {
            bail!("Postfix's master must start as root: run this as root");
        }
        let postfix_user =
            system_user("postfix").with_context(|| format!("no `postfix` user: {INSTALL}"))?;
        let dir = InstanceDir::create("postfix")?;
        let conf = dir.path().join("conf");
        let data = dir.path().join("data");
        for d in [&conf, &data, &dir.path().join("queue")] {
            fs::create_dir_all(d)?;
        }
        chown(&data, Some(postfix_user.0), Some(postfix_user.1))?;
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let path = dir.path().display().to_string();
        let main = format!(
            "compatibility_level = 3.6\n\
             queue_directory = {path}/queue\n\
             data_directory = {path}/data\n\
             maillog_file_prefixes = {path}\n\
             maillog_file = {path}/maillog\n\
             myhostname = postfix.tandem.test\n\
             mydestination =\n\
             inet_interfaces = 127.0.0.1\n\
             inet_protocols = ipv4\n\
             mynetworks = 127.0.0.0/8\n\
             virtual_mailbox_domains = {domains}\n\
             virtual_transport = lmtp:inet:{lmtp}\n\
             smtpd_recipient_restrictions = permit_mynetworks, reject\n\
             smtpd_tls_security_level = none\n\
             smtp_tls_security_level = none\n\
             default_process_limit = 100\n\
             lmtp_destination_concurrency_limit = 20\n\
             smtpd_client_connection_count_limit = 0\n\
             smtpd_client_connection_rate_limit = 0\n\
             smtpd_client_message_rate_limit = 0\n\
             anvil_rate_time_unit = 60s\n",
            domains = domains.join(", "),
        );
        fs::write(conf.join("main.cf"), main)?;
        fs::write(conf.join("master.cf"), master_cf(addr))?;
        let mut check = Command::new(&postfix);
        check.arg("-c").arg(&conf).arg("check");
        run(&mut check, None).context("postfix check")?;
        let mut cmd = Command::new(&postfix);
        cmd.arg("-c").arg(&conf).arg("start-fg");
        let mut process = Process::spawn(
            "postfix",
            cmd,
            &dir.path().join("postfix.log"),
            Signal::TERM,
        )?;
        process
            .wait_ready(|| TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok())?;
        Ok(Postfix {
            process: Some(process),
            dir,
            addr,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Postfix's master and every service it forked.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(Process::pid)
    }

    /// Messages still in Postfix's queue (incoming, active, deferred).
    pub fn queued(&self) -> usize {
        ["incoming", "active", "deferred", "maildrop"]
            .iter()
            .map(|q| count_files(&self.dir.path().join("queue").join(q)))
            .sum()
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("maillog")).unwrap_or_default()
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.stop();
        }
    }
}

/// The services of a stock master.cf, none chrooted (the instance has no
/// chroot jail), smtpd on `addr`.
fn master_cf(addr: SocketAddr) -> String {
    let mut s = format!("{addr} inet n - n - - smtpd\n");
    for (name, kind, private, unpriv, wakeup, limit, command) in [
        ("pickup", "unix", "n", "-", "60", "1", "pickup"),
        ("cleanup", "unix", "n", "-", "-", "0", "cleanup"),
        ("qmgr", "unix", "n", "-", "300", "1", "qmgr"),
        ("rewrite", "unix", "-", "-", "-", "-", "trivial-rewrite"),
        ("bounce", "unix", "-", "-", "-", "0", "bounce"),
        ("defer", "unix", "-", "-", "-", "0", "bounce"),
        ("trace", "unix", "-", "-", "-", "0", "bounce"),
        ("verify", "unix", "-", "-", "-", "1", "verify"),
        ("flush", "unix", "n", "-", "1000?", "0", "flush"),
        ("proxymap", "unix", "-", "-", "-", "-", "proxymap"),
        ("smtp", "unix", "-", "-", "-", "-", "smtp"),
        ("relay", "unix", "-", "-", "-", "-", "smtp"),
        ("showq", "unix", "n", "-", "-", "-", "showq"),
        ("error", "unix", "-", "-", "-", "-", "error"),
        ("retry", "unix", "-", "-", "-", "-", "error"),
        ("discard", "unix", "-", "-", "-", "-", "discard"),
        ("lmtp", "unix", "-", "-", "-", "-", "lmtp"),
        ("anvil", "unix", "-", "-", "-", "1", "anvil"),
        ("scache", "unix", "-", "-", "-", "1", "scache"),
        ("postlog", "unix-dgram", "n", "-", "-", "1", "postlogd"),
    ] {
        s.push_str(&format!(
            "{name} {kind} {private} {unpriv} n {wakeup} {limit} {command}\n"
        ));
    }
    s
}

fn count_files(dir: &Path) -> usize {
    walk(dir).unwrap_or(0)
}

fn walk(dir: &Path) -> std::io::Result<usize> {
    let mut n = 0;
    for e in fs::read_dir(dir)? {
        let e = e?;
        if e.file_type()?.is_dir() {
            n += walk(&e.path())?;
        } else {
            n += 1;
        }
    }
    Ok(n)
}
