//! The IMAP proxy: answers CAPABILITY, ID, NOOP, STARTTLS, LOGOUT, LOGIN and
//! AUTHENTICATE PLAIN (with SASL-IR) itself, checks the password against the
//! locator, logs in on a node of the user's cluster as the trusted proxy
//! identity (passing the client's address and the session id in ID), hands
//! the client the backend's capabilities in the tagged OK, then splices.

mod backend;
pub mod command;

use std::net::SocketAddr;
use std::sync::Arc;

use shared::net::{Conn, Line, LineReader, Protocol, Stream};
use shared::sasl::{Plain, decode_plain};
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

use self::command::{Command, Parsed, parse};
use crate::Frontend;
use crate::login::Refused;
use crate::route::Service;

/// Before login: ID with many fields is the longest legitimate line
/// (RFC 2971 allows 30 pairs of 1024-byte values); the backend's limit.
const MAX_LINE: usize = 64 * 1024;
const MAX_COMMANDS: u32 = 30;
const MAX_FAILURES: u32 = 3;

pub struct ImapProxy {
    fe: Arc<Frontend>,
}

impl ImapProxy {
    pub fn new(fe: Arc<Frontend>) -> Self {
        ImapProxy { fe }
    }
}

impl Protocol for ImapProxy {
    async fn serve(&self, conn: Conn, shutdown: CancellationToken) {
        Session {
            fe: &self.fe,
            client: conn.client,
            session: conn.session,
            tls: conn.tls,
            out: Vec::with_capacity(512),
            failures: 0,
        }
        .run(conn.stream, shutdown)
        .await;
    }

    fn too_busy(&self) -> &'static [u8] {
        b"* BYE [UNAVAILABLE] Too many connections\r\n"
    }
}

struct Session<'a> {
    fe: &'a Frontend,
    client: SocketAddr,
    session: String,
    tls: Option<tokio_rustls::TlsAcceptor>,
    out: Vec<u8>,
    failures: u32,
}

enum After {
    Continue,
    Close,
    Done,
    StartTls,
}

