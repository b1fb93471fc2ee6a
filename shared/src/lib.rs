//! What every Tandem tier needs: configuration loading, normalised mail
//! addresses, password schemes, TLS, metrics and the admin endpoint.

pub mod address;
pub mod admin;
pub mod blocking;
pub mod config;
pub mod etcd;
pub mod lease;
pub mod logging;
pub mod metrics;
pub mod net;
pub mod password;
pub mod pop3;
pub mod sasl;
pub mod smtp;
pub mod time;
pub mod tls;
pub mod upstream;

pub use address::{Address, AddressError, Domain};
