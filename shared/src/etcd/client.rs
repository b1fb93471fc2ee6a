//! A typed etcd v3 client over the HTTP/JSON gateway.
//!
//! Each request goes to the member that answered last; when it cannot be
//! reached, does not answer within the request timeout, or says it is
//! unavailable (no leader, gRPC code 14), the next member is asked, each at
//! most once. One HTTP/1.1 connection per request: requests are rare (a
//! lease renewal every ttl/3, a claim per account opened) and a fresh
//! connection can never be a half-dead one left over from a partition.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::Request;
use hyper::body::Bytes as HyperBytes;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::TcpStream;

use super::config::EtcdConfig;
use super::metrics::{ErrorLabel, EtcdMetrics, OpLabel};
use super::wire::{self, Bytes, I64};
use crate::lease::{Compare, Kv, LeaseId, Txn, TxnOp, TxnResult};

/// Largest answer read (a `prefix` listing of a big cluster's owners).
const MAX_ANSWER: usize = 64 << 20;
/// gRPC status codes after which another member may do better.
const UNAVAILABLE: i32 = 14;
const DEADLINE_EXCEEDED: i32 = 4;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EtcdError {
    /// No member answered; `last` is the last member's failure.
    #[error("etcd {op}: no member answered ({tried} tried); last: {last}")]
    Unavailable {
        op: &'static str,
        tried: usize,
        last: String,
    },
    /// A member answered with an error.
    #[error("etcd {op}: {message} (code {code})")]
    Server {
        op: &'static str,
        code: i32,
        message: String,
    },
    /// An answer that is not what the gateway writes.
    #[error("etcd {op}: unreadable answer: {why}")]
    Protocol { op: &'static str, why: String },
}

impl EtcdError {
    fn kind(&self) -> &'static str {
        match self {
            EtcdError::Unavailable { .. } => "unavailable",
            EtcdError::Server { .. } => "server",
            EtcdError::Protocol { .. } => "protocol",
        }
    }
}

impl From<wire::KeyValue> for Kv {
    fn from(k: wire::KeyValue) -> Self {
        Kv {
            key: String::from_utf8_lossy(&k.key.0).into_owned(),
            value: k.value.0,
            lease: LeaseId(k.lease.0),
            create_revision: k.create_revision.0,
            mod_revision: k.mod_revision.0,
        }
    }
}

fn op_wire(op: TxnOp) -> wire::RequestOp {
    match op {
        TxnOp::Get(k) => wire::RequestOp::Range(wire::RangeRequest {
            key: bytes(&k),
            ..Default::default()
        }),
        TxnOp::Put { key, value, lease } => wire::RequestOp::Put(wire::PutRequest {
            key: bytes(&key),
            value: Bytes(value),
            lease: I64(lease.0),
        }),
        TxnOp::Delete(k) => wire::RequestOp::Delete(wire::DeleteRangeRequest {
            key: bytes(&k),
            range_end: None,
        }),
    }
}

fn compare_wire(c: Compare) -> wire::Compare {
    let (key, target, create_revision, value, lease) = match c {
        Compare::Absent(k) => (k, "CREATE", Some(I64(0)), None, None),
        Compare::ValueIs(k, v) => (k, "VALUE", None, Some(Bytes(v)), None),
        Compare::LeaseIs(k, l) => (k, "LEASE", None, None, Some(I64(l.0))),
    };
    wire::Compare {
        key: bytes(&key),
        target,
        result: "EQUAL",
        create_revision,
        value,
        lease,
    }
}

fn txn_wire(txn: Txn) -> wire::TxnRequest {
    wire::TxnRequest {
        compare: txn.compare.into_iter().map(compare_wire).collect(),
        success: txn.then.into_iter().map(op_wire).collect(),
        failure: txn.otherwise.into_iter().map(op_wire).collect(),
    }
}

#[derive(Debug, Clone)]
struct Endpoint {
    host: String,
    port: u16,
}

