//! `tandem backend`: one node of a backend cluster, from config to drain.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use locator::config::{LocatorConfig, Open};
use locator::{Locator, LocatorMetrics};
use prometheus_client::registry::Registry;
use shared::admin::Health;
use shared::blocking::Blocking;
use shared::etcd::{Client, EtcdConfig, EtcdMetrics};
use shared::net::{ListenerConfig, ListenerMetrics, NetList, Protocol};
use shared::tls::CertReloader;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::accounts::{Accounts, Ownership, SingleNode};
use crate::auth::{Auth, ProxyIdentity};
use crate::cluster::keys::NodeInfo;
use crate::cluster::{ClusterMetrics, EtcdOwnership, Keys, NodeLease, Peers};
use crate::config::BackendConfig;
use crate::imap::{Imap, ImapMetrics};
use crate::lmtp::{Lmtp, LmtpMetrics};
use crate::node::Node;
use crate::pop3::{Pop3, Pop3Metrics};
use crate::store::Store;

/// How long sessions get to finish after SIGTERM before the process exits.
const DRAIN: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// A problem an operator must fix before the node can start.
    #[error("{0}")]
    Setup(String),
}

fn setup(e: impl std::fmt::Display) -> DaemonError {
    DaemonError::Setup(e.to_string())
}

/// Runs the node until `shutdown` fires, then drains.
pub async fn run(
    locator_cfg: &LocatorConfig,
    cfg: &BackendConfig,
    etcd: Option<&EtcdConfig>,
    node_id: &str,
    shutdown: CancellationToken,
) -> Result<(), DaemonError> {
    let mut registry = Registry::default();
    let locator_metrics = LocatorMetrics::register(&mut registry);
    let listener_metrics = ListenerMetrics::register(&mut registry);
    let lmtp_metrics = LmtpMetrics::register(&mut registry);
    let pop3_metrics = Pop3Metrics::register(&mut registry);
    let imap_metrics = ImapMetrics::register(&mut registry);
    let cluster_metrics = ClusterMetrics::register(&mut registry);
    let etcd_metrics = EtcdMetrics::register(&mut registry);

    let dir = locator::config::open(locator_cfg, Open::Lazy)
        .await
        .map_err(setup)?;
    let locator = Arc::new(Locator::new(
        dir,
        locator_cfg.cache.clone(),
        locator_metrics,
    ));
    check_membership(&locator, &cfg.cluster, node_id).await?;

    // Never create the store root: when the shared filesystem is not
    // mounted, mail must not silently land on the local disk beneath.
    if !cfg.store_root.is_dir() {
        return Err(setup(format!(
            "backend.store_root {}: not a directory (is the cluster's filesystem mounted?)",
            cfg.store_root.display()
        )));
    }

    let tls = match &cfg.tls {
        Some(files) => {
            let certs = CertReloader::new(&files.cert, &files.key).map_err(setup)?;
            certs.reload_on_sighup(shutdown.clone());
            Some(TlsAcceptor::from(certs.server_config(&[])))
        }
        None => None,
    };
    let trusted = cfg.trusted_networks.union(&NetList::loopback());
    let proxy = match &cfg.proxy_login {
        Some(p) => Some(ProxyIdentity {
            name: p.identity.clone(),
            secret: p.read_secret("backend.proxy_login").map_err(setup)?,
        }),
        None => None,
    };
    let hostname = cfg.hostname.clone().unwrap_or_else(shared::net::host_name);
    let (ownership, coordinated): (Arc<dyn Ownership>, _) = match etcd {
        None => (Arc::new(SingleNode), None),
        Some(e) => {
            let client = Arc::new(Client::new(e, etcd_metrics).map_err(setup)?);
            let keys = Keys::new(e, &cfg.cluster);
            let (imap, pop3) = (imap_metrics.active.clone(), pop3_metrics.active.clone());
            let lease = Arc::new(NodeLease::new(
                client.clone(),
                keys.clone(),
                e.lease_ttl,
                node_info(node_id, &hostname, cfg),
                Box::new(move || (imap.get() + pop3.get()).max(0) as u64),
                cluster_metrics.clone(),
            ));
            let owners = Arc::new(EtcdOwnership::new(
                lease.clone(),
                client,
                keys,
                e.release_idle_after,
                cluster_metrics.clone(),
            ));
            if proxy.is_none() {
                tracing::warn!(
                    "no backend.proxy_login: sessions on a node that does not own their account are refused instead of proxied"
                );
            }
            (owners.clone() as Arc<dyn Ownership>, Some((lease, owners)))
        }
    };
    let node = Arc::new(Node {
        id: node_id.to_owned(),
        cluster: cfg.cluster.clone(),
        hostname,
        peers: Peers::new(proxy.as_ref(), Duration::from_secs(5), cluster_metrics),
        auth: Auth::new(locator.clone(), trusted.clone(), proxy),
        accounts: Accounts::new(
            &cfg.cluster,
            Store::new(&cfg.store_root),
            ownership,
            Blocking::new(64),
        ),
    });
    // The lease outlives the drain: sessions still open keep their accounts.
    let lease_stop = CancellationToken::new();
    let mut lease_task = None;
    if let Some((lease, owners)) = coordinated {
        let n = node.clone();
        let forget = move |a: Option<&shared::Address>| match a {
            Some(a) => n.accounts.forget(a),
            None => n.accounts.forget_all(),
        };
        tokio::spawn(owners.run(forget, lease_stop.clone()));
        lease_task = Some(tokio::spawn(lease.clone().run(lease_stop.clone())));
        if !lease.wait_live(Duration::from_secs(10)).await {
            tracing::warn!("no etcd lease yet; sessions are refused until there is one");
        }
    }

    let listener = |name: &'static str, implicit_tls: bool| {
        let mut l = ListenerConfig::new(name);
        l.proxy_from = cfg.proxy_protocol_from.clone();
        l.implicit_tls = implicit_tls;
        l.tls = tls.clone();
        l.max_connections = cfg.limits.max_connections;
        l.max_per_ip = cfg.limits.max_per_ip;
        l
    };
    let tracker = TaskTracker::new();
    let health = Health::new();
    let sessions = CancellationToken::new();
    // Bind everything before serving anything: a taken port fails the start.
    let mut bound = Vec::new();
    for (name, addr) in [
        ("lmtp", cfg.listen.lmtp),
        ("imap", cfg.listen.imap),
        ("imaps", cfg.listen.imaps),
        ("pop3", cfg.listen.pop3),
        ("pop3s", cfg.listen.pop3s),
        ("admin", cfg.listen.admin),
    ] {
        if let Some(addr) = addr {
            bound.push((name, bind(name, addr).await?));
        }
    }
    for (name, tcp) in bound {
        let local = tcp.local_addr().map_err(setup)?;
        tracing::info!(node = node_id, cluster = %cfg.cluster, listener = name, %local, "listening");
        let token = sessions.clone();
        match name {
            "lmtp" => {
                let p = Arc::new(Lmtp::new(
                    node.clone(),
                    cfg.lmtp.clone(),
                    lmtp_metrics.clone(),
                ));
                spawn(
                    &tracker,
                    tcp,
                    listener("lmtp", false),
                    p,
                    &listener_metrics,
                    token,
                );
            }
            "imap" | "imaps" => {
                let p = Arc::new(Imap::new(
                    node.clone(),
                    cfg.imap.clone(),
                    imap_metrics.clone(),
                ));
                let cfg = listener(name, name == "imaps");
                spawn(&tracker, tcp, cfg, p, &listener_metrics, token);
            }
            "pop3" | "pop3s" => {
                let p = Arc::new(Pop3::new(
                    node.clone(),
                    cfg.pop3.clone(),
                    pop3_metrics.clone(),
                ));
                let cfg = listener(name, name == "pop3s");
                spawn(&tracker, tcp, cfg, p, &listener_metrics, token);
            }
            _ => {
                let registry = Arc::new(std::mem::take(&mut registry));
                tracker.spawn(shared::admin::serve(tcp, registry, health.clone(), token));
            }
        }
    }
    tracker.close();
    tracing::info!(node = node_id, cluster = %cfg.cluster, "backend node ready");

    shutdown.cancelled().await;
    tracing::info!("draining: no new sessions, saying goodbye to open ones");
    health.set_draining();
    sessions.cancel();
    if tokio::time::timeout(DRAIN, tracker.wait()).await.is_err() {
        tracing::warn!("sessions still open after {DRAIN:?}; exiting anyway");
    }
    lease_stop.cancel();
    if let Some(t) = lease_task {
        // Revokes the lease, so the node's accounts are free at once.
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
    Ok(())
}

