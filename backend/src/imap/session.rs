//! One IMAP connection (RFC 3501 §3): the read loop, the states, and the
//! output buffer every command writes its responses into.
//!
//! The loop reads one command (imap-codec, with the framer's limits),
//! dispatches it by state, appends the untagged updates a selected mailbox
//! has for the client, then the tagged result. Output is written when the
//! client's input runs dry (a pipelined batch gets one write) or when the
//! buffer passes [`FLUSH_AT`] (a big FETCH never piles up in memory).

use std::io;
use std::net::{IpAddr, SocketAddr};
use tokio::time::Instant;

use imap_codec::imap_types::command::{Command, CommandBody};
use tokio::io::AsyncWriteExt;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::Imap;
use super::codec::{CommandReader, Next};
use super::respond::{self, Status};
use super::view::View;
use crate::accounts::{Opened, until_lost};
use crate::cluster::peer::relay;

pub use shared::net::Transport;

/// Output is written once this much is waiting.
pub(super) const FLUSH_AT: usize = 64 << 10;
/// Bad commands in a row before the session is closed.
const MAX_BAD: u32 = 20;

/// What the session needs from the connection, besides the stream.
pub struct ConnInfo {
    pub client: SocketAddr,
    pub peer: IpAddr,
    pub tls: Option<TlsAcceptor>,
    /// The connection's id in the logs (the frontend's, when it sent one by ID).
    pub session: String,
}

pub(super) struct Io<S> {
    pub stream: S,
    pub reader: CommandReader,
}

/// What the loop does after a command.
pub(super) enum Flow {
    Go,
    Logout,
    StartTls,
    /// Close without a goodbye (limits, broken client).
    Close,
    /// Logged in on the account's owner: splice to it from now on.
    Proxy,
}

pub(super) struct Session<'a> {
    pub i: &'a Imap,
    pub client: SocketAddr,
    pub peer: IpAddr,
    pub tls_offered: bool,
    pub id: String,
    pub out: Vec<u8>,
    /// The logged-in account.
    pub user: Option<Opened>,
    pub view: Option<View>,
    /// RFC 7162 extensions enabled (ENABLE or a CONDSTORE-enabling command).
    pub ext: super::view::Enabled,
    /// Failed logins so far.
    pub failures: u32,
    /// Commands before login.
    pub commands: u32,
    bad: u32,
    /// The status of the command being answered, for the metrics.
    pub result: Status,
    /// The selected mailbox vanished and the client was told `* BYE`.
    pub gone: bool,
    /// ESEARCH / LIST-EXTENDED options of the command being answered.
    pub extras: super::extended::Extras,
    /// The owner's connection, once a login was proxied there.
    pub upstream: Option<crate::cluster::peer::Upstream>,
}

pub(super) async fn run<S: Transport>(
    i: &Imap,
    stream: S,
    info: ConnInfo,
    shutdown: CancellationToken,
) {
    let mut s = Session {
        i,
        client: info.client,
        peer: info.peer,
        tls_offered: info.tls.is_some(),
        id: info.session,
        out: Vec::with_capacity(1024),
        user: None,
        view: None,
        ext: Default::default(),
        failures: 0,
        commands: 0,
        bad: 0,
        result: Status::Ok,
        extras: Default::default(),
        gone: false,
        upstream: None,
    };
    let caps = s.capabilities(stream.is_tls());
    s.out.extend_from_slice(b"* OK [CAPABILITY ");
    s.out.extend_from_slice(caps.as_bytes());
    s.out.extend_from_slice(b"] Tandem IMAP ready.\r\n");
    let io = Io {
        stream,
        reader: CommandReader::new(i.cfg.limits()),
    };
    i.metrics.active.inc();
    let io = s.serve(io, info.tls.as_ref(), &shutdown).await;
    i.metrics.active.dec();
    if let Some(user) = &s.user {
        tracing::info!(user = %user.account.address, session = %s.id, "logged out");
    }
    if let Some(mut io) = io
        && s.flush(&mut io).await.is_ok()
    {
        let _ = io.stream.shutdown().await;
    }
}

/// Said when this node loses the account (it fenced itself).
pub(super) const LOST: &[u8] =
    b"* BYE [UNAVAILABLE] This server lost the account to another; please reconnect.\r\n";

