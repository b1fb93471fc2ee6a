//! A client connection that starts in plaintext and may switch to TLS
//! (implicit TLS at accept, or STARTTLS/STLS later in the session).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Stream {
    pub fn is_tls(&self) -> bool {
        matches!(self, Stream::Tls(_))
    }

    /// Runs the TLS handshake. The caller must have discarded any plaintext
    /// it read past the STARTTLS command (RFC 3207 §4.2 injection).
    pub async fn upgrade(self, acceptor: &TlsAcceptor) -> io::Result<Stream> {
        match self {
            Stream::Plain(tcp) => Ok(Stream::Tls(Box::new(acceptor.accept(tcp).await?))),
            Stream::Tls(_) => Err(io::Error::other("TLS is already active")),
        }
    }

    pub fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(t) => t,
            Stream::Tls(t) => t.get_ref().0,
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }
}

/// A byte stream that may be switched to TLS: what a protocol session runs
/// over, so it can be driven by the real connection or by a test pipe.
pub trait Transport: AsyncRead + AsyncWrite + Unpin + Send + Sized {
    fn is_tls(&self) -> bool;
    fn start_tls(
        self,
        acceptor: &TlsAcceptor,
    ) -> impl std::future::Future<Output = io::Result<Self>> + Send;
}

impl Transport for Stream {
    fn is_tls(&self) -> bool {
        Stream::is_tls(self)
    }

    async fn start_tls(self, acceptor: &TlsAcceptor) -> io::Result<Self> {
        self.upgrade(acceptor).await
    }
}

/// In-process pipes, for driving sessions in tests: never TLS.
impl Transport for tokio::io::DuplexStream {
    fn is_tls(&self) -> bool {
        false
    }

    async fn start_tls(self, _: &TlsAcceptor) -> io::Result<Self> {
        Err(io::Error::other("no TLS over a test pipe"))
    }
}

/// Writes `out` (when not empty) and flushes, giving up after `timeout`: a
/// client that does not read its answers must not hold a session forever.
pub async fn write_within<S: AsyncWrite + Unpin>(
    stream: &mut S,
    out: &[u8],
    timeout: std::time::Duration,
) -> io::Result<()> {
    use tokio::io::AsyncWriteExt;
    let write = async {
        if !out.is_empty() {
            stream.write_all(out).await?;
        }
        stream.flush().await
    };
    match tokio::time::timeout(timeout, write).await {
        Ok(r) => r,
        Err(_) => Err(io::ErrorKind::TimedOut.into()),
    }
}