impl Session<'_> {
    fn capabilities(&self, stream: &Stream) -> String {
        let mut caps = String::from("IMAP4rev1 SASL-IR LITERAL+ ID ENABLE IDLE");
        if self.tls.is_some() && !stream.is_tls() {
            caps.push_str(" STARTTLS");
        }
        if stream.is_tls() || self.fe.plaintext_allowed(self.client.ip()) {
            caps.push_str(" AUTH=PLAIN");
        } else {
            caps.push_str(" LOGINDISABLED");
        }
        caps
    }

    async fn run(mut self, mut stream: Stream, shutdown: CancellationToken) {
        let mut reader = LineReader::new(MAX_LINE);
        let greeting = format!(
            "* OK [CAPABILITY {}] Tandem ready.\r\n",
            self.capabilities(&stream)
        );
        self.out.extend_from_slice(greeting.as_bytes());
        for _ in 0..MAX_COMMANDS {
            if reader.buffered().is_empty() && self.flush(&mut stream).await.is_err() {
                return;
            }
            let line = tokio::select! {
                _ = shutdown.cancelled() => {
                    self.out.extend_from_slice(b"* BYE Server shutting down.\r\n");
                    let _ = self.flush(&mut stream).await;
                    return;
                }
                l = self.read_command(&mut reader, &mut stream) => l,
            };
            let Some(line) = line else { return };
            let Some(line) = line else {
                self.say("* BAD Line too long.");
                continue;
            };
            let after = match parse(&line) {
                Parsed::Bad { tag, why } => {
                    let tag = tag.unwrap_or_else(|| "*".into());
                    self.say(&format!("{tag} BAD {why}"));
                    After::Continue
                }
                Parsed::NeedLiteral { tag, .. } => {
                    self.say(&format!("{tag} BAD Too many literals."));
                    After::Continue
                }
                Parsed::Command { tag, command } => {
                    self.command(&tag, command, &mut stream, &mut reader).await
                }
            };
            match after {
                After::Continue => {}
                After::Close => {
                    let _ = self.flush(&mut stream).await;
                    return;
                }
                After::Done => return,
                After::StartTls => {
                    if self.flush(&mut stream).await.is_err() {
                        return;
                    }
                    // Plaintext pipelined behind STARTTLS is dropped.
                    reader.clear();
                    let Some(acceptor) = self.tls.clone() else {
                        return;
                    };
                    stream = match stream.upgrade(&acceptor).await {
                        Ok(s) => s,
                        Err(_) => return,
                    };
                }
            }
        }
        self.out
            .extend_from_slice(b"* BYE Too many commands without logging in.\r\n");
        let _ = self.flush(&mut stream).await;
    }

    /// A command line with its literals inlined (`{n}\r\n<bytes>`)
    /// (`Some(None)`: a line over [`MAX_LINE`], already skipped), or `None`
    /// when the client is gone or too slow.
    async fn read_command(
        &mut self,
        reader: &mut LineReader,
        stream: &mut Stream,
    ) -> Option<Option<Vec<u8>>> {
        let timeout = self.fe.limits.login_timeout;
        let mut line = Vec::new();
        for _ in 0..4 {
            match tokio::time::timeout(timeout, reader.read_line(stream)).await {
                Ok(Ok(Line::Line(l))) => line.extend_from_slice(l),
                Ok(Ok(Line::TooLong)) => return Some(None),
                _ => return None,
            }
            let Parsed::NeedLiteral { size, sync, .. } = parse(&line) else {
                return Some(Some(line));
            };
            if sync {
                self.out.extend_from_slice(b"+ Ready for literal data\r\n");
                self.flush(stream).await.ok()?;
            }
            let mut literal = vec![0u8; size];
            tokio::time::timeout(timeout, reader.read_exact(stream, &mut literal))
                .await
                .ok()?
                .ok()?;
            line.extend_from_slice(b"\r\n");
            line.extend_from_slice(&literal);
        }
        Some(Some(line))
    }

    fn say(&mut self, line: &str) {
        self.out.extend_from_slice(line.as_bytes());
        self.out.extend_from_slice(b"\r\n");
    }

    async fn flush(&mut self, stream: &mut Stream) -> std::io::Result<()> {
        if !self.out.is_empty() {
            stream.write_all(&self.out).await?;
            self.out.clear();
        }
        stream.flush().await
    }

    async fn command(
        &mut self,
        tag: &str,
        command: Command,
        stream: &mut Stream,
        reader: &mut LineReader,
    ) -> After {
        let plaintext_ok = stream.is_tls() || self.fe.plaintext_allowed(self.client.ip());
        match command {
            Command::Capability => {
                let caps = self.capabilities(stream);
                self.say(&format!("* CAPABILITY {caps}"));
                self.say(&format!("{tag} OK Capability completed."));
                After::Continue
            }
            Command::Noop => {
                self.say(&format!("{tag} OK NOOP completed."));
                After::Continue
            }
            Command::Logout => {
                self.say("* BYE Logging out");
                self.say(&format!("{tag} OK Logout completed."));
                After::Close
            }
            Command::Id(params) => {
                tracing::info!(client_id = %params, "client ID");
                self.say("* ID (\"name\" \"Tandem\")");
                self.say(&format!("{tag} OK ID completed."));
                After::Continue
            }
            Command::StartTls => {
                if self.tls.is_none() || stream.is_tls() {
                    self.say(&format!("{tag} BAD STARTTLS is not available."));
                    return After::Continue;
                }
                self.say(&format!("{tag} OK Begin TLS negotiation now."));
                After::StartTls
            }
            Command::Login { .. } | Command::Authenticate { .. } if !plaintext_ok => {
                self.say(&format!(
                    "{tag} NO [PRIVACYREQUIRED] Plaintext authentication disallowed on non-secure connections; use STARTTLS."
                ));
                After::Continue
            }
            Command::Login { user, password } => {
                let plain = Plain {
                    authzid: String::new(),
                    authcid: String::from_utf8_lossy(&user).into_owned(),
                    password,
                };
                self.login(tag, plain, stream, reader).await
            }
            Command::Authenticate { mechanism, initial } => {
                if mechanism != "PLAIN" {
                    self.say(&format!(
                        "{tag} NO [CANNOT] Unsupported authentication mechanism."
                    ));
                    return After::Continue;
                }
                let response = match initial {
                    Some(r) if r == b"=" => Vec::new(),
                    Some(r) => r,
                    None => {
                        self.out.extend_from_slice(b"+ \r\n");
                        if self.flush(stream).await.is_err() {
                            return After::Done;
                        }
                        let timeout = self.fe.limits.login_timeout;
                        match tokio::time::timeout(timeout, reader.read_line(stream)).await {
                            Ok(Ok(Line::Line(l))) => l.to_vec(),
                            _ => return After::Done,
                        }
                    }
                };
                match decode_plain(&response) {
                    Ok(plain) => self.login(tag, plain, stream, reader).await,
                    Err(shared::sasl::SaslError::Cancelled) => {
                        self.say(&format!("{tag} BAD Authentication cancelled."));
                        After::Continue
                    }
                    Err(e) => {
                        self.say(&format!("{tag} BAD {e}."));
                        After::Continue
                    }
                }
            }
        }
    }

    async fn login(
        &mut self,
        tag: &str,
        plain: Plain,
        stream: &mut Stream,
        reader: &mut LineReader,
    ) -> After {
        let fe = self.fe;
        let account = match crate::login::check(fe, self.client, &self.session, &plain).await {
            Ok(a) => a,
            Err(refused) => {
                self.say(&format!(
                    "{tag} {}",
                    match refused {
                        Refused::Failed => "NO [AUTHENTICATIONFAILED] Authentication failed.",
                        Refused::Suspended => "NO [CONTACTADMIN] Account is suspended.",
                        Refused::Unavailable =>
                            "NO [UNAVAILABLE] Temporary failure, try again later.",
                    }
                ));
                if refused == Refused::Failed {
                    self.failures += 1;
                }
                return if self.failures >= MAX_FAILURES {
                    After::Close
                } else {
                    After::Continue
                };
            }
        };
        let routed = match fe
            .router
            .connect(&account, Service::Imap, self.client)
            .await
        {
            Ok(r) => r,
            Err(e) => {
                fe.metrics.login("unavailable");
                tracing::warn!(user = %account.address, error = %e, "no backend for the account");
                self.say(&format!(
                    "{tag} NO [UNAVAILABLE] Mailbox unavailable, try again later."
                ));
                return After::Continue;
            }
        };
        let node = routed.node;
        let mut backend = routed.stream;
        let caps = match backend::login(&mut backend, fe, &account, self.client, &self.session)
            .await
        {
            Ok(c) => c,
            Err(e) => {
                fe.metrics.login("unavailable");
                tracing::error!(user = %account.address, node, error = %e, "backend login failed");
                self.say(&format!(
                    "{tag} NO [UNAVAILABLE] Mailbox unavailable, try again later."
                ));
                return After::Continue;
            }
        };
        fe.metrics.login("ok");
        tracing::info!(user = %account.address, node, client = %self.client, "logged in, proxying");
        self.say(&format!("{tag} OK [CAPABILITY {caps}] Logged in."));
        // Line reading and answering are over: their buffers go before the
        // session settles into the splice.
        let pipelined = reader.release();
        if self.flush(stream).await.is_err() {
            return After::Done;
        }
        self.out = Vec::new();
        if !pipelined.is_empty() && backend.write_all(&pipelined).await.is_err() {
            return After::Done;
        }
        let goodbye = b"* BYE Server shutting down; please reconnect.\r\n";
        crate::splice::proxy(fe, stream, &mut backend, goodbye, &account.address, &node).await;
        After::Done
    }
}
