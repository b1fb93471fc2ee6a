//! `tandem up`: the README's quickstart, as a user runs it.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use tokio::time::Instant;

fn tandem(dir: &std::path::Path, args: &[&str], stdin: &str) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .arg("--config")
        .arg(dir.join("tandem.yaml"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tandem");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("stdin");
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "tandem {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn up_serves_mail_end_to_end_and_stops_on_sigterm() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("data");
    // An offset far from the defaults, so a developer's own `tandem up`
    // does not collide with the test.
    // Every port stays below Linux's ephemeral range (32768 up), where a
    // client socket of another test could hold it.
    let offset = 10_000 + (std::process::id() % 1_300) as u16 * 10;
    let (mut up, endpoints) = start(&dir, offset, &[]);

    tandem(&dir, &["domain", "add", "example.com"], "");
    tandem(
        &dir,
        &["account", "add", "alice@example.com", "--password-stdin"],
        "pw\n",
    );
    let shown: serde_json::Value = serde_json::from_str(&tandem(
        &dir,
        &["--json", "account", "show", "alice@example.com"],
        "",
    ))
    .expect("json");
    let cluster = shown["cluster"].as_str().expect("cluster");
    let lmtp = endpoints["lmtp"][cluster].as_str().expect("lmtp endpoint");
    let pop3s = endpoints["pop3s"].as_str().expect("pop3s endpoint");
    let imaps = endpoints["imaps"].as_str().expect("imaps endpoint");
    let script = "import smtplib, poplib, ssl, sys\n\
        h, p = sys.argv[1].split(':')\n\
        c = smtplib.LMTP(h, int(p))\nc.sendmail('a@example.org', ['alice@example.com'], b'Subject: up\\r\\n\\r\\nhi\\r\\n')\nc.quit()\n\
        h, p = sys.argv[2].split(':')\n\
        s = poplib.POP3_SSL(h, int(p), context=ssl._create_unverified_context())\n\
        s.user('alice@example.com')\ns.pass_('pw')\nprint(s.stat()[0])\ns.quit()\n\
        import imaplib\n\
        h, p = sys.argv[3].split(':')\n\
        m = imaplib.IMAP4_SSL(h, int(p), ssl_context=ssl._create_unverified_context())\n\
        m.login('alice@example.com', 'pw')\nm.select('INBOX')\n\
        print(m.fetch('1', '(BODY.PEEK[HEADER.FIELDS (SUBJECT)])')[1][0][1].decode().strip())\nm.logout()\n";
    let out = Command::new("python3")
        .args(["-c", script, lmtp, pop3s, imaps])
        .output()
        .expect("python3 (package python3)");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "1\nSubject: up",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // SIGTERM: every child drains and exits, then `up` itself.
    stop(&mut up);
    let pop3s_port: u16 = pop3s
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", pop3s_port)).is_err(),
        "the frontend is gone"
    );
}

#[test]
fn up_with_several_nodes_runs_its_own_etcd_and_shows_live_nodes() {
    assert!(
        std::path::Path::new("/usr/bin/etcd").is_file(),
        "etcd not found: install the Debian package etcd-server"
    );
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("data");
    // Clear of the other test's ports (offset 10,000 up, same pid).
    let offset = 3_000 + (std::process::id() % 700) as u16 * 10;
    let (mut up, endpoints) = start(&dir, offset, &["--nodes", "2"]);
    assert_eq!(endpoints["nodes_per_cluster"], 2, "{endpoints}");
    assert!(endpoints["etcd"].is_string(), "{endpoints}");
    let status: serde_json::Value =
        serde_json::from_str(&tandem(&dir, &["--json", "cluster", "status", "c1"], ""))
            .expect("json");
    let ids: Vec<&str> = status
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|n| n["id"].as_str())
        .collect();
    assert_eq!(ids, ["c1n1", "c1n2"], "{status}");

    stop(&mut up);
}

/// `tandem up --json --dir DIR --port-offset OFFSET EXTRA...` and the
/// endpoints it printed once ready.
fn start(
    dir: &std::path::Path,
    offset: u16,
    extra: &[&str],
) -> (std::process::Child, serde_json::Value) {
    let mut up = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(["up", "--json", "--dir"])
        .arg(dir)
        .arg("--port-offset")
        .arg(offset.to_string())
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tandem up");
    let mut line = String::new();
    BufReader::new(up.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("ready line");
    let endpoints = serde_json::from_str(&line).unwrap_or_else(|e| {
        let _ = up.wait();
        let mut err = String::new();
        if let Some(mut s) = up.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut s, &mut err);
        }
        panic!("{e}: {line:?}\n{err}")
    });
    (up, endpoints)
}

/// SIGTERM; every child drains and exits, then `up` itself, successfully.
fn stop(up: &mut std::process::Child) {
    let pid = rustix::process::Pid::from_raw(up.id() as i32).expect("pid");
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("kill");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = up.try_wait().expect("wait") {
            break s;
        }
        assert!(Instant::now() < deadline, "tandem up did not stop");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status}");
}
