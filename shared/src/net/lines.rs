//! Reading a line-based protocol (IMAP, POP3, SMTP, LMTP) with a bound.
//!
//! One buffer per connection, reused for every line: `read_line` hands out
//! a slice of it, so the hot path allocates nothing. A line longer than the
//! bound is skipped up to its end and reported as [`Line::TooLong`], so the
//! protocol can answer an error and go on reading, in step with the client.
//! After STARTTLS the protocol must [`LineReader::clear`] what was buffered
//! in plaintext (the STARTTLS injection attacks, CVE-2011-0411).

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt};

/// What [`LineReader::read_line`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Line<'a> {
    /// A line without its CRLF (or bare LF).
    Line(&'a [u8]),
    /// A line over the bound, skipped.
    TooLong,
    /// The peer closed the connection (a partial last line is dropped).
    Eof,
}

pub struct LineReader {
    buf: Vec<u8>,
    /// Unconsumed bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    max: usize,
}

impl LineReader {
    /// Lines of at most `max` bytes, CRLF excluded.
    pub fn new(max: usize) -> Self {
        LineReader {
            buf: vec![0; Self::initial(max)],
            start: 0,
            end: 0,
            max,
        }
    }

    fn initial(max: usize) -> usize {
        (max + 2).clamp(512, 8192)
    }

    /// Gives back what a body grew the buffer to, when nothing is pending:
    /// a session that sent one big message and idles keeps no more memory
    /// than one that sent none.
    pub fn shrink(&mut self) {
        let small = Self::initial(self.max);
        if self.buf.len() > small && self.start == self.end {
            self.buf = vec![0; small];
            self.clear();
        }
    }

    /// Changes the bound, e.g. for a message body after DATA.
    pub fn set_max(&mut self, max: usize) {
        self.max = max;
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// Bytes received but not yet consumed: a client that pipelines.
    pub fn buffered(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Takes what is buffered and frees the buffer: a proxy that is done
    /// reading lines keeps no memory for it while it splices.
    pub fn release(&mut self) -> Vec<u8> {
        let rest = self.buffered().to_vec();
        self.buf = Vec::new();
        self.clear();
        rest
    }

    /// Drops what is buffered (after STARTTLS).
    pub fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }

    /// The next line.
    pub async fn read_line<S: AsyncRead + Unpin>(&mut self, s: &mut S) -> io::Result<Line<'_>> {
        let mut scanned = 0; // bytes of the current line already searched
        let mut skipping = false;
        loop {
            let pending = &self.buf[self.start + scanned..self.end];
            if let Some(i) = memchr(b'\n', pending) {
                let nl = self.start + scanned + i;
                let line_start = self.start;
                self.start = nl + 1;
                if skipping {
                    return Ok(Line::TooLong);
                }
                let mut end = nl;
                if end > line_start && self.buf[end - 1] == b'\r' {
                    end -= 1;
                }
                if end - line_start > self.max {
                    return Ok(Line::TooLong);
                }
                return Ok(Line::Line(&self.buf[line_start..end]));
            }
            scanned = self.end - self.start;
            if scanned > self.max + 1 {
                // Over the bound and still no end: forget it, keep looking
                // for the newline that ends it.
                skipping = true;
                self.start = self.end;
                scanned = 0;
            }
            self.make_room();
            let n = s.read(&mut self.buf[self.end..]).await?;
            if n == 0 {
                return Ok(Line::Eof);
            }
            self.end += n;
        }
    }

    /// Reads exactly `out.len()` bytes (a literal or a BDAT chunk), buffered
    /// bytes first. Errors with `UnexpectedEof` when the peer closes early.
    pub async fn read_exact<S: AsyncRead + Unpin>(
        &mut self,
        s: &mut S,
        out: &mut [u8],
    ) -> io::Result<()> {
        let have = (self.end - self.start).min(out.len());
        out[..have].copy_from_slice(&self.buf[self.start..self.start + have]);
        self.start += have;
        if have < out.len() {
            s.read_exact(&mut out[have..]).await?;
        }
        Ok(())
    }

    /// Reads `n` bytes (a BDAT chunk) through `piece`, handing each part
    /// to `take`, so a chunk of any size costs one piece of memory. Each
    /// read waits at most `idle` (then `TimedOut`); the peer closing early
    /// is `UnexpectedEof`.
    pub async fn read_chunk<S: AsyncRead + Unpin>(
        &mut self,
        s: &mut S,
        mut n: u64,
        piece: &mut [u8],
        idle: std::time::Duration,
        mut take: impl FnMut(&[u8]),
    ) -> io::Result<()> {
        if piece.is_empty() && n > 0 {
            return Err(io::ErrorKind::InvalidInput.into());
        }
        while n > 0 {
            let len = usize::try_from(n).map_or(piece.len(), |n| n.min(piece.len()));
            let part = &mut piece[..len];
            match tokio::time::timeout(idle, self.read_exact(s, part)).await {
                Ok(r) => r?,
                Err(_) => return Err(io::ErrorKind::TimedOut.into()),
            }
            take(part);
            n -= len as u64;
        }
        Ok(())
    }

