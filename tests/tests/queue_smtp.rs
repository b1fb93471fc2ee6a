//! The queue behind a real `tandem frontend` process: what an SMTP client
//! that got 250 may count on when a cluster is down, also across a
//! SIGKILL of the frontend.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use tokio::time::Instant;

use tests::backend::{Backend, tandem_bin};
use tests::clients::require;
use tests::frontend::Frontend;

fn spool_entries(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "q"))
                .count()
        })
        .unwrap_or(0)
}

fn eventually(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_cluster_down_at_data_time_gets_250_and_one_delivery_also_across_a_sigkill() {
    let b1 = Backend::start().unwrap();
    let mut b2 = Backend::start_beside(&b1, "c2", "n2").unwrap();
    b1.add_account_on("alice@example.com", "pw", "c1").unwrap();
    b1.add_account_on("bob@example.com", "pw", "c2").unwrap();
    let mut fe = Frontend::start_with_queue(&b1, "    retry_min: 1s\n    retry_max: 2s\n", "")
        .expect("frontend");
    b2.kill();

    let swaks = require("swaks", "swaks");
    let out = Command::new(swaks)
        .args(["--server", &fe.smtp_addr().to_string()])
        .args(["--from", "sender@example.org"])
        .args(["--to", "alice@example.com,bob@example.com"])
        .args(["--header", "Subject: while c2 is down"])
        .args(["--timeout", "30"])
        .stdin(Stdio::null())
        .output()
        .expect("run swaks");
    let transcript = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "swaks failed:\n{transcript}");
    assert!(
        transcript.contains("<-  250 2.0.0"),
        "the sender got 250 after DATA:\n{transcript}"
    );
    assert_eq!(b1.inbox("alice@example.com").len(), 1);
    let spool = fe.queue_dir();
    assert_eq!(spool_entries(&spool), 1, "bob's copy waits in the spool");

    // What `tandem queue list` shows of it.
    let config = spool.parent().expect("frontend dir").join("tandem.yaml");
    let list = Command::new(tandem_bin())
        .arg("--config")
        .arg(&config)
        .args(["--json", "queue", "list"])
        .output()
        .expect("tandem queue list");
    let list: serde_json::Value = serde_json::from_slice(&list.stdout).expect("JSON");
    assert_eq!(
        list[0]["pending"],
        serde_json::json!(["bob@example.com"]),
        "{list}"
    );
    assert_eq!(list[0]["sender"], "sender@example.org");

    // A crash of the frontend: the spool survives as it was.
    fe.kill();
    assert_eq!(spool_entries(&spool), 1);
    fe.restart().expect("frontend restarts");
    b2.restart().unwrap();
    eventually("bob's copy after c2 returned", 30, || {
        b2.inbox("bob@example.com").len() == 1
    });
    eventually("the spool emptied", 10, || spool_entries(&spool) == 0);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(b2.inbox("bob@example.com").len(), 1, "exactly once");
    assert_eq!(b1.inbox("alice@example.com").len(), 1, "alice not again");
    let bob = &b2.inbox("bob@example.com")[0];
    assert!(bob.contains("Subject: while c2 is down"), "{bob}");
    let m = fe.metrics();
    assert!(
        m.contains("tandem_queue_recipients_total{result=\"delivered\"} 1"),
        "{m}"
    );
    assert!(m.contains("tandem_queue_length 0"), "{m}");
}

/// Sends `n` messages (Subject `m<i>`) to bob over one smtplib connection;
/// fails unless each got 250.
const SEND_MANY: &str = "import smtplib, sys\n\
    s = smtplib.SMTP('127.0.0.1', int(sys.argv[1]), timeout=60)\n\
    for i in range(int(sys.argv[2])):\n\
    \x20   s.sendmail('sender@example.org', ['bob@example.com'], f'Subject: m{i}\\r\\n\\r\\nbody {i}\\r\\n'.encode())\n\
    s.quit()\n";

#[test]
fn a_sigkill_while_the_spool_drains_loses_nothing() {
    let b1 = Backend::start().unwrap();
    let mut b2 = Backend::start_beside(&b1, "c2", "n2").unwrap();
    b1.add_account_on("bob@example.com", "pw", "c2").unwrap();
    // The default max_parallel (64): every entry's attempt may be in
    // flight at the kill, many of them past their final dot.
    let mut fe = Frontend::start_with_queue(&b1, "    retry_min: 1s\n    retry_max: 1s\n", "")
        .expect("frontend");
    b2.kill();
    let n = 60;
    tests::clients::python(
        SEND_MANY,
        &[&fe.smtp_addr().port().to_string(), &n.to_string()],
    );
    let spool = fe.queue_dir();
    assert_eq!(spool_entries(&spool), n, "every message spooled");
    // The cluster returns; the frontend dies while it drains the spool.
    b2.restart().unwrap();
    // Polled tightly: with 64 attempts at once the drain takes little
    // more than 100 ms, and the kill must land inside it.
    let new = b2.maildir("bob@example.com").join("new");
    let until = Instant::now() + Duration::from_secs(20);
    while std::fs::read_dir(&new).map_or(true, |mut d| d.next().is_none()) {
        assert!(Instant::now() < until, "timed out waiting for the drain");
        std::thread::sleep(Duration::from_millis(1));
    }
    fe.kill();
    let at_kill = b2.inbox("bob@example.com").len();
    fe.restart().expect("frontend restarts");
    eventually("the spool emptied after the restart", 30, || {
        spool_entries(&spool) == 0
    });
    let inbox = b2.inbox("bob@example.com");
    let mut copies = std::collections::HashMap::new();
    for m in &inbox {
        let subject = m
            .lines()
            .find_map(|l| l.strip_prefix("Subject: "))
            .unwrap_or_default()
            .to_owned();
        *copies.entry(subject).or_insert(0) += 1;
    }
    let lost: Vec<String> = (0..n)
        .map(|i| format!("m{i}"))
        .filter(|s| !copies.contains_key(s))
        .collect();
    assert!(lost.is_empty(), "lost: {lost:?}");
    // Transactions in flight at the kill (past the final dot, their 250
    // not yet journalled: RFC 1047's window) are retried with
    // X-TANDEM-RETRY, and the backend finds the copies they stored.
    let doubled = inbox.len() - n;
    let m = b2.metrics();
    let recognised = m
        .lines()
        .find_map(|l| l.strip_prefix("tandem_lmtp_deliveries_total{result=\"duplicate\"} "))
        .unwrap_or("0")
        .to_owned();
    println!(
        "{at_kill} delivered before the SIGKILL, {recognised} retries recognised as stored, {doubled} delivered twice"
    );
    assert_eq!(doubled, 0, "duplicates: {copies:?}");
}
