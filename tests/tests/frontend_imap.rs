//! IMAP through the frontend: to Tandem's own backend nodes on two
//! clusters with real clients (imaplib, curl, mbsync), failover and
//! [UNAVAILABLE] when a cluster's nodes die, bad input before and after
//! login; and to Debian's Dovecot as a backend node (the frontend logs in
//! with the proxy identity as Dovecot's master user, behind a PROXY v2
//! header), which shows the proxy speaks standard IMAP.

use std::io::{BufRead, BufReader, Write};
use std::time::Duration;

use tokio::time::Instant;

use tests::backend::{Backend, PROXY_IDENTITY, PROXY_SECRET};
use tests::clients::{Raw, lmtp_send, python, require};
use tests::frontend::Frontend;
use tests::servers::Dovecot;

/// Logs in through the frontend and prints the subject of message 1 (or
/// the error).
const LOGIN: &str = r#"
import imaplib, sys
m = imaplib.IMAP4('127.0.0.1', int(sys.argv[1]))
try:
    typ, data = m.login(sys.argv[2], sys.argv[3])
except imaplib.IMAP4.error as e:
    print('NO', e); sys.exit(0)
print('caps', data[0].decode())
typ, data = m.select('INBOX')
if int(data[0]) > 0:
    typ, data = m.fetch('1', '(BODY.PEEK[HEADER.FIELDS (SUBJECT)])')
    print('subject', data[0][1].decode().strip())
m.logout()
"#;

#[test]
fn imap_clients_through_the_frontend_to_tandem_nodes_on_two_clusters() {
    let mut b1 = Backend::start().expect("cluster c1");
    let mut b2 = Backend::start_beside(&b1, "c2", "n2").expect("cluster c2");
    b1.add_account_on("alice@example.com", "alice-pw", "c1")
        .expect("alice");
    b1.add_account_on("bob@example.com", "bob-pw", "c2")
        .expect("bob");
    let msg = |s: &str| format!("Subject: {s}\r\n\r\nhello\r\n").into_bytes();
    for (b, who) in [(&b1, "alice"), (&b2, "bob")] {
        let rcpt = format!("{who}@example.com");
        let refused = lmtp_send(
            b.lmtp_addr(),
            "x@example.org",
            &[&rcpt],
            &msg(&format!("for {who}")),
        );
        assert_eq!(refused, "");
    }
    let fe = Frontend::start(&b1, "").expect("frontend");
    let port = fe.imap_addr().port().to_string();
    let login = |u: &str, pw: &str| python(LOGIN, &[&port, u, pw]);

    let out = login("alice@example.com", "alice-pw");
    assert!(
        out.contains("subject Subject: for alice"),
        "{out}\n{}",
        fe.log()
    );
    assert!(
        out.contains("MOVE") && out.contains("UIDPLUS"),
        "the client gets the backend's capabilities after login: {out}"
    );
    let out = login("BOB@Example.COM", "bob-pw");
    assert!(out.contains("subject Subject: for bob"), "{out}");
    let out = login("alice@example.com", "wrong");
    assert!(out.contains("NO b'[AUTHENTICATIONFAILED]"), "{out}");

    // One session followed across tiers: the backend logs the real client
    // (from the PROXY v2 header) and the frontend's session id (from ID).
    let fe_log = fe.log();
    let session = fe_log
        .lines()
        .filter(|l| l.contains("user=bob@example.com") && l.contains("logged in"))
        .find_map(|l| l.split("session{id=").nth(1))
        .and_then(|s| s.split([' ', '}']).next())
        .unwrap_or_else(|| panic!("no session id in the frontend log:\n{fe_log}"))
        .to_owned();
    let b2_log = b2.log();
    let line = b2_log
        .lines()
        .find(|l| l.contains("logged in"))
        .unwrap_or_default();
    assert!(line.contains("client=127.0.0.1:"), "{b2_log}");
    assert!(line.contains(&session), "session {session} not in: {line}");

    // curl through the frontend.
    let curl = require("curl", "curl");
    let out = std::process::Command::new(&curl)
        .args([
            "-sS",
            "--max-time",
            "10",
            "--user",
            "alice@example.com:alice-pw",
        ])
        .arg(format!("imap://127.0.0.1:{port}/INBOX;UID=1"))
        .output()
        .expect("curl");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Subject: for alice"),
        "{out:?}"
    );

    // mbsync through the frontend: pull, push one, and a second sync finds
    // the server unchanged.
    let mbsync = require("mbsync", "isync");
    let dir = tempfile::tempdir().expect("tempdir");
    let local = dir.path().join("mail");
    std::fs::create_dir(&local).expect("mkdir");
    let rc = dir.path().join("mbsyncrc");
    std::fs::write(
        &rc,
        format!(
            "IMAPAccount fe\nHost 127.0.0.1\nPort {port}\nUser alice@example.com\nPass alice-pw\nSSLType None\nAuthMechs LOGIN\n\n\
             IMAPStore remote\nAccount fe\n\nMaildirStore local\nPath {l}/\nInbox {l}/INBOX\n\n\
             Channel c\nFar :remote:\nNear :local:\nPatterns INBOX\nCreate Both\nSyncState *\n",
            l = local.display()
        ),
    )
    .expect("rc");
    let sync = || {
        let o = std::process::Command::new(&mbsync)
            .arg("-c")
            .arg(&rc)
            .arg("-a")
            .output()
            .expect("mbsync");
        assert!(o.status.success(), "mbsync: {o:?}");
    };
    sync();
    std::fs::write(
        local.join("INBOX/new/1700000000.up.host"),
        "Subject: pushed through the frontend\n\nup\n",
    )
    .expect("write");
    sync();
    sync();
    let out = python(
        r#"
import imaplib, sys
m = imaplib.IMAP4('127.0.0.1', int(sys.argv[1]))
m.login('alice@example.com', 'alice-pw')
print(m.select('INBOX')[1][0].decode(), m.search(None, 'SUBJECT', '"pushed through"')[1][0].decode())
"#,
        &[&port],
    );
    assert_eq!(
        out.trim(),
        "2 2",
        "one message pulled, one pushed, nothing doubled"
    );

    // c1 gets a second node; its first dies: new logins go to the live one.
    let n3 = Backend::start_beside(&b1, "c1", "n3").expect("second node of c1");
    // No wait for the frontend's cache (ttl 1s) to learn of n3: when every
    // node it knows fails, it asks the directory itself.
    b1.kill();
    let t = Instant::now();
    let out = login("alice@example.com", "alice-pw");
    assert!(out.contains("caps"), "failover to n3: {out}\n{}", fe.log());
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t.elapsed()
    );
    drop(n3);

    // c2 loses its only node: bob is told [UNAVAILABLE], fast.
    b2.kill();
    let t = Instant::now();
    let out = login("bob@example.com", "bob-pw");
    assert!(out.contains("NO b'[UNAVAILABLE]"), "{out}");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t.elapsed()
    );
}

