//! The IMAP4rev1 protocol layer (RFC 3501), on imap-codec.
//!
//! - [`frame`]: sans-I/O framing of client input into whole commands (lines
//!   joined by literals, RFC 3501 §4.3, LITERAL+ RFC 7888), with the size
//!   limits and the skipping of over-limit input;
//! - [`codec`]: the async [`CommandReader`] a session loop reads commands,
//!   AUTHENTICATE lines and IDLE's DONE with (continuation requests for
//!   synchronising literals included), and the response encoders.
//!
//! The grammar itself is imap-codec's (`imap_codec::imap_types` are the
//! command and response types); the session and one file per command come
//! on top of these.

pub mod codec;
pub mod frame;
pub mod message;
pub mod search;

#[cfg(test)]
mod tests;

pub use codec::{
    CONTINUE_LITERAL, CommandReader, Next, NextAuth, NextIdle, encode_greeting, encode_response,
};
pub use frame::Limits;
pub use imap_codec::imap_types;
