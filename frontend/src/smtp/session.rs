//! One SMTP connection: the state machine of RFC 5321 §4.1, replies
//! batched for PIPELINING (RFC 2920 §3.2: flushed when the client's input
//! runs dry, never between pipelined commands).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use locator::Account;
use shared::net::dialog;
use shared::net::netlist::canonical;
use shared::net::{Conn, LineReader, Replies, Transport};
use shared::smtp::command::{self, Command, ParseError};
use shared::smtp::data::Chunks;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::metrics::ListenerLabel;
use super::{Kind, Sink, Smtp};
use crate::queue::Recipient;

/// Longest command line, CRLF excluded. RFC 5321 §4.5.3.1.4 says 512 with
/// CRLF; like Postfix we take up to 2 KiB, for long parameters.
pub(super) const MAX_LINE: usize = 2048;
/// Failed AUTH attempts per connection before 421 and close.
pub(super) const MAX_AUTH_FAILURES: u32 = 3;

/// What the read loop does after a command.
pub(super) enum Next {
    Go,
    Close,
    StartTls,
    Data,
    Bdat {
        size: u64,
        last: bool,
    },
    Auth {
        plain: bool,
        initial: Option<Vec<u8>>,
    },
}

/// A mail transaction, from MAIL to the end of the body.
pub(super) struct Transaction {
    /// The reverse path, empty for `<>`.
    pub sender: String,
    /// MAIL's SIZE, to size the body buffer once.
    pub size_hint: Option<u64>,
    pub eight_bit: bool,
    pub rcpts: Vec<Recipient>,
    /// RCPT commands answered 250, duplicates included: what the limit
    /// counts (like Postfix), so repeating one address cannot get round it.
    pub accepted: usize,
    /// BDAT chunks so far, once the first arrived.
    pub chunks: Option<Chunks>,
}

pub(super) struct Session<'a, Q> {
    pub smtp: &'a Smtp<Q>,
    pub kind: Kind,
    pub client: SocketAddr,
    pub session: String,
    acceptor: Option<TlsAcceptor>,
    /// Replies not yet sent.
    pub(super) out: Replies,
    errors: u32,
    junk: u32,
    pub transactions: u32,
    pub auth_failures: u32,
    /// The name given in EHLO/HELO; `None` until then (and after STARTTLS).
    pub helo: Option<String>,
    /// EHLO rather than HELO.
    pub esmtp: bool,
    pub tls: bool,
    /// The account logged in with AUTH (submission).
    pub user: Option<Arc<Account>>,
    pub tx: Option<Transaction>,
    /// The message being received, `Received:` first; reused.
    pub body: Vec<u8>,
    pub scratch: Vec<u8>,
}

/// Serves one connection on a listener of `kind`.
pub(super) async fn run<Q: Sink>(
    smtp: &Smtp<Q>,
    kind: Kind,
    conn: Conn,
    shutdown: CancellationToken,
) {
    serve(
        smtp,
        kind,
        conn.client,
        conn.session,
        conn.tls,
        conn.stream,
        shutdown,
    )
    .await;
}

/// [`run`] over any stream (a test pipe).
pub(super) async fn serve<Q: Sink, S: Transport>(
    smtp: &Smtp<Q>,
    kind: Kind,
    client: SocketAddr,
    session: String,
    tls: Option<TlsAcceptor>,
    mut io: S,
    shutdown: CancellationToken,
) {
    let listener = kind.name();
    smtp.metrics
        .sessions
        .get_or_create(&ListenerLabel { listener })
        .inc();
    let ip = canonical(client.ip());
    if !smtp.fe.trusted.contains(ip) && !smtp.rate.admit(ip) {
        smtp.metrics
            .rate_limited
            .get_or_create(&ListenerLabel { listener })
            .inc();
        tracing::info!(%client, "connection rate exceeded");
        let line = format!(
            "421 4.7.0 {} Too many connections from your address, try again later\r\n",
            smtp.hostname
        );
        let _ = shared::net::write_within(&mut io, line.as_bytes(), smtp.cfg.idle_timeout).await;
        return;
    }
    let session = Session {
        smtp,
        kind,
        client,
        session,
        // Implicit TLS already happened for submissions.
        acceptor: tls.filter(|_| kind != Kind::Submissions),
        out: Replies::new(smtp.cfg.idle_timeout),
        errors: 0,
        junk: 0,
        transactions: 0,
        auth_failures: 0,
        helo: None,
        esmtp: false,
        tls: false,
        user: None,
        tx: None,
        body: Vec::new(),
        scratch: Vec::new(),
    };
    session.run(io, shutdown).await;
}

