//! SMTP and LMTP, the parts both the backend's LMTP server and the
//! frontend's SMTP server speak: the command grammar ([`command`]) and the
//! DATA/BDAT body readers ([`data`]), both sans-I/O, and the pieces of the
//! trace header both write ([`trace`]).

pub mod command;
pub mod data;
pub mod trace;

pub use command::{Body, Command, ParseError, parse};
pub use data::{Chunks, DotReader, Flaws, Form, Step};
