//! Opening an account on this node: the one step a lease guards.
//!
//! Every session (IMAP, POP3) goes through [`Accounts::open`] before it
//! touches an account's Maildir. A cluster of one node uses [`SingleNode`]:
//! every account is ours. A cluster of several nodes uses the etcd leases of
//! [`crate::cluster::EtcdOwnership`]: the account is ours, or another node's
//! (the session is proxied there).
//!
//! LMTP delivery does not claim ([`Accounts::open_for_delivery`]): it only
//! adds a file to `new/` by the Maildir's lock-free rename, which any node
//! may do while another owns the account; the owner's sessions see the file
//! at their next sync (NOOP, IDLE's poll).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use async_trait::async_trait;
use locator::Account;
use shared::Address;
use shared::blocking::Blocking;
use tokio::sync::{Mutex as AsyncMutex, MutexGuard, OwnedMutexGuard};
use tokio_util::sync::CancellationToken;

use crate::mailboxes::KeepAlive;
pub use crate::mailboxes::OpenMailbox;
use crate::store::{AccountStore, Store, StoreError, WriteGuard};

/// Who may serve an account right now.
pub enum Claim {
    /// This node: go ahead, for as long as the hold lasts.
    Mine(Hold),
    /// Another node of the cluster holds it: proxy there.
    Elsewhere { node: String },
}

/// This node's hold on an account, for one session.
pub struct Hold {
    /// Cancelled when this node loses the account (it fenced itself): the
    /// session must stop at once.
    pub lost: CancellationToken,
    /// Newly taken: whatever this node still has cached of the account is
    /// from before another node may have written it.
    pub fresh: bool,
    /// Counts the session while it lives, so the owner can tell an idle
    /// account (dropped with the session).
    pub guard: Option<Box<dyn Send + Sync>>,
    /// Checked before each write to the account's mailboxes: refuses once
    /// this node's lease may have run out, even before the fence ran.
    pub write: WriteGuard,
}

