//! The message body of a transaction: DATA (RFC 5321 §4.1.1.4, §4.5.2
//! transparency) and BDAT (RFC 3030 §2), in one of two forms.
//!
//! Sans-I/O: the session feeds the bytes as they arrive, in pieces of any
//! size; the readers hold no buffer of their own and write the body into
//! the caller's `Vec`.
//!
//! - [`Form::Lf`], what a Maildir keeps (the backend's LMTP, whose clients
//!   are our own trusted MTAs): CRLF and bare LF both end a line, bodies come
//!   out with LF line ends. Unchanged from the backend's first reader.
//! - [`Form::Crlf`], what the frontend relays: the message as received, and
//!   strict, because a frontend faces the Internet. Only CRLF ends a line,
//!   so only `CRLF . CRLF` ends DATA: a bare LF (or bare CR) never ends a
//!   line, never makes the next byte a line start, and so can never make a
//!   `.` the end of the data (the SMTP smuggling family, CVE-2023-51766 and
//!   friends). Bare LF, bare CR, NUL and over-long lines are passed through
//!   and reported in [`Flaws`], and the session refuses such a message as a
//!   whole: nothing the next hop could read differently is ever accepted.
//!
//! Sizes are counted as the message travels with CRLF line ends, which is
//! what SIZE promises.

/// The line ends of the body written out, and how strict the reading is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// LF line ends; CRLF or bare LF end a line (trusted LMTP clients).
    Lf,
    /// As received; only CRLF ends a line; flaws are reported.
    Crlf,
}

/// What a strict ([`Form::Crlf`]) reader found wrong with a message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flaws {
    /// An LF not preceded by CR.
    pub bare_lf: bool,
    /// A CR not followed by LF.
    pub bare_cr: bool,
    /// A NUL byte (RFC 5321 §4.5.2 does not allow it in text; many
    /// programs downstream treat it as the end of a string).
    pub nul: bool,
    /// A line longer than the reader's line bound.
    pub long_line: bool,
}

impl Flaws {
    pub fn any(&self) -> bool {
        self.bare_lf || self.bare_cr || self.nul || self.long_line
    }
}

/// Lines in a relayed message may be this long by default, CRLF excluded:
/// RFC 5322 §2.1.1 says 998, real mail sometimes has more.
pub const MAX_TEXT_LINE: usize = 64 << 10;

/// What [`DotReader::feed`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Every byte fed was body; feed more.
    More,
    /// The terminating `.` line ended after this many of the bytes fed;
    /// what follows is the client's next command.
    Done(usize),
}

/// Where the reader is within a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    LineStart,
    /// A `.` at the start of a line.
    Dot,
    /// `.` CR at the start of a line.
    DotCr,
    Mid,
    /// A CR inside a line, not yet known to be a line end.
    Cr,
}

/// Reads a DATA body: dot-unstuffing, line ends, the size limit.
#[derive(Debug)]
pub struct DotReader {
    form: Form,
    max: u64,
    max_line: usize,
    size: u64,
    over: bool,
    at: At,
    line: usize,
    flaws: Flaws,
}

impl DotReader {
    /// A body of at most `max` bytes (as sent); past it nothing more is
    /// kept, but reading goes on to the end so the client can be answered
    /// in step.
    pub fn new(max: u64, form: Form) -> Self {
        DotReader {
            form,
            max,
            max_line: MAX_TEXT_LINE,
            size: 0,
            over: false,
            at: At::LineStart,
            line: 0,
            flaws: Flaws::default(),
        }
    }

    /// Sets the line bound of a strict reader.
    pub fn with_max_line(mut self, max_line: usize) -> Self {
        self.max_line = max_line;
        self
    }

    /// Feeds bytes as received; the body goes to `body`.
    pub fn feed(&mut self, input: &[u8], body: &mut Vec<u8>) -> Step {
        let strict = self.form == Form::Crlf;
        let mut i = 0;
        while let Some(&b) = input.get(i) {
            match self.at {
                At::LineStart => {
                    self.line = 0;
                    if b == b'.' {
                        self.at = At::Dot;
                        i += 1;
                    } else {
                        self.at = At::Mid;
                    }
                }
                At::Dot => match b {
                    b'\r' => {
                        self.at = At::DotCr;
                        i += 1;
                    }
                    b'\n' if !strict => return Step::Done(i + 1),
                    // The dot was stuffing: dropped, the line goes on.
                    _ => self.at = At::Mid,
                },
                At::DotCr if b == b'\n' => return Step::Done(i + 1),
                // `.` CR and something else: the dot was stuffing, the CR
                // is looked at like any other.
                At::DotCr => self.at = At::Cr,
                At::Cr if b == b'\n' => {
                    self.end_line(body);
                    i += 1;
                }
                At::Cr => {
                    // A bare CR is text; the byte after it is looked at again.
                    self.flaws.bare_cr |= strict;
                    self.text(b"\r", body);
                    self.at = At::Mid;
                }
                At::Mid => {
                    let rest = &input[i..];
                    let run = rest
                        .iter()
                        .position(|&c| c == b'\r' || c == b'\n' || c == 0)
                        .unwrap_or(rest.len());
                    if run > 0 {
                        self.text(&rest[..run], body);
                        i += run;
                        continue;
                    }
                    i += 1;
                    match b {
                        b'\r' => self.at = At::Cr,
                        b'\n' if strict => {
                            // Not a line end: the next byte is no line start.
                            self.flaws.bare_lf = true;
                            self.text(b"\n", body);
                        }
                        b'\n' => self.end_line(body),
                        _ => {
                            self.flaws.nul |= strict;
                            self.text(b"\0", body);
                        }
                    }
                }
            }
        }
        Step::More
    }

