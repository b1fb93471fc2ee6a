//! One POP3 connection (RFC 1939 §3): the AUTHORIZATION and TRANSACTION
//! states and how a session ends (UPDATE after QUIT, or not).
//!
//! The read loop is one `select!` over reading a line (with the idle
//! timeout) and shutdown. Answers are collected in one buffer and written
//! when the client's input runs dry, so a pipelined batch (RFC 2449 §6.6)
//! gets one write, or when the buffer passes [`FLUSH_AT`], so a batch of
//! big RETRs never piles up in memory.

use std::io;
use std::net::{IpAddr, SocketAddr};

use shared::net::{Line, LineReader};
use tokio::io::AsyncWriteExt;
use tokio::sync::OwnedMutexGuard;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::Pop3;
use super::command::{Command, ParseError, parse};
use super::maildrop::{Committed, Maildrop};
use crate::accounts::{Opened, until_lost};
use crate::cluster::peer::relay;

/// Command lines; AUTH initial responses make them longer than RFC 2449's 255.
pub(super) const MAX_LINE: usize = 4096;
/// Bad commands in a row before the session is closed (Dovecot's limit).
const MAX_BAD: u32 = 20;
/// Answers are written once this much is waiting, pipelined or not.
pub(super) const FLUSH_AT: usize = 64 << 10;

/// The connection, or a test pipe.
pub use shared::net::Transport;

/// What the session needs from the connection, besides the stream.
pub struct ConnInfo {
    /// The client (from a PROXY header when a trusted frontend sent one).
    pub client: SocketAddr,
    /// The TCP peer: who may send passwords in the clear, who is trusted.
    pub peer: IpAddr,
    /// For STLS.
    pub tls: Option<TlsAcceptor>,
}

pub(super) enum State {
    Authorization { user: Option<String> },
    Transaction(Box<Transaction>),
}

pub(super) struct Transaction {
    pub opened: Opened,
    pub drop: Maildrop,
    /// The account's POP3 lock (RFC 1939 §8: exclusive access to the
    /// maildrop), released when the session ends.
    pub _exclusive: OwnedMutexGuard<()>,
}

pub(super) struct Io<S> {
    pub stream: S,
    pub reader: LineReader,
}

/// What the loop does after a command.
pub(super) enum Next {
    Go,
    /// Answer, then close (no UPDATE).
    Close,
    /// QUIT: UPDATE when logged in, then close.
    Quit,
    StartTls,
    /// Logged in on the account's owner: splice to it from now on.
    Proxy,
}

/// How a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Quit,
    /// The client closed, the connection broke, or a limit closed it.
    Closed,
    Idle,
    Shutdown,
    /// This node lost the account: nothing more may be written.
    Lost,
}

/// What the session sent, for the logout log line.
#[derive(Debug, Default)]
pub(super) struct Stats {
    pub retr: u32,
    pub retr_bytes: u64,
    pub top: u32,
    pub top_bytes: u64,
}

pub(super) struct Session<'a> {
    pub p: &'a Pop3,
    pub client: SocketAddr,
    pub peer: IpAddr,
    pub tls_offered: bool,
    pub out: Vec<u8>,
    /// Failed logins so far.
    pub failures: u32,
    /// Lines received before login.
    commands: u32,
    /// Bad commands in a row.
    bad: u32,
    /// The current command was answered with `-ERR`.
    failed: bool,
    pub stats: Stats,
    /// The owner's connection, once a login was proxied there.
    pub upstream: Option<crate::cluster::peer::Upstream>,
}

pub(super) async fn run<S: Transport>(
    p: &Pop3,
    stream: S,
    info: ConnInfo,
    shutdown: CancellationToken,
) {
    let mut s = Session {
        p,
        client: info.client,
        peer: info.peer,
        tls_offered: info.tls.is_some(),
        out: Vec::with_capacity(512),
        failures: 0,
        commands: 0,
        bad: 0,
        failed: false,
        stats: Stats::default(),
        upstream: None,
    };
    s.out.extend_from_slice(b"+OK Tandem POP3 ready.\r\n");
    let io = Io {
        stream,
        reader: LineReader::new(MAX_LINE),
    };
    let mut state = State::Authorization { user: None };
    let (end, io) = s.serve(io, &mut state, info.tls.as_ref(), &shutdown).await;
    match state {
        State::Transaction(t) if end == End::Lost => {
            tracing::warn!(user = %t.opened.account.address, "session ended: this node lost the account");
        }
        State::Transaction(t) => s.logout(*t, end).await,
        State::Authorization { .. } if end == End::Quit => {
            s.out.extend_from_slice(b"+OK Logging out.\r\n");
        }
        State::Authorization { .. } => {}
    }
    if let Some(mut io) = io
        && s.flush(&mut io).await.is_ok()
    {
        let _ = io.stream.shutdown().await;
    }
}