impl<'a, Q: Sink> Session<'a, Q> {
    pub async fn run<S: Transport>(mut self, mut io: S, shutdown: CancellationToken) {
        self.tls = io.is_tls();
        let mut reader = LineReader::new(MAX_LINE);
        let hostname = self.host();
        self.reply(format_args!("220 {hostname} ESMTP Tandem"));
        let idle = self.smtp.cfg.idle_timeout;
        loop {
            let line = dialog::next_line(&mut reader, &mut io, &mut self.out, idle, &shutdown);
            let next = match line.await {
                dialog::Next::Line(line) => self.command(command::parse(line)).await,
                dialog::Next::TooLong => self.error("500 5.5.2 Line too long"),
                dialog::Next::Shutdown => {
                    self.reply(format_args!(
                        "421 4.3.2 {hostname} Service shutting down, closing"
                    ));
                    break;
                }
                dialog::Next::Idle => {
                    self.out.idle_goodbye(hostname);
                    break;
                }
                dialog::Next::Gone => return,
            };
            let r = match next {
                Next::Go => Ok(()),
                Next::Close => break,
                Next::Data => self.data(&mut reader, &mut io).await,
                Next::Bdat { size, last } => self.bdat(size, last, &mut reader, &mut io).await,
                Next::Auth { plain, initial } => {
                    self.auth(plain, initial, &mut reader, &mut io).await
                }
                Next::StartTls => {
                    let Some(acceptor) = self.acceptor.clone() else {
                        break;
                    };
                    match dialog::start_tls(io, &mut self.out, &mut reader, &acceptor).await {
                        Ok(tls) => io = tls,
                        Err(_) => return,
                    }
                    // RFC 3207 §4.2: forget what the client said before.
                    self.tls = true;
                    self.helo = None;
                    self.tx = None;
                    Ok(())
                }
            };
            if let Err(stop) = r {
                if stop.says_goodbye() {
                    break;
                }
                return;
            }
        }
        dialog::close(io, &mut self.out, idle).await;
    }

