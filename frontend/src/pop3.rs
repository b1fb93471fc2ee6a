//! The POP3 proxy: speaks POP3 itself until the user has logged in (CAPA,
//! STLS, USER/PASS, AUTH PLAIN, QUIT), checks the password against the
//! locator, logs in on a node of the user's cluster as the trusted proxy
//! identity, then splices bytes both ways.

use std::net::SocketAddr;
use std::sync::Arc;

use locator::Account;
use shared::net::{Conn, Line, LineReader, Protocol, Stream};
use shared::pop3::{Command, ParseError, parse};
use shared::sasl::{Plain, decode_plain};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::Frontend;
use crate::login::Refused;
use crate::route::Service;

const MAX_LINE: usize = 4096;
const MAX_COMMANDS: u32 = 20;

pub struct Pop3Proxy {
    fe: Arc<Frontend>,
}

impl Pop3Proxy {
    pub fn new(fe: Arc<Frontend>) -> Self {
        Pop3Proxy { fe }
    }
}

impl Protocol for Pop3Proxy {
    async fn serve(&self, conn: Conn, shutdown: CancellationToken) {
        Session {
            fe: &self.fe,
            client: conn.client,
            session: conn.session,
            tls: conn.tls,
            out: Vec::with_capacity(256),
            failures: 0,
        }
        .run(conn.stream, shutdown)
        .await;
    }

    fn too_busy(&self) -> &'static [u8] {
        b"-ERR [SYS/TEMP] Too many connections\r\n"
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

enum Outcome {
    Continue,
    Close,
    Spliced,
}

impl Session<'_> {
    async fn run(mut self, mut stream: Stream, shutdown: CancellationToken) {
        let mut reader = LineReader::new(MAX_LINE);
        let mut user: Option<String> = None;
        self.out.extend_from_slice(b"+OK Tandem ready.\r\n");
        for _ in 0..MAX_COMMANDS {
            if reader.buffered().is_empty() && self.flush(&mut stream).await.is_err() {
                return;
            }
            let timeout = self.fe.limits.login_timeout;
            let parsed = tokio::select! {
                _ = shutdown.cancelled() => {
                    self.out.extend_from_slice(b"-ERR [SYS/TEMP] Server shutting down.\r\n");
                    let _ = self.flush(&mut stream).await;
                    return;
                }
                r = tokio::time::timeout(timeout, reader.read_line(&mut stream)) => match r {
                    Err(_) | Ok(Err(_)) | Ok(Ok(Line::Eof)) => return,
                    Ok(Ok(Line::TooLong)) => Err(ParseError::Syntax("line too long")),
                    Ok(Ok(Line::Line(l))) => parse(l),
                },
            };
            let plaintext_ok = stream.is_tls() || self.fe.plaintext_allowed(self.client.ip());
            let plain = match parsed {
                Err(ParseError::Unknown) => {
                    self.err("Unknown command.");
                    continue;
                }
                Err(ParseError::Syntax(why)) => {
                    self.err(why);
                    continue;
                }
                Ok(Command::Capa) => {
                    self.capa(plaintext_ok, &stream);
                    continue;
                }
                Ok(Command::Quit) => {
                    self.out.extend_from_slice(b"+OK Logging out.\r\n");
                    let _ = self.flush(&mut stream).await;
                    return;
                }
                Ok(Command::Stls) => {
                    let Some(acceptor) = self.tls.clone().filter(|_| !stream.is_tls()) else {
                        self.err("STLS is not available.");
                        continue;
                    };
                    self.out
                        .extend_from_slice(b"+OK Begin TLS negotiation now.\r\n");
                    if self.flush(&mut stream).await.is_err() {
                        return;
                    }
                    reader.clear();
                    stream = match stream.upgrade(&acceptor).await {
                        Ok(s) => s,
                        Err(_) => return,
                    };
                    continue;
                }
                Ok(Command::User(_) | Command::Pass(_) | Command::Auth(Some(_)))
                    if !plaintext_ok =>
                {
                    self.err("[AUTH] Plaintext authentication disallowed on non-secure connections; use STLS.");
                    continue;
                }
                Ok(Command::User(name)) => {
                    user = Some(name);
                    self.out.extend_from_slice(b"+OK\r\n");
                    continue;
                }
                Ok(Command::Pass(password)) => match user.take() {
                    Some(authcid) => Plain {
                        authzid: String::new(),
                        authcid,
                        password,
                    },
                    None => {
                        self.err("USER first.");
                        continue;
                    }
                },
                Ok(Command::Auth(None)) => {
                    self.out.extend_from_slice(b"+OK\r\nPLAIN\r\n.\r\n");
                    continue;
                }
                Ok(Command::Auth(Some((mech, initial)))) => {
                    if mech != "PLAIN" {
                        self.err("Unsupported authentication mechanism.");
                        continue;
                    }
                    let response = match initial {
                        Some(r) => r,
                        None => {
                            self.out.extend_from_slice(b"+ \r\n");
                            if self.flush(&mut stream).await.is_err() {
                                return;
                            }
                            match tokio::time::timeout(timeout, reader.read_line(&mut stream)).await
                            {
                                Ok(Ok(Line::Line(l))) => l.to_vec(),
                                _ => return,
                            }
                        }
                    };
                    match decode_plain(&response) {
                        Ok(p) => p,
                        Err(e) => {
                            self.err(&format!("[AUTH] {e}."));
                            continue;
                        }
                    }
                }
                Ok(_) => {
                    self.err("Log in first.");
                    continue;
                }
            };
            match self.login(plain, &mut stream, &mut reader).await {
                Outcome::Continue => {}
                Outcome::Close => {
                    let _ = self.flush(&mut stream).await;
                    return;
                }
                Outcome::Spliced => return,
            }
        }
        self.out.extend_from_slice(b"-ERR Too many commands.\r\n");
        let _ = self.flush(&mut stream).await;
    }

