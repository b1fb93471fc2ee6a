//! A small async IMAP4rev1 client for benchmarks: tagged commands, responses
//! read as they stream in (literals `{n}` skipped by length, RFC 3501 §4.3),
//! and only what a benchmark checks kept: EXISTS, the FETCH count, SEARCH
//! numbers. The same client talks to Tandem and to Dovecot.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// What the untagged responses of one command said.
#[derive(Debug, Default)]
pub struct Summary {
    /// The last `* n EXISTS`.
    pub exists: Option<u32>,
    /// `* n FETCH` responses.
    pub fetches: usize,
    /// Numbers of `* SEARCH` responses.
    pub search: Vec<u32>,
    /// Bytes of the whole answer, literals included.
    pub bytes: u64,
}

pub struct Imap {
    r: BufReader<OwnedReadHalf>,
    w: OwnedWriteHalf,
    line: Vec<u8>,
    scratch: Vec<u8>,
    next_tag: u64,
    /// Longest wait for any one response line or literal.
    pub timeout: Duration,
}

impl Imap {
    /// Connects and reads the greeting.
    pub async fn connect(addr: SocketAddr) -> anyhow::Result<Imap> {
        let s = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connect {addr}"))?;
        s.set_nodelay(true)?;
        let (r, w) = s.into_split();
        let mut c = Imap {
            r: BufReader::with_capacity(256 * 1024, r),
            w,
            line: Vec::with_capacity(8192),
            scratch: Vec::new(),
            next_tag: 0,
            timeout: Duration::from_secs(60),
        };
        c.read_line().await?;
        if !c.line.starts_with(b"* OK") {
            bail!("greeting {:?}", String::from_utf8_lossy(&c.line));
        }
        Ok(c)
    }

    /// Connects, logs in and optionally selects a mailbox.
    pub async fn login(
        addr: SocketAddr,
        user: &str,
        password: &str,
        select: Option<&str>,
    ) -> anyhow::Result<Imap> {
        let mut c = Imap::connect(addr).await?;
        c.command(&format!("LOGIN \"{user}\" \"{password}\""))
            .await
            .with_context(|| format!("login {user}"))?;
        if let Some(m) = select {
            c.command(&format!("SELECT {m}")).await?;
        }
        Ok(c)
    }

    /// Sends `command` under a fresh tag and reads to its tagged OK.
    pub async fn command(&mut self, command: &str) -> anyhow::Result<Summary> {
        let tag = self.tag();
        self.w
            .write_all(format!("{tag} {command}\r\n").as_bytes())
            .await?;
        self.finish(&tag)
            .await
            .with_context(|| format!("{command:.60}"))
    }

    /// APPENDs `message` (CRLF line ends) to `mailbox` with a synchronizing
    /// literal: waits for the server's `+` before sending it.
    pub async fn append(&mut self, mailbox: &str, message: &[u8]) -> anyhow::Result<()> {
        let tag = self.tag();
        self.w
            .write_all(format!("{tag} APPEND {mailbox} {{{}}}\r\n", message.len()).as_bytes())
            .await?;
        self.read_line().await?;
        if !self.line.starts_with(b"+") {
            bail!("APPEND: {:?}", String::from_utf8_lossy(&self.line));
        }
        self.w.write_all(message).await?;
        self.w.write_all(b"\r\n").await?;
        self.finish(&tag).await.map(drop).context("APPEND")
    }

    /// LOGOUT, ignoring what follows.
    pub async fn logout(mut self) {
        let _ = self.command("LOGOUT").await;
    }

    fn tag(&mut self) -> String {
        self.next_tag += 1;
        format!("b{}", self.next_tag)
    }

    /// Reads untagged responses up to the tagged one, which must be OK.
    async fn finish(&mut self, tag: &str) -> anyhow::Result<Summary> {
        let mut s = Summary::default();
        loop {
            let n = self.read_response().await?;
            s.bytes += n;
            let l = &self.line;
            if let Some(rest) = l
                .strip_prefix(tag.as_bytes())
                .and_then(|r| r.strip_prefix(b" "))
            {
                if !rest.starts_with(b"OK") {
                    bail!("{}", String::from_utf8_lossy(l).trim_end());
                }
                return Ok(s);
            }
            let Some(rest) = l.strip_prefix(b"* ") else {
                continue;
            };
            if let Some(nums) = rest.strip_prefix(b"SEARCH") {
                s.search.extend(
                    String::from_utf8_lossy(nums)
                        .split_ascii_whitespace()
                        .filter_map(|w| w.parse::<u32>().ok()),
                );
                continue;
            }
            let mut words = rest.splitn(3, |&b| b == b' ');
            let (num, kind) = (words.next(), words.next());
            let num = num.and_then(|n| std::str::from_utf8(n).ok()?.parse::<u32>().ok());
            match (num, kind.map(|k| k.strip_suffix(b"\r\n").unwrap_or(k))) {
                (Some(n), Some(b"EXISTS")) => s.exists = Some(n),
                (Some(_), Some(b"FETCH")) => s.fetches += 1,
                (Some(_), Some(k)) if k.starts_with(b"FETCH") => s.fetches += 1,
                _ => {}
            }
        }
    }

    /// Reads one response: its first line stays in `self.line`, literal
    /// bytes and the lines after them are counted and dropped. Returns its
    /// size in bytes.
    async fn read_response(&mut self) -> anyhow::Result<u64> {
        let mut total = self.read_line().await? as u64;
        let mut pending = literal_len(&self.line);
        let mut cont = Vec::new();
        while let Some(n) = pending {
            self.scratch.resize(n, 0);
            tokio::time::timeout(self.timeout, self.r.read_exact(&mut self.scratch))
                .await
                .context("timed out in a literal")??;
            total += n as u64;
            cont.clear();
            let got = tokio::time::timeout(self.timeout, self.r.read_until(b'\n', &mut cont))
                .await
                .context("timed out after a literal")??;
            if got == 0 {
                bail!("connection closed after a literal");
            }
            total += got as u64;
            pending = literal_len(&cont);
        }
        Ok(total)
    }

    async fn read_line(&mut self) -> anyhow::Result<usize> {
        self.line.clear();
        let n = tokio::time::timeout(self.timeout, self.r.read_until(b'\n', &mut self.line))
            .await
            .context("timed out waiting for the server")??;
        if n == 0 {
            bail!("connection closed");
        }
        Ok(n)
    }
}

/// `n` if `line` ends with `{n}\r\n`.
fn literal_len(line: &[u8]) -> Option<usize> {
    let body = line.strip_suffix(b"}\r\n")?;
    let open = body.iter().rposition(|&b| b == b'{')?;
    std::str::from_utf8(&body[open + 1..]).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::literal_len;

    #[test]
    fn literals() {
        assert_eq!(literal_len(b"* 1 FETCH (BODY[] {12}\r\n"), Some(12));
        assert_eq!(literal_len(b"* 1 FETCH (X {}\r\n"), None);
        assert_eq!(literal_len(b"* OK done\r\n"), None);
        assert_eq!(literal_len(b"* 1 FETCH (ENVELOPE (\"a\" {3}\r\n"), Some(3));
    }
}
