//! Postfix's `smtp-sink` (Debian package postfix) as the smarthost a
//! frontend relays to: it takes every message and dumps each transaction,
//! envelope included (`X-Mail-Args:`, `X-Rcpt-Args:` lines), to a file.

use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use rustix::process::Signal;

use super::{InstanceDir, Process, find_binary, free_port, missing, running_as_root};

pub struct SmtpSink {
    process: Option<Process>,
    dir: InstanceDir,
    addr: SocketAddr,
}

impl SmtpSink {
    /// Starts a sink; `args` go before the address (e.g. `["-f", "RCPT"]`
    /// to refuse every recipient with 5xx).
    pub fn start(args: &[&str]) -> anyhow::Result<SmtpSink> {
        let bin = find_binary(&["smtp-sink"], &[])
            .ok_or_else(|| missing("smtp-sink", "the Debian package postfix"))?;
        let dir = InstanceDir::create("smtp-sink")?;
        let dumps = dir.path().join("dumps");
        fs::create_dir(&dumps)?;
        // As root, smtp-sink drops to `-u nobody`, which must write dumps.
        fs::set_permissions(&dumps, fs::Permissions::from_mode(0o777))?;
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let mut cmd = Command::new(bin);
        if running_as_root() {
            cmd.args(["-u", "nobody"]);
        }
        cmd.arg("-d")
            .arg(dumps.join("%M."))
            .args(args)
            .arg(addr.to_string())
            .arg("100");
        let mut process = Process::spawn(
            "smtp-sink",
            cmd,
            &dir.path().join("smtp-sink.log"),
            Signal::TERM,
        )?;
        process
            .wait_ready(|| TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok())?;
        Ok(SmtpSink {
            process: Some(process),
            dir,
            addr,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every transaction dumped so far: `X-Mail-Args:`/`X-Rcpt-Args:`
    /// lines, then the message.
    pub fn messages(&self) -> Vec<String> {
        let Ok(rd) = fs::read_dir(self.dir.path().join("dumps")) else {
            return Vec::new();
        };
        let mut out: Vec<String> = rd
            .filter_map(Result::ok)
            .filter_map(|e| fs::read(e.path()).ok())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            // A dump is complete once the message's end was written.
            .filter(|t| !t.is_empty())
            .collect();
        out.sort();
        out
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.stop();
        }
    }
}