    /// The bytes buffered, reading more first when there are none; empty
    /// when the peer has closed. For a body read as a stream of bytes
    /// rather than lines (SMTP DATA): the caller [`consume`](Self::consume)s
    /// what it used. The buffer grows to `BODY_BUFFER` for it, once.
    pub async fn fill<S: AsyncRead + Unpin>(&mut self, s: &mut S) -> io::Result<&[u8]> {
        const BODY_BUFFER: usize = 64 << 10;
        if self.start == self.end {
            self.clear();
            if self.buf.len() < BODY_BUFFER {
                self.buf.resize(BODY_BUFFER, 0);
            }
            self.end = s.read(&mut self.buf).await?;
        }
        Ok(&self.buf[self.start..self.end])
    }

    /// Marks `n` bytes of what [`fill`](Self::fill) gave as used.
    pub fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
    }

    /// Moves unconsumed bytes to the front, and grows the buffer when a
    /// line in progress fills it (up to what `max` needs).
    fn make_room(&mut self) {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            let want = (self.buf.len() * 2)
                .min(self.max + 2)
                .max(self.buf.len() + 512);
            self.buf.resize(want, 0);
        }
    }
}

fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&b| b == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines(input: &[u8], max: usize) -> Vec<String> {
        let mut r = LineReader::new(max);
        let mut s = input;
        let mut out = vec![];
        loop {
            match r.read_line(&mut s).await.unwrap() {
                Line::Line(l) => out.push(String::from_utf8_lossy(l).into_owned()),
                Line::TooLong => out.push("<too long>".into()),
                Line::Eof => return out,
            }
        }
    }

    #[tokio::test]
    async fn table() {
        let cases: &[(&[u8], usize, &[&str])] = &[
            (b"a\r\nb\nc\r\n", 10, &["a", "b", "c"]),
            (b"\r\n\n", 10, &["", ""]),
            (b"partial", 10, &[]),
            (b"0123456789\r\nx\r\n", 10, &["0123456789", "x"]),
            (b"0123456789a\r\nx\r\n", 10, &["<too long>", "x"]),
            (b"a\rb\r\n", 10, &["a\rb"]),
        ];
        for (input, max, want) in cases {
            assert_eq!(lines(input, *max).await, *want, "{input:?}");
        }
    }

    #[tokio::test]
    async fn long_lines_are_skipped_in_step() {
        let mut input = vec![b'x'; 100_000];
        input.extend_from_slice(b"\r\nnext\r\n");
        assert_eq!(lines(&input, 1000).await, ["<too long>", "next"]);
        // A big bound grows the buffer instead.
        assert_eq!(lines(&input, 200_000).await.len(), 2);
    }

    #[tokio::test]
    async fn chunks_are_read_in_pieces() {
        let mut r = LineReader::new(100);
        let mut s: &[u8] = b"BDAT 10\r\n0123456789QUIT\r\n";
        assert_eq!(r.read_line(&mut s).await.unwrap(), Line::Line(b"BDAT 10"));
        let mut got = Vec::new();
        let mut piece = [0u8; 3];
        let idle = std::time::Duration::from_secs(1);
        r.read_chunk(&mut s, 10, &mut piece, idle, |p| got.push(p.to_vec()))
            .await
            .unwrap();
        assert_eq!(got.concat(), b"0123456789");
        assert_eq!(got.len(), 4);
        assert_eq!(r.read_line(&mut s).await.unwrap(), Line::Line(b"QUIT"));
        let e = r.read_chunk(&mut s, 5, &mut piece, idle, |_| {}).await;
        assert_eq!(e.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    }

    #[tokio::test]
    async fn fill_hands_out_buffered_bytes_then_reads() {
        let mut r = LineReader::new(100);
        let mut s: &[u8] = b"DATA\r\nbody\r\n.\r\nQUIT\r\n";
        assert_eq!(r.read_line(&mut s).await.unwrap(), Line::Line(b"DATA"));
        let got = r.fill(&mut s).await.unwrap().to_vec();
        assert_eq!(got, b"body\r\n.\r\nQUIT\r\n");
        r.consume(9);
        assert_eq!(r.read_line(&mut s).await.unwrap(), Line::Line(b"QUIT"));
        assert!(r.fill(&mut s).await.unwrap().is_empty(), "EOF");
        assert_eq!(r.buf.len(), 64 << 10);
        r.shrink();
        assert_eq!(r.buf.len(), 512);
    }

    #[tokio::test]
    async fn exact_reads_take_buffered_bytes_first() {
        let mut r = LineReader::new(100);
        let mut s: &[u8] = b"BDAT 5\r\nhello world\r\nQUIT\r\n";
        assert_eq!(r.read_line(&mut s).await.unwrap(), Line::Line(b"BDAT 5"));
        let mut chunk = [0u8; 5];
        r.read_exact(&mut s, &mut chunk).await.unwrap();
        assert_eq!(&chunk, b"hello");
        assert_eq!(r.read_line(&mut s).await.unwrap(), Line::Line(b" world"));
        assert_eq!(r.buffered(), b"QUIT\r\n");
        r.clear();
        assert_eq!(r.read_line(&mut s).await.unwrap(), Line::Eof);
    }
}
