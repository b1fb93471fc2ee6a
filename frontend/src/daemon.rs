//! `tandem frontend`: listeners, the locator cache, drain on SIGTERM.

use std::sync::Arc;
use std::time::Duration;

use locator::config::{LocatorConfig, Open};
use locator::{Locator, LocatorMetrics};
use prometheus_client::registry::Registry;
use shared::admin::Health;
use shared::net::{ListenerConfig, ListenerMetrics, NetList};
use shared::tls::CertReloader;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::FrontendConfig;
use crate::imap::ImapProxy;
use crate::pop3::Pop3Proxy;
use crate::queue::Queue;
use crate::route::Router;
use crate::smtp::{Kind, Smtp, SmtpListener, SmtpMetrics};
use crate::{Frontend, FrontendMetrics};

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DaemonError(String);

fn setup(e: impl std::fmt::Display) -> DaemonError {
    DaemonError(e.to_string())
}

pub async fn run(
    locator_cfg: &LocatorConfig,
    cfg: &FrontendConfig,
    etcd: Option<&shared::etcd::EtcdConfig>,
    shutdown: CancellationToken,
) -> Result<(), DaemonError> {
    let mut registry = Registry::default();
    let locator_metrics = LocatorMetrics::register(&mut registry);
    let etcd_metrics = shared::etcd::EtcdMetrics::register(&mut registry);
    let listener_metrics = ListenerMetrics::register(&mut registry);
    let metrics = FrontendMetrics::register(&mut registry);
    let dir = locator::config::open(locator_cfg, Open::Lazy)
        .await
        .map_err(setup)?;
    let locator = Arc::new(Locator::new(
        dir,
        locator_cfg.cache.clone(),
        locator_metrics,
    ));
    let tls = match &cfg.tls {
        Some(files) => {
            let certs = CertReloader::new(&files.cert, &files.key).map_err(setup)?;
            certs.reload_on_sighup(shutdown.clone());
            Some(TlsAcceptor::from(certs.server_config(&[])))
        }
        None => None,
    };
    let mut router = Router::new(
        locator,
        cfg.limits.connect_timeout,
        cfg.source_address,
        metrics.clone(),
    );
    if let Some(e) = etcd {
        let client = shared::etcd::Client::new(e, etcd_metrics).map_err(setup)?;
        router = router.with_owners(client, e.clone());
    }
    let fe = Arc::new(Frontend {
        router: Arc::new(router),
        limits: cfg.limits.clone(),
        identity: cfg.backend_login.identity.clone(),
        secret: cfg
            .backend_login
            .read_secret("frontend.backend_login")
            .map_err(setup)?,
        trusted: cfg.trusted_networks.union(&NetList::loopback()),
        metrics,
        penalty: crate::penalty::Penalty::new(
            cfg.limits.auth_failure_delay,
            cfg.limits.auth_penalty_max,
        ),
        // Smaller: the account's owner shares it with the attacker.
        account_penalty: crate::penalty::Penalty::new(
            cfg.limits.auth_failure_delay / 2,
            (cfg.limits.auth_penalty_max / 3).min(Duration::from_secs(5)),
        ),
        login_slots: crate::penalty::Slots::new(2),
        drain_deadline: CancellationToken::new(),
    });
    let listener = |name: &'static str, implicit_tls: bool| {
        let mut l = ListenerConfig::new(name);
        l.proxy_from = cfg.proxy_protocol_from.clone();
        l.implicit_tls = implicit_tls;
        l.tls = tls.clone();
        l.max_connections = cfg.limits.max_connections;
        l.max_per_ip = cfg.limits.max_per_ip;
        l
    };
    let mut bound = Vec::new();
    for (name, addr) in [
        ("imap", cfg.listen.imap),
        ("imaps", cfg.listen.imaps),
        ("pop3", cfg.listen.pop3),
        ("pop3s", cfg.listen.pop3s),
        ("smtp", cfg.listen.smtp),
        ("submission", cfg.listen.submission),
        ("submissions", cfg.listen.submissions),
        ("admin", cfg.listen.admin),
    ] {
        if let Some(addr) = addr {
            let l = TcpListener::bind(addr)
                .await
                .map_err(|e| setup(format!("frontend.listen.{name} {addr}: {e}")))?;
            bound.push((name, l));
        }
    }
    // The queue greets LMTP nodes and the smarthost, and signs DSNs, with
    // the name the SMTP listeners greet clients with.
    let hostname = cfg
        .smtp
        .hostname
        .clone()
        .unwrap_or_else(shared::net::host_name);
    // The queue opens (and recovers its spool) before anything listens; it
    // stops after the sessions drained, so none is cut off mid-`accept`.
    let queue = match &cfg.queue {
        Some(q) => Some(
            Queue::open(q, fe.router.clone(), &hostname, &mut registry)
                .await
                .map_err(setup)?,
        ),
        None => None,
    };
    let queue_stop = CancellationToken::new();
    let queue_task = queue
        .clone()
        .map(|q| tokio::spawn(q.run(queue_stop.clone())));
    let smtp = queue.as_ref().map(|q| {
        Smtp::new(
            fe.clone(),
            q.clone(),
            cfg.smtp.clone(),
            hostname.clone(),
            SmtpMetrics::register(&mut registry),
        )
    });
    let tracker = TaskTracker::new();
    let health = Health::new();
    let sessions = CancellationToken::new();
    for (name, tcp) in bound {
        tracing::info!(listener = name, local = ?tcp.local_addr().ok(), "listening");
        match name {
            "imap" | "imaps" => {
                let p = Arc::new(ImapProxy::new(fe.clone()));
                let l = listener(name, name == "imaps");
                tracker.spawn(shared::net::serve(
                    tcp,
                    l,
                    p,
                    listener_metrics.clone(),
                    sessions.clone(),
                ));
            }
            "pop3" | "pop3s" => {
                let p = Arc::new(Pop3Proxy::new(fe.clone()));
                let l = listener(name, name == "pop3s");
                tracker.spawn(shared::net::serve(
                    tcp,
                    l,
                    p,
                    listener_metrics.clone(),
                    sessions.clone(),
                ));
            }
            "smtp" | "submission" | "submissions" => {
                let Some(smtp) = smtp.clone() else {
                    return Err(setup(format!(
                        "frontend.listen.{name} needs a `frontend.queue` section"
                    )));
                };
                let kind = match name {
                    "smtp" => Kind::Mx,
                    "submission" => Kind::Submission,
                    _ => Kind::Submissions,
                };
                let l = listener(name, kind == Kind::Submissions);
                tracker.spawn(shared::net::serve(
                    tcp,
                    l,
                    Arc::new(SmtpListener { smtp, kind }),
                    listener_metrics.clone(),
                    sessions.clone(),
                ));
            }
            _ => {
                let registry = Arc::new(std::mem::take(&mut registry));
                tracker.spawn(shared::admin::serve(
                    tcp,
                    registry,
                    health.clone(),
                    sessions.clone(),
                ));
            }
        }
    }
    if !cfg.health_check_interval.is_zero() {
        tracker.spawn(crate::health::run(
            fe.router.clone(),
            cfg.health_check_interval,
            sessions.clone(),
        ));
    }
    tracker.close();
    tracing::info!("frontend ready");
    shutdown.cancelled().await;
    // Drain: the balancer sees /health fail and stops sending; nothing new
    // is accepted and sessions not yet logged in are told goodbye; logged-in
    // sessions go on until drain_timeout, then they are told goodbye too.
    let grace = cfg.limits.drain_timeout;
    tracing::info!(?grace, "draining");
    health.set_draining();
    sessions.cancel();
    if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
        tracing::info!("drain timeout: closing the remaining sessions");
        fe.drain_deadline.cancel();
        if tokio::time::timeout(Duration::from_secs(5), tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("sessions still open after the drain; exiting anyway");
        }
    }
    queue_stop.cancel();
    if let Some(t) = queue_task {
        let _ = t.await;
    }
    Ok(())
}
