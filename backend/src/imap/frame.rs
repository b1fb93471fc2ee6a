//! Framing of client input into whole IMAP commands, sans-I/O.
//!
//! A command is a line, or lines joined by literals (RFC 3501 §4.3, §7.5;
//! LITERAL+ RFC 7888). The framer only finds where a command ends and
//! enforces the limits; parsing is imap-codec's, on the complete command.
//! Because it never parses a partial command, bytes arriving one at a time
//! cost one scan each, not one parse each.
//!
//! Over-limit input is *poisoned*, not parsed: its bytes are dropped as they
//! arrive (keeping only a short tail to spot a literal announcement) and the
//! command's end is still tracked, so the connection stays in step:
//! - a synchronising literal over the limit is refused at once: the client
//!   waits for `+`, gets the tagged reply and abandons the command;
//! - a non-synchronising literal over the limit is read and discarded
//!   (RFC 7888 §4), with the rest of its command;
//! - a line over the limit is dropped up to its end.

use std::ops::Range;

/// Size limits of client input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest line, outside literals, CRLF included.
    pub max_line: usize,
    /// Largest literal in any command but APPEND.
    pub max_literal: u64,
    /// Largest literal in APPEND (the message).
    pub max_append_literal: u64,
    /// Largest whole command: lines and literals together.
    pub max_command: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_line: 64 * 1024,
            max_literal: 64 * 1024,
            max_append_literal: 64 * 1024 * 1024,
            max_command: 65 * 1024 * 1024,
        }
    }
}

/// Why a command was dropped unparsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// A literal over [`Limits::max_literal`] (or the APPEND one), or a
    /// command over [`Limits::max_command`].
    TooBig,
    /// A line over [`Limits::max_line`].
    LineTooLong,
}

/// What the framer found in the bytes it has.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// Feed more bytes with [`Framer::buffer`].
    NeedMore,
    /// A synchronising literal was accepted: send a continuation request
    /// (`+ ...`), then call [`Framer::step`] again.
    Continue,
    /// A complete command: [`Framer::bytes`] of this range, then
    /// [`Framer::consume`].
    Command(Range<usize>),
    /// A command was dropped; answer the tag (if one was readable).
    Rejected {
        /// The command's tag, when it is a valid one.
        tag: Option<String>,
        /// Why it was dropped.
        why: Rejection,
    },
}

/// What the framer found in line mode (AUTHENTICATE data, IDLE's DONE).
#[derive(Debug, PartialEq, Eq)]
pub enum LineFrame {
    /// Feed more bytes.
    NeedMore,
    /// A complete line: [`Framer::bytes`] of this range, then
    /// [`Framer::consume`].
    Line(Range<usize>),
    /// A line over [`Limits::max_line`] was dropped.
    TooLong,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Line,
    Literal { remaining: u64, discard: bool },
}

/// How many bytes of a poisoned line are kept: enough for `{N+}\r\n`.
const TAIL: usize = 32;

/// Bytes asked of each read.
const READ_CHUNK: usize = 16 * 1024;

/// One connection's input buffer and where its current command stands.
#[derive(Debug)]
pub struct Framer {
    buf: Vec<u8>,
    /// Start of the current command in `buf`.
    start: usize,
    /// Start of the current line (after the last literal).
    line_start: usize,
    /// First byte not examined yet.
    scan: usize,
    /// End of the command handed out and not yet consumed.
    handed_out: Option<usize>,
    state: State,
    /// Set once the current command went over a limit.
    poison: Option<(Rejection, Option<String>)>,
    limits: Limits,
}

