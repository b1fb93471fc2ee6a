//! Debian's haproxy as the load balancer in front of frontends: plain TCP,
//! round robin, `send-proxy-v2`, active health checks.

use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use rustix::process::Signal;

use super::{InstanceDir, Process, find_binary, free_port};

pub struct Haproxy {
    process: Option<Process>,
    _dir: InstanceDir,
    addr: SocketAddr,
}

impl Haproxy {
    /// Balances connections to `servers`, each told the client's address
    /// with a PROXY v2 header; a server failing its check is left out.
    pub fn start(servers: &[SocketAddr]) -> anyhow::Result<Haproxy> {
        let bin = find_binary(&["haproxy"], &[])
            .context("haproxy not found: install the Debian package haproxy")?;
        let dir = InstanceDir::create("haproxy")?;
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let mut conf = format!(
            "global\n  maxconn 2000\n\ndefaults\n  mode tcp\n  timeout connect 2s\n  timeout client 1m\n  timeout server 1m\n\n\
             listen pop3\n  bind {addr}\n  balance roundrobin\n  option redispatch\n  retries 2\n"
        );
        for (i, s) in servers.iter().enumerate() {
            conf.push_str(&format!(
                "  server fe{i} {s} send-proxy-v2 check inter 300ms fall 1 rise 1\n"
            ));
        }
        let path = dir.path().join("haproxy.cfg");
        fs::write(&path, conf)?;
        let mut cmd = Command::new(bin);
        cmd.arg("-db").arg("-f").arg(&path);
        let mut process = Process::spawn(
            "haproxy",
            cmd,
            &dir.path().join("haproxy.log"),
            Signal::TERM,
        )?;
        process
            .wait_ready(|| TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok())?;
        Ok(Haproxy {
            process: Some(process),
            _dir: dir,
            addr,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.stop();
        }
    }
}
