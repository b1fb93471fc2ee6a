//! End-to-end test support: the directory conformance suite, and (in
//! `servers`) the harness that starts real servers on loopback.

pub mod backend;
pub mod clients;
pub mod conformance;
pub mod frontend;
pub mod load;
pub mod servers;
