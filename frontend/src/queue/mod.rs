//! The durable queue behind the SMTP server: immediate delivery to the
//! home clusters, the spool for what could not be delivered at once,
//! retries, bounces and relaying through a smarthost.
//!
//! - [`envelope`]: what the SMTP server hands over and what it gets back.

pub mod envelope;

pub use envelope::{Accepted, Disposition, Envelope, Recipient, Refused, Route};
