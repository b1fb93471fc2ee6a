//! Networking shared by every daemon: the accept loop, PROXY protocol,
//! plaintext/TLS streams and network lists.

pub mod lines;
pub mod listener;
pub mod netlist;
pub mod proxy;
pub mod splice;
pub mod stream;

pub use lines::{Line, LineReader};
pub use listener::{Conn, ListenerConfig, ListenerMetrics, Protocol, serve};
pub use netlist::NetList;
pub use stream::{Stream, Transport, write_within};
