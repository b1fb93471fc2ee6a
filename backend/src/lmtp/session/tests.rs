//! Sessions over an in-memory pipe against a real (SQLite) locator and a
//! Maildir in a temporary directory: every reply, in order.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use locator::sql::SqlDirectory;
use locator::{
    AccountState, CacheConfig, ClusterState, Directory, Locator, LocatorMetrics, NewAccount,
};
use shared::blocking::Blocking;
use shared::net::NetList;
use shared::{Address, Domain};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::accounts::{Accounts, SingleNode};
use crate::auth::Auth;
use crate::lmtp::{LmtpConfig, LmtpMetrics};
use crate::node::Node;
use crate::store::Store;

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    lmtp: Lmtp,
    metrics: LmtpMetrics,
}

fn addr(s: &str) -> Address {
    Address::parse(s).unwrap()
}

async fn fixture(cfg: LmtpConfig, trusted: NetList) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("locator.db").display());
    let d = SqlDirectory::connect(&url, 1).await.unwrap();
    d.add_domain(&Domain::parse("example.com").unwrap())
        .await
        .unwrap();
    d.add_cluster("c1", ClusterState::Open, 1).await.unwrap();
    d.add_cluster("c2", ClusterState::Open, 1).await.unwrap();
    for (a, cluster, state, quota) in [
        ("alice@example.com", "c1", AccountState::Active, 0),
        ("bob@example.com", "c1", AccountState::Active, 0),
        ("full@example.com", "c1", AccountState::Active, 250),
        ("gone@example.com", "c1", AccountState::Suspended, 0),
        ("away@example.com", "c2", AccountState::Active, 0),
    ] {
        d.add_account(&NewAccount {
            address: addr(a),
            password: None,
            cluster: cluster.into(),
            state,
            quota,
        })
        .await
        .unwrap();
    }
    d.add_alias(&addr("robert@example.com"), &addr("bob@example.com"))
        .await
        .unwrap();
    let locator = Locator::new(
        Arc::new(d),
        CacheConfig::default(),
        LocatorMetrics::default(),
    );
    let root = dir.path().join("store");
    std::fs::create_dir(&root).unwrap();
    let node = Node {
        id: "n1".into(),
        cluster: "c1".into(),
        hostname: "backend.test".into(),
        auth: Auth::new(Arc::new(locator), trusted, None),
        accounts: Accounts::new(
            "c1",
            Store::new(&root),
            Arc::new(SingleNode),
            Blocking::new(4),
        ),
        peers: crate::cluster::Peers::none(),
    };
    let metrics = LmtpMetrics::default();
    Fixture {
        _dir: dir,
        root,
        lmtp: Lmtp::new(Arc::new(node), cfg, metrics.clone()),
        metrics,
    }
}

async fn default_fixture() -> Fixture {
    fixture(LmtpConfig::default(), NetList::loopback()).await
}

impl Fixture {
    /// Sends `input` all at once (the client pipelines everything), closes
    /// its side, and returns every reply line.
    async fn talk(&self, input: &[u8]) -> Vec<String> {
        self.talk_with(input, CancellationToken::new()).await
    }

    async fn talk_with(&self, input: &[u8], shutdown: CancellationToken) -> Vec<String> {
        let (client, server) = tokio::io::duplex(1 << 16);
        let info = ConnInfo {
            client: "192.0.2.7".parse().unwrap(),
            session: "sess1234abcd".into(),
            tls: None,
        };
        let serve = Session::new(&self.lmtp, info).run(server, shutdown);
        let (mut rd, mut wr) = tokio::io::split(client);
        let input = input.to_vec();
        let send = async move {
            // The server may close first (QUIT, 421): a failed write is fine.
            let _ = wr.write_all(&input).await;
            let _ = wr.shutdown().await;
            wr
        };
        let recv = async move {
            let mut out = Vec::new();
            let _ = rd.read_to_end(&mut out).await;
            out
        };
        let (_, _wr, out) = tokio::join!(serve, send, recv);
        String::from_utf8(out)
            .unwrap()
            .split_terminator("\r\n")
            .map(str::to_owned)
            .collect()
    }

