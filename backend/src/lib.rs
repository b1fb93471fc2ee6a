//! A backend node: the Maildir store of its cluster and the protocols served
//! on it.
//!
//! - [`store`]: the Maildir++ tree of every account, on the cluster's shared
//!   filesystem;
//! - [`accounts`]: opening an account on this node (the step leases guard);
//! - [`mailboxes`]: mailboxes open on this node, shared by their sessions
//!   and kept open between them;
//! - [`auth`]: direct logins and trusted proxy logins from frontends;
//! - [`cluster`]: several nodes per cluster: etcd leases, ownership,
//!   fencing, proxying to the owner;
//! - [`imap`], [`pop3`], [`lmtp`]: the protocols;
//! - [`node`]: what the protocols share.

pub mod accounts;
pub mod auth;
pub mod cluster;
pub mod config;
pub mod daemon;
pub mod imap;
pub mod lmtp;
pub mod mailboxes;
pub mod node;
pub mod pop3;
pub mod store;

pub use node::Node;
