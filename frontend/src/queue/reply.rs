//! Server replies as an SMTP or LMTP client reads them (RFC 5321 §4.2,
//! enhanced status codes of RFC 3463 / RFC 2034): pure parsing over bytes,
//! shared by the LMTP client ([`super::lmtp`]) and the smarthost client
//! ([`super::smtp`]) through [`super::dialogue`].

/// Longest reply line accepted, CRLF excluded (RFC 5321 says 512; servers
/// in the wild send longer texts).
pub const MAX_LINE: usize = 4096;
/// Most lines in one multi-line reply (an EHLO list is ~15).
pub const MAX_LINES: usize = 128;

/// One complete reply: its code and the text of every line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// The text after `NNN-` / `NNN ` of each line.
    pub lines: Vec<String>,
}

/// Why bytes could not be read as a reply: the server is broken or not an
/// SMTP server; the transaction is abandoned (and retried later).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    #[error("reply line longer than {MAX_LINE} bytes")]
    TooLong,
    #[error("reply with more than {MAX_LINES} lines")]
    TooManyLines,
    #[error("malformed reply line {0:?}")]
    Malformed(String),
    #[error("reply lines with different codes ({0} then {1})")]
    MixedCodes(u16, u16),
}

impl Reply {
    /// 2xx.
    pub fn is_positive(&self) -> bool {
        (200..300).contains(&self.code)
    }

    /// 3xx (354 after DATA, 334 during AUTH).
    pub fn is_intermediate(&self) -> bool {
        (300..400).contains(&self.code)
    }

    /// 5xx: a retry will not help.
    pub fn is_permanent(&self) -> bool {
        (500..600).contains(&self.code)
    }

    /// The enhanced status code (`5.1.1`) the first line starts with, if any.
    pub fn enhanced(&self) -> Option<&str> {
        let first = self.lines.first()?;
        let word = first.split(' ').next()?;
        let parts: Vec<&str> = word.split('.').collect();
        let ok = parts.len() == 3
            && parts[0].len() == 1
            && matches!(parts[0], "2" | "4" | "5")
            && parts[1..]
                .iter()
                .all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()));
        ok.then_some(word)
    }

    /// The status for a DSN: the enhanced code, else one derived from the
    /// basic code's class (RFC 3463 §3.1 `X.0.0`).
    pub fn status(&self) -> String {
        match self.enhanced() {
            Some(s) => s.to_owned(),
            None => format!("{}.0.0", self.code / 100),
        }
    }

    /// The reply on one line, as logged, journalled and shown in a DSN's
    /// `Diagnostic-Code: smtp; ...`.
    pub fn one_line(&self) -> String {
        let text = self.lines.join(" ");
        let text = text.trim();
        if text.is_empty() {
            self.code.to_string()
        } else {
            format!("{} {}", self.code, text)
        }
    }

    /// Whether an EHLO/LHLO reply advertises `keyword` (case-insensitive),
    /// and its parameters.
    pub fn extension(&self, keyword: &str) -> Option<&str> {
        self.lines.iter().skip(1).find_map(|l| {
            let (word, rest) = l.split_once(' ').unwrap_or((l.as_str(), ""));
            word.eq_ignore_ascii_case(keyword).then_some(rest.trim())
        })
    }
}

/// Reads one complete reply from the front of `buf`: `Ok(None)` when more
/// bytes are needed, else the reply and how many bytes it took.
pub fn parse(buf: &[u8]) -> Result<Option<(Reply, usize)>, ReplyError> {
    let mut lines = Vec::new();
    let mut code = None;
    let mut at = 0;
    loop {
        let rest = &buf[at..];
        let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
            if rest.len() > MAX_LINE + 1 {
                return Err(ReplyError::TooLong);
            }
            return Ok(None);
        };
        let mut line = &rest[..nl];
        if line.last() == Some(&b'\r') {
            line = &line[..line.len() - 1];
        }
        if line.len() > MAX_LINE {
            return Err(ReplyError::TooLong);
        }
        at += nl + 1;
        let malformed = || ReplyError::Malformed(String::from_utf8_lossy(line).into_owned());
        if line.len() < 3 || !line[..3].iter().all(u8::is_ascii_digit) || line[0] == b'0' {
            return Err(malformed());
        }
        let this: u16 = (u16::from(line[0] - b'0')) * 100
            + u16::from(line[1] - b'0') * 10
            + u16::from(line[2] - b'0');
        if let Some(c) = code
            && c != this
        {
            return Err(ReplyError::MixedCodes(c, this));
        }
        code = Some(this);
        let (last, text) = match line.get(3) {
            None => (true, &b""[..]),
            Some(b' ') => (true, &line[4..]),
            Some(b'-') => (false, &line[4..]),
            Some(_) => return Err(malformed()),
        };
        if lines.len() >= MAX_LINES {
            return Err(ReplyError::TooManyLines);
        }
        lines.push(String::from_utf8_lossy(text).into_owned());
        if last {
            return Ok(Some((Reply { code: this, lines }, at)));
        }
    }
}

