//! The one accept loop every Tandem listener runs, whatever the protocol.
//!
//! It owns everything that is the same for IMAP, POP3, LMTP, SMTP and HTTP:
//! connection caps (total and per client address), the PROXY header from
//! trusted load balancers or frontends (required from them, refused from
//! everyone else because it then reaches the protocol parser as garbage),
//! implicit TLS, a session id and a tracing span per connection, metrics,
//! backoff on accept errors, and shutdown. The protocol gets a ready
//! [`Conn`] and a cancellation token that fires when the listener drains.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::netlist::{NetList, canonical};
use super::proxy;
use super::stream::Stream;

/// A protocol served on a listener.
pub trait Protocol: Send + Sync + 'static {
    /// Serves one connection until it ends. `shutdown` fires when the
    /// listener drains: say goodbye (`* BYE`, `-ERR`, `421`) and return.
    fn serve(&self, conn: Conn, shutdown: CancellationToken) -> impl Future<Output = ()> + Send;

    /// Said to a client refused for being over a connection limit, before
    /// the connection is closed (`* BYE Too many connections\r\n`).
    fn too_busy(&self) -> &'static [u8];
}

/// An accepted connection, ready for the protocol.
pub struct Conn {
    pub stream: Stream,
    /// The client: from the PROXY header when there was one, else the peer.
    pub client: SocketAddr,
    /// The TCP peer (a load balancer or frontend when proxied).
    pub peer: SocketAddr,
    pub local: SocketAddr,
    /// A short random id, in every log line of this session and passed to
    /// the next tier so one session can be followed across tiers.
    pub session: String,
    /// For STARTTLS/STLS, when the listener has a certificate.
    pub tls: Option<TlsAcceptor>,
}

/// How a listener treats its connections.
#[derive(Clone)]
pub struct ListenerConfig {
    /// Protocol label for metrics and logs: `imap`, `imaps`, `pop3`, `lmtp`...
    pub name: &'static str,
    /// Peers that must send a PROXY header (v1 or v2) first.
    pub proxy_from: NetList,
    /// Handshake TLS right after accept (IMAPS, POP3S, SMTPS).
    pub implicit_tls: bool,
    /// For implicit TLS and STARTTLS.
    pub tls: Option<TlsAcceptor>,
    pub max_connections: usize,
    pub max_per_ip: usize,
    /// Bound on the PROXY header and the TLS handshake.
    pub handshake_timeout: Duration,
}