impl Framer {
    /// An empty framer.
    pub fn new(limits: Limits) -> Self {
        Self {
            buf: Vec::new(),
            start: 0,
            line_start: 0,
            scan: 0,
            handed_out: None,
            state: State::Line,
            poison: None,
            limits,
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Forgets all input, buffered or half-framed (STARTTLS: pipelined
    /// plaintext must not be taken as sent under TLS, RFC 3501 §6.2.1).
    pub fn clear(&mut self) {
        self.buf.clear();
        self.start = 0;
        self.line_start = 0;
        self.scan = 0;
        self.handed_out = None;
        self.state = State::Line;
        self.poison = None;
    }

    /// Whether unexamined or partial input is buffered.
    pub fn has_buffered(&self) -> bool {
        self.buf.len() > self.start
    }

    /// Takes the input buffered beyond the last command (pipelined behind
    /// a login that is then proxied elsewhere) and empties the framer.
    pub fn release(&mut self) -> Vec<u8> {
        self.consume();
        let rest = self.buf.get(self.start..).unwrap_or_default().to_vec();
        self.clear();
        rest
    }

    /// The buffer to append read bytes to, compacted and with room reserved.
    pub fn buffer(&mut self) -> &mut Vec<u8> {
        self.consume();
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.line_start -= self.start;
            self.scan -= self.start;
            self.start = 0;
        }
        let want = match self.state {
            State::Literal { remaining, .. } => usize::try_from(remaining)
                .unwrap_or(usize::MAX)
                .clamp(1, READ_CHUNK),
            State::Line => READ_CHUNK,
        };
        if self.buf.capacity() - self.buf.len() < want {
            self.buf.reserve(want);
        }
        &mut self.buf
    }

    /// Bytes of a range handed out by [`Framer::step`] or
    /// [`Framer::step_line`].
    pub fn bytes(&self, range: Range<usize>) -> &[u8] {
        self.buf.get(range).unwrap_or_default()
    }

    /// Drops the command or line handed out last.
    pub fn consume(&mut self) {
        if let Some(end) = self.handed_out.take() {
            self.start = end;
            self.line_start = end;
            self.scan = end;
        }
    }

    /// Frames the next command as far as the buffered bytes go.
    pub fn step(&mut self) -> Frame {
        self.consume();
        loop {
            match self.state {
                State::Literal { remaining, discard } => {
                    let available = (self.buf.len() - self.scan) as u64;
                    let take = remaining.min(available);
                    // `take <= available`, which came from a usize.
                    self.scan += usize::try_from(take).unwrap_or(usize::MAX);
                    let remaining = remaining - take;
                    if discard {
                        self.start = self.scan;
                    }
                    self.line_start = self.scan;
                    if remaining > 0 {
                        self.state = State::Literal { remaining, discard };
                        return Frame::NeedMore;
                    }
                    self.state = State::Line;
                }
                State::Line => {
                    let Some(lf) = self.find_lf() else {
                        if self.poison.is_none()
                            && self.buf.len() - self.line_start > self.limits.max_line
                        {
                            self.poison_with(Rejection::LineTooLong);
                        }
                        if self.poison.is_some() {
                            self.keep_tail();
                        }
                        return Frame::NeedMore;
                    };
                    let end = lf + 1;
                    if self.poison.is_none() && end - self.line_start > self.limits.max_line {
                        self.poison_with(Rejection::LineTooLong);
                    }
                    let announced = literal_announcement(&self.buf[self.line_start..end]);
                    self.scan = end;
                    self.line_start = end;
                    if self.poison.is_some() {
                        self.start = end;
                    }
                    match (announced, self.poison.is_some()) {
                        (None, false) => {
                            self.handed_out = Some(end);
                            return Frame::Command(self.start..end);
                        }
                        (Some((length, false)), true) => {
                            self.state = State::Literal {
                                remaining: length,
                                discard: true,
                            };
                        }
                        // A poisoned command ends at its last line, or at a
                        // synchronising literal the client now waits on.
                        (None | Some((_, true)), true) => return self.reject(),
                        (Some((length, sync)), false) => {
                            let limit = if is_append(&self.buf[self.start..end]) {
                                self.limits.max_append_literal
                            } else {
                                self.limits.max_literal
                            };
                            let total = (end - self.start) as u64;
                            if length > limit
                                || total.saturating_add(length) > self.limits.max_command as u64
                            {
                                self.poison_with(Rejection::TooBig);
                                self.start = end;
                                if sync {
                                    return self.reject();
                                }
                                self.state = State::Literal {
                                    remaining: length,
                                    discard: true,
                                };
                            } else {
                                self.state = State::Literal {
                                    remaining: length,
                                    discard: false,
                                };
                                if sync {
                                    return Frame::Continue;
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Frames the next plain line (no literals) as far as the bytes go.
    pub fn step_line(&mut self) -> LineFrame {
        self.consume();
        let Some(lf) = self.find_lf() else {
            if self.buf.len() - self.line_start > self.limits.max_line {
                self.poison = Some((Rejection::LineTooLong, None));
            }
            if self.poison.is_some() {
                self.start = self.scan;
                self.line_start = self.scan;
            }
            return LineFrame::NeedMore;
        };
        let end = lf + 1;
        if self.poison.take().is_some() || end - self.line_start > self.limits.max_line {
            self.start = end;
            self.line_start = end;
            self.scan = end;
            return LineFrame::TooLong;
        }
        self.handed_out = Some(end);
        LineFrame::Line(self.start..end)
    }

    fn find_lf(&mut self) -> Option<usize> {
        match self.buf[self.scan..].iter().position(|&b| b == b'\n') {
            Some(i) => Some(self.scan + i),
            None => {
                self.scan = self.buf.len();
                None
            }
        }
    }

    fn poison_with(&mut self, why: Rejection) {
        let tag = tag_of(&self.buf[self.start..]);
        self.poison = Some((why, tag));
    }

    /// Drops a poisoned line's bytes but its last few.
    fn keep_tail(&mut self) {
        self.line_start = self.line_start.max(self.buf.len().saturating_sub(TAIL));
        self.start = self.line_start;
    }

    fn reject(&mut self) -> Frame {
        let (why, tag) = self.poison.take().unwrap_or((Rejection::TooBig, None));
        self.state = State::Line;
        self.start = self.scan;
        self.line_start = self.scan;
        Frame::Rejected { tag, why }
    }
}

/// The literal a line announces at its end: `{N}\r\n` (synchronising, `true`)
/// or `{N+}\r\n` (non-synchronising), bare LF accepted. Lengths too big for
/// a `u64` saturate: they are over any limit anyway.
pub fn literal_announcement(line: &[u8]) -> Option<(u64, bool)> {
    let line = line.strip_suffix(b"\n")?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let line = line.strip_suffix(b"}")?;
    let (line, sync) = match line.strip_suffix(b"+") {
        Some(rest) => (rest, false),
        None => (line, true),
    };
    let digits = line.iter().rev().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 20 {
        return None;
    }
    let (line, number) = line.split_at(line.len() - digits);
    // `~{N}` is a literal8 (RFC 3516); same framing.
    let line = line.strip_suffix(b"{")?;
    let _ = line.strip_suffix(b"~");
    let length = number.iter().fold(0u64, |n, &d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    });
    Some((length, sync))
}

/// Longest tag echoed back in a reply to a rejected command. RFC 3501
/// sets no bound; real clients use a few characters.
pub const MAX_TAG: usize = 64;

/// The tag at the start of a command, if it is a valid one (RFC 3501 §9)
/// of at most [`MAX_TAG`] bytes whose end is in `command`. A tag still
/// arriving counts as none, so a rejected command is answered the same
/// whichever way its bytes were split by the network.
pub fn tag_of(command: &[u8]) -> Option<String> {
    let head = &command[..command.len().min(MAX_TAG + 1)];
    let end = head
        .iter()
        .position(|&b| b == b' ' || b == b'\r' || b == b'\n')?;
    let tag = imap_codec::imap_types::core::Tag::try_from(&command[..end]).ok()?;
    Some(tag.as_ref().to_owned())
}

/// Whether a command is APPEND (its literal is the message: a bigger limit).
fn is_append(command: &[u8]) -> bool {
    let mut words = command.splitn(3, |&b| b == b' ');
    let _tag = words.next();
    words
        .next()
        .is_some_and(|w| w.eq_ignore_ascii_case(b"APPEND"))
}
