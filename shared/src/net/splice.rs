//! Splicing a proxied session: after login, bytes go both ways untouched,
//! until either side closes (half-closes are passed on), fails, the session
//! has been silent in both directions for the idle timeout, or the drain
//! deadline passed. Used by the frontends and by a backend node that proxies
//! a session to the account's owner.
//!
//! At the drain deadline the client is told goodbye (`* BYE` / `-ERR`) if
//! the backend's last bytes ended a line and nothing moved for a moment, so
//! the goodbye cannot land inside a response; otherwise the connection is
//! just closed.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio_util::sync::CancellationToken;

/// Read buffer of an idle direction, and of one under bulk traffic: a
/// session holds 2 × [`SMALL`] while it waits (most of its life, IDLE
/// included), and grows a direction's buffer only while reads fill it.
const SMALL: usize = 2 * 1024;
const LARGE: usize = 16 * 1024;

/// How a splice ends when the proxy drains.
pub struct Drain<'a> {
    /// Cancelled at the drain deadline.
    pub deadline: &'a CancellationToken,
    /// What to tell the client then, e.g. `* BYE ...\r\n`.
    pub goodbye: &'a [u8],
}

/// A response boundary is assumed after this long without a byte.
const QUIET: Duration = Duration::from_millis(200);

/// Returns (client to backend, backend to client) bytes.
pub async fn splice<C, B>(
    client: &mut C,
    backend: &mut B,
    idle: Duration,
    drain: Drain<'_>,
) -> (u64, u64)
where
    C: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let start = Instant::now();
    let last = Arc::new(AtomicU64::new(0));
    let up = Arc::new(AtomicU64::new(0));
    let down = Arc::new(AtomicU64::new(0));
    let line_end = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let mut c = Counted {
        inner: client,
        bytes: up.clone(),
        last: last.clone(),
        start,
        line_end: None,
    };
    let mut b = Counted {
        inner: backend,
        bytes: down.clone(),
        last: last.clone(),
        start,
        line_end: Some(line_end.clone()),
    };
    // Boxed, so the drain can drop it and write to the client itself.
    let mut copy = Box::pin(bidirectional(&mut c, &mut b));
    loop {
        let quiet_for = start
            .elapsed()
            .saturating_sub(Duration::from_millis(last.load(Ordering::Relaxed)));
        let Some(left) = idle.checked_sub(quiet_for).filter(|d| !d.is_zero()) else {
            tracing::info!(?idle, "session idle; closing");
            break;
        };
        tokio::select! {
            r = &mut copy => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "session ended with an error");
                }
                break;
            }
            _ = tokio::time::sleep(left) => {}
            _ = drain.deadline.cancelled() => {
                // Wait (briefly) for a pause after a complete line.
                let until = Instant::now() + Duration::from_secs(2);
                while Instant::now() < until {
                    let quiet = start.elapsed().saturating_sub(Duration::from_millis(last.load(Ordering::Relaxed)));
                    if quiet >= QUIET && line_end.load(Ordering::Relaxed) {
                        drop(copy);
                        let _ = tokio::time::timeout(Duration::from_secs(1), client_goodbye(&mut c, drain.goodbye)).await;
                        tracing::info!("drain deadline: session closed with a goodbye");
                        return (up.load(Ordering::Relaxed), down.load(Ordering::Relaxed));
                    }
                    tokio::time::sleep(QUIET / 4).await;
                }
                tracing::info!("drain deadline: session closed mid-response");
                break;
            }
        }
    }
    (up.load(Ordering::Relaxed), down.load(Ordering::Relaxed))
}

/// Copies both ways until both sides have closed (each EOF is passed on
/// as a shutdown of the other side's write half) or either fails.
async fn bidirectional<A, B>(a: &mut A, b: &mut B) -> io::Result<()>
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let (ar, aw) = tokio::io::split(a);
    let (br, bw) = tokio::io::split(b);
    let up = pump(ar, bw);
    let down = pump(br, aw);
    tokio::pin!(up, down);
    let (mut up_done, mut down_done) = (false, false);
    while !(up_done && down_done) {
        tokio::select! {
            r = &mut up, if !up_done => {
                r?;
                up_done = true;
            }
            r = &mut down, if !down_done => {
                r?;
                down_done = true;
            }
        }
    }
    Ok(())
}

/// One direction: read what is there, write it all, repeat; on EOF shut the
/// writer down. The buffer is [`SMALL`] unless the last read filled it.
async fn pump<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(mut r: R, mut w: W) -> io::Result<()> {
    use tokio::io::AsyncReadExt;
    let mut buf: Vec<u8> = Vec::with_capacity(SMALL);
    loop {
        buf.clear();
        // Spare capacity is read into without being zeroed first.
        let n = r.read_buf(&mut buf).await?;
        if n == 0 {
            return w.shutdown().await;
        }
        w.write_all(&buf).await?;
        w.flush().await?;
        if n == buf.capacity() && n < LARGE {
            buf = Vec::with_capacity(LARGE);
        } else if n < SMALL && buf.capacity() > SMALL {
            // Traffic quieted: give the large buffer back.
            buf = Vec::with_capacity(SMALL);
        }
    }
}

async fn client_goodbye<C: AsyncWrite + Unpin>(
    c: &mut Counted<'_, C>,
    goodbye: &[u8],
) -> io::Result<()> {
    c.inner.write_all(goodbye).await?;
    c.inner.shutdown().await
}

/// Counts what is read from a stream and when it last moved. The work per
/// read is two relaxed atomic stores, never per byte.
struct Counted<'a, S> {
    inner: &'a mut S,
    bytes: Arc<AtomicU64>,
    /// Milliseconds after `start` of the last read in either direction.
    last: Arc<AtomicU64>,
    start: Instant,
    /// For the backend side: whether the last read ended with a newline
    /// (one byte looked at per read).
    line_end: Option<Arc<std::sync::atomic::AtomicBool>>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<'_, S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut *this.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            if let Some(l) = &this.line_end {
                l.store(buf.filled().last() == Some(&b'\n'), Ordering::Relaxed);
            }
            this.bytes.fetch_add(n as u64, Ordering::Relaxed);
            this.last
                .store(this.start.elapsed().as_millis() as u64, Ordering::Relaxed);
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<'_, S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().inner).poll_shutdown(cx)
    }
}
