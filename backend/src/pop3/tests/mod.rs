//! Sessions over an in-memory pipe against a real (SQLite) locator and a
//! Maildir in a temporary directory: every reply, and what the store looks
//! like afterwards.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use locator::sql::SqlDirectory;
use locator::{
    AccountState, CacheConfig, ClusterState, Directory, Locator, LocatorMetrics, NewAccount,
};
use shared::blocking::Blocking;
use shared::net::NetList;
use shared::sasl::encode_plain;
use shared::{Address, Domain};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream, ReadHalf, WriteHalf};
use tokio_util::sync::CancellationToken;

use super::*;
use crate::accounts::{Accounts, SingleNode};
use crate::auth::{Auth, ProxyIdentity};
use crate::store::{Store, path, quota};

const ALICE: &str = "alice@example.com";
/// Loopback is trusted: passwords may come in the clear.
const TRUSTED: &str = "127.0.0.1";
const OUTSIDE: &str = "192.0.2.7";

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    pop3: Arc<Pop3>,
    metrics: Pop3Metrics,
}

fn addr(s: &str) -> Address {
    Address::parse(s).unwrap()
}

/// Fast settings for tests; each test changes what it exercises.
fn quick() -> Pop3Config {
    Pop3Config {
        auth_failure_delay: Duration::from_millis(10),
        ..Pop3Config::default()
    }
}

async fn fixture(cfg: Pop3Config) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("locator.db").display());
    let d = SqlDirectory::connect(&url, 1).await.unwrap();
    d.add_domain(&Domain::parse("example.com").unwrap())
        .await
        .unwrap();
    d.add_cluster("c1", ClusterState::Open, 1).await.unwrap();
    for (a, state) in [
        (ALICE, AccountState::Active),
        ("bob@example.com", AccountState::Active),
        ("gone@example.com", AccountState::Suspended),
    ] {
        d.add_account(&NewAccount {
            address: addr(a),
            password: Some("{PLAIN}secret".into()),
            cluster: "c1".into(),
            state,
            quota: 0,
        })
        .await
        .unwrap();
    }
    let locator = Locator::new(
        Arc::new(d),
        CacheConfig::default(),
        LocatorMetrics::default(),
    );
    let root = dir.path().join("store");
    std::fs::create_dir(&root).unwrap();
    let proxy = ProxyIdentity {
        name: "proxy".into(),
        secret: b"proxy-secret".to_vec(),
    };
    let node = Node {
        id: "n1".into(),
        cluster: "c1".into(),
        hostname: "backend.test".into(),
        auth: Auth::new(Arc::new(locator), NetList::loopback(), Some(proxy)),
        accounts: Accounts::new(
            "c1",
            Store::new(&root),
            Arc::new(SingleNode),
            Blocking::new(4),
        ),
        peers: crate::cluster::Peers::none(),
    };
    let metrics = Pop3Metrics::default();
    Fixture {
        _dir: dir,
        root,
        pop3: Arc::new(Pop3::new(Arc::new(node), cfg, metrics.clone())),
        metrics,
    }
}

/// A client on one end of a pipe, the session on the other.
struct Client {
    rd: BufReader<ReadHalf<DuplexStream>>,
    wr: WriteHalf<DuplexStream>,
    shutdown: CancellationToken,
    done: tokio::task::JoinHandle<()>,
}

impl Client {
    async fn send(&mut self, text: &str) {
        self.wr.write_all(text.as_bytes()).await.unwrap();
        self.wr.write_all(b"\r\n").await.unwrap();
    }

    /// The next line without CRLF; `None` once the server has closed.
    async fn try_line(&mut self) -> Option<String> {
        let mut l = Vec::new();
        let n = tokio::time::timeout(Duration::from_secs(20), self.rd.read_until(b'\n', &mut l))
            .await
            .expect("an answer within 20s")
            .unwrap();
        if n == 0 {
            return None;
        }
        assert!(l.ends_with(b"\r\n"), "{l:?} ends with CRLF");
        l.truncate(l.len() - 2);
        Some(String::from_utf8(l).unwrap())
    }

    async fn line(&mut self) -> String {
        self.try_line().await.expect("a line, not the end")
    }

    /// Sends `cmd` and returns its one-line answer.
    async fn cmd(&mut self, cmd: &str) -> String {
        self.send(cmd).await;
        self.line().await
    }

    /// The lines of a multi-line answer after its first line, dot-unstuffed
    /// raw (as on the wire), up to the `.` line.
    async fn multi(&mut self) -> Vec<String> {
        let mut v = Vec::new();
        loop {
            let l = self.line().await;
            if l == "." {
                return v;
            }
            v.push(l);
        }
    }

    async fn login(&mut self) {
        assert_eq!(self.cmd(&format!("USER {ALICE}")).await, "+OK");
        assert_eq!(self.cmd("PASS secret").await, "+OK Logged in.");
    }

    /// Waits for the server to close, returning what it said meanwhile.
    async fn rest(mut self) -> Vec<String> {
        let mut v = Vec::new();
        while let Some(l) = self.try_line().await {
            v.push(l);
        }
        let _ = self.done.await;
        v
    }
}

