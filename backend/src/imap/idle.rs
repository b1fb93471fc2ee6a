//! IDLE (RFC 2177): the client waits, the server tells it about changes as
//! they happen.
//!
//! Changes are found by the same sync every command does, run every
//! [`POLL`]: it costs two `stat`s of `new/` and `cur/` when nothing changed,
//! and it sees every writer alike (LMTP on this node, another session,
//! another program on the shared filesystem). A delivery is thus reported
//! within [`POLL`], under the one second the issue allows.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::codec::NextIdle;
use super::session::{Flow, Io, LOST, Session, Transport};
use crate::accounts::until_lost;

const POLL: Duration = Duration::from_millis(500);

impl Session<'_> {
    pub(super) async fn idle<S: Transport>(
        &mut self,
        tag: &str,
        io: &mut Io<S>,
        shutdown: &CancellationToken,
    ) -> Flow {
        self.refresh(true).await;
        self.out.extend_from_slice(b"+ idling\r\n");
        if self.flush(io).await.is_err() {
            return Flow::Close;
        }
        let deadline = tokio::time::Instant::now() + self.i.cfg.idle_timeout;
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let lost = self.lost_token();
        let lost = until_lost(lost);
        tokio::pin!(lost);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => {
                    self.out.extend_from_slice(b"* BYE Server shutting down.\r\n");
                    return Flow::Close;
                }
                _ = &mut lost => {
                    self.out.extend_from_slice(LOST);
                    return Flow::Close;
                }
                _ = tokio::time::sleep_until(deadline) => {
                    self.out.extend_from_slice(b"* BYE Disconnected for inactivity.\r\n");
                    return Flow::Close;
                }
                _ = tick.tick() => {
                    self.refresh(true).await;
                    if self.gone {
                        let _ = self.flush(io).await;
                        return Flow::Close;
                    }
                    if !self.out.is_empty() && self.flush(io).await.is_err() {
                        return Flow::Close;
                    }
                }
                next = io.reader.next_idle_done(&mut io.stream) => {
                    return match next {
                        Ok(NextIdle::Done) => self.ok(tag, "IDLE terminated."),
                        Ok(NextIdle::Bad) => self.bad(tag, "Expected DONE."),
                        Ok(NextIdle::Eof) | Err(_) => Flow::Close,
                    };
                }
            }
        }
    }
}
