//! The message body (RFC 5321 §4.1.1.4 DATA, §4.5.2 transparency; RFC 3030
//! BDAT) into the form the store keeps, and the header block prepended to
//! each recipient's copy (RFC 5321 §4.4).
//!
//! Sans-I/O: the session feeds lines (DATA) or raw chunks (BDAT) in; bodies
//! come out with LF line ends, the way the Maildir holds them. Sizes are
//! counted as they travelled, with CRLF, which is what SIZE promises.

use std::io::Write;
use std::net::IpAddr;

/// Reads a DATA body line by line: dot-unstuffing, CRLF (or bare LF) to LF,
/// the size limit.
#[derive(Debug)]
pub struct DotReader {
    max: u64,
    size: u64,
    over: bool,
}

/// What a DATA line was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    More,
    /// The terminating `.` line.
    Done,
}

impl DotReader {
    pub fn new(max: u64) -> Self {
        DotReader {
            max,
            size: 0,
            over: false,
        }
    }

    /// One line without its line end. Past the limit nothing more is kept,
    /// but reading goes on to the end so the client can be answered in step.
    pub fn line(&mut self, line: &[u8], body: &mut Vec<u8>) -> Step {
        let line = match line {
            b"." => return Step::Done,
            [b'.', rest @ ..] => rest,
            _ => line,
        };
        self.size = self.size.saturating_add(line.len() as u64 + 2);
        if self.size > self.max {
            self.over = true;
        }
        if !self.over {
            body.extend_from_slice(line);
            body.push(b'\n');
        }
        Step::More
    }

    /// A line too long to buffer was skipped: it can only be over the limit
    /// (the line bound during DATA is the message size limit).
    pub fn skipped(&mut self) {
        self.over = true;
    }

    pub fn over(&self) -> bool {
        self.over
    }

    /// Bytes received so far, with CRLF line ends and before unstuffing.
    pub fn size(&self) -> u64 {
        self.size
    }
}

/// Collects BDAT chunks: taken as they are (no dot-stuffing in BDAT), with
/// CRLF to LF, including a CRLF split across two chunks.
#[derive(Debug)]
pub struct Chunks {
    max: u64,
    size: u64,
    over: bool,
    /// The previous chunk ended in CR, not yet written.
    cr: bool,
}

impl Chunks {
    pub fn new(max: u64) -> Self {
        Chunks {
            max,
            size: 0,
            over: false,
            cr: false,
        }
    }

    /// Counts a chunk about to be read; false when it takes the message past
    /// the limit (its bytes must then be read and dropped).
    pub fn admit(&mut self, n: u64) -> bool {
        self.size = self.size.saturating_add(n);
        if self.size > self.max {
            self.over = true;
        }
        !self.over
    }

    /// Appends part of an admitted chunk.
    pub fn push(&mut self, bytes: &[u8], body: &mut Vec<u8>) {
        if self.over || bytes.is_empty() {
            return;
        }
        let mut rest = bytes;
        if std::mem::take(&mut self.cr) && rest.first() != Some(&b'\n') {
            body.push(b'\r');
        }
        if let [head @ .., b'\r'] = rest {
            self.cr = true;
            rest = head;
        }
        let mut start = 0;
        for i in memchr_iter(b'\n', rest) {
            let end = if i > 0 && rest[i - 1] == b'\r' {
                i - 1
            } else {
                i
            };
            body.extend_from_slice(&rest[start..end]);
            body.push(b'\n');
            start = i + 1;
        }
        body.extend_from_slice(&rest[start..]);
    }

    /// After the LAST chunk: a trailing CR is kept as it is.
    pub fn finish(&mut self, body: &mut Vec<u8>) {
        if std::mem::take(&mut self.cr) && !self.over {
            body.push(b'\r');
        }
    }

    pub fn over(&self) -> bool {
        self.over
    }

    pub fn size(&self) -> u64 {
        self.size
    }
}

fn memchr_iter(needle: u8, hay: &[u8]) -> impl Iterator<Item = usize> + '_ {
    hay.iter()
        .enumerate()
        .filter_map(move |(i, &b)| (b == needle).then_some(i))
}

/// What a recipient's header block says about the transaction.
#[derive(Debug, Clone, Copy)]
pub struct Trace<'a> {
    /// The reverse path, empty for the null sender.
    pub sender: &'a str,
    /// The name the client gave in LHLO.
    pub lhlo: &'a str,
    pub client: IpAddr,
    /// This node's host name.
    pub hostname: &'a str,
    /// The session id, to find the transaction in the logs.
    pub session: &'a str,
    /// Whether the message came over TLS (`with LMTPS`, RFC 3848).
    pub tls: bool,
    /// RFC 5322 date of receipt.
    pub date: &'a str,
}

/// Writes `Return-Path`, `Delivered-To` and `Received` for one recipient
/// (LF line ends, folded), into `out` after clearing it.
pub fn header_block(out: &mut Vec<u8>, t: &Trace<'_>, recipient: &str) {
    out.clear();
    let client = match t.client {
        IpAddr::V4(ip) => format!("{ip}"),
        IpAddr::V6(ip) => match ip.to_ipv4_mapped() {
            Some(v4) => format!("{v4}"),
            None => format!("IPv6:{ip}"),
        },
    };
    // Writing to a Vec cannot fail.
    let _ = write!(
        out,
        "Return-Path: <{}>\nDelivered-To: {}\nReceived: from {} ([{client}])\n\tby {} (Tandem) with {} id {};\n\t{}\n",
        t.sender,
        recipient,
        Printable(t.lhlo),
        Printable(t.hostname),
        if t.tls { "LMTPS" } else { "LMTP" },
        Printable(t.session),
        t.date,
    );
}