    fn err(&mut self, why: &str) {
        self.out.extend_from_slice(b"-ERR ");
        self.out.extend_from_slice(why.as_bytes());
        self.out.extend_from_slice(b"\r\n");
    }

    fn capa(&mut self, plaintext_ok: bool, stream: &Stream) {
        self.out.extend_from_slice(
            b"+OK\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n",
        );
        if plaintext_ok {
            self.out.extend_from_slice(b"USER\r\nSASL PLAIN\r\n");
        }
        if self.tls.is_some() && !stream.is_tls() {
            self.out.extend_from_slice(b"STLS\r\n");
        }
        self.out
            .extend_from_slice(b"IMPLEMENTATION Tandem\r\n.\r\n");
    }

    async fn flush(&mut self, stream: &mut Stream) -> std::io::Result<()> {
        if !self.out.is_empty() {
            stream.write_all(&self.out).await?;
            self.out.clear();
        }
        stream.flush().await
    }

    async fn login(
        &mut self,
        plain: Plain,
        stream: &mut Stream,
        reader: &mut LineReader,
    ) -> Outcome {
        let fe = self.fe;
        let who = plain.authcid.clone();
        let account = match crate::login::check(fe, self.client, &self.session, &plain).await {
            Ok(a) => a,
            Err(refused) => {
                self.out.extend_from_slice(match refused {
                    Refused::Failed => b"-ERR [AUTH] Authentication failed.\r\n".as_slice(),
                    Refused::Suspended => b"-ERR [AUTH] Account is suspended.\r\n",
                    Refused::Unavailable => {
                        b"-ERR [SYS/TEMP] Temporary failure, try again later.\r\n"
                    }
                });
                if refused == Refused::Failed {
                    self.failures += 1;
                }
                return if self.failures >= 3 {
                    Outcome::Close
                } else {
                    Outcome::Continue
                };
            }
        };
        let routed = match fe
            .router
            .connect(&account, Service::Pop3, self.client)
            .await
        {
            Ok(r) => r,
            Err(e) => {
                fe.metrics.login("unavailable");
                tracing::warn!(user = %who, error = %e, "no backend for the account");
                self.out.extend_from_slice(
                    b"-ERR [SYS/TEMP] Mailbox unavailable, try again later.\r\n",
                );
                return Outcome::Continue;
            }
        };
        let node = routed.node;
        let mut backend = BufReader::new(routed.stream);
        if let Err(e) = self.backend_login(&mut backend, &account).await {
            fe.metrics.login("unavailable");
            tracing::error!(user = %who, node, error = %e, "backend login failed");
            self.out
                .extend_from_slice(b"-ERR [SYS/TEMP] Mailbox unavailable, try again later.\r\n");
            return Outcome::Continue;
        }
        fe.metrics.login("ok");
        tracing::info!(user = %account.address, node, client = %self.client, "logged in, proxying");
        self.out.extend_from_slice(b"+OK Logged in.\r\n");
        // Commands the client pipelined behind its login go to the backend.
        let pipelined = reader.release();
        if self.flush(stream).await.is_err() {
            return Outcome::Spliced;
        }
        self.out = Vec::new();
        let mut backend = backend.into_inner();
        if !pipelined.is_empty() && backend.write_all(&pipelined).await.is_err() {
            return Outcome::Spliced;
        }
        let goodbye = b"-ERR [SYS/TEMP] Server shutting down; please reconnect.\r\n";
        crate::splice::proxy(fe, stream, &mut backend, goodbye, &account.address, &node).await;
        Outcome::Spliced
    }

    /// Greeting, then AUTH PLAIN as the proxy identity on behalf of the user.
    async fn backend_login(
        &self,
        b: &mut BufReader<TcpStream>,
        account: &Account,
    ) -> std::io::Result<()> {
        let login = shared::upstream::ProxyLogin {
            identity: &self.fe.identity,
            secret: &self.fe.secret,
            user: account.address.as_str(),
            client: self.client,
            session: &self.session,
            timeout: self.fe.limits.connect_timeout,
        };
        shared::upstream::pop3(b, &login).await
    }
}
