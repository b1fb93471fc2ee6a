//! The AUTHORIZATION state (RFC 1939 §4, §7): USER/PASS, AUTH PLAIN
//! (RFC 5034) including the frontends' trusted proxy login, and STLS
//! (RFC 2595); then the maildrop is locked and its snapshot taken.

use shared::net::Line;
use shared::sasl::{Plain, SaslError, decode_plain};
use tokio_util::sync::CancellationToken;

use super::command::Command;
use super::maildrop::Maildrop;
use super::session::{Io, Next, Session, State, Transaction, Transport};
use crate::accounts::OpenError;
use crate::auth::Login;
use crate::cluster::peer::Service;

impl Session<'_> {
    pub(super) async fn authorization<S: Transport>(
        &mut self,
        cmd: Command,
        state: &mut State,
        io: &mut Io<S>,
        shutdown: &CancellationToken,
    ) -> Next {
        let tls = io.stream.is_tls();
        let plaintext = self.p.node.auth.plaintext_allowed(self.peer, tls);
        let State::Authorization { user } = state else {
            return self.err("Already logged in.");
        };
        match cmd {
            Command::Stls if tls => self.err("TLS is already active."),
            Command::Stls if !self.tls_offered => self.err("STLS is not available."),
            Command::Stls => {
                *user = None;
                self.ok("Begin TLS negotiation now.");
                Next::StartTls
            }
            Command::User(_) | Command::Pass(_) | Command::Auth(Some(_)) if !plaintext => {
                *user = None;
                if self.tls_offered {
                    self.err("[AUTH] Plaintext authentication disallowed on non-secure connections; use STLS first.")
                } else {
                    self.err(
                        "[AUTH] Plaintext authentication disallowed on non-secure connections.",
                    )
                }
            }
            Command::User(name) => {
                *user = Some(name);
                self.ok("")
            }
            Command::Pass(password) => match user.take() {
                None => self.err("No username given."),
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
                // RFC 5034 §4: AUTH alone lists the mechanisms.
                self.out.extend_from_slice(if plaintext {
                    b"+OK\r\nPLAIN\r\n.\r\n"
                } else {
                    b"+OK\r\n.\r\n"
                });
                Next::Go
            }
            Command::Auth(Some((mech, initial))) => {
                *user = None;
                if mech != "PLAIN" {
                    return self.err("Unsupported authentication mechanism.");
                }
                let response = match initial {
                    // RFC 5034 §4: "=" is an empty initial response.
                    Some(r) if r == b"=" => Vec::new(),
                    Some(r) => r,
                    None => match self.continuation(io, shutdown).await {
                        Ok(r) => r,
                        Err(next) => return next,
                    },
                };
                match decode_plain(&response) {
                    Ok(plain) => self.login(plain, state).await,
                    Err(SaslError::Cancelled) => self.err("Authentication aborted by client."),
                    Err(e) => self.err(&format!("[AUTH] {e}.")),
                }
            }
            _ => self.err("Not logged in yet."),
        }
    }

    /// Asks for the SASL response (`+ `) and reads it.
    async fn continuation<S: Transport>(
        &mut self,
        io: &mut Io<S>,
        shutdown: &CancellationToken,
    ) -> Result<Vec<u8>, Next> {
        self.out.extend_from_slice(b"+ \r\n");
        if self.flush(io).await.is_err() {
            return Err(Next::Close);
        }
        let idle = self.p.cfg.idle_timeout;
        tokio::select! {
            _ = shutdown.cancelled() => Err(Next::Close),
            r = tokio::time::timeout(idle, io.reader.read_line(&mut io.stream)) => match r {
                Ok(Ok(Line::Line(l))) => Ok(l.to_vec()),
                Ok(Ok(Line::TooLong)) => Err(self.err("[AUTH] Response too long.")),
                _ => Err(Next::Close),
            },
        }
    }

    /// Logs in on the account's owner; the session is spliced there.
    async fn proxy(&mut self, account: &shared::Address, owner: &str) -> Next {
        let node = &self.p.node;
        let up = node
            .connect_owner(owner, Service::Pop3, account, self.client, "")
            .await;
        match up {
            Ok(up) => {
                self.p.metrics.login("ok");
                tracing::info!(user = %account, owner, client = %self.client, result = "ok", "logged in on the owner; proxying");
                self.upstream = Some(up);
                self.ok("Logged in.");
                Next::Proxy
            }
            Err(e) => {
                self.p.metrics.login("unavailable");
                tracing::warn!(user = %account, owner, error = %e, "cannot proxy to the owner");
                self.err("[SYS/TEMP] Mailbox unavailable, try again later.")
            }
        }
    }

    /// Checks the credentials, then locks and snapshots the maildrop.
    async fn login(&mut self, plain: Plain, state: &mut State) -> Next {
        let node = &self.p.node;
        let m = &self.p.metrics;
        let who = plain.user().to_owned();
        let hop = node.auth.is_peer_hop(&plain);
        let client = self.client;
        let account = match node.auth.login(self.peer, &plain).await {
            Login::Ok(a) => a,
            Login::Failed => {
                m.login("failed");
                tracing::info!(user = %who, %client, result = "failed", "login failed");
                // Slows guessing down; costs the server nothing.
                tokio::time::sleep(self.p.cfg.auth_failure_delay).await;
                self.failures += 1;
                self.err("[AUTH] Authentication failed.");
                if self.failures >= self.p.cfg.max_auth_failures {
                    return Next::Close;
                }
                return Next::Go;
            }
            Login::Suspended => {
                // Only said to someone who knows the password.
                m.login("suspended");
                tracing::info!(user = %who, %client, result = "suspended", "login refused: account suspended");
                return self.err("[AUTH] Account is suspended.");
            }
            Login::Unavailable(why) => {
                m.login("unavailable");
                tracing::warn!(user = %who, %client, result = "unavailable", %why, "login unavailable");
                return self.err("[SYS/TEMP] Temporary authentication failure, try again later.");
            }
        };
        let opened = match node.accounts.open(account).await {
            Ok(o) => o,
            Err(OpenError::NotOwner {
                account,
                node: owner,
            }) if !hop => {
                return self.proxy(&account, &owner).await;
            }
            Err(e) => {
                m.login("unavailable");
                tracing::warn!(user = %who, %client, result = "unavailable", error = %e, "login unavailable");
                return if e.is_temporary() {
                    self.err("[SYS/TEMP] Mailbox unavailable, try again later.")
                } else {
                    self.err("[SYS/PERM] Mailbox unavailable.")
                };
            }
        };
        let Some(exclusive) = opened.try_exclusive() else {
            m.login("in_use");
            tracing::info!(user = %who, %client, result = "in_use", "login refused: maildrop in use");
            return self.err("[IN-USE] Mailbox is locked by another POP3 session.");
        };
        let drop = match Maildrop::open(&opened).await {
            Ok(d) => d,
            Err(e) => {
                m.login("unavailable");
                m.store_errors.inc();
                tracing::error!(user = %who, %client, result = "unavailable", error = %e, "cannot read INBOX");
                return self.err("[SYS/TEMP] Mailbox unavailable, try again later.");
            }
        };
        m.login("ok");
        let (messages, octets) = drop.stat();
        tracing::info!(user = %opened.account.address, %client, result = "ok", messages, octets, "logged in");
        *state = State::Transaction(Box::new(Transaction {
            opened,
            drop,
            _exclusive: exclusive,
        }));
        self.ok("Logged in.")
    }
}
