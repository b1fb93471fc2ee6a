//! Messages on the wire as POP3 multi-line answers (RFC 1939 §3): CRLF
//! line ends whatever the file has, a `.` doubled at the start of a line,
//! `.CRLF` at the end; TOP's header-and-n-lines cut (§7).

/// The conversion of one message. Fed in chunks of any size, so a big
/// message goes out in large writes without a second copy of it; with
/// `top`, only the header, the blank line and that many body lines.
#[derive(Debug)]
pub struct Encoder {
    top: Option<u32>,
    at_line_start: bool,
    /// A CR ended the last chunk: a line end if the next byte is LF.
    cr_pending: bool,
    line_empty: bool,
    in_body: bool,
    body_lines: u32,
    done: bool,
}

impl Encoder {
    pub fn new(top: Option<u32>) -> Self {
        Encoder {
            top,
            at_line_start: true,
            cr_pending: false,
            line_empty: true,
            in_body: false,
            body_lines: 0,
            done: false,
        }
    }

    /// Appends the wire form of `chunk` to `out`; false once TOP has all
    /// the lines it wants (the rest need not be fed).
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> bool {
        let mut rest = chunk;
        while !rest.is_empty() && !self.done {
            if self.at_line_start {
                if self.in_body && self.top.is_some_and(|t| self.body_lines >= t) {
                    self.done = true;
                    break;
                }
                if rest[0] == b'.' {
                    out.push(b'.');
                }
                self.at_line_start = false;
                self.line_empty = true;
            }
            match rest.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    let mut line = &rest[..i];
                    if self.cr_pending {
                        self.cr_pending = false;
                        if !line.is_empty() {
                            out.push(b'\r'); // a lone CR inside the line
                            self.line_empty = false;
                        }
                    }
                    line = line.strip_suffix(b"\r").unwrap_or(line);
                    if !line.is_empty() {
                        self.line_empty = false;
                    }
                    out.extend_from_slice(line);
                    out.extend_from_slice(b"\r\n");
                    self.end_line();
                    rest = &rest[i + 1..];
                }
                None => {
                    if self.cr_pending {
                        out.push(b'\r');
                        self.line_empty = false;
                    }
                    let (line, cr) = match rest.strip_suffix(b"\r") {
                        Some(l) => (l, true),
                        None => (rest, false),
                    };
                    if !line.is_empty() {
                        self.line_empty = false;
                    }
                    out.extend_from_slice(line);
                    self.cr_pending = cr;
                    rest = &[];
                }
            }
        }
        !self.done
    }

    fn end_line(&mut self) {
        if self.in_body {
            self.body_lines += 1;
        } else if self.line_empty {
            self.in_body = true;
        }
        self.at_line_start = true;
    }

    /// Ends the last line if the file did not, and the answer.
    pub fn finish(self, out: &mut Vec<u8>) {
        if !self.at_line_start && !self.done {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
    }
}

/// The whole wire form of `body` at once.
pub fn put_message(body: &[u8], top: Option<u32>, out: &mut Vec<u8>) {
    let mut e = Encoder::new(top);
    e.feed(body, out);
    e.finish(out);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(body: &[u8], top: Option<u32>) -> Vec<u8> {
        let mut out = Vec::new();
        put_message(body, top, &mut out);
        out
    }

    /// The same fed in two chunks cut at every point, and byte by byte.
    fn wire_split(body: &[u8], top: Option<u32>) -> Vec<Vec<u8>> {
        let mut all = Vec::new();
        for cut in 0..=body.len() {
            let mut out = Vec::new();
            let mut e = Encoder::new(top);
            if e.feed(&body[..cut], &mut out) {
                e.feed(&body[cut..], &mut out);
            }
            e.finish(&mut out);
            all.push(out);
        }
        let mut out = Vec::new();
        let mut e = Encoder::new(top);
        for b in body {
            if !e.feed(std::slice::from_ref(b), &mut out) {
                break;
            }
        }
        e.finish(&mut out);
        all.push(out);
        all
    }

    #[test]
    fn table() {
        let cases: &[(&[u8], Option<u32>, &[u8])] = &[
            (b"S: x\n\nbody\n", None, b"S: x\r\n\r\nbody\r\n.\r\n"),
            // CRLF already there is not doubled.
            (b"S: x\r\n\r\nbody\r\n", None, b"S: x\r\n\r\nbody\r\n.\r\n"),
            (
                b"S: x\r\n\nmixed\r\nends\n",
                None,
                b"S: x\r\n\r\nmixed\r\nends\r\n.\r\n",
            ),
            (
                b"S: x\n\n.dot\n..two\n.\nend.\n",
                None,
                b"S: x\r\n\r\n..dot\r\n...two\r\n..\r\nend.\r\n.\r\n",
            ),
            (b".first\n", None, b"..first\r\n.\r\n"),
            (
                b"S: x\n\nno newline at end",
                None,
                b"S: x\r\n\r\nno newline at end\r\n.\r\n",
            ),
            (b"S: x\n\n.", None, b"S: x\r\n\r\n..\r\n.\r\n"),
            (b"S: x\n\n1\n2\n3\n", Some(0), b"S: x\r\n\r\n.\r\n"),
            (
                b"S: x\n\n1\n2\n3\n",
                Some(2),
                b"S: x\r\n\r\n1\r\n2\r\n.\r\n",
            ),
            (b"S: x\n\n1\n", Some(10), b"S: x\r\n\r\n1\r\n.\r\n"),
            (b"S: x\n\n.1\n.2\n", Some(1), b"S: x\r\n\r\n..1\r\n.\r\n"),
            (b"S: x\n\n1\n2", Some(2), b"S: x\r\n\r\n1\r\n2\r\n.\r\n"),
            (
                b"S: x\r\n\r\n\r\n\r\nx\r\n",
                Some(1),
                b"S: x\r\n\r\n\r\n.\r\n",
            ),
            (b"S: only headers\n", Some(3), b"S: only headers\r\n.\r\n"),
            (b"", None, b".\r\n"),
            (b"", Some(0), b".\r\n"),
            (b"\n", None, b"\r\n.\r\n"),
            // A lone CR is data, not a line end; a CR at the very end is dropped.
            (b"a\rb\n", None, b"a\rb\r\n.\r\n"),
            (b"a\r\r\n", None, b"a\r\r\n.\r\n"),
            (b"a\r", None, b"a\r\n.\r\n"),
            // Bytes are bytes: NUL and 8-bit pass unchanged.
            (b"\0\xff\n", None, b"\0\xff\r\n.\r\n"),
        ];
        for (body, top, want) in cases {
            let show = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
            assert_eq!(
                show(&wire(body, *top)),
                show(want),
                "{:?} top {top:?}",
                show(body)
            );
            for (i, got) in wire_split(body, *top).iter().enumerate() {
                assert_eq!(got, want, "{:?} top {top:?} split {i}", show(body));
            }
        }
    }

    #[test]
    fn top_stops_reading_early() {
        let mut out = Vec::new();
        let mut e = Encoder::new(Some(1));
        assert!(e.feed(b"H: 1\n\nline 1\n", &mut out));
        assert!(!e.feed(b"line 2\n", &mut out), "TOP 1 has what it wants");
        e.finish(&mut out);
        assert_eq!(out, b"H: 1\r\n\r\nline 1\r\n.\r\n");
    }
}
