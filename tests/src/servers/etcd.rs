//! Debian's etcd (package etcd-server) as a real cluster of 1 or 3 members
//! on loopback, each with its own data directory, for the client and
//! dynamic-cluster tests.

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use rustix::process::Signal;

use super::{InstanceDir, Process, find_binary, free_port};

pub struct Member {
    pub name: String,
    pub client: SocketAddr,
    peer: SocketAddr,
    process: Option<Process>,
}

pub struct EtcdCluster {
    members: Vec<Member>,
    bin: PathBuf,
    dir: InstanceDir,
    initial: String,
}

impl EtcdCluster {
    /// Starts `n` members forming one cluster; returns when each answers.
    pub fn start(n: usize) -> anyhow::Result<EtcdCluster> {
        let bin = find_binary(&["etcd"], &[])
            .context("etcd not found: install the Debian package etcd-server")?;
        let dir = InstanceDir::create("etcd")?;
        let mut members = Vec::new();
        for i in 0..n {
            members.push(Member {
                name: format!("m{i}"),
                client: SocketAddr::from(([127, 0, 0, 1], free_port()?)),
                peer: SocketAddr::from(([127, 0, 0, 1], free_port()?)),
                process: None,
            });
        }
        let initial = members
            .iter()
            .map(|m| format!("{}=http://{}", m.name, m.peer))
            .collect::<Vec<_>>()
            .join(",");
        let mut c = EtcdCluster {
            members,
            bin,
            dir,
            initial,
        };
        // All at once: a member waits for the others to elect a leader.
        for i in 0..n {
            c.spawn(i)?;
        }
        for i in 0..n {
            c.wait(i)?;
        }
        Ok(c)
    }

    fn spawn(&mut self, i: usize) -> anyhow::Result<()> {
        let m = &self.members[i];
        let data = self.dir.path().join(&m.name);
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--name")
            .arg(&m.name)
            .arg("--data-dir")
            .arg(&data)
            .arg("--listen-client-urls")
            .arg(format!("http://{}", m.client))
            .arg("--advertise-client-urls")
            .arg(format!("http://{}", m.client))
            .arg("--listen-peer-urls")
            .arg(format!("http://{}", m.peer))
            .arg("--initial-advertise-peer-urls")
            .arg(format!("http://{}", m.peer))
            .arg("--initial-cluster")
            .arg(&self.initial)
            .arg("--initial-cluster-state")
            .arg("new")
            .arg("--initial-cluster-token")
            .arg(self.dir.path().to_string_lossy().as_ref())
            // etcd's defaults: a loaded test machine must not see
            // spurious elections.
            .args(["--heartbeat-interval", "100", "--election-timeout", "1000"])
            .env("ETCD_UNSUPPORTED_ARCH", "");
        let log = self.dir.path().join(format!("{}.log", m.name));
        let p = Process::spawn("etcd", cmd, &log, Signal::TERM)?;
        self.members[i].process = Some(p);
        Ok(())
    }

    fn wait(&mut self, i: usize) -> anyhow::Result<()> {
        let addr = self.members[i].client;
        let p = self.members[i]
            .process
            .as_mut()
            .context("member not running")?;
        p.wait_ready(|| health(addr))
    }

    /// `host:port` of every member, for an `etcd.endpoints` list.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|m| m.client.to_string()).collect()
    }

    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// The index of the member that leads the cluster now, if one answers.
    pub fn leader(&self) -> Option<usize> {
        self.members.iter().enumerate().find_map(|(i, m)| {
            let body = post(m.client, "/v3/maintenance/status", "{}")?;
            let v: serde_json::Value = serde_json::from_str(&body).ok()?;
            let me = v["header"]["member_id"].as_str()?;
            (v["leader"].as_str()? == me).then_some(i)
        })
    }

    /// SIGKILL one member.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut p) = self.members[i].process.take() {
            p.kill();
        }
    }

    /// Starts a killed member again, with its data.
    pub fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        if self.members[i].process.is_none() {
            self.spawn(i)?;
            self.wait(i)?;
        }
        Ok(())
    }
}

/// POSTs `body` to `path`; the answer's body.
fn post(addr: SocketAddr, path: &str, body: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (_, body) = text.split_once("\r\n\r\n")?;
    // The gateway may answer chunked: the JSON is on the chunk's line.
    body.lines().find(|l| l.starts_with('{')).map(str::to_owned)
}

/// Whether the member answers `/health` with `"health":"true"`.
fn health(addr: SocketAddr) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if write!(
        s,
        "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .is_err()
    {
        return false;
    }
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text.contains("\"health\":\"true\"")
}
