//! End-to-end test support: the directory conformance suite, and (in
//! `servers`) the harness that starts real servers on loopback; `bench` holds
//! what the benchmarks share.

pub mod backend;
pub mod bench;
pub mod clients;
pub mod conformance;
pub mod forward;
pub mod frontend;
pub mod fuzz;
pub mod load;
pub mod servers;
