//! The frontend's durable queue (`frontend::queue::Queue`) against real
//! backend nodes: immediate LMTP delivery to clusters in parallel, the
//! spool when a cluster is down, retries, restarts, DSNs, `tandem queue`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use frontend::queue::config::{Smarthost, SmarthostAuth, SmarthostTls};
use frontend::queue::{Disposition, Envelope, Queue, QueueConfig, Recipient, Refused, Route};
use frontend::route::Router;
use tests::backend::Backend;
use tests::frontend::Frontend;
use tests::servers::SmtpSink;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A queue on `dir` routing through the locator of `b`, as a frontend
/// would (PROXY headers from 127.0.0.2), with its `run` loop going.
struct Running {
    queue: Arc<Queue>,
    stop: CancellationToken,
    task: JoinHandle<()>,
    registry: prometheus_client::registry::Registry,
}

impl Running {
    async fn start(b: &Backend, cfg: QueueConfig) -> Running {
        let text = format!(
            "sql:\n  url: sqlite://{}\ncache:\n  ttl: 1s\n  negative_ttl: 1s\n  stale_for: 1h\n  retry_after: 1s\n",
            b.locator_db().display()
        );
        let lcfg: locator::config::LocatorConfig =
            shared::config::parse(Path::new("locator.yaml"), &text).expect("locator config");
        let mut registry = prometheus_client::registry::Registry::default();
        let dir = locator::config::open(&lcfg, locator::config::Open::Lazy)
            .await
            .expect("locator");
        let locator = Arc::new(locator::Locator::new(
            dir,
            lcfg.cache.clone(),
            locator::LocatorMetrics::register(&mut registry),
        ));
        let router = Arc::new(Router::new(
            locator,
            Duration::from_secs(1),
            Some("127.0.0.2".parse().expect("an address")),
            frontend::FrontendMetrics::default(),
        ));
        let queue = Queue::open(&cfg, router.clone(), "mx.test", &mut registry)
            .await
            .expect("open queue");
        let stop = CancellationToken::new();
        // Health checks as the daemon runs them (faster).
        tokio::spawn(frontend::health::run(
            router,
            Duration::from_millis(500),
            stop.clone(),
        ));
        let task = tokio::spawn(queue.clone().run(stop.clone()));
        Running {
            queue,
            stop,
            task,
            registry,
        }
    }

    /// Stops `run` and drops the queue (its lock with it).
    async fn stop(self) {
        self.stop.cancel();
        self.task.await.expect("run ended");
    }

    fn metrics(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).expect("encode");
        text
    }
}

fn config(dir: &Path) -> QueueConfig {
    let mut c = QueueConfig::new(dir.to_owned());
    c.deliver_wait = Duration::from_secs(10);
    c.retry_min = Duration::from_secs(1);
    c.retry_max = Duration::from_secs(2);
    c.reply_timeout = Duration::from_secs(10);
    c
}

fn local(address: &str, cluster: &str) -> Recipient {
    Recipient {
        address: address.to_owned(),
        route: Route::Local {
            cluster: cluster.to_owned(),
            account: shared::Address::parse(address).expect("an address"),
        },
    }
}

fn envelope(sender: &str, recipients: Vec<Recipient>) -> Envelope {
    Envelope {
        session: "fe-test-1".into(),
        sender: sender.into(),
        recipients,
        eight_bit: false,
        smtputf8: false,
    }
}

fn message(subject: &str) -> Vec<u8> {
    format!(
        "Received: from client.test by mx.test\r\nFrom: <sender@example.com>\r\nSubject: {subject}\r\n\r\nHello.\r\n.leading dot\r\n"
    )
    .into_bytes()
}

/// Waits until `f` holds, or fails with `what`.
async fn eventually(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn spool_entries(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .expect("spool dir")
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "q"))
        .count()
}

/// Cluster c1 with sender@ and alice@, cluster c2 with bob@ and carol@
/// (example.com), one node each, every password "pw".
fn two_clusters() -> (Backend, Backend) {
    let b1 = Backend::start().expect("cluster c1");
    let b2 = Backend::start_beside(&b1, "c2", "n2").expect("cluster c2");
    for (account, cluster) in [
        ("sender@example.com", "c1"),
        ("alice@example.com", "c1"),
        ("bob@example.com", "c2"),
        ("carol@example.com", "c2"),
    ] {
        b1.add_account_on(account, "pw", cluster)
            .expect("add account");
    }
    (b1, b2)
}