/// After login the frontend only splices: the backend answers garbage with
/// BAD and the session goes on.
#[test]
fn garbage_after_login_gets_bad_from_the_backend() {
    let b = Backend::start().expect("backend");
    b.add_account("alice@example.com", "alice-pw")
        .expect("alice");
    let fe = Frontend::start(&b, "").expect("frontend");
    let mut c = Raw::connect(fe.imap_addr());
    c.line();
    let junk = "x".repeat(100_000);
    c.send(&format!(
        "a LOGIN alice@example.com alice-pw\r\nb FROB\r\n\0\x01\x7f junk\r\nc SELECT {{5}}\r\nINBOX\r\n{junk}\r\nd APPEND INBOX {{999999999999}}\r\ne NOOP\r\nf LOGOUT\r\n"
    ));
    let tagged = c.tagged_until_eof();
    let want = ["a OK", "b BAD", "c OK", "d NO [TOOBIG]", "e OK", "f OK"];
    assert_eq!(tagged.len(), want.len(), "{tagged:#?}");
    for (t, w) in tagged.iter().zip(want) {
        assert!(t.starts_with(w), "{t} is not {w}: {tagged:#?}");
    }
}

#[test]
fn imaplib_through_the_frontend_to_a_dovecot_node() {
    let b = Backend::start().expect("locator and a Tandem node");
    // Dovecot is the only node of its own cluster.
    b.tandem_ok(&["cluster", "add", "cd"]).expect("cluster cd");
    b.add_account_on("alice@example.com", "alice-pw", "cd")
        .expect("alice");
    let dovecot = Dovecot::start_imap(
        &[("alice@example.com", "alice-pw")],
        (PROXY_IDENTITY, PROXY_SECRET),
        "127.0.0.2",
    )
    .expect("dovecot");
    let imap = dovecot.imap_addr().expect("imap").to_string();
    b.tandem_ok(&["cluster", "node", "add", "cd", "dovecot", "--imap", &imap])
        .expect("node");
    let refused = lmtp_send(
        dovecot.lmtp_addr(),
        "bob@example.org",
        &["alice@example.com"],
        b"Subject: via dovecot\r\n\r\nhi\r\n",
    );
    assert_eq!(refused, "");

    let fe = Frontend::start(&b, "").expect("frontend");
    let port = fe.imap_addr().port().to_string();
    let script = r#"
import imaplib, sys, base64
port = int(sys.argv[1])
m = imaplib.IMAP4('127.0.0.1', port)
pre = m.capabilities
try:
    m.login('alice@example.com', 'wrong')
    print('wrong password accepted')
except imaplib.IMAP4.error as e:
    print('wrong:', e)
typ, data = m.login('alice@example.com', 'alice-pw')
print('login:', typ, data[0].decode())
typ, data = m.select('INBOX')
print('exists:', data[0].decode())
typ, data = m.fetch('1', '(BODY.PEEK[HEADER.FIELDS (SUBJECT)])')
print('subject:', data[0][1].decode().strip())
m.logout()
m = imaplib.IMAP4('127.0.0.1', port)
m.authenticate('PLAIN', lambda _: b'\0alice@example.com\0alice-pw')
print('authenticate:', m.state)
m.logout()
print('pre:', ' '.join(pre))
"#;
    let out = python(script, &[&port]);
    assert!(
        out.contains("wrong: b'[AUTHENTICATIONFAILED] Authentication failed.'"),
        "{out}"
    );
    assert!(out.contains("login: OK [CAPABILITY IMAP4rev1"), "{out}");
    assert!(
        out.contains("QRESYNC"),
        "the client gets the backend's capabilities after login: {out}"
    );
    assert!(
        out.contains("exists: 1") && out.contains("subject: Subject: via dovecot"),
        "{out}"
    );
    assert!(out.contains("authenticate: AUTH"), "{out}");
    assert!(
        out.contains("AUTH=PLAIN") && out.contains("SASL-IR"),
        "{out}"
    );

    // Dovecot saw the real client (127.0.0.1), not the frontend (127.0.0.2).
    let log = dovecot.log();
    let login = log
        .lines()
        .find(|l| l.contains("Login: user=<alice@example.com>"))
        .unwrap_or_default();
    assert!(login.contains("rip=127.0.0.1,"), "{login}\n{log}");
}

