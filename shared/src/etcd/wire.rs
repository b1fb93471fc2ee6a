//! The JSON bodies of etcd's v3 gateway, as etcd 3.4 writes and reads them:
//! proto3 JSON, so bytes are base64, 64-bit integers are strings and fields
//! at their zero value are left out.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Bytes as proto3 JSON writes them (base64).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bytes(pub Vec<u8>);

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&B64.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        B64.decode(s.as_bytes())
            .map(Bytes)
            .map_err(serde::de::Error::custom)
    }
}

/// An int64 as proto3 JSON writes it (a string; a number is accepted too).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct I64(pub i64);

impl Serialize for I64 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_string())
    }
}

impl<'de> Deserialize<'de> for I64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            S(String),
            N(i64),
        }
        match Either::deserialize(d)? {
            Either::S(s) => s.parse().map(I64).map_err(serde::de::Error::custom),
            Either::N(n) => Ok(I64(n)),
        }
    }
}

fn is_zero(n: &I64) -> bool {
    n.0 == 0
}

#[derive(Debug, Default, Serialize)]
pub struct RangeRequest {
    pub key: Bytes,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub range_end: Option<Bytes>,
    #[serde(skip_serializing_if = "is_zero")]
    pub limit: I64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RangeResponse {
    pub header: Header,
    pub kvs: Vec<KeyValue>,
    pub count: I64,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct Header {
    pub revision: I64,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct KeyValue {
    pub key: Bytes,
    pub value: Bytes,
    pub create_revision: I64,
    pub mod_revision: I64,
    pub lease: I64,
}

#[derive(Debug, Default, Serialize)]
pub struct PutRequest {
    pub key: Bytes,
    pub value: Bytes,
    #[serde(skip_serializing_if = "is_zero")]
    pub lease: I64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PutResponse {
    pub header: Header,
}

#[derive(Debug, Default, Serialize)]
pub struct DeleteRangeRequest {
    pub key: Bytes,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub range_end: Option<Bytes>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct DeleteRangeResponse {
    pub header: Header,
    pub deleted: I64,
}

/// One condition of a transaction.
#[derive(Debug, Serialize)]
pub struct Compare {
    pub key: Bytes,
    pub target: &'static str,
    pub result: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub create_revision: Option<I64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<Bytes>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease: Option<I64>,
}

#[derive(Debug, Serialize)]
pub enum RequestOp {
    #[serde(rename = "request_range")]
    Range(RangeRequest),
    #[serde(rename = "request_put")]
    Put(PutRequest),
    #[serde(rename = "request_delete_range")]
    Delete(DeleteRangeRequest),
}

#[derive(Debug, Default, Serialize)]
pub struct TxnRequest {
    pub compare: Vec<Compare>,
    pub success: Vec<RequestOp>,
    pub failure: Vec<RequestOp>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct TxnResponse {
    pub header: Header,
    pub succeeded: bool,
    pub responses: Vec<ResponseOp>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ResponseOp {
    pub response_range: Option<RangeResponse>,
    pub response_put: Option<PutResponse>,
    pub response_delete_range: Option<DeleteRangeResponse>,
}

#[derive(Debug, Serialize)]
pub struct LeaseGrantRequest {
    #[serde(rename = "TTL")]
    pub ttl: I64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LeaseGrantResponse {
    #[serde(rename = "ID")]
    pub id: I64,
    #[serde(rename = "TTL")]
    pub ttl: I64,
    pub error: String,
}

#[derive(Debug, Serialize)]
pub struct LeaseIdRequest {
    #[serde(rename = "ID")]
    pub id: I64,
}

/// The keepalive endpoint streams: each message is wrapped in `result`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LeaseKeepAliveStream {
    pub result: LeaseKeepAliveResponse,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LeaseKeepAliveResponse {
    #[serde(rename = "ID")]
    pub id: I64,
    /// 0 (left out) when the lease is gone.
    #[serde(rename = "TTL")]
    pub ttl: I64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Empty {}

/// What the gateway answers instead when a request fails.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ErrorBody {
    pub error: String,
    pub message: String,
    pub code: i32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_read_as_etcd_3_4_writes_them() {
        let r: RangeResponse = serde_json::from_str(
            r#"{"header":{"cluster_id":"1","revision":"2","raft_term":"2"},"kvs":[{"key":"Zm9v","create_revision":"2","mod_revision":"2","version":"1","value":"YmFy","lease":"77"}],"count":"1"}"#,
        )
        .expect("range");
        assert_eq!(r.kvs[0].key.0, b"foo");
        assert_eq!(r.kvs[0].value.0, b"bar");
        assert_eq!(r.kvs[0].lease, I64(77));
        assert_eq!(r.count, I64(1));
        let empty: RangeResponse =
            serde_json::from_str(r#"{"header":{"revision":"5"}}"#).expect("empty");
        assert!(empty.kvs.is_empty());
        let k: LeaseKeepAliveStream =
            serde_json::from_str(r#"{"result":{"header":{},"ID":"12345"}}"#).expect("ka");
        assert_eq!((k.result.id, k.result.ttl), (I64(12345), I64(0)));
        let t: TxnResponse = serde_json::from_str(
            r#"{"header":{},"succeeded":true,"responses":[{"response_put":{"header":{"revision":"3"}}}]}"#,
        )
        .expect("txn");
        assert!(t.succeeded && t.responses[0].response_put.is_some());
    }

    #[test]
    fn requests_written_as_the_gateway_reads_them() {
        let t = TxnRequest {
            compare: vec![Compare {
                key: Bytes(b"k".to_vec()),
                target: "CREATE",
                result: "EQUAL",
                create_revision: Some(I64(0)),
                value: None,
                lease: None,
            }],
            success: vec![RequestOp::Put(PutRequest {
                key: Bytes(b"k".to_vec()),
                value: Bytes(b"v".to_vec()),
                lease: I64(9),
            })],
            failure: vec![],
        };
        assert_eq!(
            serde_json::to_string(&t).expect("json"),
            r#"{"compare":[{"key":"aw==","target":"CREATE","result":"EQUAL","create_revision":"0"}],"success":[{"request_put":{"key":"aw==","value":"dg==","lease":"9"}}],"failure":[]}"#
        );
        assert!(serde_json::from_str::<Bytes>(r#""not base64!""#).is_err());
    }
}