    fn text(&mut self, bytes: &[u8], body: &mut Vec<u8>) {
        self.line += bytes.len();
        if self.form == Form::Crlf && self.line > self.max_line {
            self.flaws.long_line = true;
        }
        self.size = self.size.saturating_add(bytes.len() as u64);
        self.keep(bytes, body);
    }

    fn end_line(&mut self, body: &mut Vec<u8>) {
        self.at = At::LineStart;
        self.size = self.size.saturating_add(2);
        let eol: &[u8] = match self.form {
            Form::Lf => b"\n",
            Form::Crlf => b"\r\n",
        };
        self.keep(eol, body);
    }

    fn keep(&mut self, bytes: &[u8], body: &mut Vec<u8>) {
        if self.size > self.max {
            self.over = true;
        }
        if !self.over {
            body.extend_from_slice(bytes);
        }
    }

    /// The body went past the size limit (and was cut there).
    pub fn over(&self) -> bool {
        self.over
    }

    /// Bytes of body so far, counted with CRLF line ends, after unstuffing.
    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn flaws(&self) -> Flaws {
        self.flaws
    }
}

/// Collects BDAT chunks: taken as they are (no dot-stuffing in BDAT); in
/// [`Form::Lf`] with CRLF to LF, also across a chunk boundary; in
/// [`Form::Crlf`] unchanged, with the same [`Flaws`] as DATA.
#[derive(Debug)]
pub struct Chunks {
    form: Form,
    max: u64,
    max_line: usize,
    size: u64,
    over: bool,
    /// The previous byte was a CR (not yet written, in `Form::Lf`).
    cr: bool,
    line: usize,
    flaws: Flaws,
}

impl Chunks {
    pub fn new(max: u64, form: Form) -> Self {
        Chunks {
            form,
            max,
            max_line: MAX_TEXT_LINE,
            size: 0,
            over: false,
            cr: false,
            line: 0,
            flaws: Flaws::default(),
        }
    }

    /// Sets the line bound of a strict reader.
    pub fn with_max_line(mut self, max_line: usize) -> Self {
        self.max_line = max_line;
        self
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
        match self.form {
            Form::Lf => self.push_lf(bytes, body),
            Form::Crlf => {
                self.check(bytes);
                body.extend_from_slice(bytes);
            }
        }
    }

    fn push_lf(&mut self, bytes: &[u8], body: &mut Vec<u8>) {
        let mut rest = bytes;
        if std::mem::take(&mut self.cr) && rest.first() != Some(&b'\n') {
            body.push(b'\r');
        }
        if let [head @ .., b'\r'] = rest {
            self.cr = true;
            rest = head;
        }
        let mut start = 0;
        for (i, _) in rest.iter().enumerate().filter(|(_, b)| **b == b'\n') {
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

    /// The strict reading of CRLF-form bytes, across chunk boundaries.
    fn check(&mut self, bytes: &[u8]) {
        for &b in bytes {
            let after_cr = std::mem::replace(&mut self.cr, b == b'\r');
            match b {
                b'\n' if after_cr => self.line = 0,
                b'\n' => self.flaws.bare_lf = true,
                _ if after_cr => self.flaws.bare_cr = true,
                0 => self.flaws.nul = true,
                _ => {}
            }
            if b != b'\n' && b != b'\r' {
                self.line += 1;
                if self.line > self.max_line {
                    self.flaws.long_line = true;
                }
            }
        }
    }

    /// After the LAST chunk: in `Form::Lf` a trailing CR is kept as it is;
    /// in `Form::Crlf` it is a bare CR.
    pub fn finish(&mut self, body: &mut Vec<u8>) {
        if std::mem::take(&mut self.cr) && !self.over {
            match self.form {
                Form::Lf => body.push(b'\r'),
                Form::Crlf => self.flaws.bare_cr = true,
            }
        }
    }

    pub fn over(&self) -> bool {
        self.over
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn flaws(&self) -> Flaws {
        self.flaws
    }
}

#[cfg(test)]
mod tests;