/// Before login the frontend answers bad input with BAD and goes on, and
/// drops clients that say nothing (slowloris) after `login_timeout`.
#[test]
fn bad_input_before_login() {
    use std::io::{BufRead, BufReader, Read, Write};
    let b = Backend::start().expect("backend");
    let fe = Frontend::start(&b, "    login_timeout: 2s\n").expect("frontend");
    let s = std::net::TcpStream::connect(fe.imap_addr()).expect("connect");
    let mut r = BufReader::new(s.try_clone().expect("clone"));
    let mut w = s;
    let mut line = String::new();
    r.read_line(&mut line).expect("greeting");
    assert!(line.starts_with("* OK [CAPABILITY IMAP4rev1"), "{line}");
    let long = "x".repeat(100_000);
    write!(
        w,
        "a LOGIN {{99999999}}\r\n\0\x01garbage\r\n{long}\r\nb SELECT INBOX\r\nc LOGIN \"unterminated\r\nd NOOP\r\n"
    )
    .expect("write");
    let mut answers = vec![];
    for _ in 0..6 {
        line.clear();
        r.read_line(&mut line).expect("answer");
        answers.push(line.trim_end().to_owned());
    }
    let want = ["a BAD", "* BAD", "* BAD", "b BAD", "c BAD", "d OK"];
    for (a, w) in answers.iter().zip(want) {
        assert!(a.starts_with(w), "{answers:?}");
    }
    write!(w, "e LOGOUT\r\n").expect("logout");
    line.clear();
    r.read_line(&mut line).expect("bye");
    assert!(line.starts_with("* BYE"), "{line}");
    // A second client that connects and stays silent is dropped.
    let silent = std::net::TcpStream::connect(fe.imap_addr()).expect("connect");
    silent
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .expect("timeout");
    let t = tokio::time::Instant::now();
    let mut rest = Vec::new();
    let _ = (&silent).read_to_end(&mut rest);
    assert!(
        t.elapsed() < std::time::Duration::from_secs(5),
        "a silent client was kept {:?}",
        t.elapsed()
    );
}

