//! The LMTP server of a real `tandem backend` process, driven by real
//! clients: Python's `smtplib.LMTP`, swaks, and a raw socket for what no
//! client library does on purpose (garbage, pipelined errors, BDAT, a
//! SIGKILL right after the 250).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use tests::backend::Backend;
use tests::clients::{python, require};

/// Delivers stdin from argv[3] to argv[4:] with `smtplib.LMTP`, reading
/// one reply per accepted recipient after DATA (RFC 2033 §4.2; `sendmail`
/// reads only the first). Prints the replies as JSON.
const DELIVER: &str = r#"
import smtplib, sys, json
host, port, sender = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rcpts = sys.argv[4:]
msg = sys.stdin.buffer.read()
c = smtplib.LMTP(host, port)
out = {"lhlo": c.ehlo()[0], "mail": c.mail(sender)[0], "rcpt": {}, "data": {}}
ok = []
for r in rcpts:
    code, _ = c.rcpt(r)
    out["rcpt"][r] = code
    if code == 250:
        ok.append(r)
if ok:
    code, text = c.data(msg)
    replies = [(code, text)] + [c.getreply() for _ in ok[1:]]
    for r, (code, text) in zip(ok, replies):
        out["data"][r] = [code, text.decode()]
out["quit"] = c.quit()[0]
print(json.dumps(out))
"#;

/// `sendmail` as an MTA would call it; prints what it raised or returned.
const SENDMAIL: &str = r#"
import smtplib, sys, json
host, port, sender = sys.argv[1], int(sys.argv[2]), sys.argv[3]
msg = sys.stdin.buffer.read()
c = smtplib.LMTP(host, port)
try:
    refused = c.sendmail(sender, sys.argv[4:], msg)
    out = {"ok": {r: c[0] for r, c in refused.items()}}
except smtplib.SMTPRecipientsRefused as e:
    out = {"recipients_refused": {r: c[0] for r, c in e.recipients.items()}}
except smtplib.SMTPSenderRefused as e:
    out = {"sender_refused": [e.smtp_code, e.smtp_error.decode()]}
except smtplib.SMTPDataError as e:
    out = {"data_error": [e.smtp_code, e.smtp_error.decode()]}
print(json.dumps(out))
"#;

#[derive(Debug, serde::Deserialize)]
struct Delivery {
    lhlo: u16,
    mail: u16,
    rcpt: BTreeMap<String, u16>,
    data: BTreeMap<String, (u16, String)>,
    quit: u16,
}

fn run_python(script: &str, b: &Backend, sender: &str, rcpts: &[&str], msg: &[u8]) -> String {
    let py = require("python3", "python3");
    let addr = b.lmtp_addr();
    let mut child = Command::new(py)
        .arg("-c")
        .arg(script)
        .arg(addr.ip().to_string())
        .arg(addr.port().to_string())
        .arg(sender)
        .args(rcpts)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python3");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(msg)
        .expect("write the message");
    let out = child.wait_with_output().expect("python3");
    assert!(
        out.status.success(),
        "python failed: {}\n--- backend log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        b.log_tail()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn deliver(b: &Backend, sender: &str, rcpts: &[&str], msg: &[u8]) -> Delivery {
    let out = run_python(DELIVER, b, sender, rcpts, msg);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn sendmail(b: &Backend, sender: &str, rcpts: &[&str], msg: &[u8]) -> serde_json::Value {
    let out = run_python(SENDMAIL, b, sender, rcpts, msg);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// The messages in an account's `new/`, oldest name first.
fn new_messages(b: &Backend, address: &str) -> Vec<(PathBuf, Vec<u8>)> {
    files_in(&b.maildir(address).join("new"))
}

fn files_in(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let data = std::fs::read(&p).expect("read a message");
            (p, data)
        })
        .collect()
}

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).expect("UTF-8 message")
}

fn backend() -> Backend {
    let b = Backend::start().expect("start the backend");
    for a in ["alice@example.com", "bob@example.com"] {
        b.add_account(a, "secret").expect("add account");
    }
    b.tandem_ok(&["alias", "add", "robert@example.com", "bob@example.com"])
        .expect("add alias");
    b
}