impl Session<'_> {
    /// Passes the session on to the owner's connection until it ends.
    async fn splice<S: Transport>(&mut self, io: &mut Io<S>, shutdown: &CancellationToken) {
        let Some(up) = self.upstream.take() else {
            return;
        };
        if self.flush(io).await.is_ok() {
            let pipelined = io.reader.release();
            let goodbye = b"-ERR [SYS/TEMP] Server shutting down; please reconnect.\r\n";
            relay(
                &mut io.stream,
                &pipelined,
                up,
                self.p.cfg.idle_timeout,
                shutdown,
                goodbye,
            )
            .await;
        }
    }

    /// The command loop; returns how it ended and the connection, unless a
    /// failed TLS handshake consumed it.
    async fn serve<S: Transport>(
        &mut self,
        mut io: Io<S>,
        state: &mut State,
        tls: Option<&TlsAcceptor>,
        shutdown: &CancellationToken,
    ) -> (End, Option<Io<S>>) {
        let idle = self.p.cfg.idle_timeout;
        loop {
            if (io.reader.buffered().is_empty() || self.out.len() >= FLUSH_AT)
                && self.flush(&mut io).await.is_err()
            {
                return (End::Closed, Some(io));
            }
            let lost = match state {
                State::Transaction(t) => Some(t.opened.lost().clone()),
                State::Authorization { .. } => None,
            };
            let parsed = tokio::select! {
                _ = shutdown.cancelled() => {
                    self.out.extend_from_slice(b"-ERR [SYS/TEMP] Server shutting down.\r\n");
                    return (End::Shutdown, Some(io));
                }
                _ = until_lost(lost) => {
                    self.out.extend_from_slice(b"-ERR [SYS/TEMP] This server lost the mailbox to another; please reconnect.\r\n");
                    return (End::Lost, Some(io));
                }
                r = tokio::time::timeout(idle, io.reader.read_line(&mut io.stream)) => match r {
                    Err(_) => {
                        self.out.extend_from_slice(b"-ERR Disconnected for inactivity.\r\n");
                        return (End::Idle, Some(io));
                    }
                    Ok(Err(_)) | Ok(Ok(Line::Eof)) => return (End::Closed, Some(io)),
                    Ok(Ok(Line::TooLong)) => Err(ParseError::Syntax("Line too long.")),
                    Ok(Ok(Line::Line(l))) => parse(l),
                },
            };
            if let State::Authorization { .. } = state {
                self.commands += 1;
                if self.commands > self.p.cfg.max_commands_before_auth {
                    self.out
                        .extend_from_slice(b"-ERR Too many commands before login.\r\n");
                    return (End::Closed, Some(io));
                }
            }
            self.failed = false;
            let next = match parsed {
                Ok(cmd) => self.command(cmd, state, &mut io, shutdown).await,
                Err(ParseError::Unknown) => self.err("Unknown command."),
                Err(ParseError::Syntax(why)) => self.err(why),
            };
            if self.failed {
                self.bad += 1;
                if self.bad >= MAX_BAD {
                    self.out
                        .extend_from_slice(b"-ERR Too many bad commands.\r\n");
                    return (End::Closed, Some(io));
                }
            } else {
                self.bad = 0;
            }
            match next {
                Next::Go => {}
                Next::Close => return (End::Closed, Some(io)),
                Next::Quit => return (End::Quit, Some(io)),
                Next::Proxy => {
                    self.splice(&mut io, shutdown).await;
                    return (End::Closed, None);
                }
                Next::StartTls => {
                    if self.flush(&mut io).await.is_err() {
                        return (End::Closed, Some(io));
                    }
                    // Whatever came after STLS in plaintext is dropped
                    // (RFC 2595 §4, the STARTTLS injection).
                    io.reader.clear();
                    let Some(acceptor) = tls else {
                        return (End::Closed, Some(io));
                    };
                    match tokio::time::timeout(idle, io.stream.start_tls(acceptor)).await {
                        Ok(Ok(tls_stream)) => io.stream = tls_stream,
                        Ok(Err(e)) => {
                            tracing::info!(error = %e, "STLS handshake failed");
                            return (End::Closed, None);
                        }
                        Err(_) => {
                            tracing::info!("STLS handshake timed out");
                            return (End::Closed, None);
                        }
                    }
                }
            }
            if self.out.is_empty() && self.out.capacity() > 2 * FLUSH_AT {
                self.out = Vec::with_capacity(512);
            }
        }
    }

    async fn command<S: Transport>(
        &mut self,
        cmd: Command,
        state: &mut State,
        io: &mut Io<S>,
        shutdown: &CancellationToken,
    ) -> Next {
        match (cmd, &mut *state) {
            (Command::Capa, st) => {
                let authorization = matches!(st, State::Authorization { .. });
                self.capa(authorization, io.stream.is_tls())
            }
            (Command::Quit, _) => Next::Quit,
            (cmd, State::Authorization { .. }) => {
                self.authorization(cmd, state, io, shutdown).await
            }
            (cmd, State::Transaction(t)) => self.transaction(cmd, t, io).await,
        }
    }

    /// CAPA (RFC 2449 §5): what this connection can do now.
    fn capa(&mut self, authorization: bool, tls: bool) -> Next {
        self.out.extend_from_slice(
            b"+OK Capability list follows\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n",
        );
        if authorization {
            // Only what would be accepted: no USER or PLAIN where a
            // password may not travel in the clear.
            if self.p.node.auth.plaintext_allowed(self.peer, tls) {
                self.out.extend_from_slice(b"USER\r\nSASL PLAIN\r\n");
            }
            if self.tls_offered && !tls {
                self.out.extend_from_slice(b"STLS\r\n");
            }
        }
        self.out
            .extend_from_slice(b"IMPLEMENTATION Tandem\r\n.\r\n");
        Next::Go
    }

    /// Writes what is buffered; a client that does not read its answers
    /// within the idle timeout is given up on.
    pub async fn flush<S: Transport>(&mut self, io: &mut Io<S>) -> io::Result<()> {
        let r = shared::net::write_within(&mut io.stream, &self.out, self.p.cfg.idle_timeout).await;
        self.out.clear();
        r
    }

    /// A `+OK` line.
    pub fn ok(&mut self, text: &str) -> Next {
        self.out.extend_from_slice(b"+OK");
        if !text.is_empty() {
            self.out.push(b' ');
            self.out.extend_from_slice(text.as_bytes());
        }
        self.out.extend_from_slice(b"\r\n");
        Next::Go
    }

    /// A `-ERR` line; counts as a bad command.
    pub fn err(&mut self, text: &str) -> Next {
        self.failed = true;
        self.out.extend_from_slice(b"-ERR ");
        self.out.extend_from_slice(text.as_bytes());
        self.out.extend_from_slice(b"\r\n");
        Next::Go
    }

    /// The end of a logged-in session: UPDATE after QUIT (RFC 1939 §6);
    /// otherwise nothing is deleted, but what was retrieved is \Seen, as
    /// Dovecot does.
    async fn logout(&mut self, t: Transaction, end: End) {
        let update = end == End::Quit;
        let marked = t.drop.marked_deleted();
        let result = t.drop.commit(&t.opened, update).await;
        let user = &t.opened.account.address;
        let st = &self.stats;
        let m = &self.p.metrics;
        match result {
            Ok(Committed {
                deleted,
                deleted_octets,
            }) => {
                m.deleted.inc_by(deleted as u64);
                tracing::info!(
                    %user,
                    ?end,
                    retr = st.retr,
                    retr_bytes = st.retr_bytes,
                    top = st.top,
                    top_bytes = st.top_bytes,
                    deleted,
                    deleted_bytes = deleted_octets,
                    "logged out"
                );
                // As Dovecot: what the client asked for, even if another
                // session expunged some of it first.
                if update && marked > 0 {
                    self.out
                        .extend_from_slice(b"+OK Logging out, messages deleted.\r\n");
                } else if update {
                    self.out.extend_from_slice(b"+OK Logging out.\r\n");
                }
            }
            Err(e) => {
                m.store_errors.inc();
                tracing::error!(%user, ?end, error = %e, "UPDATE failed");
                if update {
                    self.out.extend_from_slice(
                        b"-ERR [SYS/TEMP] Could not update the mailbox; some messages may not be deleted.\r\n",
                    );
                }
            }
        }
    }
}