impl Session<'_> {
    /// The token cancelled when this node loses the logged-in account.
    pub(super) fn lost_token(&self) -> Option<CancellationToken> {
        self.user.as_ref().map(|u| u.lost().clone())
    }

    /// Passes the session on to the owner's connection until it ends.
    async fn splice<S: Transport>(&mut self, io: &mut Io<S>, shutdown: &CancellationToken) {
        let Some(up) = self.upstream.take() else {
            return;
        };
        if self.flush(io).await.is_ok() {
            let pipelined = io.reader.release();
            let goodbye = b"* BYE Server shutting down; please reconnect.\r\n";
            relay(
                &mut io.stream,
                &pipelined,
                up,
                self.i.cfg.idle_timeout,
                shutdown,
                goodbye,
            )
            .await;
        }
    }

    async fn serve<S: Transport>(
        &mut self,
        mut io: Io<S>,
        tls: Option<&TlsAcceptor>,
        shutdown: &CancellationToken,
    ) -> Option<Io<S>> {
        loop {
            if (!io.reader.has_buffered() || self.out.len() >= FLUSH_AT)
                && self.flush(&mut io).await.is_err()
            {
                return Some(io);
            }
            let timeout = if self.user.is_some() {
                self.i.cfg.idle_timeout
            } else {
                self.i.cfg.login_timeout
            };
            let lost = self.lost_token();
            let next = tokio::select! {
                _ = shutdown.cancelled() => {
                    self.out.extend_from_slice(b"* BYE Server shutting down.\r\n");
                    return Some(io);
                }
                _ = until_lost(lost) => {
                    self.out.extend_from_slice(LOST);
                    return Some(io);
                }
                r = tokio::time::timeout(timeout, io.reader.next(&mut io.stream)) => match r {
                    Err(_) => {
                        self.out.extend_from_slice(b"* BYE Disconnected for inactivity.\r\n");
                        return Some(io);
                    }
                    Ok(Err(_)) | Ok(Ok(Next::Eof)) => return Some(io),
                    Ok(Ok(n)) => n,
                },
            };
            if self.user.is_none() {
                self.commands += 1;
                if self.commands > self.i.cfg.max_commands_before_auth {
                    self.out
                        .extend_from_slice(b"* BYE Too many commands before login.\r\n");
                    return Some(io);
                }
            }
            let flow = match next {
                Next::Command(cmd) => {
                    self.extras = io.reader.take_extras();
                    self.command(cmd, &mut io, shutdown).await
                }
                Next::Bad { tag, text } => {
                    self.i.metrics.command("unparsed", Status::Bad, 0.0);
                    respond::status(&mut self.out, tag.as_deref(), Status::Bad, &text);
                    self.result = Status::Bad;
                    Flow::Go
                }
                Next::TooBig { tag } => {
                    self.i.metrics.command("unparsed", Status::Bad, 0.0);
                    let text = "[TOOBIG] Literal too big";
                    match tag {
                        Some(t) => respond::status(&mut self.out, Some(&t), Status::No, text),
                        None => respond::status(&mut self.out, None, Status::Bad, text),
                    }
                    self.result = Status::Bad;
                    Flow::Go
                }
                Next::Eof => return Some(io),
            };
            if self.result == Status::Bad {
                self.bad += 1;
                if self.bad >= MAX_BAD {
                    self.out
                        .extend_from_slice(b"* BYE Too many bad commands.\r\n");
                    return Some(io);
                }
            } else {
                self.bad = 0;
            }
            if self.gone {
                return Some(io);
            }
            match flow {
                Flow::Go => {}
                Flow::Close | Flow::Logout => return Some(io),
                Flow::Proxy => {
                    self.splice(&mut io, shutdown).await;
                    return None;
                }
                Flow::StartTls => {
                    if self.flush(&mut io).await.is_err() {
                        return Some(io);
                    }
                    io.reader.clear();
                    let acceptor = tls?;
                    let handshake = io.stream.start_tls(acceptor);
                    match tokio::time::timeout(self.i.cfg.login_timeout, handshake).await {
                        Ok(Ok(stream)) => io.stream = stream,
                        Ok(Err(e)) => {
                            tracing::info!(session = %self.id, error = %e, "STARTTLS handshake failed");
                            return None;
                        }
                        Err(_) => return None,
                    }
                }
            }
            if self.out.is_empty() && self.out.capacity() > 2 * FLUSH_AT {
                self.out = Vec::with_capacity(1024);
            }
        }
    }

    /// Runs one command and writes its tagged result.
    async fn command<S: Transport>(
        &mut self,
        cmd: Command<'static>,
        io: &mut Io<S>,
        shutdown: &CancellationToken,
    ) -> Flow {
        let started = Instant::now();
        let name = cmd.body.name();
        let tag = cmd.tag.inner().to_owned();
        self.result = Status::Ok;
        let flow = match cmd.body {
            CommandBody::Capability => {
                let caps = self.capabilities(io.stream.is_tls());
                respond::untagged(&mut self.out, &format!("CAPABILITY {caps}"));
                self.ok(&tag, "Capability completed.")
            }
            CommandBody::Noop => {
                self.refresh(true).await;
                self.ok(&tag, "NOOP completed.")
            }
            CommandBody::Logout => {
                self.out.extend_from_slice(b"* BYE Logging out.\r\n");
                self.ok(&tag, "Logout completed.");
                Flow::Logout
            }
            CommandBody::Id { parameters } => self.id(&tag, parameters),
            body if self.user.is_none() => self.not_authenticated(&tag, body, io, shutdown).await,
            CommandBody::StartTLS
            | CommandBody::Login { .. }
            | CommandBody::Authenticate { .. } => self.bad(&tag, "Already logged in."),
            CommandBody::Idle => self.idle(&tag, io, shutdown).await,
            body if self.view.is_some() => match self.selected(&tag, body, io).await {
                Ok(flow) => flow,
                Err(body) => self.authenticated(&tag, body).await,
            },
            body => self.authenticated(&tag, body).await,
        };
        let status = self.result;
        self.i
            .metrics
            .command(name, status, started.elapsed().as_secs_f64());
        flow
    }

    /// `tag OK text`, after the selected mailbox's news.
    pub fn ok(&mut self, tag: &str, text: &str) -> Flow {
        self.result = Status::Ok;
        respond::status(&mut self.out, Some(tag), Status::Ok, text);
        Flow::Go
    }

    pub fn no(&mut self, tag: &str, text: &str) -> Flow {
        self.result = Status::No;
        respond::status(&mut self.out, Some(tag), Status::No, text);
        Flow::Go
    }

    pub fn bad(&mut self, tag: &str, text: &str) -> Flow {
        self.result = Status::Bad;
        respond::status(&mut self.out, Some(tag), Status::Bad, text);
        Flow::Go
    }

    /// A store failure: logged with the account, answered `NO [SERVERBUG]`
    /// without details (they may name paths).
    /// When this node may no longer write the account (its lease ran out),
    /// whatever failed, the client is told to retry: `NO [UNAVAILABLE]`.
    pub fn store_failed(&mut self, tag: &str, what: &str, e: &dyn std::fmt::Display) -> Flow {
        let user = self
            .user
            .as_ref()
            .map(|u| u.account.address.to_string())
            .unwrap_or_default();
        if self.user.as_ref().is_some_and(|u| !u.may_write()) {
            tracing::warn!(%user, session = %self.id, error = %e, "{what} refused: this node's lease ran out");
            return self.no(
                tag,
                "[UNAVAILABLE] This server lost the account to another; try again.",
            );
        }
        self.i.metrics.store_errors.inc();
        tracing::error!(%user, session = %self.id, error = %e, "{what} failed");
        self.no(
            tag,
            "[SERVERBUG] Internal error occurred. Refer to server log for more information.",
        )
    }

    /// What this connection may do now.
    pub fn capabilities(&self, tls: bool) -> String {
        let mut c = String::from("IMAP4rev1 SASL-IR LITERAL+ ID ENABLE IDLE");
        if self.user.is_none() {
            if self.tls_offered && !tls {
                c.push_str(" STARTTLS");
            }
            if self.i.node.auth.plaintext_allowed(self.peer, tls) {
                c.push_str(" AUTH=PLAIN AUTH=LOGIN");
            } else {
                c.push_str(" LOGINDISABLED");
            }
        } else {
            c.push_str(super::AUTHENTICATED_CAPS);
        }
        c
    }

    /// Writes what is buffered; a client that does not read within the idle
    /// timeout is given up on.
    pub async fn flush<S: Transport>(&mut self, io: &mut Io<S>) -> io::Result<()> {
        let r = shared::net::write_within(&mut io.stream, &self.out, self.i.cfg.idle_timeout).await;
        self.out.clear();
        r
    }

    /// ID (RFC 2971): logs what the client says about itself (a frontend
    /// passes the client's address and its session id) and answers with ours.
    fn id(
        &mut self,
        tag: &str,
        parameters: Option<
            Vec<(
                imap_codec::imap_types::core::IString<'static>,
                imap_codec::imap_types::core::NString<'static>,
            )>,
        >,
    ) -> Flow {
        let trusted = self.i.node.auth.is_trusted(self.peer);
        for (k, v) in parameters.iter().flatten().take(30) {
            let key = String::from_utf8_lossy(k.as_ref()).to_ascii_lowercase();
            let Some(v) = v.0.as_ref() else { continue };
            let value: String = String::from_utf8_lossy(v.as_ref())
                .chars()
                .take(128)
                .filter(|c| !c.is_control())
                .collect();
            if trusted && key == "x-session-id" && !value.is_empty() {
                self.id = value;
            } else {
                tracing::debug!(session = %self.id, %key, %value, "client ID");
            }
        }
        respond::untagged(
            &mut self.out,
            "ID (\"name\" \"Tandem\" \"vendor\" \"Tandem\" \"support-url\" \"https://tandem.invalid/\")",
        );
        self.ok(tag, "ID completed.")
    }
}
