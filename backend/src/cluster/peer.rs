//! Proxying a session to the node that owns its account.
//!
//! A node that is not the owner logs in on the owner's IMAP or POP3
//! listener (the addresses registered in the locator with `tandem cluster
//! node add ... --imap/--pop3`) exactly as a frontend would: SASL PLAIN
//! with the shared proxy secret, authcid `<identity>#peer` and authzid the
//! user, from a trusted network. The `#peer` tells the owner the session
//! already made its hop: it serves it itself and never proxies it on; if it
//! is no longer the owner, the login is refused with a temporary error, so
//! two nodes with different views of ownership cannot bounce a session
//! between them. No PROXY header is sent (the client's address travels in
//! IMAP ID): keep the nodes out of `backend.proxy_protocol_from`.

use std::net::SocketAddr;
use std::time::Duration;

use locator::Locator;
use shared::Address;
use shared::upstream::{self, ProxyLogin};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use super::metrics::ClusterMetrics;

/// What a peer login appends to the proxy identity.
pub const PEER_SUFFIX: &str = "#peer";

#[derive(Debug, Clone, Copy)]
pub enum Service {
    Imap,
    Pop3,
}

impl Service {
    fn name(self) -> &'static str {
        match self {
            Service::Imap => "imap",
            Service::Pop3 => "pop3",
        }
    }
}

pub struct Peers {
    /// The peer login identity (`<proxy identity>#peer`) and the secret;
    /// none when `backend.proxy_login` is not configured.
    login: Option<(String, Vec<u8>)>,
    timeout: Duration,
    pub metrics: ClusterMetrics,
}

/// A logged-in connection to the owner.
pub struct Upstream {
    pub stream: TcpStream,
    pub node: String,
    /// IMAP: the owner's capabilities after login.
    pub capabilities: String,
}

impl Peers {
    pub fn new(
        proxy: Option<&crate::auth::ProxyIdentity>,
        timeout: Duration,
        metrics: ClusterMetrics,
    ) -> Peers {
        Peers {
            login: proxy.map(|p| (format!("{}{PEER_SUFFIX}", p.name), p.secret.clone())),
            timeout,
            metrics,
        }
    }

    /// For a node that never proxies (one-node cluster, tests).
    pub fn none() -> Peers {
        Peers::new(None, Duration::from_secs(5), ClusterMetrics::default())
    }

    /// Connects to `owner` and logs in there for `user`.
    #[allow(clippy::too_many_arguments)]
    pub async fn connect(
        &self,
        locator: &Locator,
        cluster: &str,
        owner: &str,
        service: Service,
        user: &Address,
        client: SocketAddr,
        session: &str,
    ) -> Result<Upstream, String> {
        let Some((identity, secret)) = &self.login else {
            return Err(
                "backend.proxy_login is not configured, so this node cannot proxy to the owner"
                    .into(),
            );
        };
        let cached = locator
            .cluster(cluster)
            .await
            .map_err(|e| format!("cluster {cluster}: {e}"))?
            .ok_or_else(|| format!("no cluster {cluster} in the locator"))?;
        let fresh;
        let n = match cached.nodes.iter().find(|n| n.id == owner) {
            Some(n) => n,
            None => {
                // A node added within the cache's ttl: ask the directory.
                fresh = locator
                    .directory()
                    .cluster(cluster)
                    .await
                    .map_err(|e| format!("cluster {cluster}: {e}"))?
                    .ok_or_else(|| format!("no cluster {cluster} in the locator"))?;
                fresh.nodes.iter().find(|n| n.id == owner).ok_or_else(|| {
                    format!("owner {owner} is not a node of cluster {cluster} in the locator")
                })?
            }
        };
        let addr = match service {
            Service::Imap => n.imap.as_deref(),
            Service::Pop3 => n.pop3.as_deref(),
        }
        .ok_or_else(|| {
            format!(
                "node {owner} has no {} address in the locator",
                service.name()
            )
        })?;
        let mut stream = tokio::time::timeout(self.timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| format!("{owner} {addr}: connect timed out"))?
            .map_err(|e| format!("{owner} {addr}: {e}"))?;
        let _ = stream.set_nodelay(true);
        let login = ProxyLogin {
            identity,
            secret,
            user: user.as_str(),
            client,
            session,
            timeout: self.timeout,
        };
        let capabilities = match service {
            Service::Imap => upstream::imap(&mut stream, &login).await,
            Service::Pop3 => upstream::pop3(&mut stream, &login)
                .await
                .map(|()| String::new()),
        }
        .map_err(|e| format!("{owner} {addr}: {e}"))?;
        self.metrics.proxied(service.name());
        Ok(Upstream {
            stream,
            node: owner.to_owned(),
            capabilities,
        })
    }
}

/// Passes a session on to the owner until either side ends it: what the
/// client pipelined behind its login first, then bytes both ways; at
/// shutdown the client is told `goodbye` at a response boundary.
pub async fn relay<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut S,
    pipelined: &[u8],
    mut up: Upstream,
    idle: Duration,
    shutdown: &CancellationToken,
    goodbye: &[u8],
) {
    if !pipelined.is_empty() && up.stream.write_all(pipelined).await.is_err() {
        return;
    }
    let drain = shared::net::splice::Drain {
        deadline: shutdown,
        goodbye,
    };
    let (sent, received) = shared::net::splice::splice(client, &mut up.stream, idle, drain).await;
    let _ = client.shutdown().await;
    tracing::info!(owner = %up.node, up = sent, down = received, "proxied session ended");
}