/// What this node registers about itself in etcd.
fn node_info(id: &str, host: &str, cfg: &BackendConfig) -> NodeInfo {
    let l = &cfg.listen;
    let addresses = [
        ("lmtp", l.lmtp),
        ("imap", l.imap),
        ("imaps", l.imaps),
        ("pop3", l.pop3),
        ("pop3s", l.pop3s),
        ("admin", l.admin),
    ]
    .into_iter()
    .filter_map(|(k, a)| Some((k.to_owned(), a?.to_string())))
    .collect();
    NodeInfo {
        id: id.to_owned(),
        host: host.to_owned(),
        pid: std::process::id(),
        addresses,
        sessions: 0,
        started: shared::time::now(),
    }
}

fn spawn<P: Protocol>(
    tracker: &TaskTracker,
    tcp: TcpListener,
    cfg: ListenerConfig,
    protocol: Arc<P>,
    metrics: &ListenerMetrics,
    token: CancellationToken,
) {
    tracker.spawn(shared::net::serve(
        tcp,
        cfg,
        protocol,
        metrics.clone(),
        token,
    ));
}

async fn bind(name: &str, addr: SocketAddr) -> Result<TcpListener, DaemonError> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| setup(format!("backend.listen.{name} {addr}: {e}")))
}

/// Refuses to start as a node the locator does not know, so that a typo in
/// `--node` does not become a node nobody routes to. When the locator is
/// unreachable, starts anyway: the node must be able to serve from cache.
async fn check_membership(locator: &Locator, cluster: &str, node: &str) -> Result<(), DaemonError> {
    match locator.cluster(cluster).await {
        Ok(Some(c)) if c.nodes.iter().any(|n| n.id == node) => Ok(()),
        Ok(Some(_)) => Err(setup(format!(
            "node {node} is not a node of cluster {cluster}; add it with `tandem cluster node add {cluster} {node} ...`"
        ))),
        Ok(None) => Err(setup(format!(
            "backend.cluster: no cluster {cluster} in the locator; add it with `tandem cluster add {cluster}`"
        ))),
        Err(e) => {
            tracing::warn!(error = %e, "cannot check this node against the locator; starting anyway");
            Ok(())
        }
    }
}
