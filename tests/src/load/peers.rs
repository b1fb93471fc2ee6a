//! The servers of the proxy benchmark, tuned for load the way
//! `shared/peers/` tunes Debian's packages: a Dovecot IMAP backend, Dovecot
//! as a proxy in front of it, and nginx's mail proxy in front of it. Each
//! runs in a temporary directory on ephemeral loopback ports, stopped at drop.

use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use rustix::process::Signal;

use crate::servers::{InstanceDir, Process, find_binary, free_port, missing};

/// Limits shared by both Dovecot roles: far above what a bench opens, so
/// that none of them is what is measured (Dovecot's defaults allow 100
/// processes and 1,000 clients per service).
const DOVECOT_LIMITS: &str = "default_client_limit = 12000\ndefault_vsz_limit = 1G\n\
    service auth {\n  client_limit = 20000\n}\nservice anvil {\n  client_limit = 20000\n}\n\
    service stats {\n  client_limit = 20000\n}\nservice log {\n  client_limit = 20000\n}\n\
    service config {\n  client_limit = 20000\n}\n";

fn loopback() -> anyhow::Result<SocketAddr> {
    Ok(SocketAddr::from(([127, 0, 0, 1], free_port()?)))
}

fn accepts(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

fn dovecot_bin() -> anyhow::Result<std::path::PathBuf> {
    find_binary(&["dovecot"], &[])
        .ok_or_else(|| missing("dovecot", "the Debian packages dovecot-imapd dovecot-lmtpd"))
}

fn start_dovecot(dir: &Path, conf: String, ready: &[SocketAddr]) -> anyhow::Result<Process> {
    let path = dir.join("dovecot.conf");
    fs::write(&path, conf).with_context(|| format!("write {}", path.display()))?;
    let mut cmd = Command::new(dovecot_bin()?);
    cmd.arg("-F").arg("-c").arg(&path);
    let mut p = Process::spawn("dovecot", cmd, &dir.join("stdout.log"), Signal::TERM)?;
    p.wait_ready(|| ready.iter().all(|&a| accepts(a)))?;
    Ok(p)
}

/// Dovecot as the IMAP backend every target reaches: one listener for
/// clients and ordinary proxies, one for Tandem's frontend (PROXY v2 header
/// and master-user login from `proxy_from`), LMTP to fill mailboxes.
pub struct DovecotBackend {
    process: Process,
    _dir: InstanceDir,
    pub imap: SocketAddr,
    pub imap_proxied: SocketAddr,
    pub lmtp: SocketAddr,
}

impl DovecotBackend {
    /// `users` (address, password); `master` is the proxy identity.
    pub fn start(
        users: &[(String, String)],
        master: (&str, &str),
        proxy_from: &str,
    ) -> anyhow::Result<DovecotBackend> {
        let dir = InstanceDir::create("dovecot-backend")?;
        let (imap, imap_proxied, lmtp) = (loopback()?, loopback()?, loopback()?);
        let d = dir.path();
        fs::create_dir(d.join("mail"))?;
        let ok = Command::new("chown")
            .arg("nobody:nogroup")
            .arg(d.join("mail"))
            .status()?
            .success();
        anyhow::ensure!(ok, "chown nobody {}", d.join("mail").display());
        let passwd: String = users
            .iter()
            .map(|(u, p)| format!("{u}:{{PLAIN}}{p}\n"))
            .collect();
        fs::write(d.join("users.passwd"), passwd)?;
        fs::write(
            d.join("master.passwd"),
            format!("{}:{{PLAIN}}{}\n", master.0, master.1),
        )?;
        // Login processes in high-performance mode, and imap processes
        // reused for 100 sessions, as shared/peers/dovecot-backend.conf.
        let conf = format!(
            "base_dir = {d}/run\nstate_dir = {d}/state\ninstance_name = tandem-bench-{port}\n\
             listen = 127.0.0.1\nprotocols = imap lmtp\nssl = no\n\
             disable_plaintext_auth = no\nauth_mechanisms = plain login\n\
             log_path = {d}/dovecot.log\n\
             haproxy_trusted_networks = {proxy_from}\nlogin_trusted_networks = 127.0.0.0/8\n\
             mail_location = maildir:{d}/mail/%u\nmail_uid = nobody\nmail_gid = nogroup\n\
             passdb {{\n  driver = passwd-file\n  args = {d}/master.passwd\n  master = yes\n  result_success = continue\n}}\n\
             passdb {{\n  driver = passwd-file\n  args = {d}/users.passwd\n}}\n\
             userdb {{\n  driver = static\n  args = uid=nobody gid=nogroup home={d}/mail/%u\n}}\n\
             service imap-login {{\n  inet_listener imap {{\n    port = {imapp}\n  }}\n  \
             inet_listener imap_proxied {{\n    port = {proxiedp}\n    haproxy = yes\n  }}\n  \
             inet_listener imaps {{\n    port = 0\n  }}\n  service_count = 0\n  process_min_avail = 2\n  \
             process_limit = 4\n  client_limit = 6000\n}}\n\
             service imap {{\n  process_limit = 6000\n  service_count = 100\n  process_min_avail = 4\n  idle_kill = 20 secs\n}}\n\
             service lmtp {{\n  inet_listener lmtp {{\n    address = 127.0.0.1\n    port = {lmtpp}\n  }}\n}}\n\
             protocol imap {{\n  mail_max_userip_connections = 10000\n}}\n\
             protocol lmtp {{\n  postmaster_address = postmaster@example.com\n}}\n{DOVECOT_LIMITS}",
            d = d.display(),
            port = imap.port(),
            imapp = imap.port(),
            proxiedp = imap_proxied.port(),
            lmtpp = lmtp.port(),
        );
        let process = start_dovecot(d, conf, &[imap, lmtp])?;
        Ok(DovecotBackend {
            process,
            _dir: dir,
            imap,
            imap_proxied,
            lmtp,
        })
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }
}

/// Dovecot as a stateless IMAP proxy (shared/peers/dovecot-proxy.conf): its
/// passdb sends every user to `backend` without checking the password, and
/// the login process logs in there with the client's own credentials.
pub struct DovecotProxy {
    process: Process,
    _dir: InstanceDir,
    pub imap: SocketAddr,
}

impl DovecotProxy {
    pub fn start(backend: SocketAddr) -> anyhow::Result<DovecotProxy> {
        let dir = InstanceDir::create("dovecot-proxy")?;
        let imap = loopback()?;
        let d = dir.path();
        let conf = format!(
            "base_dir = {d}/run\nstate_dir = {d}/state\ninstance_name = tandem-bench-proxy-{port}\n\
             listen = 127.0.0.1\nprotocols = imap\nssl = no\n\
             disable_plaintext_auth = no\nauth_mechanisms = plain login\n\
             log_path = {d}/dovecot.log\n\
             passdb {{\n  driver = static\n  args = proxy=y host={host} port={bport} nopassword=y\n}}\n\
             userdb {{\n  driver = static\n  args = uid=nobody gid=nogroup home={d}/empty\n}}\n\
             service imap-login {{\n  inet_listener imap {{\n    port = {port}\n  }}\n  \
             inet_listener imaps {{\n    port = 0\n  }}\n  service_count = 0\n  process_min_avail = 2\n  \
             process_limit = 2\n  client_limit = 10000\n}}\n{DOVECOT_LIMITS}",
            d = d.display(),
            port = imap.port(),
            host = backend.ip(),
            bport = backend.port(),
        );
        let process = start_dovecot(d, conf, &[imap])?;
        Ok(DovecotProxy {
            process,
            _dir: dir,
            imap,
        })
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }
}

/// nginx's mail proxy (shared/peers/nginx-mail.conf): the same nginx
/// answers its own `auth_http` requests with a fixed route to `backend`,
/// then logs in there with the client's credentials.
pub struct NginxMail {
    process: Process,
    _dir: InstanceDir,
    pub imap: SocketAddr,
}

/// Where Debian's libnginx-mod-mail puts the module.
const MAIL_MODULE: &str = "/usr/lib/nginx/modules/ngx_mail_module.so";

impl NginxMail {
    pub fn start(backend: SocketAddr, workers: usize) -> anyhow::Result<NginxMail> {
        let install = "the Debian packages nginx libnginx-mod-mail";
        let bin = find_binary(&["nginx"], &[]).ok_or_else(|| missing("nginx", install))?;
        if !Path::new(MAIL_MODULE).is_file() {
            return Err(missing(MAIL_MODULE, install));
        }
        let dir = InstanceDir::create("nginx")?;
        let (imap, auth) = (loopback()?, loopback()?);
        let d = dir.path();
        let conf = format!(
            "load_module {MAIL_MODULE};\ndaemon off;\nmaster_process on;\n\
             worker_processes {workers};\nworker_rlimit_nofile 19000;\n\
             pid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
             events {{\n  worker_connections 16000;\n}}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  \
             fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  \
             server {{\n    listen {auth};\n    location = /auth {{\n      \
             add_header Auth-Status OK;\n      add_header Auth-Server {host};\n      \
             add_header Auth-Port {bport};\n      return 200;\n    }}\n  }}\n}}\n\
             mail {{\n  server_name bench.example;\n  auth_http {auth}/auth;\n  proxy_pass_error_message on;\n  \
             imap_capabilities IMAP4rev1 LITERAL+ SASL-IR IDLE;\n  imap_auth plain login;\n  \
             server {{\n    listen {imap};\n    protocol imap;\n  }}\n}}\n",
            d = d.display(),
            host = backend.ip(),
            bport = backend.port(),
        );
        let path = d.join("nginx.conf");
        fs::write(&path, conf)?;
        let mut cmd = Command::new(bin);
        cmd.arg("-c")
            .arg(&path)
            .arg("-p")
            .arg(d)
            .arg("-e")
            .arg(d.join("error.log"));
        let mut process = Process::spawn("nginx", cmd, &d.join("stdout.log"), Signal::TERM)?;
        process.wait_ready(|| accepts(imap) && accepts(auth))?;
        Ok(NginxMail {
            process,
            _dir: dir,
            imap,
        })
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }
}
