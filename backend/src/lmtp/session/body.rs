//! The message of a transaction: DATA (RFC 5321 §4.1.1.4) and BDAT
//! (RFC 3030 §2) read off the connection, then handed to delivery.

use shared::net::LineReader;

use shared::smtp::data::{Chunks, DotReader, Form, Step};

use super::{KEEP_BODY, Next, Session, Stop, Transport};
use crate::lmtp::deliver::deliver;

impl Session<'_> {
    /// Waits for more of a message body, with the idle timeout.
    async fn body_bytes<'r, S: Transport>(
        &mut self,
        reader: &'r mut LineReader,
        io: &mut S,
    ) -> Result<&'r [u8], Stop> {
        self.flush(io).await?;
        match tokio::time::timeout(self.lmtp.cfg.idle_timeout, reader.fill(io)).await {
            Ok(Ok([])) => Err(Stop::Eof),
            Ok(r) => Ok(r?),
            Err(_) => {
                let host = self.host();
                self.out.idle_goodbye(host);
                Err(Stop::Closed)
            }
        }
    }

    /// Checks that a message may start (DATA or the first BDAT).
    fn body_allowed(&mut self) -> Result<(), &'static str> {
        match &self.tx {
            None => Err("503 5.5.1 Send MAIL first"),
            // RFC 2033 §4.2: DATA without a successful RCPT must fail with 503.
            Some(tx) if tx.rcpts.is_empty() => Err("503 5.5.1 No valid recipients"),
            Some(_) => Ok(()),
        }
    }

    pub(super) async fn data<S: Transport>(
        &mut self,
        reader: &mut LineReader,
        io: &mut S,
    ) -> Result<(), Stop> {
        if let Err(e) = self.body_allowed() {
            return self.after_error(e);
        }
        if self.tx.as_ref().is_some_and(|t| t.chunks.is_some()) {
            return self.after_error("503 5.5.1 DATA after BDAT");
        }
        self.reply(format_args!("354 Start mail input; end with <CRLF>.<CRLF>"));
        let max = self.lmtp.cfg.max_message_size;
        let mut dot = DotReader::new(max, Form::Lf);
        let mut body = std::mem::take(&mut self.body);
        body.clear();
        let r = loop {
            match self.body_bytes(reader, io).await {
                Ok(bytes) => match dot.feed(bytes, &mut body) {
                    Step::Done(n) => {
                        reader.consume(n);
                        break Ok(());
                    }
                    Step::More => {
                        let n = bytes.len();
                        reader.consume(n);
                    }
                },
                Err(e) => break Err(e),
            }
        };
        self.body = body;
        r?;
        self.lmtp.metrics.received_bytes.inc_by(dot.size());
        self.finish(dot.over(), dot.size()).await;
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
        let max = self.lmtp.cfg.max_message_size;
        let mut body = std::mem::take(&mut self.body);
        let mut chunks = match (&allowed, self.tx.as_mut()) {
            (Ok(()), Some(tx)) => Some(tx.chunks.take().unwrap_or_else(|| {
                body.clear();
                Chunks::new(max, Form::Lf)
            })),
            _ => None,
        };
        let idle = self.lmtp.cfg.idle_timeout;
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
            let host = self.host();
            return Err(Stop::from_read(e, &mut self.out, host));
        }
        self.body = body;
        self.lmtp.metrics.received_bytes.inc_by(size);
        let Some(mut chunks) = chunks else {
            let e = allowed
                .err()
                .unwrap_or("503 5.5.1 Bad sequence of commands");
            return self.after_error(e);
        };
        if last {
            chunks.finish(&mut self.body);
            self.finish(chunks.over(), chunks.size()).await;
            return Ok(());
        }
        if chunks.over() {
            self.reply(format_args!("552 5.3.4 Message too big for system"));
        } else {
            self.reply(format_args!("250 2.0.0 {size} octets received"));
        }
        if let Some(tx) = &mut self.tx {
            tx.chunks = Some(chunks);
        }
        Ok(())
    }

    fn after_error(&mut self, reply: &str) -> Result<(), Stop> {
        match self.error(reply) {
            Next::Close => Err(Stop::Closed),
            _ => Ok(()),
        }
    }

    /// Ends the transaction: delivers, or says why not, once per recipient.
    async fn finish(&mut self, over: bool, size: u64) {
        let Some(tx) = self.tx.take() else {
            return;
        };
        deliver(self, tx, over, size).await;
        if self.body.capacity() > KEEP_BODY {
            self.body = Vec::new();
        }
        self.body.clear();
    }
}
