//! One POP3 connection: AUTHORIZATION, TRANSACTION, UPDATE.

use std::io;
use std::net::IpAddr;

use shared::net::{Conn, Line, LineReader, Stream};
use shared::sasl::{Plain, decode_plain};
use tokio::io::AsyncWriteExt;
use tokio::sync::OwnedMutexGuard;
use tokio_util::sync::CancellationToken;

use super::Pop3;
use super::command::{Command, ParseError, parse};
use super::maildrop::{Maildrop, put_message};
use crate::accounts::Opened;
use crate::auth::Login;

/// Command lines; AUTH initial responses make them longer than RFC 2449's 255.
const MAX_LINE: usize = 4096;
/// Protocol errors tolerated per session.
const MAX_ERRORS: u32 = 20;

enum State {
    Authorization { user: Option<String> },
    Transaction(Box<Transaction>),
}

struct Transaction {
    opened: Opened,
    drop: Maildrop,
    /// The account's POP3 lock, released when the session ends.
    _exclusive: OwnedMutexGuard<()>,
}

struct Session<'a> {
    p: &'a Pop3,
    peer: IpAddr,
    client: std::net::SocketAddr,
    out: Vec<u8>,
    failures: u32,
    errors: u32,
    commands: u32,
    tls_offered: bool,
}

/// What the loop does after a command.
enum Next {
    Go,
    Close,
    StartTls,
}

pub(super) async fn run(p: &Pop3, conn: Conn, shutdown: CancellationToken) {
    let Conn {
        mut stream,
        client,
        peer,
        tls,
        ..
    } = conn;
    let mut s = Session {
        p,
        peer: peer.ip(),
        client,
        out: Vec::with_capacity(512),
        failures: 0,
        errors: 0,
        commands: 0,
        tls_offered: tls.is_some(),
    };
    let mut reader = LineReader::new(MAX_LINE);
    let mut state = State::Authorization { user: None };
    s.out.extend_from_slice(b"+OK Tandem POP3 ready.\r\n");
    loop {
        // Answer a pipelined batch at once: write only when no more
        // commands are already waiting.
        if reader.buffered().is_empty() && s.flush(&mut stream).await.is_err() {
            return;
        }
        let idle = p.cfg.idle_timeout;
        let parsed = tokio::select! {
            _ = shutdown.cancelled() => {
                s.out.extend_from_slice(b"-ERR [SYS/TEMP] Server shutting down.\r\n");
                let _ = s.flush(&mut stream).await;
                return;
            }
            r = tokio::time::timeout(idle, reader.read_line(&mut stream)) => match r {
                Err(_) => {
                    tracing::info!("idle timeout; closed without UPDATE");
                    s.out.extend_from_slice(b"-ERR Disconnected for inactivity.\r\n");
                    let _ = s.flush(&mut stream).await;
                    return;
                }
                Ok(Err(_)) | Ok(Ok(Line::Eof)) => return,
                Ok(Ok(Line::TooLong)) => Err(ParseError::Syntax("line too long")),
                Ok(Ok(Line::Line(l))) => parse(l),
            },
        };
        let next = match parsed {
            Ok(cmd) => s.command(cmd, &mut state, &mut reader, &mut stream).await,
            Err(ParseError::Unknown) => s.error("Unknown command."),
            Err(ParseError::Syntax(why)) => s.error(why),
        };
        match next {
            Next::Go => {}
            Next::Close => {
                let _ = s.flush(&mut stream).await;
                let _ = stream.shutdown().await;
                return;
            }
            Next::StartTls => {
                if s.flush(&mut stream).await.is_err() {
                    return;
                }
                // Whatever the client sent after STLS in plaintext is dropped.
                reader.clear();
                let Some(acceptor) = tls.as_ref() else { return };
                stream = match stream.upgrade(acceptor).await {
                    Ok(t) => t,
                    Err(e) => {
                        tracing::info!(error = %e, "STLS handshake failed");
                        return;
                    }
                };
            }
        }
        if s.out.capacity() > 1 << 20 && s.out.is_empty() {
            s.out = Vec::with_capacity(512); // give a big RETR's buffer back
        }
    }
}