/// Text that came from a client, made safe for a header: printable ASCII
/// only (the parser already refuses the rest; this is the second fence).
struct Printable<'a>(&'a str);

impl std::fmt::Display for Printable<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use std::fmt::Write as _;
        for c in self.0.chars() {
            f.write_char(if c.is_ascii_graphic() { c } else { '?' })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dot(lines: &[&[u8]], max: u64) -> (Vec<u8>, bool, bool, u64) {
        let mut r = DotReader::new(max);
        let mut body = Vec::new();
        let mut done = false;
        for l in lines {
            assert!(!done, "line after the end");
            done = r.line(l, &mut body) == Step::Done;
        }
        (body, done, r.over(), r.size())
    }

    /// Lines fed, the body kept, whether the `.` line was seen.
    type DotCase<'a> = (&'a [&'a [u8]], &'a [u8], bool);

    #[test]
    fn dot_unstuffing_table() {
        let cases: &[DotCase<'_>] = &[
            (&[b"."], b"", true),
            (&[b"a", b"b", b"."], b"a\nb\n", true),
            (&[b"..", b"."], b".\n", true),
            (&[b"..x", b"...", b"."], b".x\n..\n", true),
            (&[b"", b"", b"."], b"\n\n", true),
            (&[b" .", b".", b"x"], b" .\n", true),
            (&[b"a\rb", b"."], b"a\rb\n", true),
            (&[b"\0\xff", b"."], b"\0\xff\n", true),
            (&[b"no end"], b"no end\n", false),
        ];
        for (lines, want, done) in cases {
            // Lines after `.` must not be fed; stop there.
            let n = lines
                .iter()
                .position(|l| *l == b".")
                .map_or(lines.len(), |i| i + 1);
            let (body, d, over, _) = dot(&lines[..n], 1000);
            assert_eq!(body, *want, "{lines:?}");
            assert_eq!(d, *done, "{lines:?}");
            assert!(!over);
        }
    }

    #[test]
    fn dot_size_limit_counts_crlf_and_keeps_reading() {
        // "12345678\r\n" is 10 bytes on the wire.
        let (body, done, over, size) = dot(&[b"12345678", b"."], 10);
        assert_eq!(
            (body.as_slice(), done, over, size),
            (&b"12345678\n"[..], true, false, 10)
        );
        let (body, done, over, size) = dot(&[b"12345678", b"9", b"."], 10);
        assert_eq!((body.len(), done, over, size), (9, true, true, 13));
        let mut r = DotReader::new(100);
        r.skipped();
        assert!(r.over());
    }

    fn chunks(parts: &[&[u8]], max: u64) -> (Vec<u8>, bool) {
        let mut c = Chunks::new(max);
        let mut body = Vec::new();
        for p in parts {
            if c.admit(p.len() as u64) {
                c.push(p, &mut body);
            }
        }
        c.finish(&mut body);
        (body, c.over())
    }

    #[test]
    fn chunks_convert_crlf_across_boundaries() {
        let cases: &[(&[&[u8]], &[u8])] = &[
            (&[b"a\r\nb\r\n"], b"a\nb\n"),
            (&[b"a\r", b"\nb"], b"a\nb"),
            (&[b"a\r", b"b\r\n"], b"a\rb\n"),
            (&[b"a\r", b"", b"\n"], b"a\n"),
            (&[b"a\r"], b"a\r"),
            (&[b".\r\n..\r\n"], b".\n..\n"),
            (&[b"a\nb\n"], b"a\nb\n"),
            (&[b"\r\r\n"], b"\r\n"),
            (&[b""], b""),
        ];
        for (parts, want) in cases {
            assert_eq!(chunks(parts, 100).0, *want, "{parts:?}");
        }
        // Split at every point gives the same body.
        let whole: &[u8] = b"H: v\r\n\r\nline\r\n.dot\r\n\r\r\nend";
        let want = chunks(&[whole], 100).0;
        for i in 0..=whole.len() {
            for j in i..=whole.len() {
                let got = chunks(&[&whole[..i], &whole[i..j], &whole[j..]], 100).0;
                assert_eq!(got, want, "split at {i},{j}");
            }
        }
    }

    #[test]
    fn chunks_over_the_limit_keep_nothing_more() {
        let (body, over) = chunks(&[b"12345", b"67890", b"x"], 10);
        assert!(over);
        assert_eq!(body, b"1234567890");
        let (_, over) = chunks(&[b"12345", b"67890"], 10);
        assert!(!over);
    }

    #[test]
    fn header_block_is_folded_and_safe() {
        let mut out = b"stale".to_vec();
        let t = Trace {
            sender: "a@b.c",
            lhlo: "mx\x01.example",
            client: "::ffff:10.0.0.1".parse().unwrap(),
            hostname: "backend.test",
            session: "abcdefghijkl",
            tls: false,
            date: "Sun, 22 Nov 2026 18:02:01 +0000",
        };
        header_block(&mut out, &t, "alice@example.com");
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            "Return-Path: <a@b.c>\nDelivered-To: alice@example.com\n\
             Received: from mx?.example ([10.0.0.1])\n\tby backend.test (Tandem) with LMTP id abcdefghijkl;\n\
             \tSun, 22 Nov 2026 18:02:01 +0000\n"
        );
        let t = Trace {
            sender: "",
            tls: true,
            client: "2001:db8::1".parse().unwrap(),
            ..t
        };
        header_block(&mut out, &t, "x@y");
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("Return-Path: <>\n"), "{text}");
        assert!(text.contains("([IPv6:2001:db8::1])"), "{text}");
        assert!(text.contains("(Tandem) with LMTPS id"), "{text}");
    }
}
