//! The frontend's durable queue (`frontend::queue::Queue`) against real
//! backend nodes: immediate LMTP delivery to clusters in parallel, the
//! spool when a cluster is down, retries, restarts, DSNs, `tandem queue`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use frontend::queue::{Disposition, Envelope, Queue, QueueConfig, Recipient, Refused, Route};
use frontend::route::Router;
use tests::backend::Backend;
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
        let queue = Queue::open(&cfg, router, "mx.test", &mut registry)
            .await
            .expect("open queue");
        let stop = CancellationToken::new();
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

/// Messages in an account's INBOX (new and cur).
fn inbox(b: &Backend, address: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for sub in ["new", "cur"] {
        if let Ok(rd) = std::fs::read_dir(b.maildir(address).join(sub)) {
            out.extend(rd.filter_map(Result::ok).map(|e| e.path()));
        }
    }
    out
}

fn inbox_text(b: &Backend, address: &str) -> Vec<String> {
    inbox(b, address)
        .iter()
        .map(|p| String::from_utf8_lossy(&std::fs::read(p).expect("read mail")).into_owned())
        .collect()
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivers_to_two_clusters_in_parallel_once_each() {
    let b1 = Backend::start().unwrap();
    let b2 = Backend::start_beside(&b1, "c2", "n2").unwrap();
    b1.add_account_on("alice@example.com", "pw", "c1").unwrap();
    b1.add_account_on("bob@example.com", "pw", "c2").unwrap();
    b1.add_account_on("carol@example.com", "pw", "c2").unwrap();
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
    assert_eq!(inbox(&b1, "alice@example.com").len(), 1);
    assert_eq!(inbox(&b2, "bob@example.com").len(), 1);
    assert_eq!(inbox(&b2, "carol@example.com").len(), 1);
    let text = &inbox_text(&b2, "bob@example.com")[0];
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
    let b1 = Backend::start().unwrap();
    let mut b2 = Backend::start_beside(&b1, "c2", "n2").unwrap();
    b1.add_account_on("alice@example.com", "pw", "c1").unwrap();
    b1.add_account_on("bob@example.com", "pw", "c2").unwrap();
    b2.kill();
    let spool = tempfile::tempdir().unwrap();
    let q = Running::start(&b1, config(spool.path())).await;
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
    assert_eq!(inbox(&b1, "alice@example.com").len(), 1);
    // A few retries fail while the cluster is down.
    tokio::time::sleep(Duration::from_secs(3)).await;
    b2.restart().unwrap();
    eventually("delivery after the cluster returned", 20, || {
        inbox(&b2, "bob@example.com").len() == 1
    })
    .await;
    eventually("the spool emptied", 10, || spool_entries(spool.path()) == 0).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(inbox(&b2, "bob@example.com").len(), 1, "delivered once");
    assert_eq!(inbox(&b1, "alice@example.com").len(), 1, "alice not again");
    let m = q.metrics();
    assert!(
        m.contains("tandem_queue_messages_total{result=\"queued\"} 1"),
        "{m}"
    );
    assert!(m.contains("tandem_queue_retries_total"), "{m}");
    q.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reopened_queue_resumes_its_spool() {
    let b1 = Backend::start().unwrap();
    let mut b2 = Backend::start_beside(&b1, "c2", "n2").unwrap();
    b1.add_account_on("bob@example.com", "pw", "c2").unwrap();
    b2.kill();
    let spool = tempfile::tempdir().unwrap();
    let q = Running::start(&b1, config(spool.path())).await;
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
        inbox(&b2, "bob@example.com").len() == 1
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