impl Session<'_> {
    async fn flush(&mut self, stream: &mut Stream) -> io::Result<()> {
        if !self.out.is_empty() {
            stream.write_all(&self.out).await?;
            self.out.clear();
        }
        stream.flush().await
    }

    fn reply(&mut self, text: &str) -> Next {
        self.out.extend_from_slice(text.as_bytes());
        self.out.extend_from_slice(b"\r\n");
        Next::Go
    }

    fn error(&mut self, why: &str) -> Next {
        self.errors += 1;
        self.out.extend_from_slice(b"-ERR ");
        self.out.extend_from_slice(why.as_bytes());
        self.out.extend_from_slice(b"\r\n");
        if self.errors >= MAX_ERRORS {
            self.out
                .extend_from_slice(b"-ERR Too many errors, closing.\r\n");
            return Next::Close;
        }
        Next::Go
    }

    fn capa(&mut self, state: &State, tls: bool) -> Next {
        self.out.extend_from_slice(b"+OK Capability list follows\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n");
        if matches!(state, State::Authorization { .. }) {
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

    async fn command(
        &mut self,
        cmd: Command,
        state: &mut State,
        reader: &mut LineReader,
        stream: &mut Stream,
    ) -> Next {
        let tls = stream.is_tls();
        match (cmd, &mut *state) {
            (Command::Capa, st) => {
                let st: &State = st;
                self.capa(st, tls)
            }
            (Command::Noop, State::Transaction(_)) => self.reply("+OK"),
            (Command::Quit, State::Authorization { .. }) => {
                self.reply("+OK Logging out.");
                Next::Close
            }
            (Command::Quit, State::Transaction(t)) => self.update(t).await,
            (cmd, State::Authorization { user }) => {
                self.commands += 1;
                if self.commands > self.p.cfg.max_commands_before_auth {
                    self.reply("-ERR Too many commands before login.");
                    return Next::Close;
                }
                let mut user = user.take();
                let next = self
                    .authorization(cmd, &mut user, state, reader, stream)
                    .await;
                if let State::Authorization { user: u } = state {
                    *u = user;
                }
                next
            }
            (cmd, State::Transaction(t)) => self.transaction(cmd, t).await,
        }
    }

    async fn authorization(
        &mut self,
        cmd: Command,
        user: &mut Option<String>,
        state: &mut State,
        reader: &mut LineReader,
        stream: &mut Stream,
    ) -> Next {
        let tls = stream.is_tls();
        let plaintext = self.p.node.auth.plaintext_allowed(self.peer, tls);
        match cmd {
            Command::Stls if tls => self.error("TLS is already active."),
            Command::Stls if !self.tls_offered => self.error("STLS is not available."),
            Command::Stls => {
                self.reply("+OK Begin TLS negotiation now.");
                Next::StartTls
            }
            Command::User(_) | Command::Pass(_) | Command::Auth(Some(_)) if !plaintext => {
                self.error("[AUTH] Plaintext authentication disallowed on non-secure connections; use STLS.")
            }
            Command::User(name) => {
                *user = Some(name);
                self.reply("+OK")
            }
            Command::Pass(password) => match user.take() {
                None => self.error("USER first."),
                Some(name) => {
                    let plain = Plain {
                        authzid: String::new(),
                        authcid: name,
                        password,
                    };
                    self.login(plain, state).await
                }
            },
            Command::Auth(None) => {
                self.out.extend_from_slice(b"+OK\r\nPLAIN\r\n.\r\n");
                Next::Go
            }
            Command::Auth(Some((mech, initial))) => {
                if mech != "PLAIN" {
                    return self.error("Unsupported authentication mechanism.");
                }
                let response = match initial {
                    Some(r) if r == b"=" => Vec::new(),
                    Some(r) => r,
                    None => {
                        self.out.extend_from_slice(b"+ \r\n");
                        if self.flush(stream).await.is_err() {
                            return Next::Close;
                        }
                        let idle = self.p.cfg.idle_timeout;
                        match tokio::time::timeout(idle, reader.read_line(stream)).await {
                            Ok(Ok(Line::Line(l))) => l.to_vec(),
                            Ok(Ok(Line::TooLong)) => return self.error("Response too long."),
                            _ => return Next::Close,
                        }
                    }
                };
                match decode_plain(&response) {
                    Ok(plain) => self.login(plain, state).await,
                    Err(shared::sasl::SaslError::Cancelled) => self.error("Authentication cancelled."),
                    Err(e) => self.error(&format!("[AUTH] {e}.")),
                }
            }
            _ => self.error("Not logged in yet."),
        }
    }

    async fn login(&mut self, plain: Plain, state: &mut State) -> Next {
        let node = &self.p.node;
        let m = &self.p.metrics;
        let who = plain.user().to_owned();
        let account = match node.auth.login(self.peer, &plain).await {
            Login::Ok(a) => a,
            Login::Failed => {
                m.login("failed");
                tracing::info!(user = %who, client = %self.client, "login failed");
                tokio::time::sleep(self.p.cfg.auth_failure_delay).await;
                self.failures += 1;
                self.reply("-ERR [AUTH] Authentication failed.");
                if self.failures >= self.p.cfg.max_auth_failures {
                    return Next::Close;
                }
                return Next::Go;
            }
            Login::Suspended => {
                m.login("suspended");
                tracing::info!(user = %who, "login refused: account suspended");
                return self.reply("-ERR [AUTH] Account is suspended.");
            }
            Login::Unavailable(why) => {
                m.login("unavailable");
                tracing::warn!(user = %who, %why, "login unavailable");
                return self.reply("-ERR [SYS/TEMP] Temporary failure, try again later.");
            }
        };
        let opened = match node.accounts.open(account).await {
            Ok(o) => o,
            Err(e) => {
                m.login("unavailable");
                tracing::warn!(user = %who, error = %e, "cannot open the account");
                return self.reply("-ERR [SYS/TEMP] Mailbox unavailable, try again later.");
            }
        };
        let Some(exclusive) = opened.try_exclusive() else {
            m.login("in_use");
            return self.reply("-ERR [IN-USE] Mailbox is locked by another POP3 session.");
        };
        let drop = match Maildrop::open(&opened).await {
            Ok(d) => d,
            Err(e) => {
                m.store_errors.inc();
                tracing::error!(user = %who, error = %e, "cannot read INBOX");
                return self.reply("-ERR [SYS/TEMP] Mailbox unavailable, try again later.");
            }
        };
        m.login("ok");
        let (n, octets) = drop.stat();
        tracing::info!(user = %opened.account.address, client = %self.client, messages = n, octets, "logged in");
        self.reply(&format!("+OK Logged in, {n} messages ({octets} octets)."));
        *state = State::Transaction(Box::new(Transaction {
            opened,
            drop,
            _exclusive: exclusive,
        }));
        Next::Go
    }

    async fn transaction(&mut self, cmd: Command, t: &mut Transaction) -> Next {
        let d = &mut t.drop;
        match cmd {
            Command::Stat => {
                let (n, octets) = d.stat();
                self.reply(&format!("+OK {n} {octets}"))
            }
            Command::List(None) | Command::Uidl(None) => {
                let uidl = matches!(cmd, Command::Uidl(_));
                self.out.extend_from_slice(b"+OK\r\n");
                for (i, e) in d.entries.iter().enumerate().filter(|(_, e)| !e.deleted) {
                    let line = if uidl {
                        format!("{} {}\r\n", i + 1, d.uidl(e))
                    } else {
                        format!("{} {}\r\n", i + 1, e.octets)
                    };
                    self.out.extend_from_slice(line.as_bytes());
                }
                self.out.extend_from_slice(b".\r\n");
                Next::Go
            }
            Command::List(Some(n)) => match d.get(n) {
                Ok(e) => {
                    let octets = e.octets;
                    self.reply(&format!("+OK {n} {octets}"))
                }
                Err(why) => self.error(why),
            },
            Command::Uidl(Some(n)) => match d.get(n) {
                Ok(e) => {
                    let line = format!("+OK {n} {}", d.uidl(e));
                    self.reply(&line)
                }
                Err(why) => self.error(why),
            },
            Command::Retr(n) => self.send(t, n, None).await,
            Command::Top(n, lines) => self.send(t, n, Some(lines)).await,
            Command::Dele(n) => match d.get(n) {
                Ok(_) => {
                    d.entries[n as usize - 1].deleted = true;
                    self.reply("+OK Marked to be deleted.")
                }
                Err(why) => self.error(why),
            },
            Command::Rset => {
                for e in &mut d.entries {
                    e.deleted = false;
                }
                let (n, octets) = d.stat();
                self.reply(&format!("+OK {n} messages ({octets} octets)."))
            }
            _ => self.error("Already logged in."),
        }
    }

    async fn send(&mut self, t: &mut Transaction, n: u32, top: Option<u32>) -> Next {
        let (uid, octets) = match t.drop.get(n) {
            Ok(e) => (e.uid, e.octets),
            Err(why) => return self.error(why),
        };
        let body = match t.drop.read(&t.opened, uid).await {
            Ok(b) => b,
            Err(e) => {
                self.p.metrics.store_errors.inc();
                tracing::warn!(uid, error = %e, "cannot read a message");
                return self.reply("-ERR Message was expunged by another session.");
            }
        };
        let start = self.out.len();
        self.out
            .extend_from_slice(format!("+OK {octets} octets\r\n").as_bytes());
        put_message(&body, top, &mut self.out);
        self.p
            .metrics
            .retrieved_bytes
            .inc_by((self.out.len() - start) as u64);
        if top.is_none() {
            t.drop.entries[n as usize - 1].retrieved = true;
        }
        Next::Go
    }

    async fn update(&mut self, t: &mut Transaction) -> Next {
        match t.drop.commit(&t.opened).await {
            Ok(deleted) => {
                self.p.metrics.deleted.inc_by(deleted as u64);
                let retrieved = t.drop.entries.iter().filter(|e| e.retrieved).count();
                tracing::info!(user = %t.opened.account.address, retrieved, deleted, "logged out");
                self.reply("+OK Logging out.");
            }
            Err(e) => {
                self.p.metrics.store_errors.inc();
                tracing::error!(user = %t.opened.account.address, error = %e, "UPDATE failed");
                self.reply("-ERR [SYS/TEMP] Some deleted messages were not removed.");
            }
        }
        Next::Close
    }
}
