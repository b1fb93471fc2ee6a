//! Logging in on a backend node on behalf of a user who already
//! authenticated elsewhere: the trusted proxy login (SASL PLAIN, authzid =
//! the user, authcid/password = the proxy identity and secret). Frontends
//! do it, and so does a backend node that proxies a session to the node
//! owning the account.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

use crate::sasl::encode_plain;

/// Who logs in, and for whom.
pub struct ProxyLogin<'a> {
    /// The proxy identity (a peer node adds `#peer`, see the backend's
    /// `auth`).
    pub identity: &'a str,
    pub secret: &'a [u8],
    pub user: &'a str,
    /// The client's address, passed on in IMAP ID.
    pub client: SocketAddr,
    /// The session id, passed on in IMAP ID so one session can be
    /// followed across tiers.
    pub session: &'a str,
    /// Time for each answer.
    pub timeout: Duration,
}

/// Reads one line within the timeout; an error if the peer closes, is
/// silent or sends a line over 64 KiB.
async fn next<S: AsyncRead + Unpin>(
    r: &mut BufReader<S>,
    line: &mut String,
    limit: Duration,
) -> std::io::Result<()> {
    line.clear();
    match tokio::time::timeout(limit, r.read_line(line)).await {
        Ok(Ok(0)) => Err(std::io::Error::other("backend closed the connection")),
        Ok(Ok(_)) if line.len() > 64 * 1024 => Err(std::io::Error::other("backend line too long")),
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(std::io::Error::other("backend did not answer")),
    }
}

/// IMAP: reads the greeting, sends ID (the client's address and the session
/// id) and AUTHENTICATE PLAIN; returns the backend's capabilities.
pub async fn imap<S: AsyncRead + AsyncWrite + Unpin>(
    backend: &mut S,
    login: &ProxyLogin<'_>,
) -> std::io::Result<String> {
    let limit = login.timeout;
    let mut r = BufReader::new(backend);
    let mut line = String::new();
    let fail = |what: String| std::io::Error::other(what);
    next(&mut r, &mut line, limit).await?;
    if !line.starts_with("* OK") {
        return Err(fail(format!("backend greeting {:?}", line.trim_end())));
    }
    let token = encode_plain(login.user, login.identity, login.secret);
    let request = format!(
        "T1 ID (\"x-originating-ip\" \"{}\" \"x-originating-port\" \"{}\" \"x-session-id\" \"{}\")\r\n\
         T2 AUTHENTICATE PLAIN {token}\r\n",
        login.client.ip(),
        login.client.port(),
        login.session,
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

/// POP3: reads the greeting, sends AUTH PLAIN.
pub async fn pop3<S: AsyncRead + AsyncWrite + Unpin>(
    backend: &mut S,
    login: &ProxyLogin<'_>,
) -> std::io::Result<()> {
    let mut r = BufReader::new(backend);
    let mut line = String::new();
    let ok = |line: &str| {
        if line.starts_with("+OK") {
            Ok(())
        } else {
            Err(std::io::Error::other(format!(
                "backend said {:?}",
                line.trim_end()
            )))
        }
    };
    next(&mut r, &mut line, login.timeout).await?;
    ok(&line)?;
    let token = encode_plain(login.user, login.identity, login.secret);
    r.get_mut()
        .write_all(format!("AUTH PLAIN {token}\r\n").as_bytes())
        .await?;
    next(&mut r, &mut line, login.timeout).await?;
    ok(&line)?;
    if !r.buffer().is_empty() {
        return Err(std::io::Error::other("backend sent more than asked for"));
    }
    Ok(())
}

/// The capability list of a `[CAPABILITY ...]` response code.
fn capability_code(line: &str) -> Option<String> {
    let start = line.find("[CAPABILITY ")? + "[CAPABILITY ".len();
    let end = line[start..].find(']')? + start;
    Some(line[start..end].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login() -> ProxyLogin<'static> {
        ProxyLogin {
            identity: "p",
            secret: b"s",
            user: "a@b.c",
            client: SocketAddr::from(([192, 0, 2, 1], 5)),
            session: "S1",
            timeout: Duration::from_secs(2),
        }
    }

    /// A backend that says `script` and then reads whatever comes.
    fn says(script: &'static [u8]) -> tokio::io::DuplexStream {
        let (ours, mut theirs) = tokio::io::duplex(4096);
        tokio::spawn(async move {
            theirs.write_all(script).await?;
            tokio::io::copy(&mut theirs, &mut tokio::io::sink()).await
        });
        ours
    }

    #[tokio::test]
    async fn imap_login_sends_id_and_plain_and_reads_capabilities() {
        let (mut ours, mut theirs) = tokio::io::duplex(4096);
        let server = tokio::spawn(async move {
            let mut r = BufReader::new(&mut theirs);
            r.get_mut().write_all(b"* OK hi\r\n").await.expect("greet");
            let mut l = String::new();
            r.read_line(&mut l).await.expect("id");
            assert!(
                l.contains("\"x-originating-ip\" \"192.0.2.1\"") && l.contains("\"S1\""),
                "{l}"
            );
            l.clear();
            r.read_line(&mut l).await.expect("auth");
            assert_eq!(l, "T2 AUTHENTICATE PLAIN YUBiLmMAcABz\r\n");
            r.get_mut()
                .write_all(b"T1 OK ID\r\nT2 OK [CAPABILITY IMAP4rev1 IDLE] ok\r\n")
                .await
                .expect("ok");
        });
        let caps = imap(&mut ours, &login()).await.expect("login");
        assert_eq!(caps, "IMAP4rev1 IDLE");
        server.await.expect("server");
        let mut ours = says(b"* OK hi\r\nT1 OK\r\nT2 NO no\r\n");
        let e = imap(&mut ours, &login()).await.expect_err("refused");
        assert!(e.to_string().contains("refused"), "{e}");
    }

    #[tokio::test]
    async fn pop3_login_needs_two_oks() {
        let mut ours = says(b"+OK hi\r\n+OK in\r\n");
        pop3(&mut ours, &login()).await.expect("login");
        let mut ours = says(b"+OK hi\r\n-ERR no\r\n");
        assert!(pop3(&mut ours, &login()).await.is_err());
    }
}
