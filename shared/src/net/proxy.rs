//! The PROXY protocol (HAProxy's spec, versions 1 and 2): reading the header
//! a load balancer or a Tandem frontend puts before the client's bytes, and
//! writing a v2 header when Tandem itself forwards a connection.
//!
//! Parsing is done by the `proxy-header` crate; this module only reads
//! exactly the header's bytes off the socket (never a byte of the protocol
//! behind it) and bounds how long and how much that may take.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use proxy_header::{ParseConfig, ProxiedAddress, ProxyHeader};
use tokio::io::{AsyncRead, AsyncReadExt};

/// v1 headers are at most 107 bytes (spec §2.1); v2 bodies are bounded by us.
const MAX_V1: usize = 107;
const MAX_V2_BODY: usize = 1024;
const V2_SIG: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("no PROXY header within {0:?}")]
    Timeout(Duration),
    #[error("invalid PROXY header: {0}")]
    Invalid(String),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Reads one PROXY header (v1 or v2). Returns the client and destination
/// addresses it carries, or `None` for `LOCAL`/`UNKNOWN` (health checks).
pub async fn read_header<S: AsyncRead + Unpin>(
    stream: &mut S,
    timeout: Duration,
) -> Result<Option<(SocketAddr, SocketAddr)>, ProxyError> {
    match tokio::time::timeout(timeout, read_raw(stream)).await {
        Err(_) => Err(ProxyError::Timeout(timeout)),
        Ok(r) => {
            let raw = r?;
            let cfg = ParseConfig {
                include_tlvs: false,
                allow_v1: true,
                allow_v2: true,
            };
            let (h, used) =
                ProxyHeader::parse(&raw, cfg).map_err(|e| ProxyError::Invalid(e.to_string()))?;
            if used != raw.len() {
                return Err(ProxyError::Invalid("trailing bytes".into()));
            }
            Ok(h.proxied_address().map(|a| (a.source, a.destination)))
        }
    }
}

async fn read_raw<S: AsyncRead + Unpin>(s: &mut S) -> Result<Vec<u8>, ProxyError> {
    let mut buf = vec![0u8; 5];
    s.read_exact(&mut buf).await?;
    if buf == b"PROXY" {
        // v1: a text line ending in CRLF; read it byte by byte so not one
        // byte of the protocol behind it is consumed.
        while !buf.ends_with(b"\r\n") {
            if buf.len() >= MAX_V1 {
                return Err(ProxyError::Invalid(
                    "v1 header longer than 107 bytes".into(),
                ));
            }
            buf.push(s.read_u8().await?);
        }
        return Ok(buf);
    }
    if buf[..] != V2_SIG[..5] {
        return Err(ProxyError::Invalid("neither v1 nor v2 signature".into()));
    }
    buf.resize(16, 0);
    s.read_exact(&mut buf[5..]).await?;
    if buf[..12] != V2_SIG[..] {
        return Err(ProxyError::Invalid("bad v2 signature".into()));
    }
    let len = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    if len > MAX_V2_BODY {
        return Err(ProxyError::Invalid(format!("v2 body of {len} bytes")));
    }
    buf.resize(16 + len, 0);
    s.read_exact(&mut buf[16..]).await?;
    Ok(buf)
}

/// A v2 header announcing a TCP connection from `client` to `server`.
pub fn encode_v2(client: SocketAddr, server: SocketAddr) -> Vec<u8> {
    // Both ends must be the same family; map v4 into v6 when they differ.
    let (src, dst) = match (client, server) {
        (SocketAddr::V4(_), SocketAddr::V6(_)) | (SocketAddr::V6(_), SocketAddr::V4(_)) => {
            (to_v6(client), to_v6(server))
        }
        _ => (client, server),
    };
    let mut out = Vec::with_capacity(64);
    let header = ProxyHeader::with_address(ProxiedAddress::stream(src, dst));
    // Encoding an address-only header into a Vec cannot fail.
    if header.encode_v2(&mut out).is_err() {
        out.clear();
    }
    out
}

/// A v2 `LOCAL` header: a connection the proxy opened for itself (a health
/// check), with no client to speak of.
pub fn encode_v2_local() -> [u8; 16] {
    [
        0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A, // signature
        0x20, // version 2, LOCAL
        0x00, // UNSPEC
        0x00, 0x00, // no addresses
    ]
}

fn to_v6(a: SocketAddr) -> SocketAddr {
    match a {
        SocketAddr::V4(v4) => SocketAddr::new(v4.ip().to_ipv6_mapped().into(), v4.port()),
        v6 => v6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn parse(
        bytes: &[u8],
    ) -> (
        Result<Option<(SocketAddr, SocketAddr)>, ProxyError>,
        Vec<u8>,
    ) {
        let mut r = bytes;
        let res = read_header(&mut r, Duration::from_secs(1)).await;
        (res, r.to_vec())
    }

    #[tokio::test]
    async fn local_header_is_read_as_no_client() {
        let mut bytes = encode_v2_local().to_vec();
        bytes.extend_from_slice(b"rest");
        let (res, rest) = parse(&bytes).await;
        assert!(matches!(res, Ok(None)), "{res:?}");
        assert_eq!(rest, b"rest");
    }

    #[tokio::test]
    async fn v1_and_v2_leave_the_rest() {
        let (r, rest) = parse(b"PROXY TCP4 192.0.2.1 10.0.0.1 56324 143\r\na001 LOGIN").await;
        let (src, dst) = r.unwrap().unwrap();
        assert_eq!(src, "192.0.2.1:56324".parse().unwrap());
        assert_eq!(dst.port(), 143);
        assert_eq!(rest, b"a001 LOGIN");

        let mut v2 = encode_v2(
            "[2001:db8::7]:4000".parse().unwrap(),
            "[::1]:993".parse().unwrap(),
        );
        v2.extend_from_slice(b"* OK");
        let (r, rest) = parse(&v2).await;
        assert_eq!(r.unwrap().unwrap().0, "[2001:db8::7]:4000".parse().unwrap());
        assert_eq!(rest, b"* OK");

        let (r, _) = parse(b"PROXY UNKNOWN\r\n").await;
        assert!(r.unwrap().is_none());
    }

    #[tokio::test]
    async fn refuses_garbage() {
        for bad in [
            &b"a001 LOGIN x y\r\n"[..],
            b"PROXY TCP4 nonsense\r\n",
            b"PROXY TCP4 192.0.2.1 10.0.0.1 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50\r\n",
            b"\r\n\r\n\0\r\nQUIT\n\x21\x11\xff\xff",
        ] {
            assert!(parse(bad).await.0.is_err(), "{bad:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn slow_header_times_out() {
        let (mut a, _b) = tokio::io::duplex(64);
        let r = read_header(&mut a, Duration::from_secs(3)).await;
        assert!(matches!(r, Err(ProxyError::Timeout(_))));
    }
}
