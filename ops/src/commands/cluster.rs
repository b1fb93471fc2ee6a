//! `tandem cluster ...` and `tandem cluster node ...`.

use locator::{ClusterState, Node};
use serde::Serialize;

use super::Ctx;
use crate::Failure;
use crate::cli::{ClusterCmd, NodeCmd};
use crate::output;

fn state(s: &str) -> Result<ClusterState, Failure> {
    s.parse()
        .map_err(|e: locator::model::InvalidName| Failure::Usage(e.0))
}

#[derive(Serialize)]
struct ClusterView<'a> {
    #[serde(flatten)]
    cluster: &'a locator::Cluster,
    accounts: u64,
}

pub async fn run(ctx: &Ctx, cmd: ClusterCmd) -> Result<(), Failure> {
    match cmd {
        ClusterCmd::Add {
            id,
            weight,
            state: s,
        } => {
            let st = state(&s)?;
            ctx.dir.add_cluster(&id, st, weight).await?;
            ctx.done(
                &serde_json::json!({ "added": id, "state": st, "weight": weight }),
                || format!("added cluster {id} ({st}, weight {weight})"),
            )
        }
        ClusterCmd::List => {
            let clusters = ctx.dir.clusters().await?;
            let counts = ctx.dir.account_counts().await?;
            let count = |id: &str| counts.get(id).copied().unwrap_or(0);
            if ctx.json {
                let views: Vec<_> = clusters
                    .iter()
                    .map(|c| ClusterView {
                        cluster: c,
                        accounts: count(&c.id),
                    })
                    .collect();
                return output::json(&views);
            }
            let rows: Vec<Vec<String>> = clusters
                .iter()
                .map(|c| {
                    vec![
                        c.id.clone(),
                        c.state.to_string(),
                        c.weight.to_string(),
                        count(&c.id).to_string(),
                        c.nodes
                            .iter()
                            .map(|n| n.id.as_str())
                            .collect::<Vec<_>>()
                            .join(","),
                    ]
                })
                .collect();
            output::table(&["CLUSTER", "STATE", "WEIGHT", "ACCOUNTS", "NODES"], &rows);
            Ok(())
        }
        ClusterCmd::Show { id } => {
            let c = ctx
                .dir
                .cluster(&id)
                .await?
                .ok_or_else(|| locator::DirectoryError::NotFound(format!("no cluster {id}")))?;
            let accounts = ctx
                .dir
                .account_counts()
                .await?
                .get(&id)
                .copied()
                .unwrap_or(0);
            if ctx.json {
                return output::json(&ClusterView {
                    cluster: &c,
                    accounts,
                });
            }
            println!(
                "cluster:  {}\nstate:    {}\nweight:   {}\naccounts: {accounts}",
                c.id, c.state, c.weight
            );
            let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
            let rows: Vec<Vec<String>> = c
                .nodes
                .iter()
                .map(|n| {
                    vec![
                        n.id.clone(),
                        dash(&n.imap),
                        dash(&n.pop3),
                        dash(&n.lmtp),
                        dash(&n.http),
                        dash(&n.internal),
                    ]
                })
                .collect();
            output::table(&["NODE", "IMAP", "POP3", "LMTP", "HTTP", "INTERNAL"], &rows);
            Ok(())
        }
        ClusterCmd::Status { id } => status(ctx, &id).await,
        ClusterCmd::SetState { id, state: s } => {
            let st = state(&s)?;
            ctx.dir.update_cluster(&id, Some(st), None).await?;
            ctx.done(&serde_json::json!({ "cluster": id, "state": st }), || {
                format!("cluster {id} is {st}")
            })
        }
        ClusterCmd::SetWeight { id, weight } => {
            ctx.dir.update_cluster(&id, None, Some(weight)).await?;
            ctx.done(
                &serde_json::json!({ "cluster": id, "weight": weight }),
                || format!("cluster {id} has weight {weight}"),
            )
        }
        ClusterCmd::Rm { id } => {
            ctx.dir.remove_cluster(&id).await?;
            ctx.done(&serde_json::json!({ "removed": id }), || {
                format!("removed cluster {id}")
            })
        }
        ClusterCmd::Node(NodeCmd::Add {
            cluster,
            node,
            imap,
            pop3,
            lmtp,
            http,
            internal,
        }) => {
            let n = Node {
                id: node,
                imap,
                pop3,
                lmtp,
                http,
                internal,
            };
            ctx.dir.add_node(&cluster, &n).await?;
            ctx.done(&n, || format!("added node {} to cluster {cluster}", n.id))
        }
        ClusterCmd::Node(NodeCmd::Rm { cluster, node }) => {
            ctx.dir.remove_node(&cluster, &node).await?;
            ctx.done(
                &serde_json::json!({ "removed": node, "cluster": cluster }),
                || format!("removed node {node} from cluster {cluster}"),
            )
        }
    }
}

/// `tandem cluster status ID`: what etcd says about the cluster's nodes.
async fn status(ctx: &Ctx, id: &str) -> Result<(), Failure> {
    let Some(etcd) = &ctx.etcd else {
        return Err(Failure::Usage(format!(
            "the config has no etcd: section, so cluster {id} runs as one node with no live status to show"
        )));
    };
    if ctx.dir.cluster(id).await?.is_none() {
        return Err(locator::DirectoryError::NotFound(format!("no cluster {id}")).into());
    }
    let client = shared::etcd::Client::new(etcd, shared::etcd::EtcdMetrics::default())
        .map_err(Failure::Usage)?;
    let keys = backend::cluster::Keys::new(etcd, id);
    let nodes = backend::cluster::status::status(&client, &keys)
        .await
        .map_err(|e| Failure::Io(e.to_string()))?;
    if ctx.json {
        return output::json(&nodes);
    }
    let rows: Vec<Vec<String>> = nodes
        .iter()
        .map(|n| {
            vec![
                n.info.id.clone(),
                if n.info.host.is_empty() {
                    "(not live)".into()
                } else {
                    n.info.host.clone()
                },
                n.info.pid.to_string(),
                n.info.sessions.to_string(),
                n.info
                    .addresses
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" "),
                n.owned.len().to_string(),
                n.owned.join(","),
            ]
        })
        .collect();
    output::table(
        &[
            "NODE",
            "HOST",
            "PID",
            "SESSIONS",
            "ADDRESSES",
            "OWNED",
            "ACCOUNTS",
        ],
        &rows,
    );
    Ok(())
}
