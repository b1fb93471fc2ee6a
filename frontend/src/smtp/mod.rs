//! The frontend's SMTP server: inbound mail from the Internet (MX, RFC 5321)
//! and mail from users' clients (submission, RFC 6409: 587 with STARTTLS,
//! 465 with implicit TLS, RFC 8314), with PIPELINING (RFC 2920), SIZE
//! (RFC 1870), 8BITMIME (RFC 6152), ENHANCEDSTATUSCODES (RFC 2034/3463),
//! STARTTLS (RFC 3207), CHUNKING (RFC 3030) and AUTH PLAIN/LOGIN (RFC 4954)
//! on submission only.
//!
//! Store-and-forward: each RCPT is resolved through the locator, and after
//! the body the message goes to the [`Sink`] (the durable queue), whose
//! answer is the client's. Tandem is never an open relay: the MX takes mail
//! for our domains only, and submission relays other domains only for an
//! authenticated user and only through a configured smarthost.
//!
//! - [`config`]: the `frontend.smtp` settings;
//! - `session`: the state machine of one connection, `mail` its MAIL and
//!   RCPT, `body` its DATA/BDAT, `auth` AUTH, `rcpt` recipient resolution,
//!   `received` the trace header;
//! - `rate`: new connections per client address.
//!
//! The grammar and the body readers are `shared::smtp`, shared with the
//! backend's LMTP.

mod auth;
mod body;
pub mod config;
mod domains;
mod mail;
mod metrics;
mod rate;
mod rcpt;
mod received;
mod session;

use std::future::Future;
use std::sync::Arc;

use shared::net::{Conn, Protocol};
use tokio_util::sync::CancellationToken;

pub use config::SmtpConfig;
pub use metrics::SmtpMetrics;

use crate::Frontend;
use crate::queue::{Accepted, Envelope, Queue, Refused};

/// Which service a listener offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Port 25: mail for our domains from anyone; no AUTH, no relaying.
    Mx,
    /// Port 587: users' clients, STARTTLS then AUTH.
    Submission,
    /// Port 465: the same over implicit TLS.
    Submissions,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Mx => "smtp",
            Kind::Submission => "submission",
            Kind::Submissions => "submissions",
        }
    }

    fn submission(self) -> bool {
        self != Kind::Mx
    }
}

/// Where accepted messages go: the durable queue
/// ([`crate::queue::Queue`]). A trait so the server can be driven without
/// backends in unit tests.
pub trait Sink: Send + Sync + 'static {
    /// Returns when the message is safe (see [`crate::queue::Queue`]):
    /// `message` has CRLF line ends, is dot-unstuffed and starts with our
    /// `Received:` header.
    fn accept(
        self: &Arc<Self>,
        envelope: Envelope,
        message: Vec<u8>,
    ) -> impl Future<Output = Result<Accepted, Refused>> + Send;

    /// Whether recipients outside our domains can be relayed (a smarthost
    /// is configured): submission only.
    fn relays(&self) -> bool;
}

impl Sink for Queue {
    fn accept(
        self: &Arc<Self>,
        envelope: Envelope,
        message: Vec<u8>,
    ) -> impl Future<Output = Result<Accepted, Refused>> + Send {
        Queue::accept(self, envelope, message)
    }

    fn relays(&self) -> bool {
        self.has_smarthost()
    }
}

/// What every SMTP listener of a frontend shares.
pub struct Smtp<Q> {
    pub fe: Arc<Frontend>,
    pub queue: Arc<Q>,
    pub cfg: SmtpConfig,
    pub hostname: String,
    pub metrics: SmtpMetrics,
    domains: domains::Domains,
    rate: rate::ConnectionRate,
}

impl<Q: Sink> Smtp<Q> {
    pub fn new(
        fe: Arc<Frontend>,
        queue: Arc<Q>,
        cfg: SmtpConfig,
        hostname: String,
        metrics: SmtpMetrics,
    ) -> Arc<Self> {
        Arc::new(Smtp {
            domains: domains::Domains::new(fe.router.locator().clone()),
            rate: rate::ConnectionRate::new(cfg.connection_rate, cfg.connection_burst),
            fe,
            queue,
            cfg,
            hostname,
            metrics,
        })
    }
}

/// One listener: the shared server and which service it offers.
pub struct SmtpListener<Q> {
    pub smtp: Arc<Smtp<Q>>,
    pub kind: Kind,
}

impl<Q: Sink> Protocol for SmtpListener<Q> {
    async fn serve(&self, conn: Conn, shutdown: CancellationToken) {
        session::run(&self.smtp, self.kind, conn, shutdown).await;
    }

    fn too_busy(&self) -> &'static [u8] {
        b"421 4.7.0 Too many connections\r\n"
    }
}

#[cfg(test)]
mod tests;