/// A raw LMTP conversation over a socket.
struct Raw {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

impl Raw {
    fn connect(addr: SocketAddr) -> Raw {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        let mut raw = Raw {
            r: BufReader::new(s.try_clone().expect("clone")),
            w: s,
        };
        let greeting = raw.reply();
        assert!(greeting.starts_with("220 "), "{greeting}");
        raw
    }

    fn send(&mut self, bytes: &[u8]) {
        self.w.write_all(bytes).expect("send");
    }

    /// One whole reply (the lines of a multi-line one joined by `\n`).
    fn reply(&mut self) -> String {
        let mut lines = Vec::new();
        loop {
            let mut l = String::new();
            let n = self.r.read_line(&mut l).expect("read a reply");
            assert!(n > 0, "connection closed after {lines:?}");
            assert!(l.ends_with("\r\n"), "reply line without CRLF: {l:?}");
            let l = l.trim_end().to_owned();
            let more = l.as_bytes().get(3) == Some(&b'-');
            lines.push(l);
            if !more {
                return lines.join("\n");
            }
        }
    }

    fn replies(&mut self, n: usize) -> Vec<String> {
        (0..n).map(|_| self.reply()).collect()
    }

    /// Whether the server closed the connection (EOF on the next read).
    fn closed(&mut self) -> bool {
        let mut l = String::new();
        matches!(self.r.read_line(&mut l), Ok(0))
    }
}

const MESSAGE: &[u8] = b"From: sender@remote.example\r\nTo: alice@example.com\r\n\
Subject: LMTP test\r\nMessage-ID: <lmtp-test-1@remote.example>\r\n\r\n\
first line\r\n.leading dot\r\n..two dots\r\n.\r\nnot the end\r\nlast line\r\n";

/// What the body above must look like in the store: LF line ends, every
/// line as written (smtplib stuffs the dots, the server unstuffs them).
const STORED_BODY: &str = "From: sender@remote.example\nTo: alice@example.com\n\
Subject: LMTP test\nMessage-ID: <lmtp-test-1@remote.example>\n\n\
first line\n.leading dot\n..two dots\n.\nnot the end\nlast line\n";

#[test]
fn delivers_to_accounts_and_aliases_with_one_reply_per_recipient() {
    let b = backend();
    let d = deliver(
        &b,
        "sender@remote.example",
        &[
            "alice@example.com",
            "nobody@example.com",
            "Robert@Example.COM",
        ],
        MESSAGE,
    );
    assert_eq!((d.lhlo, d.mail, d.quit), (250, 250, 221), "{d:?}");
    assert_eq!(d.rcpt["alice@example.com"], 250, "{d:?}");
    assert_eq!(d.rcpt["nobody@example.com"], 550, "{d:?}");
    assert_eq!(d.rcpt["Robert@Example.COM"], 250, "{d:?}");
    assert_eq!(
        d.data["alice@example.com"],
        (250, "2.0.0 <alice@example.com> Saved".to_owned())
    );
    assert_eq!(
        d.data["Robert@Example.COM"],
        (250, "2.0.0 <robert@example.com> Saved".to_owned())
    );

    for (account, delivered_to) in [
        ("alice@example.com", "alice@example.com"),
        ("bob@example.com", "robert@example.com"),
    ] {
        let msgs = new_messages(&b, account);
        assert_eq!(msgs.len(), 1, "{account}: {msgs:?}");
        let m = text(&msgs[0].1);
        assert!(!m.contains('\r'), "stored with LF line ends: {m:?}");
        let (headers, body) = m
            .split_once("+0000\n")
            .unwrap_or_else(|| panic!("trace headers end with the date: {m}"));
        let want = format!(
            "Return-Path: <sender@remote.example>\nDelivered-To: {delivered_to}\n\
             Received: from "
        );
        assert!(headers.starts_with(&want), "{m}");
        assert!(
            headers.contains("\n\tby backend.test (Tandem) with LMTP id "),
            "{m}"
        );
        assert_eq!(body, STORED_BODY, "{account}");
        // The Maildir name carries the size on disk (S=), which quota and
        // POP3 rely on.
        let name = msgs[0]
            .0
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(name.contains(&format!(",S={},", m.len())), "{name}");
    }
    assert!(new_messages(&b, "nobody@example.com").is_empty());

    let metrics = b.metrics();
    for want in [
        "tandem_lmtp_deliveries_total{result=\"ok\"} 2",
        "tandem_lmtp_deliveries_total{result=\"unknown_user\"} 1",
        "tandem_lmtp_delivery_seconds_count 2",
        "tandem_lmtp_received_bytes_total",
    ] {
        assert!(metrics.contains(want), "missing {want} in\n{metrics}");
    }
    let log = b.log();
    assert!(
        log.contains("delivered") && log.contains("robert@example.com"),
        "one log line per delivery:\n{log}\n{}",
        b.log_tail()
    );
}

#[test]
fn sendmail_reports_refused_recipients_and_accepts_the_null_sender() {
    let b = backend();
    let r = sendmail(
        &b,
        "",
        &["alice@example.com", "nobody@example.com"],
        MESSAGE,
    );
    assert_eq!(r["ok"]["nobody@example.com"], 550, "{r}");
    let msgs = new_messages(&b, "alice@example.com");
    assert_eq!(msgs.len(), 1);
    assert!(text(&msgs[0].1).starts_with("Return-Path: <>\n"));

    let r = sendmail(&b, "a@b.example", &["nobody@example.com"], MESSAGE);
    assert_eq!(r["recipients_refused"]["nobody@example.com"], 550, "{r}");
}

#[test]
fn quota_is_enforced_at_rcpt_and_at_delivery() {
    let b = backend();
    b.tandem_ok(&["account", "add", "small@example.com", "--quota", "1000"])
        .expect("add account with quota");
    let body = format!("Subject: fill\r\n\r\n{}\r\n", "x".repeat(600));
    // Fits: 600 bytes and the trace headers.
    let d = deliver(&b, "a@b.example", &["small@example.com"], body.as_bytes());
    assert_eq!(d.data["small@example.com"].0, 250, "{d:?}");
    // Accepted at RCPT (no SIZE given, usage under the quota), refused
    // once the size is known.
    let d = deliver(
        &b,
        "a@b.example",
        &["small@example.com", "alice@example.com"],
        body.as_bytes(),
    );
    assert_eq!(d.rcpt["small@example.com"], 250, "{d:?}");
    assert_eq!(
        d.data["small@example.com"],
        (552, "5.2.2 <small@example.com> Mailbox full".to_owned())
    );
    assert_eq!(d.data["alice@example.com"].0, 250, "{d:?}");
    // sendmail declares SIZE: refused at RCPT, before the body is sent.
    let r = sendmail(&b, "a@b.example", &["small@example.com"], body.as_bytes());
    assert_eq!(r["recipients_refused"]["small@example.com"], 552, "{r}");
    assert_eq!(new_messages(&b, "small@example.com").len(), 1);
    assert!(
        b.metrics()
            .contains("tandem_lmtp_deliveries_total{result=\"over_quota\"} 2")
    );

    // A mailbox already over its quota refuses at RCPT whatever the size.
    b.tandem_ok(&["account", "quota", "small@example.com", "100"])
        .expect("lower the quota");
    std::thread::sleep(Duration::from_millis(1200)); // the locator cache's ttl
    let mut c = Raw::connect(b.lmtp_addr());
    c.send(b"LHLO test\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<small@example.com>\r\nQUIT\r\n");
    let r = c.replies(4);
    assert_eq!(r[3], "221 2.0.0 backend.test Bye");
    assert_eq!(r[2], "552 5.2.2 <small@example.com> Mailbox full", "{r:?}");
}

#[test]
fn messages_over_the_size_limit_get_552() {
    let b = Backend::start_with("  lmtp:\n    max_message_size: 2000\n").expect("start");
    b.add_account("alice@example.com", "secret")
        .expect("account");
    b.add_account("bob@example.com", "secret").expect("account");
    let big = format!("Subject: big\r\n\r\n{}\r\n", "y".repeat(3000));
    // Declared with SIZE: refused at MAIL.
    let r = sendmail(&b, "a@b.example", &["alice@example.com"], big.as_bytes());
    assert_eq!(r["sender_refused"][0], 552, "{r}");
    // Undeclared: the whole body is read, then refused for each recipient.
    let d = deliver(
        &b,
        "a@b.example",
        &["alice@example.com", "bob@example.com"],
        big.as_bytes(),
    );
    for r in ["alice@example.com", "bob@example.com"] {
        assert_eq!(
            d.data[r],
            (552, format!("5.3.4 <{r}> Message too big for system")),
            "{d:?}"
        );
    }
    assert_eq!(d.quit, 221, "the session is still in step");
    // Within the limit, on the same server.
    let d = deliver(
        &b,
        "a@b.example",
        &["alice@example.com"],
        b"Subject: small\r\n\r\nok\r\n",
    );
    assert_eq!(d.data["alice@example.com"].0, 250, "{d:?}");
    assert_eq!(new_messages(&b, "alice@example.com").len(), 1);
    assert!(new_messages(&b, "bob@example.com").is_empty());
}

#[test]
fn pipelined_garbage_and_long_lines_get_errors_and_the_session_goes_on() {
    let b = backend();
    let mut c = Raw::connect(b.lmtp_addr());
    let mut burst = b"HELO client.example\r\nEHLO client.example\r\nLHLO client.example\r\n\
        GARBAGE\r\n\x00\x01\x02\r\n\xff\xfe\xc3\xa9 8-bit\r\nMAIL FROM:<a@b.example> FOO=BAR\r\n\
        RCPT TO:<alice@example.com>\r\n"
        .to_vec();
    burst.extend_from_slice(&[b'z'; 10_000]);
    burst.extend_from_slice(
        b"\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<alice@example.com>\r\n\
          RCPT TO:<not an address>\r\nRCPT TO:<alice@example.com>\r\nDATA\r\n",
    );
    c.send(&burst);
    let r = c.replies(14);
    assert_eq!(r[0], "500 5.5.1 This is LMTP: use LHLO");
    assert_eq!(r[1], "500 5.5.1 This is LMTP: use LHLO");
    assert!(r[2].starts_with("250-backend.test\n"), "{}", r[2]);
    for cap in [
        "250-PIPELINING",
        "250-ENHANCEDSTATUSCODES",
        "250-8BITMIME",
        "250-SIZE 52428800",
        "250 CHUNKING",
    ] {
        assert!(r[2].lines().any(|l| l == cap), "{cap} in {}", r[2]);
    }
    assert_eq!(
        r[3..],
        [
            "500 5.5.2 Unknown command",
            "500 5.5.2 Unknown command",
            "500 5.5.2 Unknown command",
            "555 5.5.4 Unsupported MAIL parameter",
            "503 5.5.1 Send MAIL first",
            "500 5.5.6 Line too long",
            "250 2.1.0 OK",
            "250 2.1.5 <alice@example.com> OK",
            "501 5.1.3 Bad address syntax",
            "250 2.1.5 <alice@example.com> OK",
            "354 Start mail input; end with <CRLF>.<CRLF>",
        ]
    );
    c.send(b"Subject: after the garbage\r\n\r\n..still in step\r\n.\r\n");
    // Two RCPTs of one address: two replies, one copy.
    assert_eq!(
        c.replies(2),
        [
            "250 2.0.0 <alice@example.com> Saved",
            "250 2.0.0 <alice@example.com> Saved"
        ]
    );
    c.send(b"NOOP\r\nQUIT\r\n");
    assert_eq!(c.replies(2), ["250 2.0.0 OK", "221 2.0.0 backend.test Bye"]);
    assert!(c.closed());
    let msgs = new_messages(&b, "alice@example.com");
    assert_eq!(msgs.len(), 1);
    assert!(text(&msgs[0].1).ends_with("\n\n.still in step\n"));
}

#[test]
fn helo_and_ehlo_are_refused_to_smtp_clients() {
    let b = backend();
    let out = python(
        r#"
import smtplib, sys
s = smtplib.SMTP(sys.argv[1], int(sys.argv[2]))
print(s.ehlo()[0], s.helo()[0])
try:
    s.sendmail("a@b.example", ["alice@example.com"], b"Subject: x\r\n\r\nx\r\n")
    print("sent")
except smtplib.SMTPResponseException as e:
    print("refused", e.smtp_code)
"#,
        &[
            &b.lmtp_addr().ip().to_string(),
            &b.lmtp_addr().port().to_string(),
        ],
    );
    // smtplib goes on after the refused greetings; MAIL without LHLO fails.
    assert_eq!(out.trim(), "500 500\nrefused 503");
    assert!(new_messages(&b, "alice@example.com").is_empty());
}

#[test]
fn bdat_chunks_deliver_like_data() {
    let b = backend();
    let mut c = Raw::connect(b.lmtp_addr());
    let chunk1: &[u8] = b"Subject: chunked\r\n\r\n.no stuffing in BDAT\r";
    let chunk2: &[u8] = b"\nend\r\n";
    let mut burst = format!(
        "LHLO x\r\nMAIL FROM:<a@b.example> BODY=8BITMIME\r\nRCPT TO:<alice@example.com>\r\n\
         RCPT TO:<robert@example.com>\r\nBDAT {}\r\n",
        chunk1.len()
    )
    .into_bytes();
    burst.extend_from_slice(chunk1);
    burst.extend_from_slice(format!("BDAT {} LAST\r\n", chunk2.len()).as_bytes());
    burst.extend_from_slice(chunk2);
    burst.extend_from_slice(b"QUIT\r\n");
    c.send(&burst);
    let r = c.replies(8);
    assert_eq!(
        r[1..],
        [
            "250 2.1.0 OK",
            "250 2.1.5 <alice@example.com> OK",
            "250 2.1.5 <robert@example.com> OK",
            &format!("250 2.0.0 {} octets received", chunk1.len()),
            "250 2.0.0 <alice@example.com> Saved",
            "250 2.0.0 <robert@example.com> Saved",
            "221 2.0.0 backend.test Bye",
        ]
    );
    for account in ["alice@example.com", "bob@example.com"] {
        let msgs = new_messages(&b, account);
        assert_eq!(msgs.len(), 1, "{account}");
        assert!(
            text(&msgs[0].1).ends_with("+0000\nSubject: chunked\n\n.no stuffing in BDAT\nend\n"),
            "{}",
            text(&msgs[0].1)
        );
    }
}

#[test]
fn swaks_delivers_over_lmtp() {
    let swaks = require("swaks", "swaks");
    let b = backend();
    let addr = b.lmtp_addr();
    for pipeline in [false, true] {
        let mut cmd = Command::new(&swaks);
        cmd.args(["--protocol", "LMTP", "--server"])
            .arg(addr.ip().to_string())
            .arg("--port")
            .arg(addr.port().to_string())
            .args(["--from", "swaks@remote.example"])
            .args(["--to", "alice@example.com,robert@example.com"])
            .args(["--header", "Subject: from swaks"])
            .args(["--body", "hello from swaks\n.dotted line\n"])
            .args(["--helo", "swaks.test"]);
        if pipeline {
            cmd.arg("--pipeline");
        }
        let out = cmd.output().expect("run swaks");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "swaks (pipeline {pipeline}) failed: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains("<-  250 2.0.0 <alice@example.com> Saved"),
            "{stdout}"
        );
        assert!(
            stdout.contains("<-  250 2.0.0 <robert@example.com> Saved"),
            "{stdout}"
        );
        assert!(stdout.contains("-> LHLO swaks.test"), "{stdout}");
    }
    for account in ["alice@example.com", "bob@example.com"] {
        let msgs = new_messages(&b, account);
        assert_eq!(msgs.len(), 2, "{account}");
        for (_, m) in &msgs {
            let m = text(m);
            assert!(
                m.starts_with("Return-Path: <swaks@remote.example>\n"),
                "{m}"
            );
            assert!(m.contains("\nSubject: from swaks\n"), "{m}");
            assert!(m.contains("\n.dotted line\n"), "{m}");
            assert!(!m.contains('\r'), "{m:?}");
        }
    }
}

