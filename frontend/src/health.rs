//! Active health checks of backend nodes.
//!
//! Passive marking ([`Router`]) only learns that a node died when a login
//! fails to reach it; the checker learns it before any user does. Every
//! interval it opens a connection to each node's IMAP and POP3 address,
//! announces itself with a PROXY v2 `LOCAL` header (so the backend does not
//! take it for a client), and waits for the greeting. A node that does not
//! greet within the connect timeout is marked down, one that does is marked
//! up; routing tries down nodes only when no other is left.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio_util::sync::CancellationToken;

use crate::route::Router;

/// Probes in flight at once.
const PARALLEL: usize = 32;

/// Checks every node of every cluster each `interval` until `shutdown`.
pub async fn run(router: Arc<Router>, interval: Duration, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let clusters = match router.locator().directory().clusters().await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, "health check: cannot list clusters");
                continue;
            }
        };
        let targets: Vec<(String, &'static str, String)> = clusters
            .iter()
            .flat_map(|c| c.nodes.iter())
            .flat_map(|n| {
                [("imap", &n.imap), ("pop3", &n.pop3)]
                    .into_iter()
                    .filter_map(|(service, addr)| {
                        addr.as_ref().map(|a| (n.id.clone(), service, a.clone()))
                    })
            })
            .collect();
        let mut probes = tokio::task::JoinSet::new();
        for (node, service, addr) in targets {
            while probes.len() >= PARALLEL {
                probes.join_next().await;
            }
            let router = router.clone();
            probes.spawn(async move {
                let up = probe(&router, &addr).await;
                router.set_health(&node, service, &addr, up);
            });
        }
        while probes.join_next().await.is_some() {}
    }
}

/// Whether the server at `addr` greets (`* OK` or `+OK`) in time.
async fn probe(router: &Router, addr: &str) -> bool {
    let check = async {
        let mut s = router.open(addr).await?;
        s.write_all(&shared::net::proxy::encode_v2_local()).await?;
        let mut line = String::new();
        let mut r = BufReader::new(&mut s);
        r.read_line(&mut line).await?;
        let ok = line.starts_with("* OK") || line.starts_with("+OK");
        let bye: &[u8] = if line.starts_with('*') {
            b"h LOGOUT\r\n"
        } else {
            b"QUIT\r\n"
        };
        let _ = s.write_all(bye).await;
        Ok::<bool, std::io::Error>(ok)
    };
    matches!(
        tokio::time::timeout(router.connect_timeout(), check).await,
        Ok(Ok(true))
    )
}