/// 10,000 failed logins from one address (100 connections at a time, three
/// tries each, as fast as the frontend answers) while alice logs in from
/// another: she is served promptly throughout, and every failure is counted.
#[test]
fn ten_thousand_failed_logins_from_one_address_leave_others_served() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let b = Backend::start().expect("backend");
    b.add_account("alice@example.com", "alice-pw")
        .expect("alice");
    let fe =
        Frontend::start(&b, "    auth_penalty_max: 50ms\n    max_per_ip: 200\n").expect("frontend");
    let addr = fe.imap_addr();
    let failures = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));
    const TOTAL: usize = 10_000;
    let attackers: Vec<_> = (0..100)
        .map(|_| {
            let (failures, done) = (failures.clone(), done.clone());
            std::thread::spawn(move || {
                while failures.load(Ordering::Relaxed) < TOTAL {
                    // From 127.0.0.3: one address, not alice's.
                    let s = socket2_from(addr);
                    let Ok(s) = s else { continue };
                    let mut r = BufReader::new(s.try_clone().expect("clone"));
                    let mut w = s;
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        continue;
                    }
                    for i in 0..3 {
                        if write!(w, "g{i} LOGIN victim@example.com guess{i}\r\n").is_err() {
                            break;
                        }
                        line.clear();
                        while r.read_line(&mut line).unwrap_or(0) > 0 && line.starts_with('*') {
                            line.clear();
                        }
                        if line.contains("NO [AUTHENTICATIONFAILED]") {
                            failures.fetch_add(1, Ordering::Relaxed);
                        } else {
                            break;
                        }
                    }
                }
                done.store(true, Ordering::Relaxed);
            })
        })
        .collect();
    // Alice logs in again and again while the attack runs.
    let port = addr.port().to_string();
    let mut worst = Duration::ZERO;
    let mut logins = 0;
    while failures.load(Ordering::Relaxed) < TOTAL {
        let t = Instant::now();
        let out = python(LOGIN, &[&port, "alice@example.com", "alice-pw"]);
        assert!(out.contains("caps [CAPABILITY"), "{out}");
        worst = worst.max(t.elapsed());
        logins += 1;
    }
    for a in attackers {
        a.join().expect("attacker");
    }
    assert!(done.load(Ordering::Relaxed));
    eprintln!(
        "{} failed logins; alice logged in {logins} times meanwhile, slowest {worst:?}",
        failures.load(Ordering::Relaxed)
    );
    assert!(logins >= 3, "alice got in only {logins} times");
    assert!(worst < Duration::from_secs(2), "alice waited {worst:?}");
    let metrics = fe.metrics();
    let counted: usize = metrics
        .lines()
        .find(|l| l.starts_with("tandem_frontend_logins_total{result=\"failed\"}"))
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(counted >= TOTAL, "{counted} failures counted:\n{metrics}");
}

/// A TCP connection to `addr` from 127.0.0.3.
fn socket2_from(addr: std::net::SocketAddr) -> std::io::Result<std::net::TcpStream> {
    let sock = tokio::net::TcpSocket::new_v4()?;
    sock.bind("127.0.0.3:0".parse().expect("addr"))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    let s = rt.block_on(sock.connect(addr))?;
    let s = s.into_std()?;
    s.set_nonblocking(false)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    Ok(s)
}

/// Guesses for one account spread over many addresses (a botnet behind a
/// load balancer that sends PROXY headers) are slowed down by the
/// account's own penalty; another account is not.
#[test]
fn guesses_for_one_account_from_many_addresses_slow_down() {
    let b = Backend::start().expect("backend");
    b.add_account("alice@example.com", "alice-pw")
        .expect("alice");
    b.add_account("carol@example.com", "carol-pw")
        .expect("carol");
    let fe = Frontend::start(
        &b,
        "  proxy_protocol_from: [127.0.0.3/32]\n  trusted_networks: [198.51.100.0/24]\n",
    )
    .expect("frontend");
    let port = fe.imap_addr().port().to_string();
    let script = r#"
import socket, sys, time
port = int(sys.argv[1])
def attempt(i, user, pw):
    s = socket.create_connection(('127.0.0.1', port), timeout=30, source_address=('127.0.0.3', 0))
    s.sendall(b'PROXY TCP4 198.51.100.%d 127.0.0.1 4000 143\r\n' % (i % 250 + 1))
    f = s.makefile('rb')
    f.readline()
    t = time.time()
    s.sendall(b'a LOGIN ' + user + b' ' + pw + b'\r\n')
    line = f.readline()
    while line.startswith(b'*'):
        line = f.readline()
    s.close()
    return time.time() - t, line
waits = [attempt(i, b'carol@example.com', b'guess')[0] for i in range(8)]
print('carol guesses', ' '.join('%.2f' % w for w in waits))
w, line = attempt(100, b'alice@example.com', b'alice-pw')
print('alice', '%.2f' % w, line.decode().strip()[:4])
"#;
    let out = python(script, &[&port]);
    let waits: Vec<f64> = out
        .lines()
        .find_map(|l| l.strip_prefix("carol guesses "))
        .unwrap_or_else(|| panic!("{out}"))
        .split(' ')
        .filter_map(|w| w.parse().ok())
        .collect();
    // auth_failure_delay is 100ms in tests: every guess waits it; from the
    // fourth on, the account's penalty adds a growing wait on top although
    // each guess comes from a fresh address.
    assert!(waits[7] > waits[0] + 0.15, "no account penalty: {out}");
    let alice: f64 = out
        .lines()
        .find_map(|l| l.strip_prefix("alice "))
        .and_then(|l| l.split(' ').next())
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    assert!(alice < 1.0, "alice was slowed down: {out}");
    assert!(out.contains("a OK"), "{out}");
}