/// Reads `host:port` or `http://host:port[/]`.
pub fn parse_endpoint(s: &str) -> Result<(String, u16), String> {
    let rest = match s.split_once("://") {
        Some(("http", rest)) => rest,
        Some((scheme, _)) => return Err(format!("scheme {scheme} not supported (use http)")),
        None => s,
    };
    let rest = rest.trim_end_matches('/');
    let (host, port) = rest
        .rsplit_once(':')
        .ok_or_else(|| "needs a port (host:port)".to_owned())?;
    let port = port.parse().map_err(|_| format!("bad port {port:?}"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err("needs a host".into());
    }
    Ok((host.to_owned(), port))
}

pub struct Client {
    endpoints: Vec<Endpoint>,
    /// The member asked first: the last one that answered.
    current: AtomicUsize,
    timeout: Duration,
    metrics: EtcdMetrics,
}

impl Client {
    pub fn new(cfg: &EtcdConfig, metrics: EtcdMetrics) -> Result<Client, String> {
        let endpoints = cfg
            .endpoints
            .iter()
            .map(|e| {
                parse_endpoint(e)
                    .map(|(host, port)| Endpoint { host, port })
                    .map_err(|why| format!("etcd.endpoints {e}: {why}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if endpoints.is_empty() {
            return Err("etcd.endpoints: empty".into());
        }
        Ok(Client {
            endpoints,
            current: AtomicUsize::new(0),
            timeout: cfg.request_timeout,
            metrics,
        })
    }

    /// The value of `key`.
    pub async fn get(&self, key: &str) -> Result<Option<Kv>, EtcdError> {
        let req = wire::RangeRequest {
            key: bytes(key),
            ..Default::default()
        };
        let r: wire::RangeResponse = self.call("range", "/v3/kv/range", &req).await?;
        Ok(r.kvs.into_iter().next().map(Kv::from))
    }

    /// Every key starting with `prefix`, in key order.
    pub async fn prefix(&self, prefix: &str) -> Result<Vec<Kv>, EtcdError> {
        let req = wire::RangeRequest {
            key: bytes(prefix),
            range_end: Some(Bytes(prefix_end(prefix.as_bytes()))),
            ..Default::default()
        };
        let r: wire::RangeResponse = self.call("range", "/v3/kv/range", &req).await?;
        Ok(r.kvs.into_iter().map(Kv::from).collect())
    }

    pub async fn put(&self, key: &str, value: &[u8], lease: LeaseId) -> Result<(), EtcdError> {
        let req = wire::PutRequest {
            key: bytes(key),
            value: Bytes(value.to_vec()),
            lease: I64(lease.0),
        };
        let _: wire::PutResponse = self.call("put", "/v3/kv/put", &req).await?;
        Ok(())
    }

    /// Deletes `key`; whether it existed.
    pub async fn delete(&self, key: &str) -> Result<bool, EtcdError> {
        let req = wire::DeleteRangeRequest {
            key: bytes(key),
            range_end: None,
        };
        let r: wire::DeleteRangeResponse = self.call("delete", "/v3/kv/deleterange", &req).await?;
        Ok(r.deleted.0 > 0)
    }

    pub async fn txn(&self, txn: Txn) -> Result<TxnResult, EtcdError> {
        let r: wire::TxnResponse = self.call("txn", "/v3/kv/txn", &txn_wire(txn)).await?;
        let found = r
            .responses
            .into_iter()
            .map(|op| {
                op.response_range
                    .map(|r| r.kvs.into_iter().map(Kv::from).collect())
                    .unwrap_or_default()
            })
            .collect();
        Ok(TxnResult {
            succeeded: r.succeeded,
            found,
        })
    }

    /// A new lease of `ttl` (whole seconds, at least 1).
    pub async fn grant(&self, ttl: Duration) -> Result<LeaseId, EtcdError> {
        let req = wire::LeaseGrantRequest {
            ttl: I64(ttl.as_secs().max(1) as i64),
        };
        let r: wire::LeaseGrantResponse = self.call("grant", "/v3/lease/grant", &req).await?;
        if !r.error.is_empty() || r.id.0 == 0 {
            return Err(EtcdError::Server {
                op: "grant",
                code: 0,
                message: if r.error.is_empty() {
                    "no lease id in the answer".into()
                } else {
                    r.error
                },
            });
        }
        Ok(LeaseId(r.id.0))
    }

    /// Renews `lease`; its TTL, or `None` when it has expired (or was
    /// revoked) and everything bound to it is gone.
    ///
    /// Asked of every member at once, first answer wins: a renewal must
    /// not wait out one member's timeout after another (a follower holds a
    /// request while the cluster elects a new leader), or the node would
    /// fence itself for nothing. Only the leader renews, so a member cut
    /// off from it cannot answer for it.
    pub async fn keep_alive(&self, lease: LeaseId) -> Result<Option<Duration>, EtcdError> {
        let op = "keepalive";
        let req = wire::LeaseIdRequest { id: I64(lease.0) };
        let body = serde_json::to_vec(&req).map_err(|e| EtcdError::Protocol {
            op,
            why: e.to_string(),
        })?;
        let start = tokio::time::Instant::now();
        let mut asks = tokio::task::JoinSet::new();
        for (i, ep) in self.endpoints.iter().enumerate() {
            let (ep, body, timeout) = (ep.clone(), body.clone(), self.timeout);
            asks.spawn(async move {
                let r = tokio::time::timeout(timeout, send(&ep, "/v3/lease/keepalive", body)).await;
                (i, ep, r)
            });
        }
        let mut last = String::new();
        while let Some(done) = asks.join_next().await {
            let Ok((i, ep, r)) = done else { continue };
            match r {
                Ok(Ok((200, answer))) => {
                    let parsed = serde_json::from_slice::<wire::LeaseKeepAliveStream>(&answer);
                    if let Ok(k) = parsed {
                        self.current.store(i, Ordering::Relaxed);
                        self.metrics
                            .seconds
                            .get_or_create(&OpLabel { op })
                            .observe(start.elapsed().as_secs_f64());
                        let ttl = k.result.ttl.0;
                        return Ok((ttl > 0).then(|| Duration::from_secs(ttl as u64)));
                    }
                    last = format!("{}:{}: unreadable answer", ep.host, ep.port);
                }
                Ok(Ok((status, answer))) => {
                    last = format!(
                        "{}:{}: HTTP {status}: {}",
                        ep.host,
                        ep.port,
                        String::from_utf8_lossy(&answer)
                    );
                }
                Ok(Err(e)) => last = format!("{}:{}: {e}", ep.host, ep.port),
                Err(_) => {
                    last = format!(
                        "{}:{}: no answer within {:?}",
                        ep.host, ep.port, self.timeout
                    )
                }
            }
        }
        Err(self.error(EtcdError::Unavailable {
            op,
            tried: self.endpoints.len(),
            last,
        }))
    }

    /// Ends `lease` now, deleting its keys. A lease already gone is fine.
    pub async fn revoke(&self, lease: LeaseId) -> Result<(), EtcdError> {
        let req = wire::LeaseIdRequest { id: I64(lease.0) };
        match self
            .call::<_, wire::Empty>("revoke", "/v3/lease/revoke", &req)
            .await
        {
            Ok(_) => Ok(()),
            Err(EtcdError::Server { code: 5, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Sends one request, failing over member by member.
    async fn call<Q: Serialize, A: DeserializeOwned>(
        &self,
        op: &'static str,
        path: &'static str,
        req: &Q,
    ) -> Result<A, EtcdError> {
        let body = serde_json::to_vec(req).map_err(|e| EtcdError::Protocol {
            op,
            why: e.to_string(),
        })?;
        let start = tokio::time::Instant::now();
        let r = self.call_members(op, path, body).await;
        self.metrics
            .seconds
            .get_or_create(&OpLabel { op })
            .observe(start.elapsed().as_secs_f64());
        match r {
            Ok(answer) => serde_json::from_slice(&answer).map_err(|e| {
                self.error(EtcdError::Protocol {
                    op,
                    why: format!("{e} in {}", String::from_utf8_lossy(&answer)),
                })
            }),
            Err(e) => Err(self.error(e)),
        }
    }

    fn error(&self, e: EtcdError) -> EtcdError {
        let op = match &e {
            EtcdError::Unavailable { op, .. }
            | EtcdError::Server { op, .. }
            | EtcdError::Protocol { op, .. } => *op,
        };
        self.metrics
            .errors
            .get_or_create(&ErrorLabel { op, kind: e.kind() })
            .inc();
        e
    }

    async fn call_members(
        &self,
        op: &'static str,
        path: &'static str,
        body: Vec<u8>,
    ) -> Result<Vec<u8>, EtcdError> {
        let n = self.endpoints.len();
        let first = self.current.load(Ordering::Relaxed) % n;
        let mut last = String::new();
        for i in 0..n {
            let at = (first + i) % n;
            let ep = &self.endpoints[at];
            if i > 0 {
                self.metrics.failovers.inc();
            }
            let attempt = tokio::time::timeout(self.timeout, send(ep, path, body.clone())).await;
            let why = match attempt {
                Err(_) => format!(
                    "{}:{}: no answer within {:?}",
                    ep.host, ep.port, self.timeout
                ),
                Ok(Err(e)) => format!("{}:{}: {e}", ep.host, ep.port),
                Ok(Ok((status, answer))) => {
                    if status == 200 {
                        self.current.store(at, Ordering::Relaxed);
                        return Ok(answer);
                    }
                    let err: wire::ErrorBody = serde_json::from_slice(&answer).unwrap_or_default();
                    let message = if err.message.is_empty() {
                        format!("HTTP {status}: {}", String::from_utf8_lossy(&answer))
                    } else {
                        err.message
                    };
                    if err.code != UNAVAILABLE && err.code != DEADLINE_EXCEEDED && status < 500 {
                        self.current.store(at, Ordering::Relaxed);
                        return Err(EtcdError::Server {
                            op,
                            code: err.code,
                            message,
                        });
                    }
                    format!("{}:{}: {message}", ep.host, ep.port)
                }
            };
            tracing::debug!(op, member = at, error = %why, "etcd member failed; trying the next");
            last = why;
            self.current.store((at + 1) % n, Ordering::Relaxed);
        }
        Err(EtcdError::Unavailable { op, tried: n, last })
    }
}

/// POSTs `body` to one member: the status and the whole answer.
async fn send(ep: &Endpoint, path: &str, body: Vec<u8>) -> Result<(u16, Vec<u8>), String> {
    let tcp = TcpStream::connect((ep.host.as_str(), ep.port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let driver = tokio::spawn(conn);
    let req = Request::post(path)
        .header(hyper::header::HOST, format!("{}:{}", ep.host, ep.port))
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(HyperBytes::from(body)))
        .map_err(|e| format!("request: {e}"))?;
    let result = async {
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("send: {e}"))?;
        let status = resp.status().as_u16();
        let answer = Limited::new(resp.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| format!("read: {e}"))?
            .to_bytes();
        Ok((status, answer.to_vec()))
    }
    .await;
    driver.abort();
    result
}

fn bytes(s: &str) -> Bytes {
    Bytes(s.as_bytes().to_vec())
}

/// The end of the range of keys starting with `prefix`: the prefix with
/// its last byte below 0xff incremented (etcd's `WithPrefix`).
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // All 0xff (or empty): every key from `prefix` on.
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_and_prefix_ends() {
        assert_eq!(
            parse_endpoint("127.0.0.1:2379"),
            Ok(("127.0.0.1".into(), 2379))
        );
        assert_eq!(
            parse_endpoint("http://[::1]:2379/"),
            Ok(("::1".into(), 2379))
        );
        assert!(parse_endpoint("https://h:1").is_err());
        assert!(parse_endpoint("h").is_err());
        assert!(parse_endpoint(":1").is_err());
        assert!(parse_endpoint("h:x").is_err());
        assert_eq!(prefix_end(b"/t/a"), b"/t/b");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff"), b"\0");
    }
}
