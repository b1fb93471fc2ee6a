//! The live nodes of a cluster and the accounts each owns, as etcd has
//! them (`tandem cluster status`).

use serde::Serialize;
use shared::etcd::{Client, EtcdError};

use super::keys::{Keys, NodeInfo};

#[derive(Debug, Clone, Serialize)]
pub struct NodeStatus {
    #[serde(flatten)]
    pub info: NodeInfo,
    /// Addresses of the accounts it owns, sorted.
    pub owned: Vec<String>,
}

/// Every registered (so live) node, by id, with its accounts. Owner keys
/// of a node that is not registered (it fenced and its old lease has not
/// expired yet) are listed under a node with an empty host and pid 0.
pub async fn status(client: &Client, keys: &Keys) -> Result<Vec<NodeStatus>, EtcdError> {
    let nodes = client.prefix(&keys.nodes()).await?;
    let owners = client.prefix(&keys.owners()).await?;
    let mut out: Vec<NodeStatus> = nodes
        .iter()
        .map(|kv| {
            let id = kv.key.trim_start_matches(&keys.nodes()).to_owned();
            let info = serde_json::from_slice(&kv.value).unwrap_or_else(|_| NodeInfo {
                id,
                host: String::new(),
                pid: 0,
                addresses: Default::default(),
                sessions: 0,
                started: 0,
            });
            NodeStatus {
                info,
                owned: Vec::new(),
            }
        })
        .collect();
    let owners_prefix = keys.owners();
    for kv in owners {
        let address = kv.key.trim_start_matches(&owners_prefix).to_owned();
        let node = String::from_utf8_lossy(&kv.value).into_owned();
        let i = match out.iter().position(|n| n.info.id == node) {
            Some(i) => i,
            None => {
                out.push(NodeStatus {
                    info: NodeInfo {
                        id: node,
                        host: String::new(),
                        pid: 0,
                        addresses: Default::default(),
                        sessions: 0,
                        started: 0,
                    },
                    owned: Vec::new(),
                });
                out.len() - 1
            }
        };
        out[i].owned.push(address);
    }
    for n in &mut out {
        n.owned.sort();
    }
    out.sort_by(|a, b| a.info.id.cmp(&b.info.id));
    Ok(out)
}