    fn inbox(&self, address: &str) -> Vec<String> {
        let dir = crate::store::path::account_dir(&self.root, &addr(address)).unwrap();
        let mut files: Vec<_> = std::fs::read_dir(dir.join("new"))
            .map(|rd| rd.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        files.sort();
        files
            .iter()
            .map(|f| String::from_utf8(std::fs::read(f).unwrap()).unwrap())
            .collect()
    }

    fn count(&self, result: &'static str) -> u64 {
        self.metrics
            .deliveries
            .get_or_create(&super::super::ResultLabel { result })
            .get()
    }
}

/// The replies after the greeting and the LHLO block.
fn after_lhlo(replies: &[String]) -> Vec<&str> {
    let start = replies
        .iter()
        .position(|r| r == "250 CHUNKING")
        .expect("an LHLO reply");
    replies[start + 1..].iter().map(String::as_str).collect()
}

#[tokio::test]
async fn greeting_lhlo_and_quit() {
    let f = default_fixture().await;
    let r = f
        .talk(b"HELO x\r\nEHLO x\r\nLHLO mx.test\r\nNOOP\r\nVRFY a\r\nQUIT\r\nNOOP\r\n")
        .await;
    assert_eq!(
        r,
        [
            "220 backend.test Tandem LMTP ready",
            "500 5.5.1 This is LMTP: use LHLO",
            "500 5.5.1 This is LMTP: use LHLO",
            "250-backend.test",
            "250-PIPELINING",
            "250-ENHANCEDSTATUSCODES",
            "250-8BITMIME",
            "250-SIZE 52428800",
            "250-XCLIENT ADDR SESSION",
            "250-X-TANDEM-DEDUP",
            "250 CHUNKING",
            "250 2.0.0 OK",
            "252 2.5.2 Cannot VRFY user, but will accept message and attempt delivery",
            "221 2.0.0 backend.test Bye",
        ]
    );
}

#[tokio::test]
async fn pipelined_transaction_gives_one_reply_per_recipient() {
    let f = default_fixture().await;
    let r = f
        .talk(
            b"LHLO mx.test\r\nMAIL FROM:<sender@remote.test> BODY=8BITMIME\r\n\
              RCPT TO:<Alice@Example.com>\r\nRCPT TO:<nobody@example.com>\r\n\
              RCPT TO:<robert@example.com>\r\nRCPT TO:<gone@example.com>\r\n\
              RCPT TO:<away@example.com>\r\nRCPT TO:<alice@example.com>\r\nDATA\r\n\
              Subject: hi\r\n\r\n..leading dot\r\nbare lf\n.\r\nQUIT\r\n",
        )
        .await;
    assert_eq!(
        after_lhlo(&r),
        [
            "250 2.1.0 OK",
            "250 2.1.5 <alice@example.com> OK",
            "550 5.1.1 <nobody@example.com> User unknown",
            "250 2.1.5 <robert@example.com> OK",
            "550 5.2.1 <gone@example.com> Mailbox disabled",
            "451 4.3.0 <away@example.com> Temporary failure, try again later",
            "250 2.1.5 <alice@example.com> OK",
            "354 Start mail input; end with <CRLF>.<CRLF>",
            "250 2.0.0 <alice@example.com> Saved",
            "250 2.0.0 <robert@example.com> Saved",
            "250 2.0.0 <alice@example.com> Saved",
            "221 2.0.0 backend.test Bye",
        ]
    );
    let alice = f.inbox("alice@example.com");
    assert_eq!(alice.len(), 1, "a repeated RCPT delivers once");
    let bob = f.inbox("bob@example.com");
    assert_eq!(bob.len(), 1);
    let m = &bob[0];
    assert!(
        m.starts_with(
            "Return-Path: <sender@remote.test>\nDelivered-To: robert@example.com\n\
             Received: from mx.test ([192.0.2.7])\n\tby backend.test (Tandem) with LMTP id sess1234abcd;\n\t"
        ),
        "{m}"
    );
    assert!(
        m.ends_with("\nSubject: hi\n\n.leading dot\nbare lf\n"),
        "{m}"
    );
    assert!(!m.contains('\r'));
    assert!(alice[0].contains("Delivered-To: alice@example.com\n"));
    assert_eq!(f.count("ok"), 3);
    assert_eq!(f.count("unknown_user"), 2);
    assert_eq!(f.count("unavailable"), 1);
    assert!(f.metrics.received_bytes.get() > 0);
}

#[tokio::test]
async fn bdat_chunks_are_taken_raw() {
    let f = default_fixture().await;
    let r = f
        .talk(
            b"LHLO mx\r\nMAIL FROM:<>\r\nRCPT TO:<alice@example.com>\r\n\
              BDAT 11\r\nA: b\r\n\r\n.x\rBDAT 6 LAST\r\n\nend\r\n\
              MAIL FROM:<a@b.c>\r\nRCPT TO:<alice@example.com>\r\nBDAT 0 LAST\r\nQUIT\r\n",
        )
        .await;
    assert_eq!(
        after_lhlo(&r),
        [
            "250 2.1.0 OK",
            "250 2.1.5 <alice@example.com> OK",
            "250 2.0.0 11 octets received",
            "250 2.0.0 <alice@example.com> Saved",
            "250 2.1.0 OK",
            "250 2.1.5 <alice@example.com> OK",
            "250 2.0.0 <alice@example.com> Saved",
            "221 2.0.0 backend.test Bye",
        ]
    );
    let inbox = f.inbox("alice@example.com");
    assert_eq!(inbox.len(), 2);
    let bodies: Vec<&str> = inbox
        .iter()
        .map(|m| m.split_once("+0000\n").unwrap().1)
        .collect();
    assert!(bodies.contains(&"A: b\n\n.x\nend\n"), "{bodies:?}");
    assert!(bodies.contains(&""), "{bodies:?}");
    assert!(inbox.iter().any(|m| m.starts_with("Return-Path: <>\n")));
}

#[tokio::test]
async fn sequence_and_syntax_errors_leave_the_session_usable() {
    let f = default_fixture().await;
    let long = format!("NOOP {}\r\n", "x".repeat(5000));
    let mut input = b"MAIL FROM:<a@b.c>\r\nLHLO mx\r\nRCPT TO:<alice@example.com>\r\nDATA\r\n\
        BDAT 3\r\nabcMAIL FROM:<a@b.c>\r\nMAIL FROM:<a@b.c>\r\nDATA\r\nRCPT TO:<bad address>\r\n\
        RCPT TO:<x@example.com> NOTIFY=NEVER\r\n\x00\xff junk\r\n"
        .to_vec();
    input.extend_from_slice(long.as_bytes());
    input.extend_from_slice(b"STARTTLS\r\nRSET\r\nDATA\r\nQUIT\r\n");
    let r = f.talk(&input).await;
    assert_eq!(
        r[1..],
        [
            "503 5.5.1 Send LHLO first",
            "250-backend.test",
            "250-PIPELINING",
            "250-ENHANCEDSTATUSCODES",
            "250-8BITMIME",
            "250-SIZE 52428800",
            "250-XCLIENT ADDR SESSION",
            "250-X-TANDEM-DEDUP",
            "250 CHUNKING",
            "503 5.5.1 Send MAIL first",
            "503 5.5.1 Send MAIL first",
            "503 5.5.1 Send MAIL first",
            "250 2.1.0 OK",
            "503 5.5.1 Nested MAIL command",
            "503 5.5.1 No valid recipients",
            "501 5.1.3 Bad address syntax",
            "555 5.5.4 Unsupported RCPT parameter",
            "500 5.5.2 Unknown command",
            "500 5.5.6 Line too long",
            "502 5.5.1 STARTTLS not available",
            "250 2.0.0 OK",
            "503 5.5.1 Send MAIL first",
            "221 2.0.0 backend.test Bye",
        ]
    );
}

#[tokio::test]
async fn too_many_errors_close_the_session() {
    let cfg = LmtpConfig {
        max_errors: 3,
        ..LmtpConfig::default()
    };
    let f = fixture(cfg, NetList::loopback()).await;
    let r = f.talk(b"a\r\nb\r\nc\r\nNOOP\r\n").await;
    assert_eq!(
        r[1..],
        [
            "500 5.5.2 Unknown command",
            "500 5.5.2 Unknown command",
            "500 5.5.2 Unknown command",
            "421 4.7.0 backend.test Too many errors, closing",
        ]
    );
}

#[tokio::test]
async fn bad_bdat_size_closes_the_session() {
    let f = default_fixture().await;
    let r = f.talk(b"LHLO mx\r\nBDAT lots\r\nNOOP\r\n").await;
    assert_eq!(
        after_lhlo(&r),
        [
            "501 5.5.4 Syntax: BDAT size [LAST]",
            "421 4.5.0 backend.test Out of step, closing",
        ]
    );
}

#[tokio::test]
async fn size_limits() {
    let cfg = LmtpConfig {
        max_message_size: 100,
        ..LmtpConfig::default()
    };
    let f = fixture(cfg, NetList::loopback()).await;
    let big_line = "y".repeat(300);
    let input = format!(
        "LHLO mx\r\nMAIL FROM:<a@b.c> SIZE=101\r\nMAIL FROM:<a@b.c> SIZE=100\r\n\
         RCPT TO:<alice@example.com>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n\
         {}\r\n.\r\n\
         MAIL FROM:<a@b.c>\r\nRCPT TO:<alice@example.com>\r\nDATA\r\n{big_line}\r\n.\r\n\
         MAIL FROM:<a@b.c>\r\nRCPT TO:<alice@example.com>\r\nBDAT 60\r\n{}BDAT 60 LAST\r\n{}\
         MAIL FROM:<a@b.c>\r\nRCPT TO:<alice@example.com>\r\nDATA\r\nsmall\r\n.\r\nQUIT\r\n",
        "x\r\n".repeat(40),
        "z".repeat(60),
        "z".repeat(60),
    );
    let r = f.talk(input.as_bytes()).await;
    assert_eq!(
        after_lhlo(&r),
        [
            "552 5.3.4 Message size exceeds fixed maximum message size (100)",
            "250 2.1.0 OK",
            "250 2.1.5 <alice@example.com> OK",
            "250 2.1.5 <bob@example.com> OK",
            "354 Start mail input; end with <CRLF>.<CRLF>",
            "552 5.3.4 <alice@example.com> Message too big for system",
            "552 5.3.4 <bob@example.com> Message too big for system",
            "250 2.1.0 OK",
            "250 2.1.5 <alice@example.com> OK",
            "354 Start mail input; end with <CRLF>.<CRLF>",
            "552 5.3.4 <alice@example.com> Message too big for system",
            "250 2.1.0 OK",
            "250 2.1.5 <alice@example.com> OK",
            "250 2.0.0 60 octets received",
            "552 5.3.4 <alice@example.com> Message too big for system",
            "250 2.1.0 OK",
            "250 2.1.5 <alice@example.com> OK",
            "354 Start mail input; end with <CRLF>.<CRLF>",
            "250 2.0.0 <alice@example.com> Saved",
            "221 2.0.0 backend.test Bye",
        ]
    );
    assert_eq!(f.inbox("alice@example.com").len(), 1);
    assert_eq!(f.count("too_big"), 4);
}

#[tokio::test]
async fn quota_is_checked_at_rcpt_and_at_delivery() {
    let f = default_fixture().await;
    // full@ has 250 bytes: a declared SIZE over it fails at RCPT; an
    // undeclared message fails once its size is known; a small one fits
    // (with its ~170 bytes of trace headers), and then SIZE=100 does not.
    let input = format!(
        "LHLO mx\r\nMAIL FROM:<a@b.c> SIZE=500\r\nRCPT TO:<full@example.com>\r\nRSET\r\n\
         MAIL FROM:<a@b.c>\r\nRCPT TO:<full@example.com>\r\nRCPT TO:<alice@example.com>\r\n\
         DATA\r\nSubject: {}\r\n.\r\n\
         MAIL FROM:<a@b.c>\r\nRCPT TO:<full@example.com>\r\nDATA\r\nx\r\n.\r\n\
         MAIL FROM:<a@b.c> SIZE=100\r\nRCPT TO:<full@example.com>\r\nQUIT\r\n",
        "s".repeat(300)
    );
    let r = f.talk(input.as_bytes()).await;
    assert_eq!(
        after_lhlo(&r),
        [
            "250 2.1.0 OK",
            "552 5.2.2 <full@example.com> Mailbox full",
            "250 2.0.0 OK",
            "250 2.1.0 OK",
            "250 2.1.5 <full@example.com> OK",
            "250 2.1.5 <alice@example.com> OK",
            "354 Start mail input; end with <CRLF>.<CRLF>",
            "552 5.2.2 <full@example.com> Mailbox full",
            "250 2.0.0 <alice@example.com> Saved",
            "250 2.1.0 OK",
            "250 2.1.5 <full@example.com> OK",
            "354 Start mail input; end with <CRLF>.<CRLF>",
            "250 2.0.0 <full@example.com> Saved",
            "250 2.1.0 OK",
            "552 5.2.2 <full@example.com> Mailbox full",
            "221 2.0.0 backend.test Bye",
        ]
    );
    assert_eq!(f.count("over_quota"), 3);
}

#[tokio::test]
async fn idle_timeout_says_421() {
    let cfg = LmtpConfig {
        idle_timeout: Duration::from_millis(200),
        ..LmtpConfig::default()
    };
    let f = fixture(cfg, NetList::loopback()).await;
    let (client, server) = tokio::io::duplex(4096);
    let info = ConnInfo {
        client: "127.0.0.1".parse().unwrap(),
        session: "s".into(),
        tls: None,
    };
    let serve = Session::new(&f.lmtp, info).run(server, CancellationToken::new());
    let talk = async move {
        let mut client = client;
        client
            .write_all(b"LHLO x\r\nMAIL FROM:<>\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        // Stays open without a word until the server gives up.
        client.read_to_string(&mut out).await.unwrap();
        out
    };
    let ((), out) =
        tokio::time::timeout(Duration::from_secs(10), async { tokio::join!(serve, talk) })
            .await
            .expect("the session ends by itself");
    assert!(
        out.ends_with("250 2.1.0 OK\r\n421 4.4.2 backend.test Idle timeout, closing\r\n"),
        "{out}"
    );
}

#[tokio::test]
async fn shutdown_says_421() {
    let f = default_fixture().await;
    let token = CancellationToken::new();
    token.cancel();
    let r = f.talk_with(b"LHLO x\r\n", token).await;
    assert_eq!(
        r,
        [
            "220 backend.test Tandem LMTP ready",
            "421 4.3.2 backend.test Shutting down"
        ]
    );
}

#[tokio::test]
async fn untrusted_peers_are_refused() {
    use shared::net::{Conn, Protocol, Stream};
    let f = fixture(LmtpConfig::default(), NetList::default()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let at = listener.local_addr().unwrap();
    let client = tokio::spawn(async move {
        let mut s = tokio::net::TcpStream::connect(at).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    });
    let (tcp, peer) = listener.accept().await.unwrap();
    let conn = Conn {
        stream: Stream::Plain(tcp),
        client: peer,
        peer,
        local: at,
        session: "s".into(),
        tls: None,
    };
    f.lmtp.serve(conn, CancellationToken::new()).await;
    assert_eq!(
        client.await.unwrap(),
        "554 5.7.1 Not authorized to deliver here\r\n"
    );
    assert_eq!(f.lmtp.too_busy(), b"421 4.3.2 Too many connections\r\n");
}

#[tokio::test]
async fn too_many_recipients() {
    let cfg = LmtpConfig {
        max_recipients: 2,
        ..LmtpConfig::default()
    };
    let f = fixture(cfg, NetList::loopback()).await;
    let r = f
        .talk(
            b"LHLO x\r\nMAIL FROM:<>\r\nRCPT TO:<alice@example.com>\r\nRCPT TO:<bob@example.com>\r\n\
              RCPT TO:<robert@example.com>\r\nQUIT\r\n",
        )
        .await;
    assert_eq!(
        after_lhlo(&r),
        [
            "250 2.1.0 OK",
            "250 2.1.5 <alice@example.com> OK",
            "250 2.1.5 <bob@example.com> OK",
            "452 4.5.3 Too many recipients",
            "221 2.0.0 backend.test Bye",
        ]
    );
}

#[tokio::test]
async fn xclient_names_the_frontend_session_and_client() {
    let f = default_fixture().await;
    let r = f
        .talk(
            b"LHLO mx.test\r\nXCLIENT SESSION=fe+2D1 ADDR=198.51.100.9\r\nLHLO mx.test\r\n\
              MAIL FROM:<s@remote.test>\r\nRCPT TO:<alice@example.com>\r\nDATA\r\n\
              Subject: x\r\n\r\nhi\r\n.\r\nXCLIENT FOO=1\r\nMAIL FROM:<s@remote.test>\r\n\
              XCLIENT ADDR=192.0.2.1\r\nXCLIENT SESSION=+0A\r\nQUIT\r\n",
        )
        .await;
    let greetings = r
        .iter()
        .filter(|l| *l == "220 backend.test Tandem LMTP ready")
        .count();
    assert_eq!(greetings, 2, "XCLIENT starts the session over: {r:?}");
    let tail: Vec<&str> = r.iter().rev().take(6).rev().map(String::as_str).collect();
    assert_eq!(
        tail,
        [
            "250 2.0.0 <alice@example.com> Saved",
            "501 5.5.4 Unknown XCLIENT attribute",
            "250 2.1.0 OK",
            "503 5.5.1 Mail transaction in progress",
            "501 5.5.4 bad xtext in XCLIENT value",
            "221 2.0.0 backend.test Bye",
        ]
    );
    let m = &f.inbox("alice@example.com")[0];
    assert!(m.contains("Received: from mx.test ([198.51.100.9])"), "{m}");
}

#[tokio::test]
async fn a_tagged_retry_of_a_stored_copy_is_answered_250_and_not_stored_again() {
    let f = default_fixture().await;
    let tx = |mail: &str, body: &str| {
        format!(
            "LHLO mx.test\r\n{mail}\r\nRCPT TO:<alice@example.com>\r\n\
             RCPT TO:<bob@example.com>\r\nDATA\r\nSubject: {body}\r\n\r\nx\r\n.\r\nQUIT\r\n"
        )
    };
    let stored = [
        "250 2.0.0 <alice@example.com> Saved",
        "250 2.0.0 <bob@example.com> Saved",
    ];
    let mail = "MAIL FROM:<s@remote.test> ENVID=Q+2B1";
    let r = f.talk(tx(mail, "first").as_bytes()).await;
    assert_eq!(&after_lhlo(&r)[4..6], stored, "{r:?}");
    // Alice's copy only is there when the retry comes (bob read and
    // deleted his, say): alice's is recognised, bob gets a new one.
    let bob = crate::store::path::account_dir(&f.root, &addr("bob@example.com")).unwrap();
    for e in std::fs::read_dir(bob.join("new")).unwrap() {
        std::fs::remove_file(e.unwrap().path()).unwrap();
    }
    let retry = "MAIL FROM:<s@remote.test> ENVID=Q+2B1 X-TANDEM-RETRY";
    let r = f.talk(tx(retry, "retry").as_bytes()).await;
    assert_eq!(
        &after_lhlo(&r)[4..6],
        ["250 2.0.0 <alice@example.com> Already delivered", stored[1]],
        "{r:?}"
    );
    assert_eq!(f.inbox("alice@example.com").len(), 1);
    assert!(f.inbox("alice@example.com")[0].contains("Subject: first"));
    assert_eq!(f.inbox("bob@example.com").len(), 1);
    assert_eq!(f.count("duplicate"), 1);
    // Seen and moved to cur/ by a reader: still recognised.
    let alice = crate::store::path::account_dir(&f.root, &addr("alice@example.com")).unwrap();
    for e in std::fs::read_dir(alice.join("new")).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_str().unwrap().to_owned();
        std::fs::rename(&p, alice.join("cur").join(format!("{name}:2,S"))).unwrap();
    }
    let r = f.talk(tx(retry, "again").as_bytes()).await;
    assert_eq!(
        after_lhlo(&r)[4],
        "250 2.0.0 <alice@example.com> Already delivered"
    );
    assert_eq!(
        after_lhlo(&r)[5],
        "250 2.0.0 <bob@example.com> Already delivered"
    );
    assert_eq!(f.count("duplicate"), 3);
    // Another envelope id, no envelope id, or no retry marker: stored.
    for mail in [
        "MAIL FROM:<s@remote.test> ENVID=Q2 X-TANDEM-RETRY",
        "MAIL FROM:<s@remote.test> X-TANDEM-RETRY",
        "MAIL FROM:<s@remote.test> ENVID=Q+2B1",
    ] {
        let r = f.talk(tx(mail, "new").as_bytes()).await;
        assert_eq!(&after_lhlo(&r)[4..6], stored, "{mail}: {r:?}");
    }
    assert_eq!(
        f.inbox("alice@example.com").len(),
        3,
        "new/ has the three later copies"
    );
    assert_eq!(f.count("duplicate"), 3);
    // Alice's copy of Q3 is still being written by the transaction this
    // one repeats: try later, neither stored nor claimed.
    let tag = crate::store::maildir::delivery_tag("Q3", "alice@example.com");
    let writing = alice
        .join("tmp")
        .join(format!("1.M1P1Q1.h,S=1,W=1,E={tag}"));
    std::fs::write(&writing, b"x").unwrap();
    let r = f
        .talk(tx("MAIL FROM:<s@remote.test> ENVID=Q3 X-TANDEM-RETRY", "q3").as_bytes())
        .await;
    assert_eq!(
        &after_lhlo(&r)[4..6],
        [
            "451 4.3.0 <alice@example.com> A delivery of this copy is in progress, try again later",
            stored[1]
        ],
        "{r:?}"
    );
    assert_eq!(f.inbox("alice@example.com").len(), 3);
    // A bad ENVID is a syntax error, not a delivery.
    let r = f
        .talk(b"LHLO x\r\nMAIL FROM:<s@r.test> ENVID=a=b\r\nQUIT\r\n")
        .await;
    assert_eq!(after_lhlo(&r)[0], "501 5.5.4 Bad ENVID parameter");
}
