//! SMTP and LMTP, the parts both the backend's LMTP server and the
//! frontend's SMTP server speak: the command grammar ([`command`]) and the
//! DATA/BDAT body readers ([`data`]), both sans-I/O, and the pieces of the
//! trace header both write ([`trace`]).

pub mod command;
pub mod data;
pub mod trace;

pub use command::{Body, Command, ParseError, parse};
pub use data::{Chunks, DotReader, Flaws, Form, Step};

/// Largest `max_message_size` either server accepts: a message is held in
/// memory until it is stored, delivered or spooled.
pub const MAX_MESSAGE_SIZE_CAP: u64 = 1 << 30;

/// Checks a configured `max_message_size` against [`MAX_MESSAGE_SIZE_CAP`].
pub fn validate_message_size(max: u64, at: &str, p: &mut crate::config::Problems) {
    if max == 0 || max > MAX_MESSAGE_SIZE_CAP {
        p.push(
            at,
            "max_message_size",
            format!("must be between 1 and {MAX_MESSAGE_SIZE_CAP} bytes (1G)"),
        );
    }
}
