//! After login, bytes go both ways untouched, until either side closes
//! (half-closes are passed on), fails, or the session has been silent in
//! both directions for the idle timeout.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use shared::net::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

const BUFFER: usize = 16 * 1024;

/// Returns (client to backend, backend to client) bytes.
pub async fn both_ways(client: &mut Stream, backend: &mut TcpStream, idle: Duration) -> (u64, u64) {
    let start = Instant::now();
    let last = Arc::new(AtomicU64::new(0));
    let up = Arc::new(AtomicU64::new(0));
    let down = Arc::new(AtomicU64::new(0));
    let mut c = Counted {
        inner: client,
        bytes: up.clone(),
        last: last.clone(),
        start,
    };
    let mut b = Counted {
        inner: backend,
        bytes: down.clone(),
        last: last.clone(),
        start,
    };
    let copy = tokio::io::copy_bidirectional_with_sizes(&mut c, &mut b, BUFFER, BUFFER);
    tokio::pin!(copy);
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
        }
    }
    (up.load(Ordering::Relaxed), down.load(Ordering::Relaxed))
}

/// Counts what is read from a stream and when it last moved. The work per
/// read is two relaxed atomic stores, never per byte.
struct Counted<'a, S> {
    inner: &'a mut S,
    bytes: Arc<AtomicU64>,
    /// Milliseconds after `start` of the last read in either direction.
    last: Arc<AtomicU64>,
    start: Instant,
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