impl Fixture {
    fn connect(&self, peer: &str) -> Client {
        let (client, server) = tokio::io::duplex(1 << 16);
        let info = ConnInfo {
            client: format!("{peer}:40000").parse().unwrap(),
            peer: peer.parse().unwrap(),
            tls: None,
        };
        let pop3 = self.pop3.clone();
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let done = tokio::spawn(async move { pop3.serve_on(server, info, token).await });
        let (rd, wr) = tokio::io::split(client);
        Client {
            rd: BufReader::new(rd),
            wr,
            shutdown,
            done,
        }
    }

    /// Connects, reads the greeting.
    async fn open(&self, peer: &str) -> Client {
        let mut c = self.connect(peer);
        assert_eq!(c.line().await, "+OK Tandem POP3 ready.");
        c
    }

    /// Sends `input` at once (pipelined), closes, returns every line after
    /// the greeting.
    async fn talk(&self, peer: &str, input: &str) -> Vec<String> {
        let mut c = self.open(peer).await;
        c.wr.write_all(input.as_bytes()).await.unwrap();
        c.wr.shutdown().await.unwrap();
        c.rest().await
    }

    fn maildir(&self, a: &str) -> PathBuf {
        path::account_dir(&self.root, &addr(a)).unwrap()
    }

    fn deliver(&self, a: &str, body: &str) {
        let store = self.pop3.node.accounts.store().account(&addr(a)).unwrap();
        store.deliver(body.as_bytes()).unwrap();
    }

    /// Names of the files in INBOX's `sub` (new, cur), sorted.
    fn files(&self, a: &str, sub: &str) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.maildir(a).join(sub))
            .map(|rd| {
                rd.map(|e| e.unwrap().file_name().into_string().unwrap())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Every message of INBOX by its first line: (first line, `new` or
    /// `cur`, info letters), sorted.
    fn inbox(&self, a: &str) -> Vec<(String, &'static str, String)> {
        let mut v = Vec::new();
        for sub in ["new", "cur"] {
            for name in self.files(a, sub) {
                let text = std::fs::read_to_string(self.maildir(a).join(sub).join(&name)).unwrap();
                let first = text.lines().next().unwrap_or_default().to_owned();
                let info = name.split_once(":2,").map(|(_, i)| i).unwrap_or("-");
                v.push((first, sub, info.to_owned()));
            }
        }
        v.sort();
        v
    }

    /// The file of the message whose first line is `first`.
    fn file_of(&self, a: &str, first: &str) -> PathBuf {
        for sub in ["new", "cur"] {
            for name in self.files(a, sub) {
                let p = self.maildir(a).join(sub).join(&name);
                if std::fs::read_to_string(&p).unwrap().starts_with(first) {
                    return p;
                }
            }
        }
        panic!("no message {first}")
    }

    fn logins(&self, result: &'static str) -> u64 {
        self.metrics
            .logins
            .get_or_create(&ResultLabel { result })
            .get()
    }
}

const ONE: &str = "Subject: one\n\nfirst\n.leading dot\n";
const TWO: &str = "Subject: two\n\nsecond\n";
const THREE: &str = "Subject: three\n\n1\n2\n3\n";

async fn with_three() -> Fixture {
    let f = fixture(quick()).await;
    for m in [ONE, TWO, THREE] {
        f.deliver(ALICE, m);
    }
    f
}

mod login;
mod transaction;

#[test]
fn config_defaults_parse_and_limits() {
    let d = Pop3Config::default();
    assert_eq!(d.idle_timeout, Duration::from_secs(600));
    assert_eq!(d.auth_failure_delay, Duration::from_secs(2));
    assert_eq!((d.max_auth_failures, d.max_commands_before_auth), (3, 20));
    let mut p = Problems::default();
    d.validate("backend.pop3", &mut p);
    assert!(p.is_empty());

    let c: Pop3Config =
        serde_saphyr::from_str("idle_timeout: 30m\nauth_failure_delay: 500ms\n").unwrap();
    assert_eq!(c.idle_timeout, Duration::from_secs(1800));
    assert_eq!(c.auth_failure_delay, Duration::from_millis(500));
    assert_eq!(c.max_auth_failures, 3);
    assert!(serde_saphyr::from_str::<Pop3Config>("idle: 1m\n").is_err());

    let bad = Pop3Config {
        idle_timeout: Duration::from_secs(1),
        auth_failure_delay: Duration::from_secs(60),
        max_auth_failures: 0,
        max_commands_before_auth: 0,
    };
    let mut p = Problems::default();
    bad.validate("backend.pop3", &mut p);
    let fields: Vec<String> = p.into_vec().into_iter().map(|p| p.to_string()).collect();
    for f in [
        "idle_timeout",
        "auth_failure_delay",
        "max_auth_failures",
        "max_commands_before_auth",
    ] {
        assert!(fields.iter().any(|p| p.contains(f)), "{f} in {fields:?}");
    }
}
