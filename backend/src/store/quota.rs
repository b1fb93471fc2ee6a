//! Quota usage in the Maildir++ `maildirsize` file, so that usage is known
//! without scanning the mailbox and other Maildir++ software (Dovecot's
//! maildir quota, Courier) reads and updates the same numbers.
//!
//! The first line is the limit (`<bytes>S`); every later line is a delta
//! `<bytes> <count>`, appended with one `write` on an `O_APPEND` file, so
//! concurrent deliveries never need a lock. The file is recomputed from the
//! Maildirs when it grows past 5120 bytes or its limit line is stale, as the
//! Maildir++ specification prescribes.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use super::maildir::{FileName, sync_dir};

pub const FILE_NAME: &str = "maildirsize";
const RECALC_ABOVE: u64 = 5120;

/// Bytes and messages in use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub bytes: u64,
    pub messages: u64,
}

/// Current usage of the account at `root`, with `limit` bytes (0: none).
pub fn usage(root: &Path, limit: u64) -> io::Result<Usage> {
    let path = root.join(FILE_NAME);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return recalculate(root, limit),
        Err(e) => return Err(e),
    };
    let mut lines = text.lines();
    let definition = lines.next().unwrap_or_default();
    if definition != limit_line(limit) || text.len() as u64 > RECALC_ABOVE {
        return recalculate(root, limit);
    }
    let mut bytes: i64 = 0;
    let mut messages: i64 = 0;
    for line in lines {
        let mut f = line.split_whitespace();
        match (
            f.next().and_then(|b| b.parse::<i64>().ok()),
            f.next().and_then(|c| c.parse::<i64>().ok()),
        ) {
            (Some(b), Some(c)) => {
                bytes += b;
                messages += c;
            }
            // A torn or foreign line: the totals cannot be trusted.
            _ => return recalculate(root, limit),
        }
    }
    Ok(Usage {
        bytes: bytes.max(0) as u64,
        messages: messages.max(0) as u64,
    })
}

/// Records a change of `bytes`/`messages` (negative for removals).
pub fn add(root: &Path, bytes: i64, messages: i64) -> io::Result<()> {
    let path = root.join(FILE_NAME);
    match OpenOptions::new().append(true).open(&path) {
        Ok(mut f) => f.write_all(format!("{bytes} {messages}\n").as_bytes()),
        // No file yet: the next usage() computes it from the Maildirs.
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

fn limit_line(limit: u64) -> String {
    if limit == 0 {
        "0S".to_owned()
    } else {
        format!("{limit}S")
    }
}

/// Sums every message of every folder and rewrites the file atomically.
pub fn recalculate(root: &Path, limit: u64) -> io::Result<Usage> {
    let mut u = Usage::default();
    let mut dirs = vec![root.to_owned()];
    for entry in fs::read_dir(root)? {
        let entry = entry?;
        let name = entry.file_name();
        let n = name.to_string_lossy();
        // `..DELETED.*` are folders half-way through deletion.
        if n.starts_with('.') && !n.starts_with("..") && n != "." && entry.file_type()?.is_dir() {
            dirs.push(entry.path());
        }
    }
    for d in dirs {
        for sub in ["cur", "new"] {
            let Ok(rd) = fs::read_dir(d.join(sub)) else {
                continue;
            };
            for entry in rd {
                let entry = entry?;
                let name = entry.file_name();
                let Some(parsed) = name.to_str().and_then(FileName::parse) else {
                    continue;
                };
                let size = match parsed.size {
                    Some(s) => s,
                    None => entry.metadata().map_or(0, |m| m.len()),
                };
                // Messages marked deleted (T) still count until expunged.
                u.bytes += size;
                u.messages += 1;
            }
        }
    }
    let tmp = root.join(format!("{FILE_NAME}.tmp.{}", std::process::id()));
    {
        let mut f = File::create(&tmp)?;
        f.write_all(format!("{}\n{} {}\n", limit_line(limit), u.bytes, u.messages).as_bytes())?;
        f.sync_all()?;
    }
    fs::rename(&tmp, root.join(FILE_NAME))?;
    sync_dir(root)?;
    Ok(u)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::maildir;

    #[test]
    fn tracks_deliveries_and_recomputes() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        maildir::create(root).unwrap();
        maildir::create(&root.join(".Sent")).unwrap();
        maildir::deliver(root, b"12345\n", None).unwrap();
        maildir::deliver(&root.join(".Sent"), b"abc\n", None).unwrap();
        assert_eq!(
            usage(root, 1000).unwrap(),
            Usage {
                bytes: 10,
                messages: 2
            }
        );
        add(root, 100, 1).unwrap();
        assert_eq!(
            usage(root, 1000).unwrap(),
            Usage {
                bytes: 110,
                messages: 3
            }
        );
        // A changed limit recomputes from the files.
        assert_eq!(
            usage(root, 2000).unwrap(),
            Usage {
                bytes: 10,
                messages: 2
            }
        );
        assert!(
            fs::read_to_string(root.join(FILE_NAME))
                .unwrap()
                .starts_with("2000S\n")
        );
        fs::write(root.join(FILE_NAME), "2000S\n10 2\ngarbage\n").unwrap();
        assert_eq!(
            usage(root, 2000).unwrap().bytes,
            10,
            "a bad line forces a recount"
        );
    }
}
