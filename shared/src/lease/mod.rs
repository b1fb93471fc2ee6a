//! The lease store: the part of etcd's v3 API a backend node leans on to
//! keep two nodes from writing one Maildir ([`LeaseStore`]).
//!
//! Implementations: the etcd client ([`crate::etcd::Client`], over the
//! HTTP/JSON gateway) and [`memory::MemoryStore`], an in-process store on
//! `tokio::time` for tests under a paused clock, with fault injection.
//! Both pass one contract suite ([`conformance`]; the etcd run is in
//! `tests/tests/lease_store.rs`).
//!
//! # Contract
//! - **Leases.** [`LeaseStore::grant`] makes a lease that lives at least
//!   `ttl` from when the request was *sent* (etcd rounds up to whole seconds
//!   and to its minimum TTL, so it may live longer, never shorter). A
//!   successful [`LeaseStore::keep_alive`] makes it live at least `ttl` from
//!   when that renewal was sent again, and answers the TTL; it answers
//!   `None` for a lease that expired, was revoked or never existed: such a
//!   lease never comes back. [`LeaseStore::revoke`] ends a lease at once; a
//!   lease already gone is not an error.
//! - **Keys bound to a lease** (a `put` with its id) vanish, all at once,
//!   when the lease expires or is revoked, and not before: no reader sees
//!   one of them after it saw the lease gone. A `put` rebinds the key to the
//!   lease it names (`LeaseId(0)`: to none, so it stays for good). A `put`
//!   bound to a lease that is gone fails and writes nothing.
//! - **Transactions** ([`Txn`]) are atomic and serialisable with every other
//!   request: all compares are evaluated on one state; if all hold, the
//!   `then` operations run, else the `otherwise` ones, in order, each seeing
//!   the effect of the ones before; a branch that writes (puts or deletes)
//!   one key twice is refused whole, as etcd does. [`Compare::Absent`] holds when the key
//!   does not exist; [`Compare::ValueIs`] when it exists with exactly that
//!   value (never for a missing key); [`Compare::LeaseIs`] when it exists
//!   bound to that lease. [`TxnResult::found`] has one entry per operation
//!   of the branch taken: the key a `Get` found (empty if none), empty for
//!   `Put` and `Delete`.
//! - **Revisions.** Every change bumps the store's revision; a key's
//!   `create_revision` is set when it is created and kept by later puts,
//!   its `mod_revision` is the revision of its last put.
//! - **Errors** are [`EtcdError`]s (the in-memory store mimics etcd's). A
//!   request that failed may or may not have been applied (a lost answer):
//!   callers must make retries safe, as the owner-key compares do.

pub mod memory;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;

use std::time::Duration;

use async_trait::async_trait;

pub use crate::etcd::EtcdError;

/// A lease id; 0 is "no lease".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct LeaseId(pub i64);

/// A key and its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kv {
    pub key: String,
    pub value: Vec<u8>,
    /// The lease the key is bound to (0: none).
    pub lease: LeaseId,
    pub create_revision: i64,
    pub mod_revision: i64,
}

/// One condition of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compare {
    /// The key does not exist (etcd: its create revision is 0).
    Absent(String),
    /// The key exists with exactly this value.
    ValueIs(String, Vec<u8>),
    /// The key exists, bound to this lease.
    LeaseIs(String, LeaseId),
}

/// One operation of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnOp {
    Get(String),
    Put {
        key: String,
        value: Vec<u8>,
        lease: LeaseId,
    },
    Delete(String),
}

/// A transaction: if every condition holds, `then`, else `otherwise`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Txn {
    pub compare: Vec<Compare>,
    pub then: Vec<TxnOp>,
    pub otherwise: Vec<TxnOp>,
}

impl Txn {
    pub fn new() -> Self {
        Self::default()
    }

    /// Condition: `key` does not exist.
    pub fn absent(mut self, key: &str) -> Self {
        self.compare.push(Compare::Absent(key.to_owned()));
        self
    }

    /// Condition: `key` exists with this value.
    pub fn value_is(mut self, key: &str, value: &[u8]) -> Self {
        self.compare
            .push(Compare::ValueIs(key.to_owned(), value.to_vec()));
        self
    }

    /// Condition: `key` is bound to `lease`.
    pub fn lease_is(mut self, key: &str, lease: LeaseId) -> Self {
        self.compare.push(Compare::LeaseIs(key.to_owned(), lease));
        self
    }

    pub fn then(mut self, op: TxnOp) -> Self {
        self.then.push(op);
        self
    }

    pub fn otherwise(mut self, op: TxnOp) -> Self {
        self.otherwise.push(op);
        self
    }
}

/// What a transaction did: which branch, and per operation of that branch
/// the keys a `Get` found (empty for the others).
#[derive(Debug, Clone, Default)]
pub struct TxnResult {
    pub succeeded: bool,
    pub found: Vec<Vec<Kv>>,
}

impl TxnResult {
    /// The key the `i`th operation (a `Get`) found.
    pub fn got(&self, i: usize) -> Option<&Kv> {
        self.found.get(i).and_then(|k| k.first())
    }
}

/// What the lease and ownership code of a backend node needs of etcd; the
/// contract is in the module docs.
#[async_trait]
pub trait LeaseStore: Send + Sync + 'static {
    /// A new lease living at least `ttl` from now.
    async fn grant(&self, ttl: Duration) -> Result<LeaseId, EtcdError>;

    /// Renews `lease`: its TTL, or `None` when it is gone for good.
    async fn keep_alive(&self, lease: LeaseId) -> Result<Option<Duration>, EtcdError>;

    /// Ends `lease` now, deleting its keys; a lease already gone is fine.
    async fn revoke(&self, lease: LeaseId) -> Result<(), EtcdError>;

    /// The key, if it exists.
    async fn get(&self, key: &str) -> Result<Option<Kv>, EtcdError>;

    /// Sets `key` bound to `lease` (`LeaseId(0)`: to none).
    async fn put(&self, key: &str, value: &[u8], lease: LeaseId) -> Result<(), EtcdError>;

    /// Runs `txn` atomically.
    async fn txn(&self, txn: Txn) -> Result<TxnResult, EtcdError>;
}

#[async_trait]
impl LeaseStore for crate::etcd::Client {
    async fn grant(&self, ttl: Duration) -> Result<LeaseId, EtcdError> {
        crate::etcd::Client::grant(self, ttl).await
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<Option<Duration>, EtcdError> {
        crate::etcd::Client::keep_alive(self, lease).await
    }

    async fn revoke(&self, lease: LeaseId) -> Result<(), EtcdError> {
        crate::etcd::Client::revoke(self, lease).await
    }

    async fn get(&self, key: &str) -> Result<Option<Kv>, EtcdError> {
        crate::etcd::Client::get(self, key).await
    }

    async fn put(&self, key: &str, value: &[u8], lease: LeaseId) -> Result<(), EtcdError> {
        crate::etcd::Client::put(self, key, value, lease).await
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResult, EtcdError> {
        crate::etcd::Client::txn(self, txn).await
    }
}
