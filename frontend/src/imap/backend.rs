//! Logging in on the backend node on behalf of the user.

use std::net::SocketAddr;

use locator::Account;
use shared::upstream::{self, ProxyLogin};
use tokio::net::TcpStream;

use crate::Frontend;

/// Reads the greeting, sends ID (the client's address and our session id,
/// so one session can be followed across tiers), AUTHENTICATE PLAIN as the
/// proxy identity for the user, and returns the backend's capabilities.
pub async fn login(
    backend: &mut TcpStream,
    fe: &Frontend,
    account: &Account,
    client: SocketAddr,
    session: &str,
) -> std::io::Result<String> {
    let login = ProxyLogin {
        identity: &fe.identity,
        secret: &fe.secret,
        user: account.address.as_str(),
        client,
        session,
        timeout: fe.limits.connect_timeout,
    };
    upstream::imap(backend, &login).await
}
