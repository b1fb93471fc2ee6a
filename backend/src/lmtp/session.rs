//! One LMTP connection: the state machine of RFC 2033 §4 over RFC 5321's
//! transaction, replies batched for PIPELINING (RFC 2920 §3.2: flushed
//! when the client's input runs dry, never between pipelined commands).

use std::io;
use std::net::IpAddr;

use shared::Address;
use shared::net::dialog;
use shared::net::{LineReader, Replies};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use shared::smtp::command::{self, Command, ParseError};
use shared::smtp::data::Chunks;

use super::{Lmtp, rcpt};
use crate::accounts::Opened;

/// Longest command line, CRLF excluded. RFC 5321 §4.5.3.1.4 says 512 with
/// CRLF; Postfix's 2048 leaves room for long parameters.
const MAX_LINE: usize = 2048;
/// BDAT chunks are read through a buffer of this size.
/// After a big message, keep at most this much body buffer for the next.
const KEEP_BODY: usize = 1 << 20;

/// What the session needs from the connection, besides the stream.
pub struct ConnInfo {
    pub client: IpAddr,
    pub session: String,
    pub tls: Option<TlsAcceptor>,
}

/// The connection, or a test pipe.
pub use shared::net::Transport;

pub(super) use shared::net::dialog::Stop;

/// What the read loop does after a command.
enum Next {
    Go,
    Close,
    StartTls,
    Data,
    Bdat { size: u64, last: bool },
}

/// An accepted recipient.
pub(super) enum Rcpt {
    /// As given in RCPT TO, normalised; the account it delivers to.
    Accepted { address: Address, opened: Opened },
    /// The same address again: answered like the one at this index.
    Duplicate(usize),
}

/// A mail transaction, from MAIL to the end of the body.
pub(super) struct Transaction {
    /// The reverse path, empty for `<>`.
    pub sender: String,
    pub declared_size: Option<u64>,
    /// `ENVID=` as sent (xtext): each copy's file name carries a tag of it
    /// and the recipient.
    pub envid: Option<String>,
    /// `X-TANDEM-RETRY`: look for a copy with the same tag before storing.
    pub retry: bool,
    pub rcpts: Vec<Rcpt>,
    /// BDAT chunks so far, once the first arrived.
    pub chunks: Option<Chunks>,
}

pub struct Session<'a> {
    pub(super) lmtp: &'a Lmtp,
    pub(super) conn: ConnInfo,
    /// Replies not yet sent.
    out: Replies,
    errors: u32,
    /// The name given in LHLO; `None` until then (and after STARTTLS).
    pub(super) lhlo: Option<String>,
    pub(super) tls: bool,
    pub(super) tx: Option<Transaction>,
    /// The body being received, reused across transactions.
    pub(super) body: Vec<u8>,
    scratch: Vec<u8>,
}

impl<'a> Session<'a> {
    pub fn new(lmtp: &'a Lmtp, conn: ConnInfo) -> Self {
        Session {
            lmtp,
            conn,
            out: Replies::new(lmtp.cfg.idle_timeout),
            errors: 0,
            lhlo: None,
            tls: false,
            tx: None,
            body: Vec::new(),
            scratch: Vec::new(),
        }
    }

