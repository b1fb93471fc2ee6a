//! The message of a transaction: DATA (RFC 5321 §4.1.1.4) and BDAT
//! (RFC 3030 §2) read off the connection in the strict CRLF form, then,
//! with our `Received:` on top, handed to the queue.
//!
//! What is refused, whole, after the end of the data (nothing of it is
//! delivered):
//! - over `max_message_size`: `552 5.3.4` (the rest is read and dropped,
//!   never buffered);
//! - a bare LF or bare CR: `550 5.6.0` (RFC 5321 §2.3.8). Only CRLF ends a
//!   line and only CRLF.CRLF ends DATA, so a bare LF cannot end the data
//!   here; refusing the message keeps a next hop that reads line ends
//!   differently from ever seeing one (SMTP smuggling, CVE-2023-51766);
//! - a NUL byte: `554 5.6.0`;
//! - a line over 64 KiB: `550 5.6.0`.

use shared::net::dialog::Stop;
use shared::net::{LineReader, Transport};
use shared::smtp::data::{Chunks, DotReader, Flaws, Form, Step};

use super::Sink;
use super::metrics::ListenerLabel;
use super::received::{self, Trace};
use super::session::Session;
use crate::queue::{Envelope, Refused};

/// BDAT chunks are read through a buffer of this size.
/// After a big message, keep at most this much body buffer for the next.
const KEEP_BODY: usize = 1 << 20;
/// The most MAIL's SIZE makes us allocate before the bytes arrive: a
/// client that only promises a big message must not cost that memory.
const MAX_SIZE_HINT: u64 = 4 << 20;
/// Room for our `Received:` header.
const HEADER_ROOM: usize = 512;

