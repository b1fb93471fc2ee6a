//! The logged-in part of a proxied session (the splice itself is
//! [`shared::net::splice`], shared with backend nodes proxying to an
//! account's owner).

use shared::net::Stream;
use shared::net::splice::{Drain, splice};
use tokio::net::TcpStream;

/// Splices until the session ends, then counts its bytes and logs it.
pub async fn proxy(
    fe: &crate::Frontend,
    client: &mut Stream,
    backend: &mut TcpStream,
    goodbye: &[u8],
    user: &shared::Address,
    node: &str,
) {
    let drain = Drain {
        deadline: &fe.drain_deadline,
        goodbye,
    };
    let (up, down) = splice(client, backend, fe.limits.idle_timeout, drain).await;
    fe.metrics.bytes(up, down);
    tracing::info!(%user, node, up, down, "session ended");
}
