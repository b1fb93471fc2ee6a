//! IMAP through the frontend, with Debian's Dovecot as the backend node
//! (Tandem's own IMAP server is the next issue): the frontend logs in with
//! the proxy identity as Dovecot's master user, behind a PROXY v2 header.

use tests::backend::{Backend, CLUSTER, PROXY_IDENTITY, PROXY_SECRET};
use tests::clients::{lmtp_send, python};
use tests::frontend::Frontend;
use tests::servers::Dovecot;

#[test]
fn imaplib_through_the_frontend_to_a_dovecot_node() {
    let b = Backend::start().expect("locator and a Tandem node");
    b.add_account("alice@example.com", "alice-pw")
        .expect("alice");
    let dovecot = Dovecot::start_imap(
        &[("alice@example.com", "alice-pw")],
        (PROXY_IDENTITY, PROXY_SECRET),
        "127.0.0.2",
    )
    .expect("dovecot");
    let imap = dovecot.imap_addr().expect("imap").to_string();
    b.tandem_ok(&[
        "cluster", "node", "add", CLUSTER, "dovecot", "--imap", &imap,
    ])
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
    let long = "x".repeat(20_000);
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
    let t = std::time::Instant::now();
    let mut rest = Vec::new();
    let _ = (&silent).read_to_end(&mut rest);
    assert!(
        t.elapsed() < std::time::Duration::from_secs(5),
        "a silent client was kept {:?}",
        t.elapsed()
    );
}
