//! A minimal IMAP (RFC 3501) and POP3 (RFC 1939) client for load: just the
//! commands the phases send, replies checked by status only, literals
//! (RFC 3501 §4.3) read by length so that bulk FETCH is counted exactly.

use std::net::SocketAddr;

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// Which protocol a target speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Imap,
    Pop3,
}

/// One connection, greeted.
pub struct Session {
    proto: Proto,
    r: BufReader<OwnedReadHalf>,
    w: OwnedWriteHalf,
    line: Vec<u8>,
    literal: Vec<u8>,
    tag: u32,
}

impl Session {
    /// Connects and reads the greeting (`* OK` or `+OK`).
    pub async fn connect(addr: SocketAddr, proto: Proto) -> anyhow::Result<Session> {
        let s = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connect {addr}"))?;
        s.set_nodelay(true)?;
        let (r, w) = s.into_split();
        let mut s = Session {
            proto,
            r: BufReader::with_capacity(64 * 1024, r),
            w,
            line: Vec::with_capacity(512),
            literal: Vec::new(),
            tag: 0,
        };
        s.read_line().await?;
        let want: &[u8] = match proto {
            Proto::Imap => b"* OK",
            Proto::Pop3 => b"+OK",
        };
        if !s.line.starts_with(want) {
            bail!("greeting {:?}", String::from_utf8_lossy(&s.line));
        }
        Ok(s)
    }

    /// IMAP `LOGIN` and `SELECT INBOX`, or POP3 `USER`/`PASS`/`STAT`:
    /// an authenticated session with its mailbox open.
    pub async fn login_select(&mut self, user: &str, password: &str) -> anyhow::Result<()> {
        match self.proto {
            Proto::Imap => {
                let login = format!("LOGIN {} {}", quote(user), quote(password));
                self.imap(&login)
                    .await
                    .with_context(|| format!("LOGIN {user}"))?;
                self.imap("SELECT INBOX").await.context("SELECT")?;
            }
            Proto::Pop3 => {
                // Pipelined: every server here accepts it (RFC 2449 PIPELINING
                // or not, the replies come back in order).
                let cmd = format!("USER {user}\r\nPASS {password}\r\nSTAT\r\n");
                self.w.write_all(cmd.as_bytes()).await?;
                for what in ["USER", "PASS", "STAT"] {
                    self.pop_ok()
                        .await
                        .with_context(|| format!("{what} {user}"))?;
                }
            }
        }
        Ok(())
    }

    /// `LOGOUT` or `QUIT`, answered, then the connection is closed.
    pub async fn logout(mut self) -> anyhow::Result<()> {
        match self.proto {
            Proto::Imap => {
                self.imap("LOGOUT").await?;
            }
            Proto::Pop3 => {
                self.w.write_all(b"QUIT\r\n").await?;
                self.pop_ok().await?;
            }
        }
        Ok(())
    }

    /// Sends one tagged IMAP command and reads to its tagged reply, which
    /// must be OK; the bytes of the reply (lines and literals).
    pub async fn imap(&mut self, command: &str) -> anyhow::Result<u64> {
        self.tag += 1;
        let tag = format!("t{}", self.tag);
        self.w
            .write_all(format!("{tag} {command}\r\n").as_bytes())
            .await?;
        let mut bytes = 0u64;
        loop {
            bytes += self.read_line().await? as u64;
            // A line may end in any number of literals; each is followed
            // by the rest of the line.
            while let Some(n) = literal_len(&self.line) {
                self.literal.resize(n, 0);
                self.r
                    .read_exact(&mut self.literal)
                    .await
                    .context("connection closed in a literal")?;
                bytes += n as u64;
                bytes += self.read_line().await? as u64;
            }
            let line = &self.line;
            if line.starts_with(tag.as_bytes()) && line.get(tag.len()) == Some(&b' ') {
                let status = &line[tag.len() + 1..];
                if !status.starts_with(b"OK") {
                    bail!("{command}: {}", String::from_utf8_lossy(line).trim_end());
                }
                return Ok(bytes);
            }
        }
    }

    async fn pop_ok(&mut self) -> anyhow::Result<()> {
        self.read_line().await?;
        if !self.line.starts_with(b"+OK") {
            bail!("{}", String::from_utf8_lossy(&self.line).trim_end());
        }
        Ok(())
    }

    /// One line into `self.line`, CRLF included; its length.
    async fn read_line(&mut self) -> anyhow::Result<usize> {
        self.line.clear();
        let n = self.r.read_until(b'\n', &mut self.line).await?;
        if n == 0 {
            bail!("connection closed by the server");
        }
        Ok(n)
    }
}

/// The length of the literal a line announces at its end: `{N}` or `{N+}`.
fn literal_len(line: &[u8]) -> Option<usize> {
    let line = line.strip_suffix(b"\r\n").or(line.strip_suffix(b"\n"))?;
    let line = line.strip_suffix(b"}")?;
    let open = line.iter().rposition(|&b| b == b'{')?;
    let digits = &line[open + 1..];
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// An IMAP quoted string (RFC 3501 §4.3).
fn quote(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            q.push('\\');
        }
        q.push(c);
    }
    q.push('"');
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_found_at_the_end_of_a_line_only() {
        assert_eq!(literal_len(b"* 1 FETCH (BODY[] {10240}\r\n"), Some(10240));
        assert_eq!(literal_len(b"* 1 FETCH (BODY[] {12+}\r\n"), Some(12));
        assert_eq!(literal_len(b"* OK {5} is not at the end\r\n"), None);
        assert_eq!(literal_len(b"t1 OK done\r\n"), None);
        assert_eq!(literal_len(b"* {x}\r\n"), None);
    }

    #[test]
    fn quoted_strings_escape_quotes_and_backslashes() {
        assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
    }
}
