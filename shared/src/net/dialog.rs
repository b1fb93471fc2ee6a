//! The plumbing of a line-protocol server session (SMTP, LMTP): replies
//! queued and sent in one write when the client's pipelined input runs dry
//! (RFC 2920 §3.2: never between pipelined commands, always before waiting
//! for more); the next command line, with the idle timeout and the
//! listener's shutdown; STARTTLS; why a session stops.

use std::fmt;
use std::io;
use std::time::Duration;

use tokio::io::AsyncWrite;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::lines::{Line, LineReader};
use super::stream::Transport;

/// Past this much queued, replies are sent even while more commands are
/// pipelined: a client that pipelines without end and never reads must not
/// grow our memory (writing then blocks on it, within the timeout).
const MAX_QUEUED: usize = 16 << 10;

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
    /// Queues the goodbye to a client silent for the idle timeout.
    pub fn idle_goodbye(&mut self, host: &str) {
        self.line(format_args!("421 4.4.2 {host} Idle timeout, closing"));
    }

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
        if self.out.len() >= MAX_QUEUED
            || (!self.out.is_empty() && !reader.buffered().contains(&b'\n'))
        {
            self.flush(io).await?;
        }
        Ok(())
    }
}

/// What waiting for the next command line gave.
pub enum Next<'a> {
    Line(&'a [u8]),
    /// Longer than the reader's bound (skipped, in step).
    TooLong,
    /// The listener is draining: say goodbye.
    Shutdown,
    /// Nothing for the idle timeout: say goodbye.
    Idle,
    /// The client left or the connection failed (logged): just return.
    Gone,
}

/// Flushes what the last commands answered (unless more are pipelined),
/// then reads the next command line.
pub async fn next_line<'r, S: Transport>(
    reader: &'r mut LineReader,
    io: &mut S,
    out: &mut Replies,
    idle: Duration,
    shutdown: &CancellationToken,
) -> Next<'r> {
    if let Err(e) = out.flush_before_read(reader, io).await {
        tracing::debug!(error = %e, "write failed");
        return Next::Gone;
    }
    let read = tokio::select! {
        biased;
        _ = shutdown.cancelled() => return Next::Shutdown,
        r = tokio::time::timeout(idle, reader.read_line(io)) => r,
    };
    match read {
        Err(_) => {
            tracing::info!("idle timeout");
            Next::Idle
        }
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "read failed");
            Next::Gone
        }
        Ok(Ok(Line::Eof)) => {
            tracing::debug!("client closed the connection");
            Next::Gone
        }
        Ok(Ok(Line::TooLong)) => Next::TooLong,
        Ok(Ok(Line::Line(l))) => Next::Line(l),
    }
}

/// Bytes a BDAT chunk is read in, through a scratch buffer the session
/// keeps (allocated on its first BDAT).
const CHUNK_PIECE: usize = 64 << 10;

/// Reads a `BDAT <size>` chunk (RFC 3030), always to its end so the session
/// stays in step; its bytes go to `body` through `chunks` when there is a
/// transaction that admits them, and are dropped otherwise.
pub async fn read_bdat<S: Transport>(
    reader: &mut LineReader,
    io: &mut S,
    size: u64,
    scratch: &mut Vec<u8>,
    idle: Duration,
    mut chunks: Option<&mut crate::smtp::data::Chunks>,
    body: &mut Vec<u8>,
) -> io::Result<()> {
    let keep = chunks.as_mut().is_some_and(|c| c.admit(size));
    if scratch.is_empty() {
        *scratch = vec![0; CHUNK_PIECE];
    }
    reader
        .read_chunk(io, size, scratch, idle, |piece| {
            if keep && let Some(c) = chunks.as_mut() {
                c.push(piece, body);
            }
        })
        .await
}

/// STARTTLS once its `220` is queued: sends it, drops whatever the client
/// pipelined in plaintext after the command (it must not be taken as said
/// over TLS: CVE-2011-0411), and does the handshake.
pub async fn start_tls<S: Transport>(
    mut io: S,
    out: &mut Replies,
    reader: &mut LineReader,
    acceptor: &TlsAcceptor,
) -> io::Result<S> {
    out.flush(&mut io).await?;
    reader.clear();
    io.start_tls(acceptor).await.inspect_err(|e| {
        tracing::info!(error = %e, "STARTTLS handshake failed");
    })
}

/// Why a session ends in the middle of a command.
#[derive(Debug)]
pub enum Stop {
    /// The client went away.
    Eof,
    /// Said goodbye (`421`) already: flush and close.
    Closed,
    Io(io::Error),
}

impl From<io::Error> for Stop {
    fn from(e: io::Error) -> Self {
        Stop::Io(e)
    }
}

impl Stop {
    /// A read that failed in the middle of a command (a body, a BDAT
    /// chunk): the client left, or went silent past the idle timeout (the
    /// goodbye is queued on `out`), or the connection failed.
    pub fn from_read(e: io::Error, out: &mut Replies, host: &str) -> Stop {
        match e.kind() {
            io::ErrorKind::UnexpectedEof => Stop::Eof,
            io::ErrorKind::TimedOut => {
                out.idle_goodbye(host);
                Stop::Closed
            }
            _ => Stop::Io(e),
        }
    }

    /// Logs the end; true when a goodbye is queued and should be sent.
    pub fn says_goodbye(&self) -> bool {
        match self {
            Stop::Closed => true,
            Stop::Eof => {
                tracing::debug!("client closed the connection");
                false
            }
            Stop::Io(e) => {
                tracing::debug!(error = %e, "connection failed");
                false
            }
        }
    }
}

/// Sends the goodbye and closes the connection, within `idle`.
pub async fn close<S: Transport>(mut io: S, out: &mut Replies, idle: Duration) {
    use tokio::io::AsyncWriteExt;
    if out.flush(&mut io).await.is_ok() {
        let _ = tokio::time::timeout(idle, io.shutdown()).await;
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
        // However much is pipelined, the queue is bounded.
        let many = "NOOP\r\n".repeat(10_000);
        let mut input = many.as_bytes();
        let mut reader = LineReader::new(100);
        let mut out = Vec::new();
        for _ in 0..10_000 {
            reader.read_line(&mut input).await.unwrap();
            r.line(format_args!("250 2.0.0 Ok"));
            r.flush_before_read(&reader, &mut out).await.unwrap();
            assert!(r.out.len() <= MAX_QUEUED + 100);
        }
        r.flush(&mut out).await.unwrap();
        assert_eq!(out.len(), 10_000 * 14);
    }
}
