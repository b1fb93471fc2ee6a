//! Networking shared by every daemon: the accept loop, PROXY protocol,
//! plaintext/TLS streams and network lists.

pub mod dialog;
pub mod lines;
pub mod listener;
pub mod netlist;
pub mod proxy;
pub mod splice;
pub mod stream;

pub use dialog::Replies;
pub use lines::{Line, LineReader};
pub use listener::{Conn, ListenerConfig, ListenerMetrics, Protocol, serve};
pub use netlist::NetList;
pub use stream::{Stream, Transport, write_within};

/// This machine's host name (for greetings and trace headers when the
/// config names none); `localhost` when it cannot be read.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}