    pub async fn run<S: Transport>(mut self, mut io: S, shutdown: CancellationToken) {
        self.tls = io.is_tls();
        let mut reader = LineReader::new(MAX_LINE);
        let hostname = self.host();
        self.reply(format_args!("220 {hostname} Tandem LMTP ready"));
        let idle = self.lmtp.cfg.idle_timeout;
        loop {
            let line = dialog::next_line(&mut reader, &mut io, &mut self.out, idle, &shutdown);
            let next = match line.await {
                dialog::Next::Line(line) => match xclient::parse(line) {
                    Some(attrs) => self.xclient(attrs),
                    None => self.command(command::parse(line)).await,
                },
                dialog::Next::TooLong => self.error("500 5.5.6 Line too long"),
                dialog::Next::Shutdown => {
                    self.reply(format_args!("421 4.3.2 {hostname} Shutting down"));
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
                Next::StartTls => {
                    let Some(acceptor) = self.conn.tls.clone() else {
                        break;
                    };
                    match dialog::start_tls(io, &mut self.out, &mut reader, &acceptor).await {
                        Ok(tls) => io = tls,
                        Err(_) => return,
                    }
                    self.tls = true;
                    self.lhlo = None;
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

    /// This node's name, for greetings and goodbyes.
    fn host(&self) -> &'a str {
        let lmtp: &'a Lmtp = self.lmtp;
        &lmtp.node.hostname
    }

    /// Queues a reply line.
    pub(super) fn reply(&mut self, line: std::fmt::Arguments<'_>) {
        self.out.line(line);
    }

    /// Queues a reply to a client mistake, and ends the session after too many.
    fn error(&mut self, line: &str) -> Next {
        self.reply(format_args!("{line}"));
        self.errors += 1;
        if self.errors >= self.lmtp.cfg.max_errors {
            let hostname = self.host();
            self.reply(format_args!(
                "421 4.7.0 {hostname} Too many errors, closing"
            ));
            tracing::info!(errors = self.errors, "too many protocol errors; closing");
            return Next::Close;
        }
        Next::Go
    }

    async fn flush<S: Transport>(&mut self, io: &mut S) -> io::Result<()> {
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
            Command::Lhlo(name) => self.lhlo(name),
            Command::Ehlo(_) | Command::Helo(_) => self.error("500 5.5.1 This is LMTP: use LHLO"),
            Command::Mail { auth: Some(_), .. } => {
                self.error("555 5.5.4 Unsupported MAIL parameter")
            }
            Command::Mail {
                from,
                size,
                envid,
                retry,
                ..
            } => self.mail(from, size, envid, retry),
            Command::Rcpt { to } => self.rcpt(to).await,
            Command::Data => Next::Data,
            Command::Bdat { size, last } => Next::Bdat { size, last },
            Command::Rset => {
                self.tx = None;
                self.reply(format_args!("250 2.0.0 OK"));
                Next::Go
            }
            Command::Noop => {
                self.reply(format_args!("250 2.0.0 OK"));
                Next::Go
            }
            Command::Vrfy => {
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
            Command::Auth { .. } | Command::NotImplemented => {
                self.error("502 5.5.1 Command not implemented")
            }
        }
    }

    fn lhlo(&mut self, name: &str) -> Next {
        // Like EHLO, LHLO resets any transaction (RFC 5321 §4.1.4).
        self.tx = None;
        self.lhlo = Some(name.to_owned());
        let cfg = &self.lmtp.cfg;
        let hostname = self.host();
        self.reply(format_args!("250-{hostname}"));
        self.reply(format_args!("250-PIPELINING"));
        self.reply(format_args!("250-ENHANCEDSTATUSCODES"));
        self.reply(format_args!("250-8BITMIME"));
        self.reply(format_args!("250-SIZE {}", cfg.max_message_size));
        self.reply(format_args!("250-XCLIENT ADDR SESSION"));
        // MAIL's ENVID= and X-TANDEM-RETRY: a Tandem frontend's retry is
        // stored once (only trusted peers ever get this far).
        self.reply(format_args!("250-X-TANDEM-DEDUP"));
        if self.conn.tls.is_some() && !self.tls {
            self.reply(format_args!("250-STARTTLS"));
        }
        self.reply(format_args!("250 CHUNKING"));
        Next::Go
    }

    fn starttls(&mut self) -> Next {
        if self.tls {
            return self.error("503 5.5.1 TLS already active");
        }
        if self.conn.tls.is_none() {
            return self.error("502 5.5.1 STARTTLS not available");
        }
        if self.lhlo.is_none() {
            return self.error("503 5.5.1 Send LHLO first");
        }
        if self.tx.is_some() {
            return self.error("503 5.5.1 Mail transaction in progress");
        }
        self.reply(format_args!("220 2.0.0 Ready to start TLS"));
        Next::StartTls
    }

    fn mail(&mut self, from: &str, size: Option<u64>, envid: Option<&str>, retry: bool) -> Next {
        if self.lhlo.is_none() {
            return self.error("503 5.5.1 Send LHLO first");
        }
        if self.tx.is_some() {
            return self.error("503 5.5.1 Nested MAIL command");
        }
        let max = self.lmtp.cfg.max_message_size;
        if size.is_some_and(|s| s > max) {
            self.reply(format_args!(
                "552 5.3.4 Message size exceeds fixed maximum message size ({max})"
            ));
            return Next::Go;
        }
        self.tx = Some(Transaction {
            sender: from.to_owned(),
            declared_size: size,
            envid: envid.map(str::to_owned),
            retry,
            rcpts: Vec::new(),
            chunks: None,
        });
        self.reply(format_args!("250 2.1.0 OK"));
        Next::Go
    }

    async fn rcpt(&mut self, to: &str) -> Next {
        let Some(tx) = &self.tx else {
            return self.error("503 5.5.1 Send MAIL first");
        };
        if tx.chunks.is_some() {
            return self.error("503 5.5.1 RCPT after BDAT");
        }
        if tx.rcpts.len() >= self.lmtp.cfg.max_recipients {
            self.reply(format_args!("452 4.5.3 Too many recipients"));
            return Next::Go;
        }
        let Ok(address) = Address::parse(to) else {
            return self.error("501 5.1.3 Bad recipient address syntax");
        };
        let first = tx.rcpts.iter().position(|r| match r {
            Rcpt::Accepted { address: a, .. } => *a == address,
            Rcpt::Duplicate(_) => false,
        });
        let rcpt = match first {
            Some(i) => Rcpt::Duplicate(i),
            None => {
                let declared = tx.declared_size;
                match rcpt::resolve(&self.lmtp.node, &address, declared).await {
                    Ok(opened) => Rcpt::Accepted {
                        address: address.clone(),
                        opened,
                    },
                    Err(refusal) => {
                        refusal.log(&address);
                        self.lmtp.metrics.count(refusal.label());
                        self.reply(format_args!("{}", refusal.reply(&address)));
                        return Next::Go;
                    }
                }
            }
        };
        if let Some(tx) = &mut self.tx {
            tx.rcpts.push(rcpt);
        }
        self.reply(format_args!("250 2.1.5 <{address}> OK"));
        Next::Go
    }
}

mod body;
#[cfg(test)]
mod tests;
mod xclient;
