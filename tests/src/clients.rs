//! Real mail clients and peer servers driven from tests: Python's standard
//! library (smtplib, poplib, imaplib), curl, and Dovecot's `imap` binary
//! run in preauth mode on a Maildir. A missing one fails the test with the
//! Debian package to install, never a silent pass.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Fails unless `program` is installed, naming the package that has it.
pub fn require(program: &str, package: &str) -> PathBuf {
    crate::servers::find_binary(&[program], &[PathBuf::from("/usr/lib/dovecot")])
        .unwrap_or_else(|| panic!("{program} not found: install the Debian package {package}"))
}

/// Runs a Python 3 script with `args`; fails the test (with the script's
/// stderr) unless it exits 0. Returns its stdout.
pub fn python(script: &str, args: &[&str]) -> String {
    let out = python_output(script, args);
    assert!(
        out.status.success(),
        "python script failed ({}):\n{}\n--- stdout:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a Python 3 script and returns whatever it did.
pub fn python_output(script: &str, args: &[&str]) -> Output {
    let py = require("python3", "python3");
    Command::new(py)
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("run python3")
}

/// Logs in on `addr` with imaplib and returns INBOX as (UID, Subject)
/// pairs in UID order.
pub fn imap_subjects(addr: std::net::SocketAddr, user: &str, password: &str) -> Vec<(u32, String)> {
    let script = r#"
import imaplib, sys
m = imaplib.IMAP4('127.0.0.1', int(sys.argv[1]))
m.login(sys.argv[2], sys.argv[3])
m.select('INBOX')
typ, data = m.uid('FETCH', '1:*', '(UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])')
for d in data:
    if isinstance(d, tuple):
        uid = d[0].decode().split('UID ')[1].split(' ')[0]
        print(uid, d[1].decode().strip().replace('Subject: ', ''))
m.logout()
"#;
    python(script, &[&addr.port().to_string(), user, password])
        .lines()
        .filter_map(|l| {
            let (uid, subject) = l.split_once(' ')?;
            Some((uid.parse().ok()?, subject.to_owned()))
        })
        .collect()
}

/// Whether imaplib can log in on `addr` (a refusal is a `NO`, not an error).
pub fn imap_can_login(addr: std::net::SocketAddr, user: &str, password: &str) -> bool {
    let script = r#"
import imaplib, sys
m = imaplib.IMAP4('127.0.0.1', int(sys.argv[1]))
try:
    m.login(sys.argv[2], sys.argv[3])
    print('ok')
except imaplib.IMAP4.error as e:
    print('no')
"#;
    python(script, &[&addr.port().to_string(), user, password]).trim() == "ok"
}

/// Delivers `message` to `rcpts` over LMTP with Python's `smtplib.LMTP`;
/// returns the recipients refused, as `address code` lines.
pub fn lmtp_send(addr: std::net::SocketAddr, from: &str, rcpts: &[&str], message: &[u8]) -> String {
    let script = r#"
import smtplib, sys
host, port, sender = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rcpts = sys.argv[4:]
msg = sys.stdin.buffer.read()
c = smtplib.LMTP(host, port)
try:
    refused = c.sendmail(sender, rcpts, msg)
except smtplib.SMTPRecipientsRefused as e:
    refused = e.recipients
except smtplib.SMTPDataError as e:
    refused = {r: (e.smtp_code, e.smtp_error) for r in rcpts}
for r, (code, _) in sorted(refused.items()):
    print(r, code)
c.quit()
"#;
    let py = require("python3", "python3");
    let mut child = Command::new(py)
        .arg("-c")
        .arg(script)
        .arg(addr.ip().to_string())
        .arg(addr.port().to_string())
        .arg(from)
        .args(rcpts)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python3");
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(message).expect("write the message");
    }
    let out = child.wait_with_output().expect("python3");
    assert!(
        out.status.success(),
        "smtplib.LMTP failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Dovecot's `imap` in preauth mode over stdin/stdout on the Maildir at
/// `maildir`, as user `nobody` (Dovecot refuses root), with in-memory
/// indexes. Feeds it `commands` (one IMAP command per line, tagged) and
/// returns the whole conversation as Dovecot answered it.
pub fn dovecot_imap(maildir: &Path, commands: &str) -> String {
    let imap = require("imap", "dovecot-imapd");
    let scratch = tempfile::tempdir().expect("temp dir");
    let conf = scratch.path().join("dovecot.conf");
    std::fs::write(
        &conf,
        format!(
            "mail_uid = nobody\nmail_gid = nogroup\nlog_path = {log}\nbase_dir = {run}\n\
             state_dir = {run}\nprotocols = imap\nssl = no\n\
             mail_location = maildir:{maildir}:INDEX=MEMORY\n",
            maildir = maildir.display(),
            log = scratch.path().join("dovecot.log").display(),
            run = scratch.path().display(),
        ),
    )
    .expect("write dovecot.conf");
    // The mail becomes nobody's; Tandem runs as root and keeps access.
    let chown = Command::new("chown")
        .args(["-R", "nobody:nogroup"])
        .arg(maildir)
        .status()
        .expect("chown");
    assert!(chown.success(), "chown -R nobody {}", maildir.display());
    let mut child = Command::new(imap)
        .arg("-c")
        .arg(&conf)
        .env_clear()
        .env("USER", "tandem-interop")
        .env("HOME", scratch.path())
        .env(
            "MAIL",
            format!("maildir:{}:INDEX=MEMORY", maildir.display()),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run dovecot imap");
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(commands.as_bytes()).expect("write to imap");
        stdin.write_all(b"zz LOGOUT\r\n").expect("write to imap");
    }
    let out = child.wait_with_output().expect("dovecot imap");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains("zz OK"),
        "dovecot imap did not finish:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// A throw-away self-signed certificate and key (PEM) for `CN=backend.test`,
/// made with the `openssl` command; lives as long as the returned directory.
pub fn self_signed_cert() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let openssl = require("openssl", "openssl");
    let dir = tempfile::tempdir().expect("temp dir");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let status = Command::new(openssl)
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=backend.test", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .expect("run openssl");
    assert!(status.success(), "openssl req failed");
    (dir, cert, key)
}

/// A raw line-protocol connection for tests that must see exactly what a
/// server sends (pipelined commands, untagged responses, goodbyes): reads
/// time out after 10 s, so a silent server fails the test instead of
/// hanging it.
pub struct Raw {
    r: std::io::BufReader<std::net::TcpStream>,
    w: std::net::TcpStream,
}

impl Raw {
    pub fn connect(addr: std::net::SocketAddr) -> Raw {
        let s = std::net::TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .expect("read timeout");
        Raw {
            r: std::io::BufReader::new(s.try_clone().expect("clone")),
            w: s,
        }
    }

    pub fn send(&mut self, text: &str) {
        self.w.write_all(text.as_bytes()).expect("write");
    }

    /// The next line, CRLF included; empty at EOF.
    pub fn line(&mut self) -> String {
        use std::io::BufRead;
        let mut line = String::new();
        self.r.read_line(&mut line).expect("read");
        line
    }

    /// Reads until a line starts with `prefix` and returns it (empty at EOF).
    pub fn until(&mut self, prefix: &str) -> String {
        loop {
            let line = self.line();
            if line.is_empty() || line.starts_with(prefix) {
                return line;
            }
        }
    }

    /// Every tagged IMAP result line (one-letter tags) until the server
    /// closes the connection.
    pub fn tagged_until_eof(&mut self) -> Vec<String> {
        let mut tagged = vec![];
        loop {
            let line = self.line();
            if line.is_empty() {
                return tagged;
            }
            let tag = line.split(' ').next().unwrap_or_default();
            if tag.len() == 1 && tag.chars().all(|c| c.is_ascii_alphabetic()) {
                tagged.push(line.trim_end().to_owned());
            }
        }
    }
}
