//! Logging in on the backend node on behalf of the user.

use std::net::SocketAddr;

use locator::Account;
use shared::sasl::encode_plain;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
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
    let limit = fe.limits.connect_timeout;
    let mut r = BufReader::new(backend);
    let mut line = String::new();
    let fail = |what: String| std::io::Error::other(what);
    async fn next(
        r: &mut BufReader<&mut TcpStream>,
        line: &mut String,
        limit: std::time::Duration,
    ) -> std::io::Result<()> {
        line.clear();
        match tokio::time::timeout(limit, r.read_line(line)).await {
            Ok(Ok(0)) => Err(std::io::Error::other("backend closed the connection")),
            Ok(Ok(_)) if line.len() > 64 * 1024 => {
                Err(std::io::Error::other("backend line too long"))
            }
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(std::io::Error::other("backend did not answer")),
        }
    }
    next(&mut r, &mut line, limit).await?;
    if !line.starts_with("* OK") {
        return Err(fail(format!("backend greeting {:?}", line.trim_end())));
    }
    let token = encode_plain(account.address.as_str(), &fe.identity, &fe.secret);
    let request = format!(
        "T1 ID (\"x-originating-ip\" \"{}\" \"x-originating-port\" \"{}\" \"x-session-id\" \"{session}\")\r\n\
         T2 AUTHENTICATE PLAIN {token}\r\n",
        client.ip(),
        client.port(),
    );
    r.get_mut().write_all(request.as_bytes()).await?;
    let mut caps = None;
    loop {
        next(&mut r, &mut line, limit).await?;
        if let Some(c) = line.trim_end().strip_prefix("* CAPABILITY ") {
            caps = Some(c.to_owned());
        }
        if line.starts_with("T2 ") {
            if !line.starts_with("T2 OK") {
                return Err(fail(format!(
                    "backend refused the proxy login: {:?}",
                    line.trim_end()
                )));
            }
            if let Some(c) = capability_code(&line) {
                caps = Some(c);
            }
            break;
        }
    }
    if caps.is_none() {
        r.get_mut().write_all(b"T3 CAPABILITY\r\n").await?;
        loop {
            next(&mut r, &mut line, limit).await?;
            if let Some(c) = line.trim_end().strip_prefix("* CAPABILITY ") {
                caps = Some(c.to_owned());
            }
            if line.starts_with("T3 ") {
                break;
            }
        }
    }
    if !r.buffer().is_empty() {
        return Err(fail("backend sent more than asked for".into()));
    }
    Ok(caps.unwrap_or_else(|| "IMAP4rev1".into()))
}

/// The capability list of a `[CAPABILITY ...]` response code.
fn capability_code(line: &str) -> Option<String> {
    let start = line.find("[CAPABILITY ")? + "[CAPABILITY ".len();
    let end = line[start..].find(']')? + start;
    Some(line[start..end].to_owned())
}
