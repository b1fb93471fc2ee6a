//! AUTH PLAIN and LOGIN (RFC 4954, RFC 4616, draft-murchison-sasl-login)
//! on the submission listeners, after TLS or from the trusted networks,
//! checked by [`crate::login::check`] with the same penalties as IMAP.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use shared::net::{Line, LineReader, Transport};
use shared::sasl::{MAX_PLAIN, Plain, decode_plain};

use super::Sink;
use shared::net::dialog::Stop;

use super::session::{MAX_AUTH_FAILURES, Next, Session};
use crate::login::Refused;

impl<Q: Sink> Session<'_, Q> {
    /// Whether AUTH may start now, and with which mechanism.
    pub(super) fn auth_command(&mut self, mechanism: &str, initial: Option<&str>) -> Next {
        if !self.kind.submission() {
            return self.error("503 5.5.1 AUTH not available on this port");
        }
        if self.helo.is_none() {
            return self.error("503 5.5.1 Send EHLO first");
        }
        if self.user.is_some() {
            return self.error("503 5.5.1 Already authenticated");
        }
        if self.tx.is_some() {
            return self.error("503 5.5.1 Mail transaction in progress");
        }
        if !self.auth_offered() {
            return self
                .error("538 5.7.11 Encryption required for requested authentication mechanism");
        }
        let plain = if mechanism.eq_ignore_ascii_case("PLAIN") {
            true
        } else if mechanism.eq_ignore_ascii_case("LOGIN") {
            false
        } else {
            return self.error("504 5.5.4 Unrecognized authentication type");
        };
        Next::Auth {
            plain,
            initial: initial.map(|s| s.as_bytes().to_vec()),
        }
    }

    /// The SASL exchange, then the check.
    pub(super) async fn auth<S: Transport>(
        &mut self,
        plain: bool,
        initial: Option<Vec<u8>>,
        reader: &mut LineReader,
        io: &mut S,
    ) -> Result<(), Stop> {
        let decoded = if plain {
            let response = match initial {
                // RFC 4954 §4: `=` is an empty initial response.
                Some(r) if r == b"=" => Vec::new(),
                Some(r) => r,
                None => match self.challenge("", reader, io).await? {
                    Some(r) => r,
                    None => return Ok(()),
                },
            };
            decode_plain(&response).ok()
        } else {
            let user = match initial {
                Some(r) => r,
                None => match self.challenge("VXNlcm5hbWU6", reader, io).await? {
                    Some(r) => r,
                    None => return Ok(()),
                },
            };
            let Some(password) = self.challenge("UGFzc3dvcmQ6", reader, io).await? else {
                return Ok(());
            };
            login(&user, &password)
        };
        let Some(creds) = decoded else {
            return self.fail("501 5.5.2 Cannot decode response");
        };
        let fe = self.smtp.fe.clone();
        match crate::login::check(&fe, self.client, &self.session, &creds).await {
            Ok(account) => {
                fe.metrics.login("ok");
                tracing::info!(user = %account.address, client = %self.client, session = %self.session, "authenticated");
                self.user = Some(account);
                self.reply(format_args!("235 2.7.0 Authentication successful"));
                Ok(())
            }
            Err(refused) => {
                match refused {
                    Refused::Failed => {
                        self.reply(format_args!("535 5.7.8 Authentication credentials invalid"))
                    }
                    Refused::Suspended => {
                        self.reply(format_args!("535 5.7.8 Account is suspended"))
                    }
                    Refused::Unavailable => {
                        self.reply(format_args!("454 4.7.0 Temporary authentication failure"))
                    }
                }
                self.auth_failures += 1;
                if self.auth_failures >= MAX_AUTH_FAILURES {
                    let hostname = self.host();
                    self.reply(format_args!(
                        "421 4.7.0 {hostname} Too many failed authentications, closing"
                    ));
                    return Err(Stop::Closed);
                }
                Ok(())
            }
        }
    }

    /// Sends `334 <challenge>` and reads the client's answer; `None` when
    /// the client cancelled or sent garbage (already answered).
    async fn challenge<S: Transport>(
        &mut self,
        challenge: &str,
        reader: &mut LineReader,
        io: &mut S,
    ) -> Result<Option<Vec<u8>>, Stop> {
        self.reply(format_args!("334 {challenge}"));
        self.flush(io).await?;
        let read = tokio::time::timeout(self.smtp.cfg.idle_timeout, reader.read_line(io)).await;
        let line = match read {
            Err(_) => {
                let host = self.host();
                self.out.idle_goodbye(host);
                return Err(Stop::Closed);
            }
            Ok(Err(e)) => return Err(Stop::Io(e)),
            Ok(Ok(Line::Eof)) => return Err(Stop::Eof),
            Ok(Ok(Line::TooLong)) => {
                self.fail("500 5.5.6 Authentication exchange line is too long")?;
                return Ok(None);
            }
            Ok(Ok(Line::Line(l))) => l.to_vec(),
        };
        if line == b"*" {
            self.fail("501 5.7.0 Authentication aborted")?;
            return Ok(None);
        }
        if line.len() > MAX_PLAIN {
            self.fail("500 5.5.6 Authentication exchange line is too long")?;
            return Ok(None);
        }
        Ok(Some(line))
    }

    /// A client mistake inside a command that reads more than its line.
    pub(super) fn fail(&mut self, line: &str) -> Result<(), Stop> {
        match self.error(line) {
            Next::Close => Err(Stop::Closed),
            _ => Ok(()),
        }
    }
}

/// LOGIN's two base64 answers to the PLAIN credentials they mean.
fn login(user: &[u8], password: &[u8]) -> Option<Plain> {
    let user = STANDARD.decode(user).ok()?;
    let password = STANDARD.decode(password).ok()?;
    Some(Plain {
        authzid: String::new(),
        authcid: String::from_utf8(user).ok()?,
        password,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_answers_decode() {
        let p = login(b"YWxpY2VAZXhhbXBsZS5jb20=", b"c2VjcmV0").unwrap();
        assert_eq!(
            (p.authcid.as_str(), p.password.as_slice()),
            ("alice@example.com", &b"secret"[..])
        );
        assert!(login(b"!!", b"c2VjcmV0").is_none());
        assert!(login(b"/w==", b"").is_none(), "not UTF-8");
    }
}
