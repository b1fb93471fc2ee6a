//! The session state machine over an in-memory pipe, with a real locator
//! (SQLite in a temp dir) and a sink that records what it is given.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use locator::{AccountState, ClusterState, Locator, LocatorMetrics, NewAccount};
use shared::Address;
use shared::net::NetList;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio_util::sync::CancellationToken;

use super::session::serve;
use super::*;
use crate::config::Limits;
use crate::queue::{Disposition, Recipient, Route};
use crate::route::Router;
use crate::{FrontendMetrics, penalty};

/// Keeps what it accepted; answers with `refuse` when set.
#[derive(Default)]
struct Recorder {
    got: Mutex<Vec<(Envelope, Vec<u8>)>>,
    relays: bool,
    refuse: Mutex<Option<Refused>>,
}

impl Sink for Recorder {
    async fn accept(
        self: &Arc<Self>,
        envelope: Envelope,
        message: Vec<u8>,
    ) -> Result<Accepted, Refused> {
        if let Some(r) = self.refuse.lock().unwrap().clone() {
            return Err(r);
        }
        let n = envelope.recipients.len();
        let mut got = self.got.lock().unwrap();
        got.push((envelope, message));
        Ok(Accepted {
            id: format!("Q{}", got.len()),
            recipients: vec![Disposition::Delivered; n],
        })
    }

    fn relays(&self) -> bool {
        self.relays
    }
}

struct World {
    smtp: Arc<Smtp<Recorder>>,
    _dir: tempfile::TempDir,
}

const PASSWORD: &str = "s3cret";

async fn world(cfg: SmtpConfig, relays: bool) -> World {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("locator.db").display());
    let lcfg: locator::config::LocatorConfig =
        serde_saphyr::from_str(&format!("sql:\n  url: {url}\n")).unwrap();
    let d = locator::config::open(&lcfg, locator::config::Open::Eager)
        .await
        .unwrap();
    let a = |s: &str| Address::parse(s).unwrap();
    d.add_cluster("c1", ClusterState::Open, 1).await.unwrap();
    d.add_cluster("c2", ClusterState::Open, 1).await.unwrap();
    d.add_domain(&shared::Domain::parse("example.com").unwrap())
        .await
        .unwrap();
    let hash = shared::password::hash(PASSWORD.as_bytes()).unwrap();
    for (addr, cluster, state) in [
        ("alice@example.com", "c1", AccountState::Active),
        ("bob@example.com", "c2", AccountState::Active),
        ("sus@example.com", "c1", AccountState::Suspended),
        ("mover@example.com", "c2", AccountState::Moving),
    ] {
        d.add_account(&NewAccount {
            address: a(addr),
            password: Some(hash.clone()),
            cluster: cluster.into(),
            state,
            quota: 0,
        })
        .await
        .unwrap();
    }
    d.add_alias(&a("al@example.com"), &a("alice@example.com"))
        .await
        .unwrap();
    let loc = Arc::new(Locator::new(
        d,
        lcfg.cache.clone(),
        LocatorMetrics::default(),
    ));
    let metrics = FrontendMetrics::default();
    let limits = Limits {
        auth_failure_delay: Duration::from_millis(1),
        ..Limits::default()
    };
    let fe = Arc::new(Frontend {
        router: Arc::new(Router::new(
            loc,
            limits.connect_timeout,
            None,
            metrics.clone(),
        )),
        limits,
        identity: "proxy".into(),
        secret: b"x".to_vec(),
        trusted: NetList::loopback(),
        metrics,
        penalty: penalty::Penalty::new(Duration::from_millis(1), Duration::from_millis(5)),
        account_penalty: penalty::Penalty::new(Duration::from_millis(1), Duration::from_millis(5)),
        drain_deadline: CancellationToken::new(),
        login_slots: penalty::Slots::new(2),
    });
    let queue = Arc::new(Recorder {
        relays,
        ..Recorder::default()
    });
    World {
        smtp: Smtp::new(fe, queue, cfg, "mx.test".into(), SmtpMetrics::default()),
        _dir: dir,
    }
}

const OUTSIDE: &str = "203.0.113.9:40000";
const LOOPBACK: &str = "127.0.0.1:40000";

/// A client on a pipe to a session.
struct Client {
    io: DuplexStream,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    buf: Vec<u8>,
}

