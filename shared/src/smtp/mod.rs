//! SMTP and LMTP, the parts both the backend's LMTP server and the
//! frontend's SMTP server speak: the command grammar ([`command`]) and the
//! DATA/BDAT body readers ([`data`]), both sans-I/O.

pub mod command;
pub mod data;

pub use command::{Body, Command, ParseError, parse};
pub use data::{Chunks, DotReader, Flaws, Form, Step};