impl<Q: Sink> Session<'_, Q> {
    /// Checks that a message may start (DATA or the first BDAT).
    fn body_allowed(&self) -> Result<(), &'static str> {
        match &self.tx {
            None => Err("503 5.5.1 Send MAIL first"),
            // RFC 2920 §3.1: with no valid recipient, DATA fails (no 354).
            Some(tx) if tx.rcpts.is_empty() => Err("554 5.5.1 No valid recipients"),
            Some(_) => Ok(()),
        }
    }

    /// Starts the message buffer with our `Received:` header.
    fn start_body(&mut self) -> Vec<u8> {
        let mut body = std::mem::take(&mut self.body);
        body.clear();
        // One allocation for the whole message when the client said its size.
        let hint = self.tx.as_ref().and_then(|t| t.size_hint).unwrap_or(0);
        body.reserve(usize::try_from(hint.min(MAX_SIZE_HINT)).unwrap_or(0) + HEADER_ROOM);
        let date = shared::time::rfc5322(shared::time::now());
        received::write(
            &mut body,
            &Trace {
                helo: self.helo.as_deref().unwrap_or(""),
                client: self.client.ip(),
                hostname: self.host(),
                esmtp: self.esmtp,
                tls: self.tls,
                authenticated: self.user.is_some(),
                session: &self.session,
                date: &date,
            },
        );
        body
    }

    pub(super) async fn data<S: Transport>(
        &mut self,
        reader: &mut LineReader,
        io: &mut S,
    ) -> Result<(), Stop> {
        if let Err(e) = self.body_allowed() {
            return self.fail(e);
        }
        if self.tx.as_ref().is_some_and(|t| t.chunks.is_some()) {
            return self.fail("503 5.5.1 DATA after BDAT");
        }
        self.reply(format_args!("354 End data with <CR><LF>.<CR><LF>"));
        let mut dot = DotReader::new(self.smtp.cfg.max_message_size, Form::Crlf);
        let mut body = self.start_body();
        let idle = self.smtp.cfg.idle_timeout;
        let r = loop {
            if let Err(e) = self.flush(io).await {
                break Err(Stop::Io(e));
            }
            let bytes = match tokio::time::timeout(idle, reader.fill(io)).await {
                Ok(Ok([])) => break Err(Stop::Eof),
                Ok(Ok(b)) => b,
                Ok(Err(e)) => break Err(Stop::Io(e)),
                Err(_) => {
                    let host = self.host();
                    self.out.idle_goodbye(host);
                    break Err(Stop::Closed);
                }
            };
            let n = bytes.len();
            match dot.feed(bytes, &mut body) {
                Step::Done(used) => {
                    reader.consume(used);
                    break Ok(());
                }
                Step::More => reader.consume(n),
            }
        };
        self.body = body;
        r?;
        reader.shrink();
        self.finish(dot.over(), dot.flaws(), dot.size()).await;
        Ok(())
    }

    pub(super) async fn bdat<S: Transport>(
        &mut self,
        size: u64,
        last: bool,
        reader: &mut LineReader,
        io: &mut S,
    ) -> Result<(), Stop> {
        let allowed = self.body_allowed();
        let max = self.smtp.cfg.max_message_size;
        let first = self.tx.as_ref().is_some_and(|t| t.chunks.is_none());
        let mut body = if allowed.is_ok() && first {
            self.start_body()
        } else {
            std::mem::take(&mut self.body)
        };
        let mut chunks = match (&allowed, self.tx.as_mut()) {
            (Ok(()), Some(tx)) => Some(
                tx.chunks
                    .take()
                    .unwrap_or_else(|| Chunks::new(max, Form::Crlf)),
            ),
            _ => None,
        };
        let idle = self.smtp.cfg.idle_timeout;
        let read = shared::net::dialog::read_bdat(
            reader,
            io,
            size,
            &mut self.scratch,
            idle,
            chunks.as_mut(),
            &mut body,
        )
        .await;
        if let Err(e) = read {
            self.body = body;
            let host = self.host();
            return Err(Stop::from_read(e, &mut self.out, host));
        }
        self.body = body;
        let Some(mut chunks) = chunks else {
            let e = allowed
                .err()
                .unwrap_or("503 5.5.1 Bad sequence of commands");
            return self.fail(e);
        };
        if last {
            chunks.finish(&mut self.body);
            self.finish(chunks.over(), chunks.flaws(), chunks.size())
                .await;
            return Ok(());
        }
        if chunks.over() {
            self.reply(format_args!(
                "552 5.3.4 Message size exceeds fixed maximum message size"
            ));
        } else {
            self.reply(format_args!("250 2.0.0 {size} octets received"));
        }
        if let Some(tx) = &mut self.tx {
            tx.chunks = Some(chunks);
        }
        Ok(())
    }

    /// Ends the transaction: refuses the message or hands it to the queue,
    /// and answers the client either way.
    async fn finish(&mut self, over: bool, flaws: Flaws, size: u64) {
        let Some(tx) = self.tx.take() else {
            return;
        };
        let listener = self.kind.name();
        self.smtp
            .metrics
            .received_bytes
            .get_or_create(&ListenerLabel { listener })
            .inc_by(size);
        let refusal = if over {
            Some((
                "too_big",
                "552 5.3.4 Message size exceeds fixed maximum message size",
            ))
        } else if flaws.bare_lf || flaws.bare_cr {
            Some((
                "bare_line_end",
                "550 5.6.0 Message contains bare CR or LF characters; SMTP requires CRLF line ends (RFC 5321 section 2.3.8)",
            ))
        } else if flaws.nul {
            Some(("nul", "554 5.6.0 Message contains NUL characters"))
        } else if flaws.long_line {
            Some((
                "long_line",
                "550 5.6.0 Message has a line longer than 65536 bytes",
            ))
        } else {
            None
        };
        if let Some((label, reply)) = refusal {
            self.smtp.metrics.message(listener, label);
            tracing::info!(session = %self.session, sender = %tx.sender, size, reason = label, "message refused");
            self.reply(format_args!("{reply}"));
            self.recycle_body();
            return;
        }
        let envelope = Envelope {
            session: self.session.clone(),
            sender: tx.sender,
            recipients: tx.rcpts,
            eight_bit: tx.eight_bit,
            smtputf8: false,
        };
        let (sender, rcpts) = (envelope.sender.clone(), envelope.recipients.len());
        // The queue keeps the message; the next one starts a new buffer.
        let message = std::mem::take(&mut self.body);
        match self.smtp.queue.accept(envelope, message).await {
            Ok(accepted) => {
                self.smtp.metrics.message(listener, "accepted");
                tracing::info!(
                    session = %self.session,
                    queue_id = %accepted.id,
                    %sender,
                    rcpts,
                    size,
                    client = %self.client,
                    "message accepted"
                );
                self.reply(format_args!("250 2.0.0 Ok: queued as {}", accepted.id));
            }
            Err(Refused::Permanent(reply)) => {
                self.smtp.metrics.message(listener, "refused");
                tracing::info!(session = %self.session, %sender, %reply, "message refused by every recipient");
                self.reply(format_args!("{}", permanent(&reply)));
            }
            Err(Refused::Temporary(why)) => {
                self.smtp.metrics.message(listener, "unavailable");
                tracing::warn!(session = %self.session, %sender, reason = %why, "queue could not take the message");
                self.reply(format_args!("451 4.3.0 Temporary failure, try again later"));
            }
        }
    }

    /// What a failed read of the body means for the session.
    fn recycle_body(&mut self) {
        if self.body.capacity() > KEEP_BODY {
            self.body = Vec::new();
        }
        self.body.clear();
    }
}

/// The queue's permanent reply as one well-formed SMTP line.
fn permanent(reply: &str) -> String {
    let line = reply.lines().next().unwrap_or("").trim();
    if line.len() > 4 && line.starts_with('5') && line.as_bytes()[3] == b' ' {
        line.to_owned()
    } else {
        format!("554 5.0.0 {line}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permanent_replies_are_one_5xx_line() {
        assert_eq!(
            permanent("550 5.1.1 <a@b>: User unknown"),
            "550 5.1.1 <a@b>: User unknown"
        );
        assert_eq!(permanent("550 5.1.1 x\r\n550 y"), "550 5.1.1 x");
        assert_eq!(permanent("mailbox gone"), "554 5.0.0 mailbox gone");
        assert_eq!(permanent("451 4.0.0 later"), "554 5.0.0 451 4.0.0 later");
    }
}