/// Both clusters with c2 down, and a queue running on a fresh spool with
/// `tweak`ed settings.
async fn with_c2_down(
    tweak: impl FnOnce(&mut QueueConfig),
) -> (Backend, Backend, tempfile::TempDir, Running) {
    let (b1, mut b2) = two_clusters();
    b2.kill();
    let spool = tempfile::tempdir().expect("spool dir");
    let mut cfg = config(spool.path());
    tweak(&mut cfg);
    let q = Running::start(&b1, cfg).await;
    (b1, b2, spool, q)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivers_to_two_clusters_in_parallel_once_each() {
    let (b1, b2) = two_clusters();
    let spool = tempfile::tempdir().unwrap();
    let q = Running::start(&b1, config(spool.path())).await;
    let env = envelope(
        "sender@example.org",
        vec![
            local("alice@example.com", "c1"),
            local("bob@example.com", "c2"),
            local("carol@example.com", "c2"),
        ],
    );
    let accepted = q.queue.accept(env, message("two clusters")).await.unwrap();
    assert_eq!(accepted.recipients, vec![Disposition::Delivered; 3]);
    assert_eq!(b1.inbox("alice@example.com").len(), 1);
    assert_eq!(b2.inbox("bob@example.com").len(), 1);
    assert_eq!(b2.inbox("carol@example.com").len(), 1);
    let text = &b2.inbox("bob@example.com")[0];
    assert!(text.contains("Subject: two clusters"), "{text}");
    assert!(
        text.contains("\n.leading dot"),
        "dot-stuffing undone: {text}"
    );
    assert_eq!(spool_entries(spool.path()), 0, "nothing spooled");
    // The backend's log names the frontend's session (XCLIENT).
    eventually("the session id in the backend log", 5, || {
        b2.log().contains("fe-test-1")
    })
    .await;
    let m = q.metrics();
    assert!(
        m.contains("tandem_queue_recipients_total{result=\"delivered\"} 3"),
        "{m}"
    );
    assert!(
        m.contains("tandem_queue_messages_total{result=\"delivered\"} 1"),
        "{m}"
    );
    q.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_down_is_queued_and_delivered_once_when_it_returns() {
    let (b1, mut b2, spool, q) = with_c2_down(|_| {}).await;
    let env = envelope(
        "sender@example.org",
        vec![
            local("alice@example.com", "c1"),
            local("bob@example.com", "c2"),
        ],
    );
    let accepted = q.queue.accept(env, message("while down")).await.unwrap();
    assert_eq!(
        accepted.recipients,
        vec![Disposition::Delivered, Disposition::Queued]
    );
    assert_eq!(
        spool_entries(spool.path()),
        1,
        "spooled before accept returned"
    );
    assert_eq!(b1.inbox("alice@example.com").len(), 1);
    // A few retries fail while the cluster is down.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let m = q.metrics();
    assert!(m.contains("tandem_queue_length 1"), "{m}");
    let oldest = m
        .lines()
        .find_map(|l| l.strip_prefix("tandem_queue_oldest_seconds "))
        .and_then(|v| v.parse::<u64>().ok());
    assert!(oldest.is_some_and(|s| (2..=15).contains(&s)), "{m}");
    b2.restart().unwrap();
    eventually("delivery after the cluster returned", 20, || {
        b2.inbox("bob@example.com").len() == 1
    })
    .await;
    eventually("the spool emptied", 10, || spool_entries(spool.path()) == 0).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(b2.inbox("bob@example.com").len(), 1, "delivered once");
    assert_eq!(b1.inbox("alice@example.com").len(), 1, "alice not again");
    let m = q.metrics();
    assert!(
        m.contains("tandem_queue_messages_total{result=\"queued\"} 1"),
        "{m}"
    );
    let retries = m
        .lines()
        .find_map(|l| l.strip_prefix("tandem_queue_retries_total "))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    assert!(retries >= 1, "{m}");
    assert!(m.contains("tandem_queue_delivery_seconds_count 2"), "{m}");
    assert!(m.contains("tandem_queue_length 0"), "{m}");
    q.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_returning_cluster_is_retried_at_once_not_after_the_backoff() {
    let (_b1, mut b2, _spool, q) = with_c2_down(|cfg| {
        cfg.retry_min = Duration::from_secs(3600);
        cfg.retry_max = Duration::from_secs(3600);
    })
    .await;
    let env = envelope("sender@example.org", vec![local("bob@example.com", "c2")]);
    let accepted = q.queue.accept(env, message("back soon")).await.unwrap();
    assert_eq!(accepted.recipients, vec![Disposition::Queued]);
    // The health checks see c2 down, then up again.
    tokio::time::sleep(Duration::from_secs(2)).await;
    b2.restart().unwrap();
    eventually("delivery when a health check finds c2 back", 10, || {
        b2.inbox("bob@example.com").len() == 1
    })
    .await;
    q.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reopened_queue_resumes_its_spool() {
    let (b1, mut b2, spool, q) = with_c2_down(|_| {}).await;
    let env = envelope("sender@example.org", vec![local("bob@example.com", "c2")]);
    let accepted = q
        .queue
        .accept(env, message("across restart"))
        .await
        .unwrap();
    assert_eq!(accepted.recipients, vec![Disposition::Queued]);
    q.stop().await;
    b2.restart().unwrap();
    let q = Running::start(&b1, config(spool.path())).await;
    assert_eq!(q.queue.spooled(), vec![accepted.id.clone()]);
    eventually("delivery by the reopened queue", 20, || {
        b2.inbox("bob@example.com").len() == 1
    })
    .await;
    eventually("the spool emptied", 10, || spool_entries(spool.path()) == 0).await;
    q.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_recipient_refused_is_a_permanent_refusal() {
    let b1 = Backend::start().unwrap();
    let spool = tempfile::tempdir().unwrap();
    let q = Running::start(&b1, config(spool.path())).await;
    let env = envelope(
        "sender@example.org",
        vec![local("nobody@example.com", "c1")],
    );
    match q.queue.accept(env, message("nobody")).await {
        Err(Refused::Permanent(reply)) => assert!(reply.starts_with("550"), "{reply}"),
        other => panic!("expected a permanent refusal, got {other:?}"),
    }
    assert_eq!(spool_entries(spool.path()), 0);
    q.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_failures_bounce_to_the_sender_mailbox() {
    let b1 = Backend::start().unwrap();
    b1.add_account_on("sender@example.com", "pw", "c1").unwrap();
    b1.add_account_on("alice@example.com", "pw", "c1").unwrap();
    b1.add_account_on("full@example.com", "pw", "c1").unwrap();
    b1.tandem_ok(&["account", "quota", "full@example.com", "10"])
        .unwrap();
    let spool = tempfile::tempdir().unwrap();
    let q = Running::start(&b1, config(spool.path())).await;
    let env = envelope(
        "sender@example.com",
        vec![
            local("alice@example.com", "c1"),
            local("nobody@example.com", "c1"),
            local("full@example.com", "c1"),
        ],
    );
    let accepted = q
        .queue
        .accept(env, message("partly bounced"))
        .await
        .unwrap();
    assert_eq!(accepted.recipients[0], Disposition::Delivered);
    assert!(
        matches!(&accepted.recipients[1], Disposition::Failed { reply } if reply.starts_with("550 5.1.1")),
        "{:?}",
        accepted.recipients
    );
    assert!(
        matches!(&accepted.recipients[2], Disposition::Failed { reply } if reply.starts_with("552 5.2.2")),
        "{:?}",
        accepted.recipients
    );
    eventually("the DSN in the sender's mailbox", 10, || {
        b1.inbox("sender@example.com").len() == 1
    })
    .await;
    let dsn = &b1.inbox("sender@example.com")[0];
    for want in [
        "From: Mail Delivery System <MAILER-DAEMON@mx.test>",
        "report-type=delivery-status",
        "Final-Recipient: rfc822; nobody@example.com\nAction: failed\nStatus: 5.1.1\n",
        "Final-Recipient: rfc822; full@example.com\nAction: failed\nStatus: 5.2.2\n",
        "Diagnostic-Code: smtp; 552 5.2.2",
        "Content-Type: text/rfc822-headers",
        "Subject: partly bounced",
    ] {
        assert!(dsn.contains(want), "missing {want:?} in DSN:\n{dsn}");
    }
    // The backend saw the null sender for the DSN.
    assert!(dsn.contains("Return-Path: <>"), "{dsn}");
    assert!(
        q.metrics().contains("tandem_queue_dsns_total 1"),
        "{}",
        q.metrics()
    );

    // A bounce never gets a bounce: the null sender's failures are dropped.
    let env = envelope(
        "",
        vec![
            local("alice@example.com", "c1"),
            local("nobody@example.com", "c1"),
        ],
    );
    let accepted = q.queue.accept(env, message("a bounce")).await.unwrap();
    assert_eq!(accepted.recipients[0], Disposition::Delivered);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(q.metrics().contains("tandem_queue_dsns_total 1"));
    assert_eq!(spool_entries(spool.path()), 0);
    q.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifetime_expiry_sends_a_dsn() {
    let (b1, mut b2, spool, q) = with_c2_down(|cfg| {
        cfg.lifetime = Duration::from_secs(4);
    })
    .await;
    let env = envelope("sender@example.com", vec![local("bob@example.com", "c2")]);
    let accepted = q.queue.accept(env, message("never arrives")).await.unwrap();
    assert_eq!(accepted.recipients, vec![Disposition::Queued]);
    eventually("the expiry DSN", 20, || {
        b1.inbox("sender@example.com").len() == 1
    })
    .await;
    let dsn = &b1.inbox("sender@example.com")[0];
    assert!(
        dsn.contains("Final-Recipient: rfc822; bob@example.com\nAction: failed\nStatus: 4.4.7\n"),
        "{dsn}"
    );
    assert!(dsn.contains("Delivery time expired"), "{dsn}");
    assert!(dsn.contains("cluster c2"), "the last error is told: {dsn}");
    eventually("the spool emptied", 10, || spool_entries(spool.path()) == 0).await;
    q.stop().await;
    b2.restart().unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(b2.inbox("bob@example.com").is_empty());
}

/// A config file for `tandem queue` naming the spool.
fn cli_config(b: &Backend, spool: &Path) -> tempfile::NamedTempFile {
    let text = format!(
        "locator:\n  sql:\n    url: sqlite://{db}\n\
         frontend:\n  backend_login:\n    identity: x\n    secret: y\n  listen:\n    imap: 127.0.0.1:1\n  queue:\n    dir: {dir}\n",
        db = b.locator_db().display(),
        dir = spool.display()
    );
    let f = tempfile::NamedTempFile::new().expect("temp config");
    std::fs::write(f.path(), text).expect("write config");
    f
}

fn tandem_json(config: &Path, args: &[&str]) -> serde_json::Value {
    let out = std::process::Command::new(tests::backend::tandem_bin())
        .arg("--config")
        .arg(config)
        .arg("--json")
        .args(args)
        .output()
        .expect("run tandem");
    assert!(
        out.status.success(),
        "tandem {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON output")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tandem_queue_list_retry_delete() {
    let (b1, mut b2) = two_clusters();
    b2.kill();
    let spool = tempfile::tempdir().unwrap();
    let cfg_file = cli_config(&b1, spool.path());
    let mut cfg = config(spool.path());
    // Retries far apart: only `retry` makes them happen in this test.
    cfg.retry_min = Duration::from_secs(3600);
    cfg.retry_max = Duration::from_secs(3600);
    let q = Running::start(&b1, cfg.clone()).await;
    let first = q
        .queue
        .accept(
            envelope("sender@example.org", vec![local("bob@example.com", "c2")]),
            message("to retry"),
        )
        .await
        .unwrap();
    let second = q
        .queue
        .accept(
            envelope("sender@example.org", vec![local("carol@example.com", "c2")]),
            message("to delete"),
        )
        .await
        .unwrap();

    let list = tandem_json(cfg_file.path(), &["queue", "list"]);
    let list = list.as_array().expect("a list");
    assert_eq!(list.len(), 2, "{list:?}");
    let entry = list
        .iter()
        .find(|e| e["id"] == first.id.as_str())
        .expect("the first message listed");
    assert_eq!(entry["sender"], "sender@example.org");
    assert_eq!(entry["pending"], serde_json::json!(["bob@example.com"]));
    assert_eq!(entry["attempts"], 1);
    assert!(
        entry["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("c2")),
        "{entry}"
    );
    let text = std::process::Command::new(tests::backend::tandem_bin())
        .arg("--config")
        .arg(cfg_file.path())
        .args(["queue", "list"])
        .output()
        .expect("tandem queue list");
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    let header = text.lines().next().unwrap_or_default();
    assert!(
        header.starts_with("ID") && header.contains("PENDING") && header.ends_with("LAST ERROR"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with(first.id.as_str()) && l.contains("bob@example.com")),
        "{text}"
    );
    let show = tandem_json(cfg_file.path(), &["queue", "show", &first.id]);
    assert!(
        show["headers"]
            .as_str()
            .is_some_and(|h| h.contains("Subject: to retry")),
        "{show}"
    );
    assert_eq!(show["recipients"][0]["state"]["state"], "pending");

    // Through the running queue.
    let deleted = tandem_json(cfg_file.path(), &["queue", "delete", &second.id]);
    assert_eq!(deleted["applied_by"], "frontend");
    assert_eq!(q.queue.spooled(), vec![first.id.clone()]);
    b2.restart().unwrap();
    let retried = tandem_json(cfg_file.path(), &["queue", "retry", &first.id]);
    assert_eq!(retried["applied_by"], "frontend");
    eventually("delivery after retry", 10, || {
        b2.inbox("bob@example.com").len() == 1
    })
    .await;
    eventually("the spool emptied", 10, || spool_entries(spool.path()) == 0).await;
    assert!(
        b2.inbox("carol@example.com").is_empty(),
        "deleted, never delivered"
    );

    // Without a running queue the CLI changes the spool itself.
    b2.kill();
    let third = q
        .queue
        .accept(
            envelope("sender@example.org", vec![local("carol@example.com", "c2")]),
            message("offline"),
        )
        .await
        .unwrap();
    q.stop().await;
    let retried = tandem_json(cfg_file.path(), &["queue", "retry", "--all"]);
    assert_eq!(retried["applied_by"], "spool");
    let list = tandem_json(cfg_file.path(), &["queue", "list"]);
    assert_eq!(list[0]["next_attempt"], serde_json::Value::Null, "{list}");
    let deleted = tandem_json(cfg_file.path(), &["queue", "delete", &third.id]);
    assert_eq!(deleted["applied_by"], "spool");
    assert_eq!(spool_entries(spool.path()), 0);
    let q = Running::start(&b1, cfg).await;
    assert!(q.queue.spooled().is_empty());
    q.stop().await;
}

fn relay(address: &str) -> Recipient {
    Recipient {
        address: address.to_owned(),
        route: Route::Relay,
    }
}

fn smarthost(sink: &SmtpSink) -> Option<Smarthost> {
    Some(Smarthost {
        address: sink.addr().to_string(),
        tls: SmarthostTls::None,
        ca_file: None,
        insecure_skip_verify: false,
        auth: None,
    })
}

/// Waits for `n` complete transactions at the sink.
async fn sunk(sink: &SmtpSink, n: usize) -> Vec<String> {
    eventually("messages at the smarthost", 10, || {
        let m = sink.messages();
        m.len() >= n && m.iter().all(|t| t.contains("Hello."))
    })
    .await;
    sink.messages()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relays_through_a_smarthost_with_the_right_envelope() {
    let b1 = Backend::start().unwrap();
    b1.add_account_on("alice@example.com", "pw", "c1").unwrap();
    let sink = SmtpSink::start(&[]).unwrap();
    let spool = tempfile::tempdir().unwrap();
    let mut cfg = config(spool.path());
    cfg.smarthost = smarthost(&sink);
    let q = Running::start(&b1, cfg).await;
    assert!(q.queue.has_smarthost());
    let env = envelope(
        "sender@example.com",
        vec![
            relay("x@far.test"),
            local("alice@example.com", "c1"),
            relay("y@other.test"),
        ],
    );
    let accepted = q.queue.accept(env, message("relayed")).await.unwrap();
    assert_eq!(accepted.recipients, vec![Disposition::Delivered; 3]);
    let got = sunk(&sink, 1).await;
    assert_eq!(got.len(), 1, "one transaction for both: {got:?}");
    let t = &got[0];
    assert!(t.contains("X-Mail-Args: <sender@example.com>"), "{t}");
    assert!(t.contains("X-Rcpt-Args: <x@far.test>\n"), "{t}");
    assert!(t.contains("X-Rcpt-Args: <y@other.test>\n"), "{t}");
    assert!(
        !t.contains("alice"),
        "the local recipient is not relayed: {t}"
    );
    assert!(t.contains("Subject: relayed"), "{t}");
    assert!(t.contains("\n.leading dot"), "dot-stuffing undone: {t}");
    assert_eq!(b1.inbox("alice@example.com").len(), 1);
    let m = q.metrics();
    assert!(
        m.contains("tandem_queue_recipients_total{result=\"relayed\"} 2"),
        "{m}"
    );
    q.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_sender_gets_its_dsn_through_the_smarthost_or_none() {
    let b1 = Backend::start().unwrap();
    b1.add_account_on("alice@example.com", "pw", "c1").unwrap();
    let sink = SmtpSink::start(&[]).unwrap();
    let spool = tempfile::tempdir().unwrap();
    let mut cfg = config(spool.path());
    cfg.smarthost = smarthost(&sink);
    let q = Running::start(&b1, cfg).await;
    let env = envelope(
        "someone@far.test",
        vec![
            local("alice@example.com", "c1"),
            local("nobody@example.com", "c1"),
        ],
    );
    let accepted = q.queue.accept(env, message("to a stranger")).await.unwrap();
    assert_eq!(accepted.recipients[0], Disposition::Delivered);
    eventually("the DSN at the smarthost", 10, || {
        sink.messages()
            .iter()
            .any(|t| t.contains("--\n") || t.contains("--\r\n"))
    })
    .await;
    let dsn = &sink.messages()[0];
    assert!(dsn.contains("X-Mail-Args: <>"), "null sender: {dsn}");
    assert!(dsn.contains("X-Rcpt-Args: <someone@far.test>"), "{dsn}");
    assert!(
        dsn.contains("Final-Recipient: rfc822; nobody@example.com"),
        "{dsn}"
    );
    q.stop().await;

    // Without a smarthost the DSN has nowhere to go: dropped, not kept.
    let q = Running::start(&b1, config(spool.path())).await;
    let env = envelope(
        "someone@far.test",
        vec![
            local("alice@example.com", "c1"),
            local("nobody@example.com", "c1"),
        ],
    );
    q.queue.accept(env, message("dropped DSN")).await.unwrap();
    eventually("the DSN given up", 10, || spool_entries(spool.path()) == 0).await;
    let m = q.metrics();
    assert!(m.contains("tandem_queue_dsns_total 1"), "{m}");
    // nobody@, then the DSN's own recipient (no route).
    assert!(
        m.contains("tandem_queue_recipients_total{result=\"failed\"} 2"),
        "{m}"
    );
    q.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smarthost_refusals_bounce_and_deferrals_wait() {
    let b1 = Backend::start().unwrap();
    b1.add_account_on("sender@example.com", "pw", "c1").unwrap();
    b1.add_account_on("alice@example.com", "pw", "c1").unwrap();
    // Every RCPT refused for good (and no PIPELINING: one command at a time).
    let refusing = SmtpSink::start(&["-f", "RCPT"]).unwrap();
    let spool = tempfile::tempdir().unwrap();
    let mut cfg = config(spool.path());
    cfg.smarthost = smarthost(&refusing);
    let q = Running::start(&b1, cfg).await;
    let env = envelope(
        "sender@example.com",
        vec![relay("x@far.test"), local("alice@example.com", "c1")],
    );
    let accepted = q.queue.accept(env, message("refused")).await.unwrap();
    assert!(
        matches!(&accepted.recipients[0], Disposition::Failed { reply } if reply.starts_with('5')),
        "{:?}",
        accepted.recipients
    );
    assert_eq!(accepted.recipients[1], Disposition::Delivered);
    eventually("the DSN", 10, || b1.inbox("sender@example.com").len() == 1).await;
    let dsn = &b1.inbox("sender@example.com")[0];
    assert!(dsn.contains("Final-Recipient: rfc822; x@far.test"), "{dsn}");
    q.stop().await;

    // The end of DATA refused for now: the recipient waits in the spool.
    let deferring = SmtpSink::start(&["-r", "."]).unwrap();
    let mut cfg = config(spool.path());
    cfg.smarthost = smarthost(&deferring);
    let q = Running::start(&b1, cfg).await;
    let env = envelope("sender@example.com", vec![relay("x@far.test")]);
    let accepted = q.queue.accept(env, message("deferred")).await.unwrap();
    assert_eq!(accepted.recipients, vec![Disposition::Queued]);
    assert_eq!(spool_entries(spool.path()), 1);
    q.stop().await;
}

fn signal(pid: u32, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("run kill")
        .success();
    assert!(ok, "kill {sig} {pid}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_delivery_is_queued_after_deliver_wait_and_never_doubled() {
    let (b1, b2) = two_clusters();
    let spool = tempfile::tempdir().unwrap();
    let mut cfg = config(spool.path());
    cfg.deliver_wait = Duration::from_secs(2);
    cfg.reply_timeout = Duration::from_secs(30);
    let q = Running::start(&b1, cfg).await;
    // The node takes connections (the kernel's backlog) but never answers.
    let pid = b2.pid().expect("backend running");
    signal(pid, "-STOP");
    let started = Instant::now();
    let env = envelope("sender@example.org", vec![local("bob@example.com", "c2")]);
    let accepted = q.queue.accept(env, message("stalled")).await;
    let waited = started.elapsed();
    signal(pid, "-CONT");
    let accepted = accepted.unwrap();
    assert_eq!(accepted.recipients, vec![Disposition::Queued]);
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(8),
        "accept waited {waited:?}"
    );
    assert_eq!(spool_entries(spool.path()), 1, "spooled before answering");
    // Stop the node again for a while: retries (1s) would be due, but the
    // first attempt is still in flight and must not be doubled.
    signal(pid, "-STOP");
    tokio::time::sleep(Duration::from_secs(4)).await;
    signal(pid, "-CONT");
    eventually("the stalled delivery's end", 20, || {
        b2.inbox("bob@example.com").len() == 1
    })
    .await;
    eventually("the spool emptied", 10, || spool_entries(spool.path()) == 0).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(b2.inbox("bob@example.com").len(), 1, "delivered once");
    q.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_spool_refuses_for_now() {
    let (_b1, _b2, spool, q) = with_c2_down(|cfg| {
        cfg.max_messages = 1;
    })
    .await;
    let env = || envelope("sender@example.org", vec![local("bob@example.com", "c2")]);
    let first = q.queue.accept(env(), message("fits")).await.unwrap();
    assert_eq!(first.recipients, vec![Disposition::Queued]);
    match q.queue.accept(env(), message("does not fit")).await {
        Err(Refused::Temporary(why)) => assert!(why.contains("full"), "{why}"),
        other => panic!("expected a temporary refusal, got {other:?}"),
    }
    assert_eq!(spool_entries(spool.path()), 1);
    // What needs no spool still goes through.
    let env = envelope("sender@example.org", vec![local("alice@example.com", "c1")]);
    let ok = q.queue.accept(env, message("direct")).await.unwrap();
    assert_eq!(ok.recipients, vec![Disposition::Delivered]);
    let m = q.metrics();
    assert!(m.contains("tandem_queue_length 1"), "{m}");
    assert!(
        m.contains("tandem_queue_messages_total{result=\"refused_temporary\"} 1"),
        "{m}"
    );
    q.stop().await;
}

/// A CA and a certificate it signed for 127.0.0.1 (PEM files in `dir`):
/// (ca, cert, key).
fn ca_and_leaf(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().expect("CA key")).expect("CA");
    let key = KeyPair::generate().expect("leaf key");
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .expect("leaf params")
        .signed_by(&key, &ca)
        .expect("leaf");
    let paths = (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    );
    std::fs::write(&paths.0, ca.pem()).expect("write CA");
    std::fs::write(&paths.1, leaf.pem()).expect("write cert");
    std::fs::write(&paths.2, key.serialize_pem()).expect("write key");
    paths
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relays_through_a_smarthost_with_tls_and_auth() {
    let (b1, b2) = two_clusters();
    let certs = tempfile::tempdir().unwrap();
    let (ca, cert, key) = ca_and_leaf(certs.path());
    // The smarthost: another frontend's submission port (STARTTLS, AUTH).
    let relay_host = Frontend::start(
        &b1,
        &format!(
            "  tls:\n    cert: {}\n    key: {}\n",
            cert.display(),
            key.display()
        ),
    )
    .unwrap();
    let password = certs.path().join("password");
    std::fs::write(&password, "pw\n").unwrap();
    let smarthost = |password_file: &Path| Smarthost {
        address: relay_host.submission_addr().to_string(),
        tls: SmarthostTls::Starttls,
        ca_file: Some(ca.clone()),
        insecure_skip_verify: false,
        auth: Some(SmarthostAuth {
            username: "alice@example.com".into(),
            password_file: password_file.to_owned(),
        }),
    };
    let spool = tempfile::tempdir().unwrap();
    let mut cfg = config(spool.path());
    cfg.smarthost = Some(smarthost(&password));
    let q = Running::start(&b1, cfg).await;
    let env = envelope("alice@example.com", vec![relay("bob@example.com")]);
    let accepted = q.queue.accept(env, message("over TLS")).await.unwrap();
    assert_eq!(
        accepted.recipients,
        vec![Disposition::Delivered],
        "smarthost log:\n{}",
        relay_host.log()
    );
    eventually("the relayed copy", 10, || {
        b2.inbox("bob@example.com").len() == 1
    })
    .await;
    let text = &b2.inbox("bob@example.com")[0];
    assert!(text.contains("Subject: over TLS"), "{text}");
    assert!(
        q.metrics()
            .contains("tandem_queue_recipients_total{result=\"relayed\"} 1")
    );
    q.stop().await;

    // The same over implicit TLS (the smarthost's port 465).
    let mut cfg = config(spool.path());
    let mut implicit = smarthost(&password);
    implicit.address = relay_host
        .submissions_addr()
        .expect("submissions listener")
        .to_string();
    implicit.tls = SmarthostTls::Implicit;
    cfg.smarthost = Some(implicit);
    let q = Running::start(&b1, cfg).await;
    let env = envelope("alice@example.com", vec![relay("bob@example.com")]);
    let accepted = q.queue.accept(env, message("implicit TLS")).await.unwrap();
    assert_eq!(accepted.recipients, vec![Disposition::Delivered]);
    eventually("the copy relayed over implicit TLS", 10, || {
        b2.inbox("bob@example.com").len() == 2
    })
    .await;
    q.stop().await;

    // A wrong password: the smarthost refuses AUTH, the copy waits.
    let wrong = certs.path().join("wrong");
    std::fs::write(&wrong, "nope\n").unwrap();
    let mut cfg = config(spool.path());
    cfg.smarthost = Some(smarthost(&wrong));
    let q = Running::start(&b1, cfg).await;
    let env = envelope("alice@example.com", vec![relay("bob@example.com")]);
    let accepted = q
        .queue
        .accept(env, message("wrong password"))
        .await
        .unwrap();
    assert_eq!(accepted.recipients, vec![Disposition::Queued]);
    let id = &accepted.id;
    let l = frontend::queue::spool::load(spool.path(), id, false).unwrap();
    let err = l.last_error.unwrap_or_default();
    assert!(err.contains("AUTH: 535"), "{err}");
    q.stop().await;
}

/// Sends `n` messages through `accept` from `parallel` senders at once;
/// messages per second.
async fn rate(q: &Arc<Queue>, n: usize, parallel: usize, rcpts: &[Recipient]) -> f64 {
    let started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for s in 0..parallel {
        let (q, rcpts) = (q.clone(), rcpts.to_vec());
        set.spawn(async move {
            for i in (s..n).step_by(parallel) {
                let env = envelope("sender@example.org", rcpts.clone());
                let a = q.accept(env, message(&format!("load {i}"))).await;
                assert!(a.is_ok(), "{a:?}");
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r.expect("sender task");
    }
    n as f64 / started.elapsed().as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement (~1 min), not a check: cargo test -p tests --test queue -- --ignored --nocapture measure"]
async fn measure_accept_rates() {
    let (b1, mut b2) = two_clusters();
    let spool = tempfile::tempdir().unwrap();
    let q = Running::start(&b1, config(spool.path())).await;
    let n = 400;
    let alice = [local("alice@example.com", "c1")];
    let both = [
        local("alice@example.com", "c1"),
        local("bob@example.com", "c2"),
    ];
    let one_seq = rate(&q.queue, n, 1, &alice).await;
    let one_par = rate(&q.queue, n, 16, &alice).await;
    let two_par = rate(&q.queue, n, 16, &both).await;
    b2.kill();
    let spooled = rate(&q.queue, n, 16, &[local("bob@example.com", "c2")]).await;
    println!(
        "accept, delivered by LMTP (fsync on), {n} messages each:\n\
         \x20 1 recipient, 1 sender:            {one_seq:.0} msg/s\n\
         \x20 1 recipient, 16 senders:          {one_par:.0} msg/s\n\
         \x20 2 clusters in parallel, 16 senders: {two_par:.0} msg/s\n\
         \x20 cluster down, spooled, 16 senders: {spooled:.0} msg/s"
    );
    assert_eq!(spool_entries(spool.path()), n);
    q.stop().await;
}

/// An LMTP path that breaks once: the first connection carries the
/// message up to its final dot, then is cut before any reply comes back.
/// Every connection's client bytes are kept.
async fn cutting_proxy(
    upstream: std::net::SocketAddr,
) -> (std::net::SocketAddr, Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        let mut first = true;
        while let Ok((client, _)) = listener.accept().await {
            // From the frontend's address, which the backend takes PROXY
            // headers from.
            let Ok(socket) = tokio::net::TcpSocket::new_v4() else {
                continue;
            };
            if socket
                .bind("127.0.0.2:0".parse().expect("an address"))
                .is_err()
            {
                continue;
            }
            let Ok(server) = socket.connect(upstream).await else {
                continue;
            };
            let cut = std::mem::replace(&mut first, false);
            let n = {
                let mut l = log.lock().unwrap_or_else(|p| p.into_inner());
                l.push(String::new());
                l.len() - 1
            };
            let log = log.clone();
            let muted = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let (mut cr, mut cw) = client.into_split();
            let (mut sr, mut sw) = server.into_split();
            let quiet = muted.clone();
            let back = tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                while let Ok(k) = sr.read(&mut buf).await {
                    if k == 0
                        || quiet.load(std::sync::atomic::Ordering::SeqCst)
                        || cw.write_all(&buf[..k]).await.is_err()
                    {
                        break;
                    }
                }
            });
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                while let Ok(k) = cr.read(&mut buf).await {
                    if k == 0 {
                        break;
                    }
                    let text = {
                        let mut l = log.lock().unwrap_or_else(|p| p.into_inner());
                        l[n].push_str(&String::from_utf8_lossy(&buf[..k]));
                        l[n].clone()
                    };
                    let dot = cut && text.ends_with("\r\n.\r\n");
                    if dot {
                        muted.store(true, std::sync::atomic::Ordering::SeqCst);
                    }
                    if sw.write_all(&buf[..k]).await.is_err() {
                        break;
                    }
                    if dot {
                        // The backend stores and answers; the answer is lost.
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        break;
                    }
                }
                back.abort();
            });
        }
    });
    (addr, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_lost_after_the_dot_is_retried_without_a_second_copy() {
    let b = Backend::start().unwrap();
    b.add_account("alice@example.com", "pw").unwrap();
    let (proxy, seen) = cutting_proxy(b.lmtp_addr()).await;
    // The cluster's only node is reached through the proxy.
    b.tandem_ok(&["cluster", "node", "rm", "c1", "n1"]).unwrap();
    let (p, i) = (b.pop3_addr().to_string(), b.imap_addr().to_string());
    let l = proxy.to_string();
    b.tandem_ok(&[
        "cluster", "node", "add", "c1", "n1", "--lmtp", &l, "--pop3", &p, "--imap", &i,
    ])
    .unwrap();
    let spool = tempfile::tempdir().unwrap();
    let q = Running::start(&b, config(spool.path())).await;
    let env = envelope("sender@example.org", vec![local("alice@example.com", "c1")]);
    let accepted = q.queue.accept(env, message("cut")).await.unwrap();
    assert_eq!(
        accepted.recipients,
        vec![Disposition::Queued],
        "no reply was read"
    );
    assert_eq!(
        b.inbox("alice@example.com").len(),
        1,
        "yet the backend stored it: {:?} {:?}",
        seen.lock().unwrap(),
        std::fs::read_dir(spool.path())
            .unwrap()
            .flatten()
            .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
            .collect::<Vec<_>>()
    );
    eventually("the retry", 20, || spool_entries(spool.path()) == 0).await;
    assert_eq!(b.inbox("alice@example.com").len(), 1, "not stored twice");
    let seen = seen.lock().unwrap().clone();
    assert!(seen.len() >= 2, "{seen:?}");
    let id = &accepted.id;
    let mail = |s: &str| {
        s.lines()
            .find(|l| l.starts_with("MAIL"))
            .unwrap_or("")
            .to_owned()
    };
    assert!(
        mail(&seen[0]).contains(&format!(" ENVID={id} SIZE=")),
        "every transaction is tagged: {seen:?}"
    );
    assert!(
        mail(&seen[1]).contains(&format!(" ENVID={id} X-TANDEM-RETRY ")),
        "the retry says its outcome was unknown: {seen:?}"
    );
    let m = b.metrics();
    assert!(
        m.contains("tandem_lmtp_deliveries_total{result=\"duplicate\"} 1"),
        "{m}"
    );
    q.stop().await;
}