#[test]
fn an_acknowledged_delivery_survives_sigkill() {
    let mut b = backend();
    let mut c = Raw::connect(b.lmtp_addr());
    c.send(
        b"LHLO x\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<alice@example.com>\r\n\
          RCPT TO:<robert@example.com>\r\nDATA\r\n",
    );
    let r = c.replies(5);
    assert_eq!(
        r[4], "354 Start mail input; end with <CRLF>.<CRLF>",
        "{r:?}"
    );
    c.send(b"Subject: durable\r\n\r\nacknowledged means stored\r\n.\r\n");
    let first = c.reply();
    assert_eq!(first, "250 2.0.0 <alice@example.com> Saved");
    // The moment alice's copy is acknowledged: no clean shutdown, no
    // chance to flush anything.
    b.kill();
    // bob's copy may or may not have been stored; alice's must be.
    let msgs = new_messages(&b, "alice@example.com");
    assert_eq!(msgs.len(), 1, "the acknowledged message is in new/");
    assert!(text(&msgs[0].1).ends_with("\nSubject: durable\n\nacknowledged means stored\n"));
    assert!(
        files_in(&b.maildir("alice@example.com").join("tmp")).is_empty(),
        "nothing left behind in tmp/"
    );

    b.restart().expect("restart after SIGKILL");
    let out = python(
        r#"
import poplib, sys
p = poplib.POP3(sys.argv[1], int(sys.argv[2]))
p.user("alice@example.com")
p.pass_("secret")
count, _ = p.stat()
print(count)
print(b"\n".join(p.retr(1)[1]).decode())
p.quit()
"#,
        &[
            &b.pop3_addr().ip().to_string(),
            &b.pop3_addr().port().to_string(),
        ],
    );
    let (count, msg) = out.split_once('\n').expect("count and message");
    assert_eq!(count, "1", "{out}");
    assert!(msg.contains("Delivered-To: alice@example.com\n"), "{out}");
    assert!(msg.contains("\nacknowledged means stored"), "{out}");
    // The restarted node delivers again.
    let d = deliver(
        &b,
        "a@b.example",
        &["alice@example.com"],
        b"Subject: again\r\n\r\nx\r\n",
    );
    assert_eq!(d.data["alice@example.com"].0, 250, "{d:?}");
}

