//! Replies to a line-protocol client (SMTP, LMTP), queued and sent in one
//! write when the client's pipelined input runs dry (RFC 2920 §3.2): never
//! between pipelined commands, always before waiting for more.

use std::fmt;
use std::io;
use std::time::Duration;

use tokio::io::AsyncWrite;

use super::lines::LineReader;

pub struct Replies {
    out: Vec<u8>,
    /// A client that does not read its replies for this long is dropped.
    timeout: Duration,
}

impl Replies {
    pub fn new(timeout: Duration) -> Self {
        Replies {
            out: Vec::with_capacity(512),
            timeout,
        }
    }

    /// Queues one reply line; CRLF is added.
    pub fn line(&mut self, line: fmt::Arguments<'_>) {
        use std::io::Write;
        // Writing to a Vec cannot fail.
        let _ = self.out.write_fmt(line);
        self.out.extend_from_slice(b"\r\n");
    }

    /// Sends what is queued.
    pub async fn flush<S: AsyncWrite + Unpin>(&mut self, io: &mut S) -> io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        super::write_within(io, &self.out, self.timeout).await?;
        self.out.clear();
        Ok(())
    }

    /// Sends what is queued unless a whole pipelined command is already
    /// waiting in `reader`: its reply can go out with these.
    pub async fn flush_before_read<S: AsyncWrite + Unpin>(
        &mut self,
        reader: &LineReader,
        io: &mut S,
    ) -> io::Result<()> {
        if !self.out.is_empty() && !reader.buffered().contains(&b'\n') {
            self.flush(io).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn replies_wait_for_the_pipeline_to_drain() {
        let mut r = Replies::new(Duration::from_secs(1));
        let mut reader = LineReader::new(100);
        let mut input: &[u8] = b"NOOP\r\nNOOP\r\n";
        let mut out = Vec::new();
        reader.read_line(&mut input).await.unwrap();
        r.line(format_args!("250 {}", "Ok"));
        r.flush_before_read(&reader, &mut out).await.unwrap();
        assert!(out.is_empty(), "another command is waiting");
        reader.read_line(&mut input).await.unwrap();
        r.line(format_args!("250 Ok"));
        r.flush_before_read(&reader, &mut out).await.unwrap();
        assert_eq!(out, b"250 Ok\r\n250 Ok\r\n");
    }
}
