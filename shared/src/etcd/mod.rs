//! etcd, through the HTTP/JSON gateway of its v3 API.
//!
//! etcd serves its gRPC API as JSON over HTTP/1.1 on every client URL
//! (grpc-gateway, `/v3/...`; etcd 3.4 is Debian 12's `etcd-server`). Talking
//! JSON instead of gRPC keeps protoc out of the build: the `etcd-client`
//! crate runs it in its build script, which a fresh machine cannot do.
//!
//! - [`config`]: the `etcd:` section every role reads;
//! - [`wire`]: the request and response bodies (keys and values base64,
//!   64-bit numbers as strings, as the gateway writes them);
//! - [`keys`]: where a backend cluster keeps its nodes and owners;
//! - [`client`]: a typed client over hyper with per-request timeouts and
//!   failover to the next member;
//! - [`metrics`]: request latency and errors.

pub mod client;
pub mod config;
pub mod keys;
pub mod metrics;
pub mod wire;

pub use crate::lease::{Compare, Kv, LeaseId, LeaseStore, Txn, TxnOp, TxnResult};
pub use client::{Client, EtcdError};
pub use config::EtcdConfig;
pub use metrics::EtcdMetrics;
