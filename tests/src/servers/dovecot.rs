//! Debian's Dovecot as a peer: LMTP and POP3 on loopback over its own
//! Maildirs, users in a passwd-file, run as `nobody` (Dovecot refuses to
//! deliver as root). The baseline Tandem's backend is measured against.

use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use rustix::process::Signal;

use super::{InstanceDir, Process, find_binary, free_port};

pub struct Dovecot {
    process: Option<Process>,
    dir: InstanceDir,
    lmtp: SocketAddr,
    pop3: SocketAddr,
    imap: Option<SocketAddr>,
}

impl Dovecot {
    /// Starts Dovecot with `users` (address, password) and fsync as in
    /// production (`mail_fsync = optimized`, Dovecot's default).
    pub fn start(users: &[(&str, &str)]) -> anyhow::Result<Dovecot> {
        let bin = find_binary(&["dovecot"], &[]).context(
            "dovecot not found: install the Debian packages dovecot-imapd dovecot-pop3d dovecot-lmtpd",
        )?;
        let dir = InstanceDir::create("dovecot")?;
        let lmtp = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let pop3 = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let d = dir.path();
        let mail = d.join("mail");
        fs::create_dir(&mail)?;
        chown_nobody(&mail)?;
        let passwd: String = users
            .iter()
            .map(|(u, p)| format!("{u}:{{PLAIN}}{p}\n"))
            .collect();
        fs::write(d.join("users.passwd"), passwd)?;
        let conf = format!(
            "base_dir = {d}/run\nstate_dir = {d}/state\ninstance_name = tandem-peer-{port}\n\
             listen = 127.0.0.1\nprotocols = pop3 lmtp\nssl = no\n\
             disable_plaintext_auth = no\nauth_mechanisms = plain\n\
             log_path = {d}/dovecot.log\n\
             mail_location = maildir:{d}/mail/%u\nmail_uid = nobody\nmail_gid = nogroup\n\
             passdb {{\n  driver = passwd-file\n  args = {d}/users.passwd\n}}\n\
             userdb {{\n  driver = static\n  args = uid=nobody gid=nogroup home={d}/mail/%u\n}}\n\
             service pop3-login {{\n  inet_listener pop3 {{\n    port = {pop3p}\n  }}\n  \
             inet_listener pop3s {{\n    port = 0\n  }}\n  service_count = 0\n}}\n\
             service lmtp {{\n  inet_listener lmtp {{\n    address = 127.0.0.1\n    port = {lmtpp}\n  }}\n}}\n\
             protocol lmtp {{\n  postmaster_address = postmaster@example.com\n}}\n\
             protocol pop3 {{\n  mail_max_userip_connections = 10000\n}}\n",
            d = d.display(),
            port = pop3.port(),
            pop3p = pop3.port(),
            lmtpp = lmtp.port(),
        );
        let conf_path = d.join("dovecot.conf");
        fs::write(&conf_path, conf)?;
        let mut cmd = Command::new(bin);
        cmd.arg("-F").arg("-c").arg(&conf_path);
        let mut process = Process::spawn("dovecot", cmd, &d.join("stdout.log"), Signal::TERM)?;
        process.wait_ready(|| {
            TcpStream::connect_timeout(&pop3, Duration::from_millis(200)).is_ok()
                && TcpStream::connect_timeout(&lmtp, Duration::from_millis(200)).is_ok()
        })?;
        Ok(Dovecot {
            process: Some(process),
            dir,
            lmtp,
            pop3,
            imap: None,
        })
    }

    /// Dovecot as an IMAP backend behind a proxy: `users` plus a master
    /// user `master` (the proxy identity, SASL PLAIN with authzid = user),
    /// PROXY v2 headers required from `proxy_from`, which is also trusted
    /// to pass the client's address in ID.
    pub fn start_imap(
        users: &[(&str, &str)],
        master: (&str, &str),
        proxy_from: &str,
    ) -> anyhow::Result<Dovecot> {
        let bin = find_binary(&["dovecot"], &[]).context(
            "dovecot not found: install the Debian packages dovecot-imapd dovecot-lmtpd",
        )?;
        let dir = InstanceDir::create("dovecot")?;
        let imap = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let lmtp = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let d = dir.path();
        let mail = d.join("mail");
        fs::create_dir(&mail)?;
        chown_nobody(&mail)?;
        let passwd: String = users
            .iter()
            .map(|(u, p)| format!("{u}:{{PLAIN}}{p}\n"))
            .collect();
        fs::write(d.join("users.passwd"), passwd)?;
        fs::write(
            d.join("master.passwd"),
            format!("{}:{{PLAIN}}{}\n", master.0, master.1),
        )?;
        let conf = format!(
            "base_dir = {d}/run\nstate_dir = {d}/state\ninstance_name = tandem-peer-{port}\n\
             listen = 127.0.0.1\nprotocols = imap lmtp\nssl = no\n\
             disable_plaintext_auth = no\nauth_mechanisms = plain\n\
             log_path = {d}/dovecot.log\n\
             haproxy_trusted_networks = {proxy_from}\nlogin_trusted_networks = {proxy_from}\n\
             mail_location = maildir:{d}/mail/%u\nmail_uid = nobody\nmail_gid = nogroup\n\
             passdb {{\n  driver = passwd-file\n  args = {d}/master.passwd\n  master = yes\n  result_success = continue\n}}\n\
             passdb {{\n  driver = passwd-file\n  args = {d}/users.passwd\n}}\n\
             userdb {{\n  driver = static\n  args = uid=nobody gid=nogroup home={d}/mail/%u\n}}\n\
             service imap-login {{\n  inet_listener imap {{\n    port = {imapp}\n    haproxy = yes\n  }}\n  \
             inet_listener imaps {{\n    port = 0\n  }}\n}}\n\
             service lmtp {{\n  inet_listener lmtp {{\n    address = 127.0.0.1\n    port = {lmtpp}\n  }}\n}}\n\
             protocol lmtp {{\n  postmaster_address = postmaster@example.com\n}}\n",
            d = d.display(),
            port = imap.port(),
            imapp = imap.port(),
            lmtpp = lmtp.port(),
        );
        let conf_path = d.join("dovecot.conf");
        fs::write(&conf_path, conf)?;
        let mut cmd = Command::new(bin);
        cmd.arg("-F").arg("-c").arg(&conf_path);
        let mut process = Process::spawn("dovecot", cmd, &d.join("stdout.log"), Signal::TERM)?;
        process
            .wait_ready(|| TcpStream::connect_timeout(&lmtp, Duration::from_millis(200)).is_ok())?;
        Ok(Dovecot {
            process: Some(process),
            dir,
            lmtp,
            pop3: imap,
            imap: Some(imap),
        })
    }

