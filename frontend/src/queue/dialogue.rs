//! The client side of one SMTP or LMTP connection: write commands, read
//! replies ([`super::reply`]) with a timeout each. The LMTP and smarthost
//! clients differ only in their dialogue, never in how they read.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::reply::{self, Reply, ReplyError};

/// A byte stream: TCP, or TLS over it after STARTTLS.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Why a dialogue broke off; every one of them is temporary for the
/// recipients not yet answered.
#[derive(Debug, thiserror::Error)]
pub enum DialogueError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("no reply within {0:?}")]
    Timeout(Duration),
    #[error("connection closed by the server")]
    Closed,
    #[error("{0}")]
    Reply(#[from] ReplyError),
    /// The server said something the client cannot go on from.
    #[error("{0}")]
    Refused(String),
}

pub struct Dialogue {
    io: Box<dyn Io>,
    buf: Vec<u8>,
    timeout: Duration,
}

impl Dialogue {
    pub fn new(io: Box<dyn Io>, timeout: Duration) -> Self {
        Dialogue {
            io,
            buf: Vec::with_capacity(1024),
            timeout,
        }
    }

    /// Sends bytes as they are (commands end with CRLF).
    pub async fn send(&mut self, bytes: &[u8]) -> Result<(), DialogueError> {
        let write = async {
            self.io.write_all(bytes).await?;
            self.io.flush().await
        };
        match tokio::time::timeout(self.timeout, write).await {
            Ok(r) => Ok(r?),
            Err(_) => Err(DialogueError::Timeout(self.timeout)),
        }
    }

    /// The next complete reply.
    pub async fn read(&mut self) -> Result<Reply, DialogueError> {
        loop {
            if let Some((reply, used)) = reply::parse(&self.buf)? {
                self.buf.drain(..used);
                return Ok(reply);
            }
            let mut chunk = [0u8; 4096];
            let n = match tokio::time::timeout(self.timeout, self.io.read(&mut chunk)).await {
                Ok(r) => r?,
                Err(_) => return Err(DialogueError::Timeout(self.timeout)),
            };
            if n == 0 {
                return Err(DialogueError::Closed);
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Sends a command and reads its reply.
    pub async fn command(&mut self, line: &str) -> Result<Reply, DialogueError> {
        self.send(format!("{line}\r\n").as_bytes()).await?;
        self.read().await
    }

    /// Reads a reply that must be positive (greeting, EHLO, STARTTLS...).
    pub async fn expect(&mut self, what: &str, class: u16) -> Result<Reply, DialogueError> {
        let r = self.read().await?;
        if r.code / 100 != class {
            return Err(DialogueError::Refused(format!("{what}: {}", r.one_line())));
        }
        Ok(r)
    }

    /// Says goodbye without waiting long: the outcome is already known.
    pub async fn quit(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            let _ = self.send(b"QUIT\r\n").await;
            let _ = self.read().await;
            let _ = self.io.shutdown().await;
        })
        .await;
    }

    /// The stream, for STARTTLS: nothing may be buffered (RFC 3207 §6: a
    /// server that pipelined past its 220 is refused).
    pub fn into_io(self) -> Result<Box<dyn Io>, DialogueError> {
        if !self.buf.is_empty() {
            return Err(DialogueError::Refused(
                "data after the STARTTLS reply before the handshake".into(),
            ));
        }
        Ok(self.io)
    }
}
