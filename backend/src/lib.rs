//! A backend node: the Maildir store of its cluster and the protocols served
//! on it.

pub mod store;