    /// This frontend's name, for greetings and goodbyes.
    pub fn host(&self) -> &'a str {
        let smtp: &'a Smtp<Q> = self.smtp;
        &smtp.hostname
    }

    /// Queues a reply line.
    pub fn reply(&mut self, line: std::fmt::Arguments<'_>) {
        self.out.line(line);
    }

    /// Queues a reply to a client mistake, and ends the session after too many.
    pub fn error(&mut self, line: &str) -> Next {
        self.reply(format_args!("{line}"));
        self.errors += 1;
        if self.errors >= self.smtp.cfg.max_errors {
            let hostname = self.host();
            self.reply(format_args!(
                "421 4.7.0 {hostname} Too many errors, closing"
            ));
            tracing::info!(errors = self.errors, "too many protocol errors; closing");
            return Next::Close;
        }
        Next::Go
    }

    /// Counts a command that moves no mail; closes after too many.
    fn junk(&mut self) -> bool {
        self.junk += 1;
        if self.junk > self.smtp.cfg.max_junk_commands {
            let hostname = self.host();
            self.reply(format_args!(
                "421 4.7.0 {hostname} Too many commands, closing"
            ));
            tracing::info!(commands = self.junk, "too many commands; closing");
            return false;
        }
        true
    }

    pub async fn flush<S: Transport>(&mut self, io: &mut S) -> io::Result<()> {
        self.out.flush(io).await
    }

    async fn command(&mut self, cmd: Result<Command<'_>, ParseError>) -> Next {
        let cmd = match cmd {
            Ok(c) => c,
            Err(e) => {
                let reply = e.reply(self.tx.is_some());
                if e != ParseError::Bdat {
                    return self.error(&reply);
                }
                // The chunk's size is unknown, so its bytes cannot be told
                // from commands: the session is lost.
                self.reply(format_args!("{reply}"));
                let hostname = self.host();
                self.reply(format_args!("421 4.5.0 {hostname} Out of step, closing"));
                return Next::Close;
            }
        };
        match cmd {
            Command::Ehlo(name) => self.hello(name, true),
            Command::Helo(name) => self.hello(name, false),
            Command::Lhlo(_) => self.error("500 5.5.1 This is SMTP: use EHLO"),
            Command::Mail { auth: Some(_), .. } if !self.kind.submission() => {
                self.error("555 5.5.4 Unsupported MAIL parameter")
            }
            // DSN is not offered, nor Tandem's LMTP-only retry marker.
            Command::Mail { envid: Some(_), .. } | Command::Mail { retry: true, .. } => {
                self.error("555 5.5.4 Unsupported MAIL parameter")
            }
            Command::Mail {
                from, size, body, ..
            } => self.mail(from, size, body == Some(shared::smtp::Body::EightBitMime)),
            Command::Rcpt { to } => self.rcpt(to).await,
            Command::Data => Next::Data,
            Command::Bdat { size, last } => Next::Bdat { size, last },
            Command::Auth { mechanism, initial } => self.auth_command(mechanism, initial),
            Command::Rset => {
                if !self.junk() {
                    return Next::Close;
                }
                self.tx = None;
                self.reply(format_args!("250 2.0.0 Ok"));
                Next::Go
            }
            Command::Noop => {
                if !self.junk() {
                    return Next::Close;
                }
                self.reply(format_args!("250 2.0.0 Ok"));
                Next::Go
            }
            Command::Vrfy => {
                if !self.junk() {
                    return Next::Close;
                }
                // RFC 5321 §3.5.3: no address harvesting.
                self.reply(format_args!(
                    "252 2.5.2 Cannot VRFY user, but will accept message and attempt delivery"
                ));
                Next::Go
            }
            Command::Quit => {
                let hostname = self.host();
                self.reply(format_args!("221 2.0.0 {hostname} Bye"));
                Next::Close
            }
            Command::StartTls => self.starttls(),
            Command::NotImplemented => self.error("502 5.5.1 Command not implemented"),
        }
    }

    fn hello(&mut self, name: &str, esmtp: bool) -> Next {
        if !self.junk() {
            return Next::Close;
        }
        // EHLO resets any transaction (RFC 5321 §4.1.4).
        self.tx = None;
        self.helo = Some(name.to_owned());
        self.esmtp = esmtp;
        let hostname = self.host();
        if !esmtp {
            self.reply(format_args!("250 {hostname}"));
            return Next::Go;
        }
        self.reply(format_args!("250-{hostname}"));
        self.reply(format_args!("250-PIPELINING"));
        self.reply(format_args!("250-SIZE {}", self.smtp.cfg.max_message_size));
        self.reply(format_args!("250-8BITMIME"));
        self.reply(format_args!("250-ENHANCEDSTATUSCODES"));
        if self.acceptor.is_some() && !self.tls {
            self.reply(format_args!("250-STARTTLS"));
        }
        if self.auth_offered() {
            self.reply(format_args!("250-AUTH PLAIN LOGIN"));
        }
        self.reply(format_args!("250 CHUNKING"));
        Next::Go
    }

    /// AUTH is offered on submission, not yet logged in, over TLS or from
    /// the trusted networks (RFC 4954 §4: never a password in the clear).
    pub fn auth_offered(&self) -> bool {
        self.kind.submission()
            && self.user.is_none()
            && (self.tls || self.smtp.fe.plaintext_allowed(canonical(self.client.ip())))
    }

    fn starttls(&mut self) -> Next {
        if self.tls {
            return self.error("503 5.5.1 TLS already active");
        }
        if self.acceptor.is_none() {
            return self.error("502 5.5.1 STARTTLS not available");
        }
        if self.tx.is_some() {
            return self.error("503 5.5.1 Mail transaction in progress");
        }
        self.reply(format_args!("220 2.0.0 Ready to start TLS"));
        Next::StartTls
    }
}
