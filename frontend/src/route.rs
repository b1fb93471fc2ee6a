//! From an account to a connection on a healthy node of its home cluster.
//!
//! Nodes come from the locator (cached like accounts). A node that refused
//! or timed out is marked down for [`DOWN_FOR`] and skipped while another is
//! up; the next node is tried within the same login, and when every cached
//! node failed, the directory is asked once for nodes the cache does not
//! know yet (one added within the cache's ttl). The chosen node gets a
//! PROXY v2 header first, so the backend logs and limits the real client.
//!
//! With an `etcd:` section the frontend reads the account's owner (the
//! backend node holding its lease) and tries that node first, saving the
//! hop a non-owner would add by proxying there; a slow or failing etcd only
//! costs [`OWNER_WAIT`] and the session goes to any healthy node.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use locator::{Account, Locator};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// How long a login waits for etcd to say who owns the account.
pub const OWNER_WAIT: Duration = Duration::from_millis(250);

/// How long a node that failed a connect is avoided.
pub const DOWN_FOR: Duration = Duration::from_secs(10);

/// A node's address for `service`, if it offers it.
fn address(n: &locator::Node, service: Service) -> Option<&str> {
    match service {
        Service::Pop3 => n.pop3.as_deref(),
        Service::Imap => n.imap.as_deref(),
        Service::Lmtp => n.lmtp.as_deref(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Pop3,
    Imap,
    /// Mail delivery from the frontend's queue.
    Lmtp,
}

#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// Nothing to connect to right now: directory down, cluster unknown or
    /// without nodes for the service, or every node failed.
    #[error("{0}")]
    Unavailable(String),
}

pub struct Router {
    locator: Arc<Locator>,
    connect_timeout: Duration,
    source: Option<IpAddr>,
    metrics: crate::FrontendMetrics,
    down: Mutex<HashMap<String, Instant>>,
    next: std::sync::atomic::AtomicUsize,
    /// Health checks that found a node marked down answering again.
    recoveries: std::sync::atomic::AtomicU64,
    /// Where owners are read from, when the cluster runs several nodes.
    owners: Option<(shared::etcd::Client, shared::etcd::EtcdConfig)>,
}

/// A connection to a backend node, PROXY header sent.
pub struct Routed {
    pub stream: TcpStream,
    pub node: String,
}

impl Router {
    pub fn new(
        locator: Arc<Locator>,
        connect_timeout: Duration,
        source: Option<IpAddr>,
        metrics: crate::FrontendMetrics,
    ) -> Self {
        Router {
            locator,
            connect_timeout,
            source,
            metrics,
            down: Mutex::new(HashMap::new()),
            next: 0.into(),
            recoveries: 0.into(),
            owners: None,
        }
    }

    /// Routes sessions to their account's owner, read from etcd.
    pub fn with_owners(
        mut self,
        client: shared::etcd::Client,
        cfg: shared::etcd::EtcdConfig,
    ) -> Self {
        self.owners = Some((client, cfg));
        self
    }

    /// The node owning `account` now, if etcd says so in time.
    async fn owner(&self, account: &Account) -> Option<String> {
        let (client, cfg) = self.owners.as_ref()?;
        let key =
            shared::etcd::keys::Keys::new(cfg, &account.cluster).owner(account.address.as_str());
        match tokio::time::timeout(OWNER_WAIT, client.get(&key)).await {
            Ok(Ok(kv)) => kv.map(|kv| String::from_utf8_lossy(&kv.value).into_owned()),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "cannot read the account's owner");
                None
            }
            Err(_) => None,
        }
    }

    pub fn locator(&self) -> &Arc<Locator> {
        &self.locator
    }

    pub async fn connect(
        &self,
        account: &Account,
        service: Service,
        client: SocketAddr,
    ) -> Result<Routed, RouteError> {
        let owner = self.owner(account).await;
        self.connect_to(&account.cluster, service, client, owner.as_deref())
            .await
            .map_err(|RouteError::Unavailable(why)| {
                RouteError::Unavailable(format!("{why} (home of {})", account.address))
            })
    }

    /// Like [`connect`](Self::connect), to any node of a cluster by id:
    /// the queue delivers per cluster, and LMTP needs no owner (any node
    /// writes the shared Maildir).
    pub async fn connect_cluster(
        &self,
        cluster_id: &str,
        service: Service,
        client: SocketAddr,
    ) -> Result<Routed, RouteError> {
        self.connect_to(cluster_id, service, client, None).await
    }

    /// A node of `cluster_id`, `owner` first when it is known and up.
    async fn connect_to(
        &self,
        cluster_id: &str,
        service: Service,
        client: SocketAddr,
        owner: Option<&str>,
    ) -> Result<Routed, RouteError> {
        let cluster = match self.locator.cluster(cluster_id).await {
            Ok(Some(c)) => c,
            Ok(None) => {
                return Err(RouteError::Unavailable(format!(
                    "cluster {cluster_id} is not in the locator"
                )));
            }
            Err(e) => return Err(RouteError::Unavailable(e.to_string())),
        };
        let mut tried = Vec::new();
        let first = self
            .try_nodes(&cluster, service, client, owner, &mut tried)
            .await;
        if first.is_ok() || tried.is_empty() {
            return first;
        }
        // Every node the cache knew failed. It may predate a node added
        // since (ttl): ask the directory itself once for nodes not tried.
        match self.locator.directory().cluster(cluster_id).await {
            Ok(Some(fresh))
                if fresh
                    .nodes
                    .iter()
                    .filter_map(|n| address(n, service))
                    .any(|a| !tried.iter().any(|t| t == a)) =>
            {
                tracing::info!(cluster = %fresh.id, "cached nodes all failed; trying the directory's");
                self.try_nodes(&fresh, service, client, None, &mut tried)
                    .await
            }
            _ => first,
        }
    }

    /// Tries the nodes of `cluster` not in `tried`, the owner first if
    /// known and up, then healthy ones, spreading sessions over them; adds
    /// each address it tries.
    async fn try_nodes(
        &self,
        cluster: &locator::Cluster,
        service: Service,
        client: SocketAddr,
        owner: Option<&str>,
        tried: &mut Vec<String>,
    ) -> Result<Routed, RouteError> {
        let mut candidates: Vec<(&str, &str)> = cluster
            .nodes
            .iter()
            .filter_map(|n| Some((n.id.as_str(), address(n, service)?)))
            .filter(|(_, a)| !tried.iter().any(|t| t == a))
            .collect();
        if candidates.is_empty() {
            return Err(RouteError::Unavailable(format!(
                "cluster {} has no node serving {service:?}",
                cluster.id
            )));
        }
        // Spread sessions over the nodes, healthy ones first.
        let start = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let n = candidates.len();
        candidates.rotate_left(start % n);
        candidates.sort_by_key(|(node, addr)| (self.is_down(addr), Some(*node) != owner));
        let mut last = String::new();
        for (node, addr) in candidates {
            tried.push(addr.to_owned());
            let started = Instant::now();
            let attempt = tokio::time::timeout(self.connect_timeout, self.open(addr)).await;
            let secs = started.elapsed().as_secs_f64();
            let result = match &attempt {
                Ok(Ok(_)) => "ok",
                Ok(Err(_)) => "refused",
                Err(_) => "timeout",
            };
            self.metrics.backend_connect(node, result, secs);
            match attempt {
                Ok(Ok(mut stream)) => {
                    let _ = stream.set_nodelay(true);
                    let server = stream
                        .peer_addr()
                        .map_err(|e| RouteError::Unavailable(e.to_string()))?;
                    let header = shared::net::proxy::encode_v2(client, server);
                    if let Err(e) = stream.write_all(&header).await {
                        last = format!("node {node} ({addr}): {e}");
                        self.mark_down(addr);
                        continue;
                    }
                    self.mark_up(addr);
                    return Ok(Routed {
                        stream,
                        node: node.to_owned(),
                    });
                }
                Ok(Err(e)) => last = format!("node {node} ({addr}): {e}"),
                Err(_) => last = format!("node {node} ({addr}): connect timed out"),
            }
            tracing::warn!(node, addr, error = %last, "backend node unreachable; trying the next");
            self.mark_down(addr);
        }
        Err(RouteError::Unavailable(format!(
            "no node of cluster {} answers (last: {last})",
            cluster.id
        )))
    }

    /// How many times a health check found a node that was marked down
    /// answering again: the queue retries at once when it changes instead
    /// of waiting out its backoff.
    pub fn recoveries(&self) -> u64 {
        self.recoveries.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The configured source address for connections to backends.
    pub fn source(&self) -> Option<IpAddr> {
        self.source
    }

    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// What an active health check found (see [`crate::health`]).
    pub fn set_health(&self, node: &str, service: &'static str, addr: &str, up: bool) {
        self.metrics.backend_up(node, service, up);
        if up {
            let was_down = {
                let down = self.down.lock().unwrap_or_else(|p| p.into_inner());
                down.contains_key(addr)
            };
            if was_down {
                tracing::info!(node, service, addr, "health check: node answers again");
                self.recoveries
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            self.mark_up(addr);
        } else {
            if !self.is_down(addr) {
                tracing::warn!(node, service, addr, "health check failed; node marked down");
            }
            self.mark_down(addr);
        }
    }

    /// A connection to `addr`, from the configured source address.
    pub async fn open(&self, addr: &str) -> std::io::Result<TcpStream> {
        let Some(source) = self.source else {
            return TcpStream::connect(addr).await;
        };
        let mut last = std::io::Error::other(format!("{addr}: no address"));
        for target in tokio::net::lookup_host(addr).await? {
            let socket = match target {
                SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
                SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
            };
            socket.bind(SocketAddr::new(source, 0))?;
            match socket.connect(target).await {
                Ok(s) => return Ok(s),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn is_down(&self, addr: &str) -> bool {
        let down = self.down.lock().unwrap_or_else(|p| p.into_inner());
        down.get(addr).is_some_and(|t| t.elapsed() < DOWN_FOR)
    }

    fn mark_down(&self, addr: &str) {
        let mut down = self.down.lock().unwrap_or_else(|p| p.into_inner());
        down.insert(addr.to_owned(), Instant::now());
    }

    fn mark_up(&self, addr: &str) {
        let mut down = self.down.lock().unwrap_or_else(|p| p.into_inner());
        down.remove(addr);
    }
}