    /// Dovecot serving IMAP straight to `users` (LOGIN with their
    /// passwords, no proxy), for up to `sessions` concurrent sessions: one
    /// `imap` process each, as Dovecot runs them. Everything else is
    /// Debian's default (Maildir indexes beside the mail,
    /// `mail_fsync = optimized`, a login process per connection).
    pub fn start_imap_users(users: &[(&str, &str)], sessions: usize) -> anyhow::Result<Dovecot> {
        let bin = find_binary(&["dovecot"], &[])
            .context("dovecot not found: install the Debian package dovecot-imapd")?;
        let dir = InstanceDir::create("dovecot")?;
        let imap = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let d = dir.path();
        let mail = d.join("mail");
        fs::create_dir(&mail)?;
        chown_nobody(&mail)?;
        let passwd: String = users
            .iter()
            .map(|(u, p)| format!("{u}:{{PLAIN}}{p}\n"))
            .collect();
        fs::write(d.join("users.passwd"), passwd)?;
        let processes = sessions + 100;
        let conf = format!(
            "base_dir = {d}/run\nstate_dir = {d}/state\ninstance_name = tandem-peer-{port}\n\
             listen = 127.0.0.1\nprotocols = imap\nssl = no\n\
             disable_plaintext_auth = no\nauth_mechanisms = plain login\n\
             log_path = {d}/dovecot.log\n\
             mail_location = maildir:{d}/mail/%u\nmail_uid = nobody\nmail_gid = nogroup\n\
             default_process_limit = {processes}\ndefault_client_limit = {clients}\n\
             passdb {{\n  driver = passwd-file\n  args = {d}/users.passwd\n}}\n\
             userdb {{\n  driver = static\n  args = uid=nobody gid=nogroup home={d}/mail/%u\n}}\n\
             service imap-login {{\n  inet_listener imap {{\n    port = {port}\n  }}\n  \
             inet_listener imaps {{\n    port = 0\n  }}\n}}\n\
             service imap {{\n  process_limit = {processes}\n}}\n\
             protocol imap {{\n  mail_max_userip_connections = {processes}\n}}\n",
            d = d.display(),
            port = imap.port(),
            clients = 2 * processes + 1000,
        );
        let conf_path = d.join("dovecot.conf");
        fs::write(&conf_path, conf)?;
        let mut cmd = Command::new(bin);
        cmd.arg("-F").arg("-c").arg(&conf_path);
        let mut process = Process::spawn("dovecot", cmd, &d.join("stdout.log"), Signal::TERM)?;
        process
            .wait_ready(|| TcpStream::connect_timeout(&imap, Duration::from_millis(200)).is_ok())?;
        Ok(Dovecot {
            process: Some(process),
            dir,
            lmtp: imap,
            pop3: imap,
            imap: Some(imap),
        })
    }

    /// The master process id while it runs (its children serve sessions).
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(Process::pid)
    }

    /// The IMAP listener of [`start_imap`](Self::start_imap).
    pub fn imap_addr(&self) -> Option<SocketAddr> {
        self.imap
    }

    /// Dovecot's own log.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("dovecot.log")).unwrap_or_default()
    }

    pub fn lmtp_addr(&self) -> SocketAddr {
        self.lmtp
    }

    pub fn pop3_addr(&self) -> SocketAddr {
        self.pop3
    }

    /// The Maildir of `user`.
    pub fn maildir(&self, user: &str) -> PathBuf {
        self.dir.path().join("mail").join(user)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn stop(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.stop();
        }
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        self.stop();
    }
}

fn chown_nobody(path: &Path) -> anyhow::Result<()> {
    let ok = Command::new("chown")
        .arg("nobody:nogroup")
        .arg(path)
        .status()?
        .success();
    anyhow::ensure!(ok, "chown nobody {}", path.display());
    Ok(())
}
