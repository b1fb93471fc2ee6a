//! Memory of process trees, from `/proc`: the summed `VmRSS` of some
//! processes and of all their descendants (Dovecot and nginx fork workers;
//! a proxied connection may live in any of them).

use std::collections::HashMap;
use std::fs;

/// Memory of a process tree, in KiB.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct TreeMem {
    /// Sum of `VmRSS`: pages shared by several processes count once each.
    pub rss_kib: u64,
    /// Sum of `Pss` (smaps_rollup): shared pages split between sharers,
    /// fairer for many forked processes.
    pub pss_kib: u64,
    pub processes: usize,
}

/// The memory of `roots` and their descendants. A process that exits
/// while being read counts 0.
pub fn tree_mem(roots: &[u32]) -> TreeMem {
    let pids = tree_pids(roots);
    TreeMem {
        rss_kib: pids.iter().map(|&p| field_kib(p, "status", "VmRSS:")).sum(),
        pss_kib: pids
            .iter()
            .map(|&p| field_kib(p, "smaps_rollup", "Pss:"))
            .sum(),
        processes: pids.len(),
    }
}

/// `roots` and every process below them.
pub fn tree_pids(roots: &[u32]) -> Vec<u32> {
    let children = children_map();
    let mut out = Vec::new();
    let mut todo: Vec<u32> = roots.to_vec();
    while let Some(p) = todo.pop() {
        if out.contains(&p) {
            continue;
        }
        out.push(p);
        if let Some(kids) = children.get(&p) {
            todo.extend(kids);
        }
    }
    out
}

fn children_map() -> HashMap<u32, Vec<u32>> {
    let mut map: HashMap<u32, Vec<u32>> = HashMap::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return map;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        if let Some(ppid) = parent(pid) {
            map.entry(ppid).or_default().push(pid);
        }
    }
    map
}

/// The parent from `/proc/PID/stat`: the field after the state, which
/// follows the command name in parentheses (which may itself hold spaces).
fn parent(pid: u32) -> Option<u32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_ppid(&stat)
}

fn parse_ppid(stat: &str) -> Option<u32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// A `Name:   123 kB` field of `/proc/PID/<file>`.
fn field_kib(pid: u32, file: &str, name: &str) -> u64 {
    let Ok(text) = fs::read_to_string(format!("/proc/{pid}/{file}")) else {
        return 0;
    };
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// `/proc/loadavg`'s first three fields.
pub fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parent_follows_a_name_with_spaces_and_parentheses() {
        assert_eq!(parse_ppid("42 (a (b) c) S 7 42 42 0"), Some(7));
        assert_eq!(parse_ppid("garbage"), None);
    }

    #[test]
    fn this_process_has_a_resident_set() {
        let m = tree_mem(&[std::process::id()]);
        assert!(m.rss_kib > 0 && m.pss_kib > 0 && m.processes >= 1, "{m:?}");
    }
}