/// The message as DATA sends it (RFC 5321 §4.5.2): a line starting with
/// `.` gets another, the end is `CRLF.CRLF`. `message` has CRLF line ends.
pub fn dot_stuff(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + message.len() / 64 + 5);
    let mut line_start = true;
    for &b in message {
        if line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        line_start = b == b'\n';
    }
    if !message.is_empty() && !message.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(code: u16, lines: &[&str]) -> Reply {
        Reply {
            code,
            lines: lines.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn table() {
        type Parsed = Result<Option<(Reply, usize)>, ReplyError>;
        let cases: &[(&[u8], Parsed)] = &[
            (b"", Ok(None)),
            (b"250 OK", Ok(None)),
            (b"250 OK\r\n", Ok(Some((reply(250, &["OK"]), 8)))),
            (b"250\r\n", Ok(Some((reply(250, &[""]), 5)))),
            (b"250 OK\nrest", Ok(Some((reply(250, &["OK"]), 7)))),
            (
                b"250-mx.test\r\n250-PIPELINING\r\n250 SIZE 10\r\n",
                Ok(Some((
                    reply(250, &["mx.test", "PIPELINING", "SIZE 10"]),
                    42,
                ))),
            ),
            (b"250-mx.test\r\n250-PIPE", Ok(None)),
            (b"250-a\r\n550 b\r\n", Err(ReplyError::MixedCodes(250, 550))),
            (b"25O OK\r\n", Err(ReplyError::Malformed("25O OK".into()))),
            (b"250xOK\r\n", Err(ReplyError::Malformed("250xOK".into()))),
            (b"OK\r\n", Err(ReplyError::Malformed("OK".into()))),
            (b"\r\n", Err(ReplyError::Malformed(String::new()))),
        ];
        for (input, want) in cases {
            assert_eq!(&parse(input), want, "{:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn split_at_every_point() {
        let whole = b"250-mx.test\r\n250-PIPELINING\r\n250 SIZE 10\r\n";
        let (want, n) = parse(whole).unwrap().unwrap();
        assert_eq!(n, whole.len());
        for cut in 0..whole.len() {
            assert_eq!(parse(&whole[..cut]).unwrap(), None, "cut at {cut}");
        }
        assert_eq!(want.extension("size"), Some("10"));
        assert_eq!(want.extension("pipelining"), Some(""));
        assert_eq!(want.extension("mx.test"), None);
    }

    #[test]
    fn limits() {
        let long = vec![b'2'; MAX_LINE + 10];
        assert_eq!(parse(&long), Err(ReplyError::TooLong));
        let many = b"250-x\r\n".repeat(MAX_LINES + 1);
        assert_eq!(parse(&many), Err(ReplyError::TooManyLines));
    }

    #[test]
    fn never_panics_on_junk() {
        for len in 0..64u8 {
            let junk: Vec<u8> = (0..len).map(|i| i.wrapping_mul(37) ^ 0x5a).collect();
            let _ = parse(&junk);
        }
        let _ = parse(&[0xff, b'\n']);
    }

    #[test]
    fn enhanced_codes() {
        assert_eq!(
            reply(550, &["5.1.1 no such user"]).enhanced(),
            Some("5.1.1")
        );
        assert_eq!(reply(550, &["no such user"]).enhanced(), None);
        assert_eq!(reply(550, &["5.1 x"]).enhanced(), None);
        assert_eq!(reply(451, &["4.3.0 later"]).status(), "4.3.0");
        assert_eq!(reply(554, &["failed"]).status(), "5.0.0");
        assert_eq!(
            reply(550, &["5.1.1 no", "such user"]).one_line(),
            "550 5.1.1 no such user"
        );
    }

    #[test]
    fn dot_stuffing() {
        assert_eq!(dot_stuff(b"a\r\n.b\r\n"), b"a\r\n..b\r\n.\r\n");
        assert_eq!(dot_stuff(b".\r\n"), b"..\r\n.\r\n");
        assert_eq!(dot_stuff(b"no end"), b"no end\r\n.\r\n");
        assert_eq!(dot_stuff(b""), b".\r\n");
    }
}
