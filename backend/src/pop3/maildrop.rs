//! The maildrop of one POP3 session (RFC 1939 §3, §5): INBOX as it was at
//! login, numbered 1..n, with the session's deletions and retrievals.
//!
//! The mailbox itself is the node's shared handle of INBOX (the one IMAP
//! sessions use too), so there is one UID list in memory per mailbox and no
//! session can hand out a UID another already gave. Reads go to the file
//! the snapshot names; the handle is asked again only to find a renamed
//! file and at UPDATE.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::PathBuf;

use crate::accounts::Opened;
use crate::store::quota;

/// One message of the snapshot.
#[derive(Debug, Clone)]
pub struct Entry {
    pub uid: u32,
    /// Size with CRLF line ends, as POP3 counts it.
    pub octets: u64,
    /// Size on disk, for the quota bookkeeping when it is deleted.
    pub size: u64,
    /// The file, relative to the Maildir (`new/...` or `cur/...`).
    file: Box<str>,
    pub deleted: bool,
    /// RETR'd: gets \Seen when the session ends.
    pub retrieved: bool,
}

impl Entry {
    fn in_new(&self) -> bool {
        self.file.starts_with("new/")
    }
}

/// Dovecot's default UIDL (`%08Xu%08Xv`, lower-case hex): stable across
/// sessions, restarts and nodes as long as the UID list is, and the same
/// Dovecot gives for a mailbox it shares the UIDs of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Uidl {
    pub uid: u32,
    pub uid_validity: u32,
}

impl std::fmt::Display for Uidl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:08x}{:08x}", self.uid, self.uid_validity)
    }
}

/// Why message `n` cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    NoSuch,
    Deleted,
}

/// What the end of a session changed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    pub deleted: usize,
    pub deleted_octets: u64,
}

pub struct Maildrop {
    entries: Vec<Entry>,
    pub uid_validity: u32,
    dir: PathBuf,
}

impl Maildrop {
    /// Opens and syncs INBOX under the account's index lock, and takes the
    /// snapshot.
    pub async fn open(opened: &Opened) -> io::Result<Maildrop> {
        let shared = opened.mailbox("INBOX").await.map_err(io::Error::other)?;
        opened
            .run(move |_| -> io::Result<Maildrop> {
                shared.sync()?;
                let mut mb = shared.lock();
                let found: Vec<(u32, u64, String)> = mb
                    .messages()
                    .iter()
                    .map(|m| {
                        let sub = if m.in_new { "new" } else { "cur" };
                        (m.uid, m.size, format!("{sub}/{}", m.file_name()))
                    })
                    .collect();
                let mut entries = Vec::with_capacity(found.len());
                for (uid, size, file) in found {
                    // Read from the name when it says; a message that
                    // vanished since the sync is left out.
                    let Ok(octets) = mb.vsize(uid) else { continue };
                    entries.push(Entry {
                        uid,
                        octets,
                        size,
                        file: file.into(),
                        deleted: false,
                        retrieved: false,
                    });
                }
                Ok(Maildrop {
                    entries,
                    uid_validity: mb.uid_validity(),
                    dir: mb.dir().to_owned(),
                })
            })
            .await
            .map_err(io::Error::other)?
    }

    /// Messages in the snapshot, deleted ones included (they keep their number).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The live (not deleted) message `n` (1-based).
    pub fn get(&self, n: u32) -> Result<&Entry, Missing> {
        match self.entries.get((n as usize).wrapping_sub(1)) {
            None => Err(Missing::NoSuch),
            Some(e) if e.deleted => Err(Missing::Deleted),
            Some(e) => Ok(e),
        }
    }