#[test]
fn starttls_then_delivery() {
    let (_certs, cert, key) = tests::clients::self_signed_cert();
    let b = Backend::start_with(&format!(
        "  tls:\n    cert: {}\n    key: {}\n",
        cert.display(),
        key.display()
    ))
    .expect("start with TLS");
    b.add_account("alice@example.com", "secret")
        .expect("account");
    let out = python(
        r#"
import smtplib, ssl, sys
c = smtplib.LMTP(sys.argv[1], int(sys.argv[2]))
c.ehlo()
print(c.has_extn("starttls"))
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
print(c.starttls(context=ctx)[0])
c.ehlo()
print(c.has_extn("starttls"))
print(c.sendmail("a@b.example", ["alice@example.com"], b"Subject: over TLS\r\n\r\nsecret\r\n"))
print(c.docmd("STARTTLS")[0])
c.quit()
"#,
        &[
            &b.lmtp_addr().ip().to_string(),
            &b.lmtp_addr().port().to_string(),
        ],
    );
    assert_eq!(out, "True\n220\nFalse\n{}\n503\n");
    let msgs = new_messages(&b, "alice@example.com");
    assert_eq!(msgs.len(), 1);
    assert!(
        text(&msgs[0].1).contains("(Tandem) with LMTPS id"),
        "{}",
        text(&msgs[0].1)
    );
}
