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

pub mod lease;
pub mod metrics;
pub mod ownership;
pub mod peer;
pub mod status;

pub use lease::NodeLease;
pub use metrics::ClusterMetrics;
pub use ownership::EtcdOwnership;
pub use peer::Peers;
pub use shared::etcd::keys;
pub use shared::etcd::keys::Keys;
