//! After login, bytes go both ways untouched.

use std::time::Duration;

use shared::net::Stream;
use tokio::net::TcpStream;

/// Copies client <-> backend until either side closes (half-closes are
/// passed on) or fails. Returns (client to backend, backend to client) bytes.
///
/// `idle` is not enforced here yet: the backends' own idle timeouts end a
/// silent session, and their close ends the splice.
pub async fn both_ways(
    client: &mut Stream,
    backend: &mut TcpStream,
    _idle: Duration,
) -> (u64, u64) {
    match tokio::io::copy_bidirectional_with_sizes(client, backend, 16 * 1024, 16 * 1024).await {
        Ok(n) => n,
        Err(e) => {
            tracing::debug!(error = %e, "session ended with an error");
            (0, 0)
        }
    }
}