impl Hold {
    /// A hold that is never lost (a cluster of one node).
    pub fn forever() -> Hold {
        Hold {
            lost: CancellationToken::new(),
            fresh: false,
            guard: None,
            write: WriteGuard::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OwnershipError {
    #[error("ownership unavailable: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait Ownership: Send + Sync + 'static {
    async fn claim(&self, address: &Address) -> Result<Claim, OwnershipError>;
}

/// A cluster of one node: every account of the cluster is ours.
pub struct SingleNode;

#[async_trait]
impl Ownership for SingleNode {
    async fn claim(&self, _address: &Address) -> Result<Claim, OwnershipError> {
        Ok(Claim::Mine(Hold::forever()))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("account {account} lives on cluster {cluster}, not on this one")]
    WrongCluster { account: Address, cluster: String },
    #[error("account {account} is served by node {node}")]
    NotOwner { account: Address, node: String },
    #[error(transparent)]
    Ownership(#[from] OwnershipError),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Blocking(#[from] shared::blocking::BlockingError),
}

impl OpenError {
    /// Whether the client should retry later (everything but a bad path).
    pub fn is_temporary(&self) -> bool {
        !matches!(self, OpenError::Store(StoreError::Path(_)))
    }
}

/// The accounts of this node's cluster.
pub struct Accounts {
    cluster: String,
    store: Store,
    ownership: Arc<dyn Ownership>,
    blocking: Blocking,
    locks: Mutex<HashMap<Address, Weak<Locks>>>,
    /// Mailboxes kept open after their last session (a client reconnects).
    keep: Arc<KeepAlive>,
}

/// Per-account state shared by every session of the account on this node.
#[derive(Default)]
pub struct Locks {
    /// Mailboxes some session has open (IMAP SELECT, STATUS): one in-memory
    /// index per mailbox on the node that owns the account, so sessions never
    /// hold diverging copies of the UID list.
    mailboxes: Mutex<HashMap<String, Weak<OpenMailbox>>>,
    /// Held while a mailbox's UID list is synced or rewritten.
    index: AsyncMutex<()>,
    /// Held by a POP3 session for its whole life (RFC 1939's exclusive
    /// maildrop lock); a second POP3 session is told `[IN-USE]`.
    exclusive: Arc<AsyncMutex<()>>,
}

impl Accounts {
    pub fn new(
        cluster: &str,
        store: Store,
        ownership: Arc<dyn Ownership>,
        blocking: Blocking,
    ) -> Self {
        Accounts {
            cluster: cluster.to_owned(),
            store,
            ownership,
            blocking,
            locks: Mutex::new(HashMap::new()),
            keep: Arc::new(KeepAlive::default()),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn blocking(&self) -> &Blocking {
        &self.blocking
    }

    /// Checks that `account` is served here and makes sure its Maildir++
    /// tree exists (INBOX and the special-use folders).
    pub async fn open(&self, account: Arc<Account>) -> Result<Opened, OpenError> {
        if account.cluster != self.cluster {
            return Err(OpenError::WrongCluster {
                account: account.address.clone(),
                cluster: account.cluster.clone(),
            });
        }
        let hold = match self.ownership.claim(&account.address).await? {
            Claim::Mine(hold) => hold,
            Claim::Elsewhere { node } => {
                return Err(OpenError::NotOwner {
                    account: account.address.clone(),
                    node,
                });
            }
        };
        if hold.fresh {
            // Another node may have written the account since this node
            // last had it open: read the index and the Maildir afresh.
            self.forget(&account.address);
        }
        self.opened(account, hold).await
    }

    /// Opens `account` to add messages to it (LMTP) without claiming it:
    /// delivery is a lock-free rename into `new/`, safe beside the owner.
    pub async fn open_for_delivery(&self, account: Arc<Account>) -> Result<Opened, OpenError> {
        if account.cluster != self.cluster {
            return Err(OpenError::WrongCluster {
                account: account.address.clone(),
                cluster: account.cluster.clone(),
            });
        }
        self.opened(account, Hold::forever()).await
    }

    async fn opened(&self, account: Arc<Account>, hold: Hold) -> Result<Opened, OpenError> {
        let store = self.store.account(&account.address)?;
        let s = store.clone();
        self.blocking.run(move || s.ensure()).await??;
        Ok(Opened {
            locks: self.locks_for(&account.address),
            account,
            store,
            blocking: self.blocking.clone(),
            keep: self.keep.clone(),
            hold,
        })
    }

    /// Drops every mailbox of `address` this node holds open, so the next
    /// session reads its index and directory again.
    pub fn forget(&self, address: &Address) {
        let locks = {
            let map = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            map.get(address).and_then(Weak::upgrade)
        };
        if let Some(l) = locks {
            self.keep.forget(|mb| mb.belongs_to(&l));
            l.mailboxes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clear();
        }
    }

    /// Drops every mailbox this node holds open (it lost its accounts).
    pub fn forget_all(&self) {
        self.keep.forget(|_| true);
        let map = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        for l in map.values().filter_map(Weak::upgrade) {
            l.mailboxes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clear();
        }
    }

    fn locks_for(&self, address: &Address) -> Arc<Locks> {
        let mut map = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(l) = map.get(address).and_then(Weak::upgrade) {
            return l;
        }
        // Forget accounts nobody has open, so the map stays as small as
        // the set of open sessions.
        if map.len() > 1024 {
            map.retain(|_, w| w.strong_count() > 0);
        }
        let l = Arc::new(Locks::default());
        map.insert(address.clone(), Arc::downgrade(&l));
        l
    }
}

/// An account opened on this node.
pub struct Opened {
    pub account: Arc<Account>,
    pub store: AccountStore,
    blocking: Blocking,
    locks: Arc<Locks>,
    keep: Arc<KeepAlive>,
    hold: Hold,
}

impl Opened {
    /// Cancelled when this node loses the account: the session must end.
    pub fn lost(&self) -> &CancellationToken {
        &self.hold.lost
    }

    /// Whether this node may still write the account (see [`Hold::write`]).
    pub fn may_write(&self) -> bool {
        self.hold.write.allows()
    }

    /// Serialises UID list writes of this account's mailboxes on this node.
    pub async fn index_lock(&self) -> MutexGuard<'_, ()> {
        self.locks.index.lock().await
    }

    /// The exclusive session lock (POP3), or `None` if another session has it.
    pub fn try_exclusive(&self) -> Option<OwnedMutexGuard<()>> {
        self.locks.exclusive.clone().try_lock_owned().ok()
    }

    /// The node-wide handle of a mailbox, opened (and synced) on first use.
    /// `name` is as stored: INBOX in upper case, folders as given.
    pub async fn mailbox(&self, name: &str) -> Result<Arc<OpenMailbox>, OpenError> {
        let key = mailbox_key(name);
        if let Some(mb) = self.cached_mailbox(&key) {
            return Ok(mb);
        }
        let _index = self.index_lock().await;
        if let Some(mb) = self.cached_mailbox(&key) {
            return Ok(mb);
        }
        let (n, write) = (key.clone(), self.hold.write.clone());
        let mailbox = self
            .run(move |store| store.open_mailbox_guarded(&n, write))
            .await??;
        let mb = Arc::new(OpenMailbox::new(key.clone(), mailbox, self.locks.clone()));
        self.keep.hold(&mb);
        let mut map = self
            .locks
            .mailboxes
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        map.retain(|_, w| w.strong_count() > 0);
        map.insert(key, Arc::downgrade(&mb));
        Ok(mb)
    }

    fn cached_mailbox(&self, key: &str) -> Option<Arc<OpenMailbox>> {
        let mb = self.cached(key)?;
        self.keep.hold(&mb);
        Some(mb)
    }

    fn cached(&self, key: &str) -> Option<Arc<OpenMailbox>> {
        let map = self
            .locks
            .mailboxes
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        map.get(key).and_then(Weak::upgrade)
    }

    /// Forgets open handles of `name` and the folders below it (after DELETE
    /// or RENAME): sessions still holding one see its messages vanish.
    pub fn forget_mailbox(&self, name: &str) {
        let key = mailbox_key(name);
        let below = format!("{key}.");
        let mut map = self
            .locks
            .mailboxes
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        map.retain(|k, _| *k != key && !k.starts_with(&below));
    }

    /// Runs blocking store work off the reactor.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&AccountStore) -> T + Send + 'static,
    ) -> Result<T, shared::blocking::BlockingError> {
        let store = self.store.clone();
        self.blocking.run(move || f(&store)).await
    }
}

/// Resolves when the account of `token`'s session is lost to this node;
/// never without one (not logged in).
pub async fn until_lost(token: Option<CancellationToken>) {
    match token {
        Some(t) => t.cancelled_owned().await,
        None => std::future::pending().await,
    }
}

fn mailbox_key(name: &str) -> String {
    if name.eq_ignore_ascii_case("INBOX") {
        "INBOX".to_owned()
    } else {
        name.to_owned()
    }
}