impl World {
    fn connect(&self, kind: Kind, client: &str) -> Client {
        let (a, b) = tokio::io::duplex(1 << 20);
        let smtp = self.smtp.clone();
        let stop = CancellationToken::new();
        let client: SocketAddr = client.parse().unwrap();
        let s = stop.clone();
        let task = tokio::spawn(async move {
            serve(&smtp, kind, client, "sess0000test".into(), None, b, s).await;
        });
        Client {
            io: a,
            stop,
            task,
            buf: Vec::new(),
        }
    }

    /// Connected, greeted and past EHLO.
    async fn greeted(&self, kind: Kind, client: &str) -> Client {
        let mut c = self.connect(kind, client);
        assert!(c.reply().await.starts_with("220 "));
        c.expect("EHLO x", "250").await;
        c
    }

    fn got(&self) -> Vec<(Envelope, Vec<u8>)> {
        self.smtp.queue.got.lock().unwrap().clone()
    }
}

impl Client {
    async fn send(&mut self, bytes: &[u8]) {
        self.io.write_all(bytes).await.unwrap();
    }

    /// The next complete reply (all its lines), or "" when the server closed.
    async fn reply(&mut self) -> String {
        loop {
            // A reply ends with a line whose 4th byte is a space.
            let mut start = 0;
            while let Some(i) = self.buf[start..].windows(2).position(|w| w == b"\r\n") {
                let line = &self.buf[start..start + i];
                start += i + 2;
                if line.len() < 4 || line[3] == b' ' {
                    let text = String::from_utf8_lossy(&self.buf[..start - 2]).into_owned();
                    self.buf.drain(..start);
                    return text;
                }
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(Duration::from_secs(10), self.io.read(&mut chunk))
                .await
                .expect("reply within 10s")
                .unwrap_or(0);
            if n == 0 {
                return String::new();
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    async fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes()).await;
        self.reply().await
    }

    /// MAIL from an outside sender, RCPT `to`, DATA: ready for the body.
    async fn data_to(&mut self, to: &str) {
        self.expect("MAIL FROM:<s@other.test>", "250").await;
        self.expect(&format!("RCPT TO:<{to}>"), "250").await;
        self.expect("DATA", "354").await;
    }

    async fn expect(&mut self, line: &str, code: &str) -> String {
        let r = self.cmd(line).await;
        assert!(r.starts_with(code), "{line:?} got {r:?}, wanted {code}");
        r
    }
}

fn routes(env: &Envelope) -> Vec<(String, Route)> {
    env.recipients
        .iter()
        .map(|Recipient { address, route }| (address.clone(), route.clone()))
        .collect()
}

fn local(cluster: &str, account: &str) -> Route {
    Route::Local {
        cluster: cluster.into(),
        account: Address::parse(account).unwrap(),
    }
}

#[tokio::test]
async fn mx_takes_mail_for_our_accounts_and_never_relays() {
    let w = world(SmtpConfig::default(), true).await;
    let mut c = w.connect(Kind::Mx, OUTSIDE);
    assert!(c.reply().await.starts_with("220 mx.test ESMTP"));
    let ehlo = c.expect("EHLO client.example", "250").await;
    for cap in [
        "PIPELINING",
        "SIZE 52428800",
        "8BITMIME",
        "ENHANCEDSTATUSCODES",
        "CHUNKING",
    ] {
        assert!(ehlo.contains(cap), "{cap} in {ehlo}");
    }
    assert!(!ehlo.contains("AUTH"), "the MX never offers AUTH: {ehlo}");
    c.expect(
        "AUTH PLAIN AGFsaWNlQGV4YW1wbGUuY29tAHMzY3JldA==",
        "503 5.5.1",
    )
    .await;
    c.expect("MAIL FROM:<sender@elsewhere.test> AUTH=<>", "555 5.5.4")
        .await;
    c.expect(
        "MAIL FROM:<sender@elsewhere.test> SIZE=1000 BODY=8BITMIME",
        "250 2.1.0",
    )
    .await;
    c.expect("RCPT TO:<alice@example.com>", "250 2.1.5").await;
    c.expect("RCPT TO:<Bob@Example.COM>", "250 2.1.5").await;
    c.expect("RCPT TO:<al@example.com>", "250 2.1.5").await;
    c.expect("RCPT TO:<nobody@example.com>", "550 5.1.1").await;
    c.expect("RCPT TO:<sus@example.com>", "550 5.2.1").await;
    c.expect("RCPT TO:<mover@example.com>", "451 4.2.0").await;
    // Open-relay tricks: none reaches another domain.
    for trick in [
        "<victim@other.test>",
        "<alice%example.com@other.test>",
        "<@example.com:victim@other.test>",
        "<victim@other.test@example.com>",
        "<\"victim@other.test\"@other.test>",
        "<victim@example.com.other.test>",
    ] {
        let r = c.cmd(&format!("RCPT TO:{trick}")).await;
        assert!(
            r.starts_with("550 5.7.1") || r.starts_with("501") || r.starts_with("550 5.1.1"),
            "{trick}: {r}"
        );
    }
    c.expect("DATA", "354").await;
    c.send(b"Subject: hi\r\n\r\n..leading dot\r\nbody\r\n.\r\n")
        .await;
    assert_eq!(c.reply().await, "250 2.0.0 Ok: queued as Q1");
    c.expect("QUIT", "221").await;
    let got = w.got();
    assert_eq!(got.len(), 1);
    let (env, msg) = &got[0];
    assert_eq!(env.sender, "sender@elsewhere.test");
    assert_eq!(env.session, "sess0000test");
    assert!(env.eight_bit);
    assert_eq!(
        routes(env),
        [
            ("alice@example.com".into(), local("c1", "alice@example.com")),
            ("Bob@Example.COM".into(), local("c2", "bob@example.com")),
        ],
        "the alias of alice is one copy with alice's"
    );
    let text = String::from_utf8(msg.clone()).unwrap();
    assert!(
        text.starts_with("Received: from client.example ([203.0.113.9])\r\n\tby mx.test (Tandem) with ESMTP id sess0000test;\r\n\t"),
        "{text}"
    );
    assert!(
        text.ends_with("\r\nSubject: hi\r\n\r\n.leading dot\r\nbody\r\n"),
        "{text}"
    );
    c.task.await.unwrap();
}

#[tokio::test]
async fn pipelined_transaction_gets_replies_in_order() {
    let w = world(SmtpConfig::default(), false).await;
    let mut c = w.connect(Kind::Mx, OUTSIDE);
    c.reply().await;
    c.send(b"EHLO x\r\nMAIL FROM:<>\r\nRCPT TO:<nobody@example.com>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\nhello\r\n.\r\nRSET\r\nMAIL FROM:<>\r\nRCPT TO:<x@other.test>\r\nDATA\r\nNOOP\r\nQUIT\r\n").await;
    let mut codes = Vec::new();
    loop {
        let r = c.reply().await;
        if r.is_empty() {
            break;
        }
        codes.push(r[..3].to_owned());
    }
    assert_eq!(
        codes,
        [
            "250", "250", "550", "250", "354", "250", "250", "250", "550", "554", "250", "221"
        ]
    );
    assert_eq!(w.got().len(), 1);
}

#[tokio::test]
async fn bare_line_ends_never_end_data_and_refuse_the_message() {
    let w = world(SmtpConfig::default(), false).await;
    let mut c = w.greeted(Kind::Mx, OUTSIDE).await;
    let smuggles: &[&[u8]] = &[
        b"a\n.\nMAIL FROM:<evil@x>\r\n.\r\n",
        b"a\r\n.\nMAIL FROM:<evil@x>\r\n.\r\n",
        b"a\n.\r\nMAIL FROM:<evil@x>\r\n.\r\n",
        b"a\r.\r\nMAIL FROM:<evil@x>\r\n.\r\n",
        b"bare\rCR only\r\n.\r\n",
    ];
    for body in smuggles {
        c.data_to("alice@example.com").await;
        c.send(body).await;
        let r = c.reply().await;
        assert!(r.starts_with("550 5.6.0"), "{body:?}: {r}");
    }
    // NUL.
    c.data_to("alice@example.com").await;
    c.send(b"a\0b\r\n.\r\n").await;
    assert!(c.reply().await.starts_with("554 5.6.0"));
    // The session goes on, in step.
    c.expect("NOOP", "250").await;
    assert!(w.got().is_empty(), "nothing accepted");
}

#[tokio::test]
async fn size_limits_and_long_lines() {
    let cfg = SmtpConfig {
        max_message_size: 1000,
        ..SmtpConfig::default()
    };
    let w = world(cfg, false).await;
    let mut c = w.greeted(Kind::Mx, OUTSIDE).await;
    c.expect("MAIL FROM:<s@other.test> SIZE=1001", "552 5.3.4")
        .await;
    c.expect("MAIL FROM:<s@other.test> SIZE=1000", "250").await;
    c.expect("RCPT TO:<alice@example.com>", "250").await;
    c.expect("DATA", "354").await;
    let line = vec![b'x'; 998];
    for _ in 0..100 {
        c.send(&line).await;
        c.send(b"\r\n").await;
    }
    c.send(b".\r\n").await;
    assert!(c.reply().await.starts_with("552 5.3.4"));
    // A command line over 2 KiB: an error, and the session stays in step.
    let long = format!("NOOP {}", "y".repeat(5000));
    c.expect(&long, "500 5.5.2").await;
    c.expect("NOOP", "250").await;
    // BDAT over the limit too.
    c.expect("MAIL FROM:<s@other.test>", "250").await;
    c.expect("RCPT TO:<alice@example.com>", "250").await;
    c.send(b"BDAT 600\r\n").await;
    c.send(&[b'z'; 600]).await;
    assert!(c.reply().await.starts_with("250"));
    c.send(b"BDAT 600 LAST\r\n").await;
    c.send(&[b'z'; 600]).await;
    assert!(c.reply().await.starts_with("552 5.3.4"));
    c.expect("NOOP", "250").await;
    assert!(w.got().is_empty());
}

#[tokio::test]
async fn bdat_message_is_taken_as_sent() {
    let w = world(SmtpConfig::default(), false).await;
    let mut c = w.greeted(Kind::Mx, OUTSIDE).await;
    c.expect("MAIL FROM:<s@other.test>", "250").await;
    c.expect("RCPT TO:<bob@example.com>", "250").await;
    c.send(b"BDAT 8\r\nSubject:").await;
    assert!(c.reply().await.starts_with("250"));
    c.send(b"BDAT 10 LAST\r\n x\r\n\r\n.a\r\n").await;
    assert_eq!(c.reply().await, "250 2.0.0 Ok: queued as Q1");
    let got = w.got();
    let text = String::from_utf8(got[0].1.clone()).unwrap();
    assert!(text.ends_with("\r\nSubject: x\r\n\r\n.a\r\n"), "{text}");
}

#[tokio::test]
async fn recipients_past_the_limit_get_452() {
    let cfg = SmtpConfig {
        max_recipients: 2,
        ..SmtpConfig::default()
    };
    let w = world(cfg, false).await;
    let mut c = w.greeted(Kind::Mx, OUTSIDE).await;
    c.expect("MAIL FROM:<s@other.test>", "250").await;
    c.expect("RCPT TO:<alice@example.com>", "250").await;
    c.expect("RCPT TO:<alice@example.com>", "250").await;
    for _ in 0..20 {
        c.expect("RCPT TO:<alice@example.com>", "452 4.5.3").await;
    }
    c.expect("DATA", "354").await;
    c.send(b"x\r\n.\r\n").await;
    assert!(c.reply().await.starts_with("250"));
    assert_eq!(w.got()[0].0.recipients.len(), 1, "one copy for alice");
}

#[tokio::test]
async fn too_many_errors_close_with_421() {
    let cfg = SmtpConfig {
        max_errors: 3,
        ..SmtpConfig::default()
    };
    let w = world(cfg, false).await;
    let mut c = w.connect(Kind::Mx, OUTSIDE);
    c.reply().await;
    c.expect("GET / HTTP/1.1", "500 5.5.2").await;
    c.expect("\u{1}\u{2}garbage", "500 5.5.2").await;
    c.expect("MAIL FROM:<a@b.c>", "503").await;
    assert!(c.reply().await.starts_with("421 4.7.0"));
    assert_eq!(c.reply().await, "", "closed");
}

#[tokio::test]
async fn shutdown_between_commands_says_421() {
    let w = world(SmtpConfig::default(), false).await;
    let mut c = w.greeted(Kind::Mx, OUTSIDE).await;
    c.stop.cancel();
    assert!(c.reply().await.starts_with("421 4.3.2"));
    c.task.await.unwrap();
}

#[tokio::test]
async fn submission_needs_auth_and_the_senders_own_address() {
    let w = world(SmtpConfig::default(), false).await;
    // From outside without TLS: no AUTH.
    let mut c = w.connect(Kind::Submission, OUTSIDE);
    c.reply().await;
    let ehlo = c.expect("EHLO x", "250").await;
    assert!(!ehlo.contains("AUTH"), "{ehlo}");
    c.expect("MAIL FROM:<alice@example.com>", "530 5.7.0").await;
    c.expect(
        "AUTH PLAIN AGFsaWNlQGV4YW1wbGUuY29tAHMzY3JldA==",
        "538 5.7.11",
    )
    .await;
    // From a trusted address: AUTH PLAIN and LOGIN.
    let mut c = w.connect(Kind::Submission, LOOPBACK);
    c.reply().await;
    let ehlo = c.expect("EHLO x", "250").await;
    assert!(ehlo.contains("250-AUTH PLAIN LOGIN"), "{ehlo}");
    c.expect("AUTH PLAIN AGFsaWNlQGV4YW1wbGUuY29tAHdyb25n", "535 5.7.8")
        .await;
    c.expect("AUTH CRAM-MD5", "504").await;
    c.expect("AUTH LOGIN", "334 VXNlcm5hbWU6").await;
    c.expect("YWxpY2VAZXhhbXBsZS5jb20=", "334 UGFzc3dvcmQ6")
        .await;
    c.expect("czNjcmV0", "235 2.7.0").await;
    c.expect("AUTH PLAIN", "503").await;
    c.expect("MAIL FROM:<bob@example.com>", "553 5.7.1").await;
    c.expect("MAIL FROM:<>", "553 5.7.1").await;
    c.expect("MAIL FROM:<al@example.com> AUTH=<>", "250").await;
    c.expect("RCPT TO:<bob@example.com>", "250").await;
    let r = c.expect("RCPT TO:<friend@other.test>", "550 5.7.1").await;
    assert!(r.contains("no smarthost configured"), "{r}");
    c.expect("DATA", "354").await;
    c.send(b"hi\r\n.\r\n").await;
    assert!(c.reply().await.starts_with("250"));
    let got = w.got();
    assert_eq!(
        routes(&got[0].0),
        [("bob@example.com".into(), local("c2", "bob@example.com"))]
    );
    assert!(String::from_utf8_lossy(&got[0].1).contains("with ESMTPA id"));
}

#[tokio::test]
async fn submission_relays_through_a_smarthost_only_when_authenticated() {
    let w = world(SmtpConfig::default(), true).await;
    let mut c = w.greeted(Kind::Submission, LOOPBACK).await;
    c.expect("AUTH PLAIN", "334").await;
    c.expect("AGJvYkBleGFtcGxlLmNvbQBzM2NyZXQ=", "235").await;
    c.expect("MAIL FROM:<bob@example.com>", "250").await;
    c.expect("RCPT TO:<friend@other.test>", "250").await;
    c.expect("RCPT TO:<alice@example.com>", "250").await;
    c.expect("DATA", "354").await;
    c.send(b"hi\r\n.\r\n").await;
    assert!(c.reply().await.starts_with("250"));
    assert_eq!(
        routes(&w.got()[0].0),
        [
            ("friend@other.test".into(), Route::Relay),
            ("alice@example.com".into(), local("c1", "alice@example.com")),
        ]
    );
    // The MX of the same frontend still refuses it.
    let mut c = w.greeted(Kind::Mx, LOOPBACK).await;
    c.expect("MAIL FROM:<bob@example.com>", "250").await;
    c.expect("RCPT TO:<friend@other.test>", "550 5.7.1").await;
}

#[tokio::test]
async fn queue_refusals_are_the_clients_answer() {
    let w = world(SmtpConfig::default(), false).await;
    let mut c = w.greeted(Kind::Mx, OUTSIDE).await;
    for (refusal, want) in [
        (
            Refused::Permanent("550 5.2.2 <alice@example.com>: Mailbox full".into()),
            "550 5.2.2",
        ),
        (Refused::Temporary("spool full".into()), "451 4.3.0"),
    ] {
        *w.smtp.queue.refuse.lock().unwrap() = Some(refusal);
        c.data_to("alice@example.com").await;
        c.send(b"x\r\n.\r\n").await;
        let r = c.reply().await;
        assert!(r.starts_with(want), "{r}");
    }
}

#[tokio::test]
async fn connection_rate_per_client_address() {
    let cfg = SmtpConfig {
        connection_rate: 1,
        connection_burst: 2,
        ..SmtpConfig::default()
    };
    let w = world(cfg, false).await;
    for _ in 0..2 {
        let mut c = w.connect(Kind::Mx, OUTSIDE);
        assert!(c.reply().await.starts_with("220"));
    }
    let mut c = w.connect(Kind::Mx, OUTSIDE);
    assert!(c.reply().await.starts_with("421 4.7.0"));
    // Trusted addresses are not limited.
    for _ in 0..5 {
        let mut c = w.connect(Kind::Mx, LOOPBACK);
        assert!(c.reply().await.starts_with("220"));
    }
}

#[tokio::test]
async fn shutdown_lets_a_transaction_in_data_finish_first() {
    let w = world(SmtpConfig::default(), false).await;
    let mut c = w.greeted(Kind::Mx, OUTSIDE).await;
    c.data_to("alice@example.com").await;
    c.send(b"Subject: half\r\n").await;
    c.stop.cancel();
    tokio::time::sleep(Duration::from_millis(50)).await;
    c.send(b"\r\nrest\r\n.\r\n").await;
    assert!(c.reply().await.starts_with("250 2.0.0 Ok: queued as"));
    assert!(c.reply().await.starts_with("421 4.3.2"));
    c.task.await.unwrap();
    assert_eq!(w.got().len(), 1);
}

#[tokio::test]
async fn idle_clients_are_told_421() {
    let cfg = SmtpConfig {
        idle_timeout: Duration::from_secs(1),
        ..SmtpConfig::default()
    };
    let w = world(cfg, false).await;
    let mut c = w.greeted(Kind::Mx, OUTSIDE).await;
    let t = tokio::time::Instant::now();
    assert!(c.reply().await.starts_with("421 4.4.2"));
    assert!(t.elapsed() >= Duration::from_millis(900));
    assert_eq!(c.reply().await, "", "closed");
    // Also in the middle of DATA.
    let mut c = w.greeted(Kind::Mx, OUTSIDE).await;
    c.data_to("alice@example.com").await;
    c.send(b"Subject: stalled\r\n").await;
    assert!(c.reply().await.starts_with("421 4.4.2"));
    assert!(w.got().is_empty());
}

#[tokio::test]
async fn junk_and_transaction_limits_close_the_session() {
    let cfg = SmtpConfig {
        max_junk_commands: 3,
        max_transactions: 1,
        ..SmtpConfig::default()
    };
    let w = world(cfg, false).await;
    let mut c = w.greeted(Kind::Mx, OUTSIDE).await;
    c.expect("NOOP", "250").await;
    c.expect("VRFY alice", "252").await;
    c.expect("NOOP", "421 4.7.0").await;
    let mut c = w.connect(Kind::Mx, OUTSIDE);
    c.reply().await;
    c.expect("HELO x", "250").await;
    c.data_to("alice@example.com").await;
    c.send(b"x\r\n.\r\n").await;
    assert!(c.reply().await.starts_with("250"));
    c.expect("MAIL FROM:<s@other.test>", "421 4.7.0").await;
    let text = String::from_utf8(w.got()[0].1.clone()).unwrap();
    assert!(text.contains("with SMTP id"), "HELO: {text}");
}

#[tokio::test]
async fn guessing_recipients_counts_as_errors() {
    let cfg = SmtpConfig {
        max_errors: 3,
        ..SmtpConfig::default()
    };
    let w = world(cfg, false).await;
    let mut c = w.greeted(Kind::Mx, OUTSIDE).await;
    c.expect("MAIL FROM:<s@other.test>", "250").await;
    c.expect("RCPT TO:<guess1@example.com>", "550 5.1.1").await;
    c.expect("RCPT TO:<mover@example.com>", "451").await;
    c.expect("RCPT TO:<guess2@example.com>", "550 5.1.1").await;
    c.expect("RCPT TO:<guess3@example.com>", "550 5.1.1").await;
    assert!(c.reply().await.starts_with("421 4.7.0"));
}
