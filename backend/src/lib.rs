//! A backend node: the Maildir store of its cluster and the protocols served
//! on it.
//!
//! - [`store`]: the Maildir++ tree of every account, on the cluster's shared
//!   filesystem;
//! - [`accounts`]: opening an account on this node (the step leases guard);
//! - [`auth`]: direct logins and trusted proxy logins from frontends;
//! - [`imap`]: the IMAP protocol layer (framing, parsing, encoding);
//! - [`node`]: what the protocols share.

pub mod accounts;
pub mod auth;
pub mod config;
pub mod daemon;
pub mod imap;
pub mod lmtp;
pub mod node;
pub mod pop3;
pub mod store;

pub use node::Node;
