//! Reading client commands and writing server responses, over imap-codec.
//!
//! [`CommandReader`] owns one connection's input buffer: [`Framer`] finds
//! where a command ends and enforces the [`Limits`], imap-codec's
//! `CommandCodec` parses the complete command (RFC 3501 §9 grammar with the
//! extensions enabled in `Cargo.toml`), and synchronising literals get their
//! continuation request (RFC 3501 §7.5) here, so the session loop only ever
//! sees whole commands, parse errors to answer with `BAD`, and rejected
//! over-limit commands.
//!
//! [`encode_response`] and [`encode_greeting`] append imap-types values to a
//! reused output buffer.

use std::io;

use imap_codec::{
    AuthenticateDataCodec, CommandCodec, GreetingCodec, IdleDoneCodec, ResponseCodec,
    decode::Decoder,
    encode::{Encoded, Encoder, Fragment},
    imap_types::{
        IntoStatic,
        auth::AuthenticateData,
        command::Command,
        response::{Greeting, Response},
    },
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::extended::{self, Extras};
use super::frame::{Frame, Framer, Limits, LineFrame, Rejection, tag_of};

/// The continuation request sent before reading a synchronising literal.
pub const CONTINUE_LITERAL: &[u8] = b"+ Ready for literal data\r\n";

/// What the client sent next.
#[derive(Debug, PartialEq)]
pub enum Next {
    /// A well-formed command.
    Command(Command<'static>),
    /// A command that does not parse: answer `tag BAD text` (or `* BAD` when
    /// no tag could be read) and go on reading.
    Bad {
        /// The command's tag, when it is a valid one.
        tag: Option<String>,
        /// What to say after `BAD`.
        text: String,
    },
    /// A command with a literal over the limit, already skipped: answer
    /// `tag NO [TOOBIG] ...` (RFC 7889, RFC 4469) or `BAD`, and go on.
    TooBig {
        /// The command's tag, when it is a valid one.
        tag: Option<String>,
    },
    /// The client closed its side (possibly mid-command).
    Eof,
}

/// What the client sent in reply to an AUTHENTICATE challenge.
#[derive(Debug, PartialEq)]
pub enum NextAuth {
    /// Base64 data, or `*` to cancel (RFC 3501 §6.2.2).
    Data(AuthenticateData<'static>),
    /// Not base64 or over the line limit: answer the AUTHENTICATE `BAD`.
    Bad,
    /// The client closed its side.
    Eof,
}

/// What the client sent while idling (RFC 2177).
#[derive(Debug, PartialEq, Eq)]
pub enum NextIdle {
    /// `DONE`.
    Done,
    /// Anything else: answer the IDLE `BAD`.
    Bad,
    /// The client closed its side.
    Eof,
}

/// Reads client commands from a stream into one reused buffer.
#[derive(Debug)]
pub struct CommandReader {
    framer: Framer,
    /// Extension options taken off the last command (see [`extended`]).
    extras: Extras,
}

impl Default for CommandReader {
    fn default() -> Self {
        Self::new(Limits::default())
    }
}

impl CommandReader {
    /// A reader with these limits.
    pub fn new(limits: Limits) -> Self {
        Self {
            framer: Framer::new(limits),
            extras: Extras::default(),
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.framer.limits()
    }

    /// The extension options of the command [`next`](Self::next) returned last.
    pub fn take_extras(&mut self) -> Extras {
        std::mem::take(&mut self.extras)
    }

    /// Drops all buffered input: after STARTTLS, before reading under TLS.
    pub fn clear(&mut self) {
        self.framer.clear();
    }

    /// Whether input is buffered beyond the last command (for STARTTLS: a
    /// client that pipelined after it is either broken or an attack).
    pub fn has_buffered(&self) -> bool {
        self.framer.has_buffered()
    }

    /// Takes the input buffered beyond the last command.
    pub fn release(&mut self) -> Vec<u8> {
        self.framer.release()
    }

    /// Reads the next command, sending continuation requests for the
    /// synchronising literals it accepts.
    pub async fn next<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        stream: &mut S,
    ) -> Result<Next, io::Error> {
        loop {
            match self.framer.step() {
                Frame::NeedMore => {
                    if stream.read_buf(self.framer.buffer()).await? == 0 {
                        return Ok(Next::Eof);
                    }
                }
                Frame::Continue => {
                    stream.write_all(CONTINUE_LITERAL).await?;
                    stream.flush().await?;
                }
                Frame::Command(range) => {
                    let bytes = self.framer.bytes(range);
                    let next = match extended::split(bytes) {
                        Ok(None) => {
                            self.extras = Extras::default();
                            parse_command(bytes)
                        }
                        Ok(Some((plain, extras))) => {
                            self.extras = extras;
                            parse_command(&plain)
                        }
                        Err(why) => Next::Bad {
                            tag: tag_of(bytes),
                            text: why.to_owned(),
                        },
                    };
                    self.framer.consume();
                    return Ok(next);
                }
                Frame::Rejected {
                    tag,
                    why: Rejection::TooBig,
                } => {
                    return Ok(Next::TooBig { tag });
                }
                Frame::Rejected {
                    tag,
                    why: Rejection::LineTooLong,
                } => {
                    return Ok(Next::Bad {
                        tag,
                        text: "Line too long".to_owned(),
                    });
                }
            }
        }
    }

    /// Reads one AUTHENTICATE continuation line.
    pub async fn next_authenticate<S: AsyncRead + Unpin>(
        &mut self,
        stream: &mut S,
    ) -> Result<NextAuth, io::Error> {
        let Some(line) = self.next_line(stream).await? else {
            return Ok(NextAuth::Eof);
        };
        let next = match line {
            Ok(bytes) => match AuthenticateDataCodec::new().decode(bytes) {
                Ok(([], data)) => NextAuth::Data(data.into_static()),
                _ => NextAuth::Bad,
            },
            Err(()) => NextAuth::Bad,
        };
        self.framer.consume();
        Ok(next)
    }

    /// Reads one line while idling: `DONE` or not.
    pub async fn next_idle_done<S: AsyncRead + Unpin>(
        &mut self,
        stream: &mut S,
    ) -> Result<NextIdle, io::Error> {
        let Some(line) = self.next_line(stream).await? else {
            return Ok(NextIdle::Eof);
        };
        let next = match line {
            Ok(bytes) => match IdleDoneCodec::new().decode(bytes) {
                Ok(([], _)) => NextIdle::Done,
                _ => NextIdle::Bad,
            },
            Err(()) => NextIdle::Bad,
        };
        self.framer.consume();
        Ok(next)
    }

    /// The next plain line (`Err(())`: over the limit), `None` at EOF.
    async fn next_line<S: AsyncRead + Unpin>(
        &mut self,
        stream: &mut S,
    ) -> Result<Option<Result<&[u8], ()>>, io::Error> {
        loop {
            match self.framer.step_line() {
                LineFrame::NeedMore => {
                    if stream.read_buf(self.framer.buffer()).await? == 0 {
                        return Ok(None);
                    }
                }
                LineFrame::Line(range) => return Ok(Some(Ok(self.framer.bytes(range)))),
                LineFrame::TooLong => return Ok(Some(Err(()))),
            }
        }
    }
}

/// Parses one complete, framed command.
pub fn parse_command(bytes: &[u8]) -> Next {
    match CommandCodec::new().decode(bytes) {
        Ok(([], command)) => Next::Command(command.into_static()),
        // Framing ends a command where the codec must: anything else is a
        // malformed command (an unterminated quoted string, a bare LF).
        _ => Next::Bad {
            tag: tag_of(bytes),
            text: if bytes.contains(&0) {
                "NUL byte in command".to_owned()
            } else {
                "Syntax error in command".to_owned()
            },
        },
    }
}

/// Appends a response to `out`.
pub fn encode_response(out: &mut Vec<u8>, response: &Response<'_>) {
    append(out, ResponseCodec::new().encode(response));
}

/// Appends the greeting to `out`.
pub fn encode_greeting(out: &mut Vec<u8>, greeting: &Greeting<'_>) {
    append(out, GreetingCodec::new().encode(greeting));
}

/// A server sends its literals without waiting: every fragment goes out.
fn append(out: &mut Vec<u8>, encoded: Encoded) {
    for fragment in encoded {
        match fragment {
            Fragment::Line { data } | Fragment::Literal { data, .. } => {
                out.extend_from_slice(&data);
            }
        }
    }
}