/// Active health checks find a dead node before any login does: logins go
/// straight to the live node, and the metrics say which is down.
#[test]
fn health_checks_mark_dead_nodes_before_logins_do() {
    let mut b1 = Backend::start().expect("node n1 of c1");
    let n2 = Backend::start_beside(&b1, "c1", "n2").expect("node n2 of c1");
    b1.add_account("alice@example.com", "alice-pw")
        .expect("alice");
    let fe = Frontend::start(&b1, "  health_check_interval: 200ms\n").expect("frontend");
    let up =
        |node: &str| format!("tandem_frontend_backend_up{{node=\"{node}\",service=\"imap\"}} 1");
    let wait_for = |what: &str| {
        let t = Instant::now();
        while !fe.metrics().contains(what) {
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "never saw {what}:\n{}",
                fe.metrics()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait_for(&up("n1"));
    wait_for(&up("n2"));
    b1.kill();
    wait_for("tandem_frontend_backend_up{node=\"n1\",service=\"imap\"} 0");
    let port = fe.imap_addr().port().to_string();
    for _ in 0..4 {
        let out = python(LOGIN, &[&port, "alice@example.com", "alice-pw"]);
        assert!(out.contains("caps"), "{out}");
    }
    let metrics = fe.metrics();
    assert!(
        !metrics.contains("tandem_frontend_backend_connects_total{node=\"n1\",result=\"refused\"}"),
        "a login tried the dead node first:\n{metrics}"
    );
    // The health checks were not taken for clients by the backend.
    assert!(
        !n2.log().contains("logged in user=tandem-proxy"),
        "{}",
        n2.log()
    );
    b1.restart().expect("n1 again");
    wait_for(&up("n1"));
}

/// SIGTERM: `/health` fails and nothing new is accepted at once; a
/// logged-in session goes on until drain_timeout, then gets `* BYE`.
#[test]
fn sigterm_drains_then_says_bye() {
    let b = Backend::start().expect("backend");
    b.add_account("alice@example.com", "alice-pw")
        .expect("alice");
    let fe = Frontend::start(&b, "    drain_timeout: 2s\n").expect("frontend");
    let mut c = Raw::connect(fe.imap_addr());
    c.until("* OK");
    c.send("a LOGIN alice@example.com alice-pw\r\nb SELECT INBOX\r\n");
    assert!(c.until("b ").starts_with("b OK"));

    let t = Instant::now();
    fe.terminate();
    while fe.health() == Some(200) {
        assert!(t.elapsed() < Duration::from_secs(2), "/health still OK");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        std::net::TcpStream::connect(fe.imap_addr()).is_err(),
        "new connections are still accepted while draining"
    );
    c.send("c NOOP\r\n");
    assert!(c.until("c ").starts_with("c OK"), "the session goes on");
    let bye = c.until("* BYE");
    assert_eq!(bye, "* BYE Server shutting down; please reconnect.\r\n");
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(6),
        "goodbye after {waited:?}"
    );
    assert_eq!(c.line(), "", "closed");
}

/// ID with thirty 1,000-byte values (RFC 2971's limits) is a 31 KB line:
/// answered, not taken for garbage; a line over 64 KiB gets BAD, and the
/// session goes on.
#[test]
fn long_id_before_login_is_answered() {
    let b = Backend::start().expect("backend");
    let fe = Frontend::start(&b, "").expect("frontend");
    let mut c = Raw::connect(fe.imap_addr());
    c.line();
    let pairs: Vec<String> = (0..30)
        .map(|i| format!("\"k{i}\" \"{}\"", "v".repeat(1000)))
        .collect();
    c.send(&format!("a ID ({})\r\n", pairs.join(" ")));
    assert!(c.until("a ").starts_with("a OK"));
    c.send(&format!("b {}\r\nc NOOP\r\n", "x".repeat(70_000)));
    assert_eq!(c.line(), "* BAD Line too long.\r\n");
    assert!(c.until("c ").starts_with("c OK"));
}
