//! Where a new account goes: the open cluster with the fewest accounts per
//! unit of weight, so a cluster added with twice the weight fills up to twice
//! the accounts. Ties go to the lowest id, which keeps placement deterministic.

use std::collections::BTreeMap;

use crate::model::{Cluster, ClusterState};

/// Picks the home cluster for a new account, or `None` when no cluster is
/// open with a positive weight.
pub fn choose<'a>(clusters: &'a [Cluster], counts: &BTreeMap<String, u64>) -> Option<&'a Cluster> {
    clusters
        .iter()
        .filter(|c| c.state == ClusterState::Open && c.weight > 0)
        .min_by(|a, b| {
            let load = |c: &Cluster| u128::from(counts.get(&c.id).copied().unwrap_or(0));
            // a/wa < b/wb  <=>  a*wb < b*wa, exact in integers.
            (load(a) * u128::from(b.weight))
                .cmp(&(load(b) * u128::from(a.weight)))
                .then_with(|| a.id.cmp(&b.id))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(id: &str, state: ClusterState, weight: u32) -> Cluster {
        Cluster {
            id: id.into(),
            state,
            weight,
            nodes: vec![],
        }
    }

    #[test]
    fn fewest_per_weight() {
        let cs = vec![
            cluster("c1", ClusterState::Open, 1),
            cluster("c2", ClusterState::Open, 3),
            cluster("c3", ClusterState::Closed, 100),
            cluster("c4", ClusterState::Draining, 100),
            cluster("c5", ClusterState::Open, 0),
        ];
        let mut counts = BTreeMap::from([("c1".to_string(), 10), ("c2".to_string(), 29)]);
        assert_eq!(choose(&cs, &counts).map(|c| c.id.as_str()), Some("c2"));
        counts.insert("c2".into(), 31);
        assert_eq!(choose(&cs, &counts).map(|c| c.id.as_str()), Some("c1"));
        counts.insert("c2".into(), 30);
        assert_eq!(
            choose(&cs, &counts).map(|c| c.id.as_str()),
            Some("c1"),
            "tie goes to the lower id"
        );
    }

    #[test]
    fn fills_by_weight() {
        let cs = vec![
            cluster("a", ClusterState::Open, 1),
            cluster("b", ClusterState::Open, 2),
        ];
        let mut counts = BTreeMap::new();
        for _ in 0..300 {
            let id = choose(&cs, &counts).unwrap().id.clone();
            *counts.entry(id).or_insert(0) += 1;
        }
        assert_eq!(counts["a"], 100);
        assert_eq!(counts["b"], 200);
    }

    #[test]
    fn none_open() {
        let cs = vec![cluster("a", ClusterState::Closed, 1)];
        assert!(choose(&cs, &BTreeMap::new()).is_none());
        assert!(choose(&[], &BTreeMap::new()).is_none());
    }
}
