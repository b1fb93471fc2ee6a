//! A node whose tasks did not run while its lease ran out (SIGSTOP) and
//! another node took its account: when it resumes, its open mailbox writes
//! nothing, even before its fence task has run.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use shared::lease::memory::MemoryStore;
use tokio::time::Instant;

use super::{TestNode, alice};
use crate::accounts::{Ownership, OwnershipError};
use crate::store::guard::is_fenced;
use crate::store::{Mailbox, maildir};

const TTL: Duration = Duration::from_secs(3);
const RELEASE: Duration = Duration::from_secs(600);

/// The mailbox as another process sees it: its file names and UID list.
fn snapshot(dir: &Path) -> (BTreeSet<String>, Vec<u8>) {
    let mut names = BTreeSet::new();
    for sub in ["new", "cur"] {
        for e in std::fs::read_dir(dir.join(sub)).expect("read_dir") {
            let e = e.expect("entry");
            names.insert(format!("{sub}/{}", e.file_name().to_string_lossy()));
        }
    }
    let list = std::fs::read(dir.join("tandem-uidlist")).expect("uid list");
    (names, list)
}

#[tokio::test(start_paused = true)]
async fn a_node_resumed_after_its_lease_ran_out_writes_nothing() {
    let t = tempfile::tempdir().expect("tempdir");
    let dir = t.path().join("alice");
    let store = MemoryStore::new();
    let a = TestNode::start(&store, "a", TTL, RELEASE).await;
    let b = TestNode::start(&store, "b", TTL, RELEASE).await;

    // A owns alice and has her INBOX open, as an IMAP session would.
    let a_hold = a.hold(&alice()).await;
    let mut a_box = Mailbox::open_guarded(&dir, a_hold.write.clone()).expect("open");
    let first = a_box
        .append(b"Subject: 1\n\none\n", "", None)
        .expect("append");

    // A is stopped: none of its tasks run while the clock passes the TTL.
    let stopped = Instant::now();
    a.freeze.stop();
    let mut b_hold = None;
    while b_hold.is_none() {
        assert!(stopped.elapsed() < TTL * 10, "b never got alice");
        if b.owner(&alice()).await.as_deref() == Some("b") {
            b_hold = Some(b.hold(&alice()).await);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let b_hold = b_hold.expect("b's hold");
    assert!(
        stopped.elapsed() >= a.lease.fence_after(),
        "b waited for a's lease"
    );
    // B writes: an APPEND, a flag change; a delivery lands in new/ too.
    let mut b_box = Mailbox::open_guarded(&dir, b_hold.write.clone()).expect("b opens");
    let second = b_box
        .append(b"Subject: 2\n\ntwo\n", "", None)
        .expect("b appends");
    b_box.set_info(first, "S").expect("b flags");
    maildir::deliver(&dir, b"Subject: 3\n\nthree\n", None).expect("delivery");
    let before = snapshot(&dir);

    // A's tasks have not run: no fence yet, its sessions were not told...
    assert_eq!(a.fences(), 0);
    assert!(!a_hold.lost.is_cancelled(), "the fence task has not run");
    // ... and still every write its open mailbox would make is refused.
    let refused = |what: &str, e: std::io::Error| {
        assert!(is_fenced(&e), "{what}: {e}");
    };
    refused(
        "APPEND",
        a_box
            .append(b"Subject: late\n\nlate\n", "", None)
            .expect_err("append"),
    );
    refused(
        "STORE",
        a_box.set_info(first, "F").expect_err("flag change"),
    );
    refused("EXPUNGE", a_box.expunge(&[first]).expect_err("expunge"));
    // Numbering the delivery would append to the UID list.
    refused("sync", a_box.sync().expect_err("sync"));
    assert!(
        matches!(
            a.owners.claim(&alice()).await,
            Err(OwnershipError::Unavailable(_))
        ),
        "no new session of alice on a"
    );
    assert_eq!(snapshot(&dir), before, "a wrote nothing");

    // A continues: the fence catches up, and still nothing is written.
    a.freeze.cont();
    super::eventually(TTL, "a fences once it runs", || a.fences() > 0).await;
    assert!(a_hold.lost.is_cancelled());
    assert!(a_box.set_info(first, "FS").is_err());
    assert_eq!(snapshot(&dir), before, "a wrote nothing after the fence");
    // B carries on, numbering the delivery.
    let changes = b_box.sync().expect("b syncs");
    assert_eq!(changes.added.len(), 1, "{changes:?}");
    assert!(b_box.get(first).is_some() && b_box.get(second).is_some());
    assert!(b_hold.write.allows());
}
