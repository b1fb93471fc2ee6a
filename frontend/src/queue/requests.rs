//! What `tandem queue retry|delete` asks of a spool, and the lock that says
//! who may act on it.
//!
//! The daemon holds an exclusive `flock` on `DIR/lock` while its queue
//! lives. The CLI tries the same lock: when it gets it no daemon runs, and
//! it changes the spool itself (under the lock, so a daemon starting
//! meanwhile waits). Otherwise it drops a request file in `DIR/requests/`
//! (written as `.tmp`, then renamed) and the daemon applies it within a
//! second, from the same loop that starts attempts: an entry is deleted
//! only when no attempt of it runs (else at the end of that attempt), so
//! a deleted message is never delivered afterwards and nothing is lost.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Queue;
use super::spool::{self, Event};

/// The requests' subdirectory of the spool.
pub const DIR: &str = "requests";
/// Largest request file read.
const MAX_REQUEST: u64 = 4096;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Make the entry due now.
    Retry {
        id: String,
    },
    RetryAll,
    /// Remove the entry without a DSN.
    Delete {
        id: String,
    },
}

/// Takes the spool's lock, waiting up to `wait` for another holder;
/// `None` when it stayed taken.
pub async fn lock(dir: &Path, wait: Duration) -> io::Result<Option<File>> {
    let path = dir.join("lock");
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)?;
    let until = tokio::time::Instant::now() + wait;
    loop {
        match f.try_lock() {
            Ok(()) => return Ok(Some(f)),
            Err(std::fs::TryLockError::WouldBlock) => {}
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
        if tokio::time::Instant::now() >= until {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Leaves a request for the running daemon; returns the file, which
/// disappears once the request is applied.
pub fn submit(dir: &Path, request: &Request) -> io::Result<PathBuf> {
    let dir = dir.join(DIR);
    std::fs::create_dir_all(&dir)?;
    let name = format!(
        "{}-{}-{:08x}",
        super::now_ms(),
        std::process::id(),
        rand::random::<u32>()
    );
    let tmp = dir.join(format!("{name}.tmp"));
    let done = dir.join(format!("{name}.req"));
    std::fs::write(&tmp, serde_json::to_vec(request).map_err(io::Error::other)?)?;
    std::fs::rename(&tmp, &done)?;
    Ok(done)
}

/// Applies a request directly to a spool whose lock the caller holds (no
/// daemon runs). `Ok(false)`: no such entry.
pub fn apply_offline(dir: &Path, request: &Request) -> io::Result<bool> {
    match request {
        Request::Delete { id } => {
            if !spool::valid_id(id) || !spool::journal_path(dir, id).exists() {
                return Ok(false);
            }
            spool::remove(dir, id)?;
            Ok(true)
        }
        Request::Retry { id } => {
            if !spool::valid_id(id) || !spool::journal_path(dir, id).exists() {
                return Ok(false);
            }
            spool::append(dir, id, &Event::Retry)?;
            Ok(true)
        }
        Request::RetryAll => {
            for l in spool::load_all(dir, false)?.entries {
                apply_offline(
                    dir,
                    &Request::Retry {
                        id: l.header.id.clone(),
                    },
                )?;
            }
            Ok(true)
        }
    }
}

/// Applies the requests waiting in the spool (the daemon's side).
pub(super) async fn apply(q: &Arc<Queue>) {
    let dir = q.dir.join(DIR);
    let read = q.blocking.run(move || read_requests(&dir)).await;
    let Ok(requests) = read else { return };
    if requests.is_empty() {
        return;
    }
    for (path, parsed) in &requests {
        match parsed {
            Ok(r) => {
                tracing::info!(request = ?r, "queue request");
                one(q, r).await;
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "unreadable queue request ignored")
            }
        }
    }
    // Removed once applied: the CLI waits for that as the confirmation.
    let paths: Vec<PathBuf> = requests.into_iter().map(|(p, _)| p).collect();
    let _ = q
        .blocking
        .run(move || {
            for path in paths {
                if let Err(e) = std::fs::remove_file(&path) {
                    tracing::warn!(path = %path.display(), error = %e, "cannot remove queue request");
                }
            }
        })
        .await;
}

/// The request files waiting in `dir`, oldest first, each read and parsed.
fn read_requests(dir: &Path) -> Vec<(PathBuf, io::Result<Request>)> {
    let Ok(read) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = read
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "req"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let parsed = std::fs::metadata(&path)
                .and_then(|m| {
                    if m.len() > MAX_REQUEST {
                        Err(io::Error::other("request file too large"))
                    } else {
                        std::fs::read(&path)
                    }
                })
                .and_then(|b| serde_json::from_slice::<Request>(&b).map_err(io::Error::other));
            (path, parsed)
        })
        .collect()
}

async fn one(q: &Arc<Queue>, r: &Request) {
    let entries = q.snapshot();
    let chosen: Vec<_> = match r {
        Request::RetryAll => entries,
        Request::Retry { id } | Request::Delete { id } => {
            entries.into_iter().filter(|e| e.header.id == *id).collect()
        }
    };
    for e in chosen {
        let mut st = e.state.lock().await;
        match r {
            Request::Retry { .. } | Request::RetryAll => st.next = 0,
            Request::Delete { .. } => {
                if e.busy.load(Ordering::Acquire) {
                    // The attempt's end removes it (see attempt::finish).
                    st.deleted = true;
                } else {
                    st.deleted = true;
                    drop(st);
                    q.forget(&e).await;
                }
            }
        }
    }
    q.wake.notify_one();
}
