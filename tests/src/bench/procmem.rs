//! Memory of a server as the kernel counts it: a process and all its
//! descendants (Dovecot forks one `imap` process per session; Tandem is one
//! process), summed from `/proc/<pid>/status` (VmRSS) and
//! `/proc/<pid>/smaps_rollup` (Pss, which splits shared pages among the
//! processes that map them, so summing it does not count libraries twice).

use std::collections::HashMap;
use std::fs;

#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Memory {
    pub processes: usize,
    pub rss_kib: u64,
    pub pss_kib: u64,
}

/// `root` and every process below it. Processes that exit while being read
/// are skipped.
pub fn tree(root: u32) -> Memory {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(dir) = fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if let Some(ppid) = parent(pid) {
                children.entry(ppid).or_default().push(pid);
            }
        }
    }
    let mut m = Memory::default();
    let mut todo = vec![root];
    while let Some(pid) = todo.pop() {
        if let Some(rss) = field(&format!("/proc/{pid}/status"), "VmRSS:") {
            m.processes += 1;
            m.rss_kib += rss;
            m.pss_kib += field(&format!("/proc/{pid}/smaps_rollup"), "Pss:").unwrap_or(rss);
        }
        todo.extend(children.remove(&pid).unwrap_or_default());
    }
    m
}

/// The parent pid from `/proc/<pid>/stat` ("pid (comm) state ppid ...";
/// comm may hold spaces and parentheses, so split after the last `)`).
fn parent(pid: u32) -> Option<u32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// The kB value of a `Name:   123 kB` line.
fn field(path: &str, name: &str) -> Option<u64> {
    let text = fs::read_to_string(path).ok()?;
    let line = text.lines().find(|l| l.starts_with(name))?;
    line[name.len()..].split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn this_process_has_memory() {
        let m = super::tree(std::process::id());
        assert!(m.processes >= 1);
        assert!(m.rss_kib > 0 && m.pss_kib > 0);
    }
}