impl ListenerConfig {
    pub fn new(name: &'static str) -> Self {
        ListenerConfig {
            name,
            proxy_from: NetList::default(),
            implicit_tls: false,
            tls: None,
            max_connections: 10_000,
            max_per_ip: 1_000,
            handshake_timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListenerLabel {
    pub listener: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusedLabels {
    pub listener: &'static str,
    pub reason: &'static str,
}

/// Connection metrics shared by every listener of a process.
#[derive(Clone, Default)]
pub struct ListenerMetrics {
    pub accepted: Family<ListenerLabel, Counter>,
    pub active: Family<ListenerLabel, Gauge>,
    pub refused: Family<RefusedLabels, Counter>,
}

impl ListenerMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        let r = registry.sub_registry_with_prefix("tandem");
        r.register("connections", "Connections accepted", m.accepted.clone());
        r.register(
            "connections_active",
            "Connections open now",
            m.active.clone(),
        );
        r.register(
            "connections_refused",
            "Connections refused, by reason",
            m.refused.clone(),
        );
        m
    }

    /// Counts a connection refused on `listener` for `reason`.
    pub fn refuse(&self, listener: &'static str, reason: &'static str) {
        self.refused
            .get_or_create(&RefusedLabels { listener, reason })
            .inc();
    }
}

/// Counts connections per client address; the guard gives the slot back.
#[derive(Clone, Default)]
struct PerIp(Arc<Mutex<HashMap<IpAddr, usize>>>);

struct Slot {
    map: PerIp,
    ip: IpAddr,
}

impl PerIp {
    fn take(&self, ip: IpAddr, max: usize) -> Option<Slot> {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let n = m.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(Slot {
            map: self.clone(),
            ip,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut m = self.map.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

/// A random session id: 12 characters of base32, 60 bits.
pub fn session_id() -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut n: u64 = rand::random();
    (0..12)
        .map(|_| {
            let c = ALPHABET[(n & 31) as usize] as char;
            n >>= 5;
            c
        })
        .collect()
}

/// Accepts connections until `shutdown` fires, then waits for the sessions
/// (which see the same token) to finish.
pub async fn serve<P: Protocol>(
    listener: TcpListener,
    cfg: ListenerConfig,
    protocol: Arc<P>,
    metrics: ListenerMetrics,
    shutdown: CancellationToken,
) {
    let tracker = TaskTracker::new();
    let per_ip = PerIp::default();
    let label = ListenerLabel { listener: cfg.name };
    let total = Arc::new(tokio::sync::Semaphore::new(cfg.max_connections));
    let mut backoff = Duration::from_millis(5);
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => r,
        };
        let (tcp, peer) = match accepted {
            Ok(x) => {
                backoff = Duration::from_millis(5);
                x
            }
            Err(e) => {
                // Out of descriptors or memory: wait rather than spin.
                tracing::warn!(listener = cfg.name, error = %e, "accept failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        metrics.accepted.get_or_create(&label).inc();
        let refuse = |reason: &'static str| metrics.refuse(cfg.name, reason);
        let Ok(permit) = total.clone().try_acquire_owned() else {
            refuse("max_connections");
            tracker.spawn(say_and_close(tcp, protocol.too_busy()));
            continue;
        };
        let session = session_id();
        // `origin`: the session of another tier this one works for (LMTP's
        // XCLIENT SESSION=), recorded once known.
        let span = tracing::info_span!("session", id = %session, listener = cfg.name, peer = %peer, origin = tracing::field::Empty);
        let (cfg2, protocol, metrics, shutdown, per_ip) = (
            cfg.clone(),
            protocol.clone(),
            metrics.clone(),
            shutdown.clone(),
            per_ip.clone(),
        );
        tracker.spawn(
            async move {
                let _permit = permit;
                let Some(conn) = handshake(tcp, peer, session, &cfg2, &metrics).await else {
                    return;
                };
                let Some(_slot) = per_ip.take(canonical(conn.client.ip()), cfg2.max_per_ip) else {
                    metrics.refuse(cfg2.name, "max_per_ip");
                    tracing::info!(client = %conn.client, "too many connections from this address");
                    let mut s = conn.stream;
                    let _ = tokio::io::AsyncWriteExt::write_all(&mut s, protocol.too_busy()).await;
                    return;
                };
                let active = metrics
                    .active
                    .get_or_create(&ListenerLabel {
                        listener: cfg2.name,
                    })
                    .clone();
                active.inc();
                tracing::debug!(client = %conn.client, "connected");
                protocol.serve(conn, shutdown).await;
                active.dec();
            }
            .instrument(span),
        );
    }
    // Close the port now, not when the last session ends: while draining,
    // the kernel must refuse new clients instead of queueing them.
    drop(listener);
    tracker.close();
    tracker.wait().await;
}

async fn say_and_close(mut tcp: tokio::net::TcpStream, line: &'static [u8]) {
    use tokio::io::AsyncWriteExt;
    let _ = tokio::time::timeout(Duration::from_secs(2), tcp.write_all(line)).await;
}

/// PROXY header (when the peer must send one) and implicit TLS.
async fn handshake(
    mut tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    session: String,
    cfg: &ListenerConfig,
    metrics: &ListenerMetrics,
) -> Option<Conn> {
    let local = tcp.local_addr().ok()?;
    let refuse = |reason: &'static str| metrics.refuse(cfg.name, reason);
    let mut client = peer;
    if cfg.proxy_from.contains(peer.ip()) {
        match proxy::read_header(&mut tcp, cfg.handshake_timeout).await {
            Ok(Some((src, _dst))) => client = src,
            Ok(None) => {}
            Err(e) => {
                refuse("proxy_header");
                tracing::info!(error = %e, "bad PROXY header from a trusted peer");
                return None;
            }
        }
    }
    let stream = if cfg.implicit_tls {
        let acceptor = cfg.tls.as_ref()?;
        match tokio::time::timeout(cfg.handshake_timeout, acceptor.accept(tcp)).await {
            Ok(Ok(t)) => Stream::Tls(Box::new(t)),
            Ok(Err(e)) => {
                refuse("tls");
                tracing::debug!(error = %e, "TLS handshake failed");
                return None;
            }
            Err(_) => {
                refuse("tls_timeout");
                return None;
            }
        }
    } else {
        Stream::Plain(tcp)
    };
    Some(Conn {
        stream,
        client,
        peer,
        local,
        session,
        tls: cfg.tls.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Echoes the client address the listener determined, then waits for
    /// the client to close or the listener to drain.
    struct Who;

    impl Protocol for Who {
        async fn serve(&self, mut conn: Conn, shutdown: CancellationToken) {
            let line = format!("client {}\r\n", conn.client);
            let _ = conn.stream.write_all(line.as_bytes()).await;
            let mut b = [0u8; 1];
            tokio::select! {
                _ = conn.stream.read(&mut b) => {}
                _ = shutdown.cancelled() => {}
            }
        }
        fn too_busy(&self) -> &'static [u8] {
            b"busy\r\n"
        }
    }

    async fn start(
        cfg: ListenerConfig,
    ) -> (SocketAddr, CancellationToken, tokio::task::JoinHandle<()>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let stop = CancellationToken::new();
        let h = tokio::spawn(serve(
            l,
            cfg,
            Arc::new(Who),
            ListenerMetrics::default(),
            stop.clone(),
        ));
        (addr, stop, h)
    }

    async fn first_line(s: &mut tokio::net::TcpStream) -> String {
        let mut buf = vec![0u8; 128];
        // A refused connection may end in a reset rather than a clean close.
        let n = s.read(&mut buf).await.unwrap_or(0);
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[tokio::test]
    async fn proxy_header_from_trusted_peer_sets_client() {
        let mut cfg = ListenerConfig::new("test");
        cfg.proxy_from = NetList::loopback();
        let (addr, stop, h) = start(cfg).await;
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(&proxy::encode_v2("203.0.113.9:5555".parse().unwrap(), addr))
            .await
            .unwrap();
        assert_eq!(first_line(&mut s).await, "client 203.0.113.9:5555\r\n");
        // Without a header, a trusted peer is refused.
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"a001 CAPABILITY\r\n").await.unwrap();
        assert_eq!(first_line(&mut s).await, "");
        stop.cancel();
        drop(s);
        h.await.unwrap();
    }

    #[tokio::test]
    async fn untrusted_peer_is_itself_the_client() {
        let (addr, stop, h) = start(ListenerConfig::new("test")).await;
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let line = first_line(&mut s).await;
        assert!(line.starts_with("client 127.0.0.1:"), "{line}");
        stop.cancel();
        drop(s);
        h.await.unwrap();
    }

    #[tokio::test]
    async fn per_ip_limit() {
        let mut cfg = ListenerConfig::new("test");
        cfg.max_per_ip = 2;
        let (addr, stop, h) = start(cfg).await;
        let mut a = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut b = tokio::net::TcpStream::connect(addr).await.unwrap();
        assert!(first_line(&mut a).await.starts_with("client"));
        assert!(first_line(&mut b).await.starts_with("client"));
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        assert_eq!(first_line(&mut c).await, "busy\r\n");
        drop(a);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut d = tokio::net::TcpStream::connect(addr).await.unwrap();
        assert!(
            first_line(&mut d).await.starts_with("client"),
            "a freed slot is reused"
        );
        stop.cancel();
        drop((b, c, d));
        h.await.unwrap();
    }

    #[test]
    fn session_ids_are_distinct() {
        let a = session_id();
        assert_eq!(a.len(), 12);
        assert_ne!(a, session_id());
    }
}
