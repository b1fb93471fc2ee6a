//! A cluster of several equal nodes sharing one store, coordinated by etcd.
//!
//! - [`keys`] (in `shared`, frontends read them too): what lives where in
//!   etcd;
//! - [`lease`]: this node's lease, its registration under the cluster, and
//!   fencing when the lease cannot be renewed in time;
//! - [`ownership`]: who owns an account (one etcd transaction per claim,
//!   cached while owned, released when idle);
//! - [`peer`]: proxying a session to the node that owns its account;
//! - [`status`]: the live nodes and their accounts, for `tandem cluster
//!   status`;
//! - [`metrics`].
//!
//! Safety rests on one rule: a node only serves an account while its lease
//! is surely alive at etcd. The lease is renewed every ttl/3; if no renewal
//! succeeded for ttl − margin (measured from when the last successful
//! renewal was *sent*, so before etcd extended it), the node fences itself:
//! every session of an owned account is ended, cached mailboxes dropped,
//! and claims refused until a new lease is granted. The owner keys bound to
//! the old lease vanish at etcd only after the full ttl, so another node can
//! take an account only once this node stopped writing it.
//!
//! The fence is a task, and a task may run late: a process stopped
//! (SIGSTOP, a VM paused, a long GC-like stall in the kernel) past its
//! lease resumes with its sessions' commands queued, and they could run
//! before the fence does. So the rule is also enforced where the writes
//! are: each lease has a write deadline, `valid_until` (the send time of
//! its last successful renewal + ttl − margin, [`lease::Validity`]), and
//! every write an owner makes through its open mailboxes (UID list appends
//! and rewrites, flag renames, `new/` to `cur/`, EXPUNGE's unlinks, the
//! rename that makes an APPEND or COPY visible) first checks it
//! ([`crate::store::guard`]); past it the write fails and the client gets
//! `NO [UNAVAILABLE]`, fence or not. Claims check it too.
//!
//! What remains is the window between that check and the write's syscall
//! (a few instructions, plus for an UID list append the `open(2)` of the
//! file): a process stopped inside it, past its lease, performs that one
//! write when it resumes, after another node may have taken over. Only a
//! filesystem that fences writers itself (NFSv4 delegations, a lock server
//! the store checks) closes it. The margin (ttl/4, at least 1 s) makes
//! this need a stop that begins in that window and lasts longer than the
//! margin. Not guarded (outside the mailbox write path): folder CREATE,
//! DELETE and RENAME, the subscriptions and keywords files, and
//! `maildirsize`. LMTP delivery on any node is lock-free by design: it only
//! renames a new file into `new/`, which is safe beside any owner.

pub mod lease;
pub mod metrics;
pub mod ownership;
pub mod peer;
pub mod status;

#[cfg(test)]
mod tests;

pub use lease::NodeLease;
pub use metrics::ClusterMetrics;
pub use ownership::EtcdOwnership;
pub use peer::Peers;
pub use shared::etcd::keys;
pub use shared::etcd::keys::Keys;
