//! Mailboxes open on this node: one shared index per mailbox, what its
//! sessions have not been told yet, a cache of parsed envelopes, and the
//! keep-alive that holds recently used mailboxes open between sessions.
//!
//! One node owns an account at a time, so this node's [`OpenMailbox`] is
//! the only writer of the mailbox's UID list; every session (IMAP, POP3)
//! goes through it, and a client that reconnects finds its mailbox already
//! loaded instead of re-reading a 100,000-line UID list and directory.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use crate::accounts::Locks;
use crate::store::{Changes, Mailbox};

/// How long a mailbox stays open after its last use.
const KEEP_FOR: Duration = Duration::from_secs(600);
/// Messages held open by the keep-alive at most, over all mailboxes (about
/// 100 bytes of index each; envelopes on top, see [`ENVELOPE_BYTES`]).
const KEEP_MESSAGES: usize = 2_000_000;
/// Envelope bytes cached per mailbox at most.
const ENVELOPE_BYTES: usize = 64 << 20;

/// A mailbox open on this node, shared by its sessions.
///
/// `generation` grows with every change any session made or saw, so a
/// session that last looked at generation `g` knows in one load whether it
/// has anything to tell its client.
pub struct OpenMailbox {
    pub name: String,
    inner: Mutex<Mailbox>,
    generation: AtomicU64,
    /// UIDs appended or copied here that no session has seen yet: \Recent
    /// for the first one that looks (RFC 3501 §2.3.2). Deliveries are
    /// \Recent through `new/` instead, which other software respects too.
    unclaimed: Mutex<Vec<u32>>,
    /// ENVELOPE responses by UID: a message never changes, so neither does
    /// its envelope; a second `FETCH 1:* ENVELOPE` reads no file.
    envelopes: Mutex<Envelopes>,
    /// Messages at the last sync, for the keep-alive's budget (read without
    /// taking the index lock, which may be held across file I/O).
    size: std::sync::atomic::AtomicUsize,
    /// The account's locks live as long as one of its mailboxes is open.
    _account: Arc<Locks>,
}

#[derive(Default)]
struct Envelopes {
    by_uid: HashMap<u32, Arc<[u8]>>,
    bytes: usize,
}

impl OpenMailbox {
    pub(crate) fn new(name: String, mailbox: Mailbox, account: Arc<Locks>) -> OpenMailbox {
        OpenMailbox {
            name,
            size: mailbox.messages().len().into(),
            inner: Mutex::new(mailbox),
            generation: AtomicU64::new(1),
            unclaimed: Mutex::new(Vec::new()),
            envelopes: Mutex::new(Envelopes::default()),
            _account: account,
        }
    }

    /// Locks the index; blocking callers only (the store does file I/O
    /// under it).
    pub fn lock(&self) -> MutexGuard<'_, Mailbox> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Records that the mailbox changed.
    pub fn changed(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Marks `uids` \Recent for the next session that looks.
    pub fn add_recent(&self, uids: impl IntoIterator<Item = u32>) {
        let mut u = self.unclaimed.lock().unwrap_or_else(|p| p.into_inner());
        u.extend(uids);
    }

    /// Takes the \Recent UIDs nobody claimed yet.
    pub fn take_recent(&self) -> Vec<u32> {
        std::mem::take(&mut *self.unclaimed.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// The \Recent UIDs nobody claimed yet, left for a session that will.
    pub fn peek_recent(&self) -> Vec<u32> {
        self.unclaimed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// How many \Recent UIDs wait for a session (for STATUS).
    pub fn unclaimed_recent(&self) -> usize {
        self.unclaimed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    /// The cached ENVELOPE of `uid`.
    pub fn envelope(&self, uid: u32) -> Option<Arc<[u8]>> {
        let e = self.envelopes.lock().unwrap_or_else(|p| p.into_inner());
        e.by_uid.get(&uid).cloned()
    }

    /// Caches the ENVELOPE of `uid`, within the per-mailbox budget.
    pub fn cache_envelope(&self, uid: u32, envelope: &[u8]) {
        let mut e = self.envelopes.lock().unwrap_or_else(|p| p.into_inner());
        if e.bytes + envelope.len() > ENVELOPE_BYTES {
            return;
        }
        e.bytes += envelope.len();
        if let Some(old) = e.by_uid.insert(uid, envelope.into()) {
            e.bytes -= old.len();
        }
    }

    /// Forgets cached data of messages that are gone.
    fn prune(&self, mailbox: &Mailbox) {
        let mut e = self.envelopes.lock().unwrap_or_else(|p| p.into_inner());
        if e.by_uid.len() > mailbox.messages().len() + mailbox.messages().len() / 8 + 64 {
            e.by_uid.retain(|uid, _| mailbox.get(*uid).is_some());
            e.bytes = e.by_uid.values().map(|v| v.len()).sum();
        }
    }

    /// Syncs with the Maildir; blocking.
    pub fn sync(&self) -> std::io::Result<Changes> {
        let mut mb = self.lock();
        let c = mb.sync()?;
        self.synced(&mb, &c);
        Ok(c)
    }

    /// Bookkeeping after a sync done under [`lock`](Self::lock).
    pub fn synced(&self, mb: &Mailbox, c: &Changes) {
        if c.is_empty() {
            return;
        }
        self.changed();
        self.size.store(mb.messages().len(), Ordering::Relaxed);
        if !c.expunged.is_empty() {
            self.prune(mb);
        }
    }

    fn messages(&self) -> usize {
        self.size.load(Ordering::Relaxed)
    }

    /// Whether this mailbox is one of the account whose locks are `locks`.
    pub(crate) fn belongs_to(&self, locks: &Arc<Locks>) -> bool {
        Arc::ptr_eq(&self._account, locks)
    }
}

/// Recently used mailboxes, held open for [`KEEP_FOR`] after their last
/// use, within [`KEEP_MESSAGES`].
#[derive(Default)]
pub struct KeepAlive {
    held: Mutex<VecDeque<(Instant, Arc<OpenMailbox>)>>,
}

impl KeepAlive {
    /// Marks `mb` used now.
    pub fn hold(&self, mb: &Arc<OpenMailbox>) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        held.retain(|(at, m)| !Arc::ptr_eq(m, mb) && at.elapsed() < KEEP_FOR);
        held.push_back((Instant::now(), mb.clone()));
        // Oldest first out when over the budget.
        let mut total: usize = 0;
        let mut keep = held.len();
        for (i, (_, m)) in held.iter().enumerate().rev() {
            total += m.messages();
            if total > KEEP_MESSAGES {
                keep = held.len() - i - 1;
                break;
            }
        }
        while held.len() > keep.max(1) {
            held.pop_front();
        }
    }

    /// Lets go of the mailboxes `which` picks (their account moved away).
    pub fn forget(&self, which: impl Fn(&OpenMailbox) -> bool) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        held.retain(|(_, m)| !which(m));
    }
}