    /// Live messages with their numbers.
    pub fn live(&self) -> impl Iterator<Item = (usize, &Entry)> {
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, e)| !e.deleted)
            .map(|(i, e)| (i + 1, e))
    }

    /// Messages marked deleted in this session.
    pub fn marked_deleted(&self) -> usize {
        self.entries.iter().filter(|e| e.deleted).count()
    }

    /// Marks message `n` deleted; UPDATE expunges it.
    pub fn delete(&mut self, n: u32) -> Result<(), Missing> {
        self.get(n)?;
        self.entries[n as usize - 1].deleted = true;
        Ok(())
    }

    pub fn mark_retrieved(&mut self, n: u32) {
        if let Some(e) = self.entries.get_mut((n as usize).wrapping_sub(1)) {
            e.retrieved = true;
        }
    }

    /// RSET: nothing deleted, nothing retrieved (as Dovecot, which also
    /// forgets the \Seen marks to come).
    pub fn reset(&mut self) {
        for e in &mut self.entries {
            e.deleted = false;
            e.retrieved = false;
        }
    }

    pub fn uidl(&self, e: &Entry) -> Uidl {
        Uidl {
            uid: e.uid,
            uid_validity: self.uid_validity,
        }
    }

    /// Messages and octets not deleted.
    pub fn stat(&self) -> (usize, u64) {
        self.live()
            .fold((0, 0), |(n, o), (_, e)| (n + 1, o + e.octets))
    }

    /// Reads message `n` as stored (LF line ends). `NotFound` when it was
    /// expunged by another session.
    pub async fn read(&mut self, opened: &Opened, n: u32) -> io::Result<Vec<u8>> {
        let Ok(e) = self.get(n) else {
            return Err(io::ErrorKind::NotFound.into());
        };
        let (uid, path) = (e.uid, self.dir.join(&*e.file));
        match opened.run(move |_| fs::read(path)).await {
            Ok(Err(err)) if err.kind() == io::ErrorKind::NotFound => {}
            Ok(r) => return r,
            Err(err) => return Err(io::Error::other(err)),
        }
        // Renamed since the snapshot (a flag change elsewhere): ask the
        // mailbox where it is now.
        let shared = opened.mailbox("INBOX").await.map_err(io::Error::other)?;
        let found = opened
            .run(move |_| -> io::Result<(String, Vec<u8>)> {
                shared.sync()?;
                let mb = shared.lock();
                let m = mb.get(uid).ok_or(io::ErrorKind::NotFound)?;
                let sub = if m.in_new { "new" } else { "cur" };
                Ok((format!("{sub}/{}", m.file_name()), fs::read(mb.path(m))?))
            })
            .await
            .map_err(io::Error::other)??;
        self.entries[n as usize - 1].file = found.0.into();
        Ok(found.1)
    }

    /// The end of the session. With `update` (QUIT, RFC 1939 §6) the
    /// deleted messages are expunged; in any case the retrieved ones get
    /// \Seen and every message of the snapshot leaves `new/`, as Dovecot
    /// does. Deletions are durable before this returns; on an error some
    /// may be done and the others are not, never half of one.
    pub async fn commit(&self, opened: &Opened, update: bool) -> io::Result<Committed> {
        let deleted: Vec<u32> = if update {
            self.entries
                .iter()
                .filter(|e| e.deleted)
                .map(|e| e.uid)
                .collect()
        } else {
            Vec::new()
        };
        let touched: Vec<(u32, bool)> = self
            .entries
            .iter()
            .filter(|e| !(update && e.deleted) && (e.retrieved || e.in_new()))
            .map(|e| (e.uid, e.retrieved))
            .collect();
        if deleted.is_empty() && touched.is_empty() {
            return Ok(Committed::default());
        }
        let sizes: HashMap<u32, (u64, u64)> = self
            .entries
            .iter()
            .filter(|e| update && e.deleted)
            .map(|e| (e.uid, (e.size, e.octets)))
            .collect();
        let shared = opened.mailbox("INBOX").await.map_err(io::Error::other)?;
        opened
            .run(move |store| -> io::Result<Committed> {
                shared.sync()?;
                let mut mb = shared.lock();
                // Other sessions (IMAP) learn of the changes below.
                shared.changed();
                let mut done = Committed::default();
                if !deleted.is_empty() {
                    let gone = mb.expunge(&deleted)?;
                    let (mut bytes, mut octets) = (0, 0);
                    for (size, vsize) in gone.iter().filter_map(|u| sizes.get(u)) {
                        bytes += size;
                        octets += vsize;
                    }
                    if !gone.is_empty() {
                        let _ = quota::add(store.dir(), -(bytes as i64), -(gone.len() as i64));
                    }
                    done = Committed {
                        deleted: gone.len(),
                        deleted_octets: octets,
                    };
                }
                for (uid, seen) in touched {
                    // Gone meanwhile (expunged by another client): nothing to do.
                    let Some(m) = mb.get(uid) else { continue };
                    let info = if seen {
                        with_seen(&m.info)
                    } else {
                        m.info.clone()
                    };
                    // Renames to cur/ even when the letters stay the same.
                    mb.set_info(uid, &info)?;
                }
                Ok(done)
            })
            .await
            .map_err(io::Error::other)?
    }
}

/// Maildir info letters with `S` added in its ASCII place, others kept.
fn with_seen(info: &str) -> String {
    if info.contains('S') {
        return info.to_owned();
    }
    let at = info.find(|c: char| c > 'S').unwrap_or(info.len());
    let mut s = String::with_capacity(info.len() + 1);
    s.push_str(&info[..at]);
    s.push('S');
    s.push_str(&info[at..]);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_letter_goes_in_order() {
        for (info, want) in [
            ("", "S"),
            ("S", "S"),
            ("FR", "FRS"),
            ("RT", "RST"),
            ("Fab", "FSab"),
            ("a", "Sa"),
        ] {
            assert_eq!(with_seen(info), want);
        }
    }
}
