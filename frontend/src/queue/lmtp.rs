//! The LMTP client (RFC 2033): one transaction to a node of a recipient's
//! home cluster, chosen by the frontend's [`Router`] (node failover, PROXY
//! v2 header). When the node offers `XCLIENT`, the frontend's SMTP session
//! id is passed with `XCLIENT SESSION=...` so that the backend's log lines
//! for this delivery carry it.

use std::net::SocketAddr;
use std::time::Duration;

use super::dialogue::{Dialogue, DialogueError};
use super::reply::Reply;
use super::transaction::{self, Flavour, Outcome, Recorder, Transaction};
use crate::route::{Router, Service};

/// Delivers `tx` to `cluster`; every recipient is recorded once.
pub async fn deliver<R: Recorder>(
    router: &Router,
    cluster: &str,
    hostname: &str,
    session: &str,
    timeout: Duration,
    tx: &Transaction<'_>,
    recorder: &R,
) {
    // The PROXY header names the frontend itself: the SMTP client's
    // address is in the Received header, and the backend's per-address
    // limits must not count a queue's deliveries against one MX client.
    let client = SocketAddr::new(
        router
            .source()
            .unwrap_or(std::net::IpAddr::from([127, 0, 0, 1])),
        0,
    );
    let routed = match router.connect_cluster(cluster, Service::Lmtp, client).await {
        Ok(r) => r,
        Err(e) => {
            defer_all(tx, recorder, &e.to_string()).await;
            return;
        }
    };
    let node = routed.node;
    let mut d = Dialogue::new(Box::new(routed.stream), timeout);
    match setup(&mut d, hostname, session).await {
        Ok(lhlo) => {
            tracing::debug!(cluster, node, "LMTP session ready");
            transaction::run(&mut d, &lhlo, Flavour::Lmtp, tx, recorder).await;
            d.quit().await;
        }
        Err(e) => {
            let why = format!("node {node} of cluster {cluster}: {e}");
            tracing::warn!(cluster, node, error = %e, "LMTP session failed");
            defer_all(tx, recorder, &why).await;
        }
    }
}

/// Greeting, LHLO, and XCLIENT (then LHLO again: XCLIENT starts the
/// session over, as in Postfix).
async fn setup(d: &mut Dialogue, hostname: &str, session: &str) -> Result<Reply, DialogueError> {
    d.expect("greeting", 2).await?;
    d.send(format!("LHLO {hostname}\r\n").as_bytes()).await?;
    let lhlo = d.expect("LHLO", 2).await?;
    if lhlo.extension("XCLIENT").is_none() || session.is_empty() {
        return Ok(lhlo);
    }
    let x = format!("XCLIENT SESSION={}\r\n", transaction::xtext(session));
    d.send(x.as_bytes()).await?;
    d.expect("XCLIENT", 2).await?;
    d.send(format!("LHLO {hostname}\r\n").as_bytes()).await?;
    d.expect("LHLO", 2).await
}

pub(super) async fn defer_all<R: Recorder>(tx: &Transaction<'_>, recorder: &R, why: &str) {
    for (rcpt, _) in &tx.recipients {
        recorder
            .record(*rcpt, Outcome::Deferred(why.to_owned()))
            .await;
    }
}
