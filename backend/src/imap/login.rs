//! The not-authenticated state (RFC 3501 §6.2): STARTTLS, LOGIN and
//! AUTHENTICATE PLAIN/LOGIN with SASL-IR (RFC 4959), including the
//! frontends' trusted proxy login; then the account is opened on this node.

use std::borrow::Cow;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use imap_codec::imap_types::auth::{AuthMechanism, AuthenticateData};
use imap_codec::imap_types::command::CommandBody;
use shared::sasl::{Plain, parse_plain};
use tokio_util::sync::CancellationToken;

use super::codec::NextAuth;
use super::session::{Flow, Io, Session, Transport};
use crate::accounts::OpenError;
use crate::auth::Login;
use crate::cluster::peer::Service;

impl Session<'_> {
    pub(super) async fn not_authenticated<S: Transport>(
        &mut self,
        tag: &str,
        body: CommandBody<'static>,
        io: &mut Io<S>,
        shutdown: &CancellationToken,
    ) -> Flow {
        let tls = io.stream.is_tls();
        let plaintext = self.i.node.auth.plaintext_allowed(self.peer, tls);
        match body {
            CommandBody::StartTLS if tls => self.bad(tag, "TLS is already active."),
            CommandBody::StartTLS if !self.tls_offered => {
                self.bad(tag, "STARTTLS is not available.")
            }
            CommandBody::StartTLS => {
                if io.reader.has_buffered() {
                    // RFC 7817 §3: nothing may follow STARTTLS in the clear.
                    self.bad(tag, "Commands pipelined after STARTTLS.");
                    return Flow::Close;
                }
                self.ok(tag, "Begin TLS negotiation now.");
                Flow::StartTls
            }
            CommandBody::Login { .. } | CommandBody::Authenticate { .. } if !plaintext => self.no(
                tag,
                "[PRIVACYREQUIRED] Plaintext authentication disallowed on non-secure connections.",
            ),
            CommandBody::Login { username, password } => {
                let plain = Plain {
                    authzid: String::new(),
                    authcid: String::from_utf8_lossy(username.as_ref()).into_owned(),
                    password: password.declassify().as_ref().to_vec(),
                };
                self.login(tag, plain).await
            }
            CommandBody::Authenticate {
                mechanism,
                initial_response,
            } => {
                let initial = initial_response.map(|r| r.declassify().to_vec());
                let plain = match mechanism {
                    AuthMechanism::Plain => {
                        let response = match initial {
                            Some(r) => r,
                            None => match self.challenge(tag, b"", io, shutdown).await {
                                Ok(r) => r,
                                Err(flow) => return flow,
                            },
                        };
                        match parse_plain(&response) {
                            Ok(p) => p,
                            Err(_) => return self.bad(tag, "Invalid PLAIN response."),
                        }
                    }
                    AuthMechanism::Login => {
                        // The LOGIN mechanism: username and password as two
                        // challenges (an initial response is the username).
                        let user = match initial {
                            Some(r) => r,
                            None => match self.challenge(tag, b"Username:", io, shutdown).await {
                                Ok(r) => r,
                                Err(flow) => return flow,
                            },
                        };
                        let password = match self.challenge(tag, b"Password:", io, shutdown).await {
                            Ok(r) => r,
                            Err(flow) => return flow,
                        };
                        Plain {
                            authzid: String::new(),
                            authcid: String::from_utf8_lossy(&user).into_owned(),
                            password,
                        }
                    }
                    _ => return self.no(tag, "Unsupported authentication mechanism."),
                };
                self.login(tag, plain).await
            }
            _ => self.bad(tag, "Log in first."),
        }
    }

    /// Logs in on the account's owner and answers as it did; the session
    /// is spliced there from now on.
    async fn proxy(&mut self, tag: &str, account: &shared::Address, owner: &str) -> Flow {
        let node = &self.i.node;
        let up = node
            .connect_owner(owner, Service::Imap, account, self.client, &self.id)
            .await;
        match up {
            Ok(up) => {
                self.i.metrics.login("ok");
                tracing::info!(user = %account, owner, client = %self.client, session = %self.id, "logged in on the owner; proxying");
                let text = format!("[CAPABILITY {}] Logged in", up.capabilities);
                self.upstream = Some(up);
                self.ok(tag, &text);
                Flow::Proxy
            }
            Err(e) => {
                self.i.metrics.login("unavailable");
                tracing::warn!(user = %account, owner, session = %self.id, error = %e, "cannot proxy to the owner");
                self.no(
                    tag,
                    "[UNAVAILABLE] Account temporarily unavailable; try again.",
                )
            }
        }
    }

    /// One SASL round: `+ base64(challenge)`, then the client's answer.
    async fn challenge<S: Transport>(
        &mut self,
        tag: &str,
        challenge: &[u8],
        io: &mut Io<S>,
        shutdown: &CancellationToken,
    ) -> Result<Vec<u8>, Flow> {
        self.out.extend_from_slice(b"+ ");
        self.out.extend_from_slice(B64.encode(challenge).as_bytes());
        self.out.extend_from_slice(b"\r\n");
        if self.flush(io).await.is_err() {
            return Err(Flow::Close);
        }
        let next = tokio::select! {
            _ = shutdown.cancelled() => return Err(Flow::Close),
            r = tokio::time::timeout(self.i.cfg.login_timeout, io.reader.next_authenticate(&mut io.stream)) => r,
        };
        match next {
            Ok(Ok(NextAuth::Data(AuthenticateData::Continue(data)))) => {
                Ok(data.declassify().to_vec())
            }
            Ok(Ok(NextAuth::Data(AuthenticateData::Cancel))) => {
                Err(self.bad(tag, "Authentication canceled."))
            }
            Ok(Ok(NextAuth::Bad)) => Err(self.bad(tag, "Invalid base64 data.")),
            _ => Err(Flow::Close),
        }
    }

    /// Checks the credentials and opens the account; answers the command.
    async fn login(&mut self, tag: &str, plain: Plain) -> Flow {
        let auth = &self.i.node.auth;
        let hop = auth.is_peer_hop(&plain);
        match auth.login(self.peer, &plain).await {
            Login::Ok(account) => match self.i.node.accounts.open(account).await {
                Ok(opened) => {
                    self.i.metrics.login("ok");
                    tracing::info!(
                        user = %opened.account.address,
                        client = %self.client,
                        session = %self.id,
                        "logged in"
                    );
                    self.user = Some(opened);
                    let caps = self.capabilities(true);
                    let text = format!("[CAPABILITY {caps}] Logged in");
                    self.ok(tag, &text)
                }
                Err(OpenError::NotOwner { account, node }) if !hop => {
                    self.proxy(tag, &account, &node).await
                }
                Err(e) => {
                    self.i.metrics.login("unavailable");
                    tracing::warn!(session = %self.id, error = %e, "account cannot be opened here");
                    let text: Cow<str> = match &e {
                        OpenError::NotOwner { .. } | OpenError::WrongCluster { .. } => {
                            "[UNAVAILABLE] Account is served elsewhere; try again.".into()
                        }
                        _ => "[UNAVAILABLE] Account temporarily unavailable.".into(),
                    };
                    self.no(tag, &text)
                }
            },
            Login::Failed => {
                self.i.metrics.login("failed");
                self.failures += 1;
                tracing::info!(user = %plain.authcid, client = %self.client, session = %self.id, "login failed");
                tokio::time::sleep(self.i.cfg.auth_failure_delay).await;
                self.no(tag, "[AUTHENTICATIONFAILED] Authentication failed.");
                if self.failures >= self.i.cfg.max_auth_failures {
                    self.out
                        .extend_from_slice(b"* BYE Too many failed logins.\r\n");
                    return Flow::Close;
                }
                Flow::Go
            }
            Login::Suspended => {
                self.i.metrics.login("suspended");
                self.no(tag, "[AUTHORIZATIONFAILED] Account is disabled.")
            }
            Login::Unavailable(why) => {
                self.i.metrics.login("unavailable");
                tracing::warn!(session = %self.id, %why, "login unavailable");
                self.no(
                    tag,
                    "[UNAVAILABLE] Authentication service unavailable; try again later.",
                )
            }
        }
    }
}
