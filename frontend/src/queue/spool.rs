//! The spool on disk: what makes an accepted message impossible to lose.
//!
//! Each entry is two files in the spool directory:
//! - `ID.msg`: the message as accepted (CRLF, dot-unstuffed), never changed;
//! - `ID.q`: a journal of JSON lines. The first line is the [`Header`]
//!   (envelope, routes, creation time); every later line an [`Event`]
//!   appended and `fdatasync`ed when it happens (a recipient delivered or
//!   failed, a DSN sent for it, an attempt started or ended, an attempt's
//!   outcome for a recipient unknown).
//!
//! Creation writes `ID.msg.tmp` and `ID.q.tmp`, fsyncs both, renames them
//! (the `.q` rename is the commit point) and fsyncs the directory. Removal
//! unlinks `ID.q` first, then `ID.msg`. Recovery ([`load_all`]) deletes
//! `*.tmp` files and `.msg` files without a journal, and cuts a journal's
//! torn last line (a SIGKILL during an append): an event that did not reach
//! the disk whole did not happen.
//!
//! Everything here is blocking `std::fs`: the queue calls it through
//! [`shared::blocking::Blocking`].

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Spool format version in every header.
const VERSION: u32 = 1;
/// The longest journal line read back (a header with 1,000 recipients of
/// 256 bytes each fits several times).
const MAX_JOURNAL: u64 = 16 << 20;

/// The unchanging part of an entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub v: u32,
    pub id: String,
    /// Unix milliseconds when the message was accepted.
    pub created_ms: i64,
    pub session: String,
    /// Empty for the null sender.
    pub sender: String,
    pub recipients: Vec<SpoolRcpt>,
    pub eight_bit: bool,
    pub smtputf8: bool,
    /// Size of `ID.msg`.
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpoolRcpt {
    pub address: String,
    pub route: SpoolRoute,
}

/// A recipient's route as the spool keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum SpoolRoute {
    /// An account on `cluster` (as resolved at RCPT time).
    Local { cluster: String, account: String },
    /// Through the smarthost.
    Relay,
    /// Looked up in the locator at each attempt: a DSN's recipient (the
    /// original sender), local or not.
    Lookup,
}

/// Something that happened to an entry, in journal order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "e", rename_all = "lowercase")]
pub enum Event {
    /// Recipient `r` (index in the header) got its 250.
    Delivered { r: usize },
    /// Recipient `r` failed for good with `reply`.
    Failed { r: usize, reply: String },
    /// The DSN for failed recipient `r` is in the spool.
    Bounced { r: usize },
    /// An attempt ended; the next is due at `next` (Unix seconds).
    Attempt {
        n: u32,
        next: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// `tandem queue retry` while no daemon ran: due now.
    Retry,
    /// An attempt of the spooled entry starts: until its `Attempt`, any
    /// pending recipient may have been stored by the backend unbeknownst
    /// to us (see [`Loaded::uncertain`]).
    Trying,
    /// Recipient `r`'s copy may have been stored though no 250 was read
    /// (the connection was lost past the final dot).
    Unknown { r: usize },
}

/// Where a recipient stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum RcptState {
    Pending {
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    Delivered,
    Failed {
        reply: String,
        bounced: bool,
    },
}

/// An entry read back: its header and the journal replayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    pub header: Header,
    pub rcpts: Vec<RcptState>,
    pub attempts: u32,
    /// Unix seconds; 0 when due now.
    pub next: i64,
    pub last_error: Option<String>,
    /// Per recipient: an `Unknown` event was journalled for it.
    pub unknown: Vec<bool>,
    /// An attempt may have been in flight when the journal ends: no
    /// attempt ended yet (the first runs before the entry is spooled), or
    /// a `Trying` came after the last `Attempt`.
    pub in_flight: bool,
}

impl Loaded {
    pub fn new(header: Header) -> Self {
        let n = header.recipients.len();
        Loaded {
            header,
            rcpts: vec![RcptState::Pending { error: None }; n],
            attempts: 0,
            next: 0,
            last_error: None,
            unknown: vec![false; n],
            in_flight: true,
        }
    }

    /// Per recipient: whether a retry must ask the backend to look for a
    /// copy already stored, because the journal cannot tell whether an
    /// earlier attempt stored it (pending, and an attempt was in flight
    /// when the process died, or an attempt lost its reply).
    pub fn uncertain(&self) -> Vec<bool> {
        self.rcpts
            .iter()
            .zip(&self.unknown)
            .map(|(s, &u)| matches!(s, RcptState::Pending { .. }) && (u || self.in_flight))
            .collect()
    }

    /// Applies one event; one naming a recipient that does not exist is
    /// ignored (a damaged journal must not stop recovery).
    pub fn apply(&mut self, e: &Event) {
        match e {
            Event::Delivered { r } => {
                if let Some(s) = self.rcpts.get_mut(*r) {
                    *s = RcptState::Delivered;
                }
            }
            Event::Failed { r, reply } => {
                if let Some(s) = self.rcpts.get_mut(*r) {
                    *s = RcptState::Failed {
                        reply: reply.clone(),
                        bounced: false,
                    };
                }
            }
            Event::Bounced { r } => {
                if let Some(RcptState::Failed { bounced, .. }) = self.rcpts.get_mut(*r) {
                    *bounced = true;
                }
            }
            Event::Attempt { n, next, error } => {
                self.in_flight = false;
                self.attempts = *n;
                self.next = *next;
                if error.is_some() {
                    self.last_error.clone_from(error);
                }
            }
            Event::Retry => self.next = 0,
            Event::Trying => self.in_flight = true,
            Event::Unknown { r } => {
                if let Some(u) = self.unknown.get_mut(*r) {
                    *u = true;
                }
            }
        }
    }

    /// After a restart, makes the uncertainty an unfinished attempt left
    /// durable as `Unknown` events, so that it outlives the next ended
    /// attempt (a retry refused with 4xx, then another crash, must still
    /// ask the backend). Appends only for entries that were in flight.
    pub fn remember_uncertain(&mut self, dir: &Path) -> io::Result<()> {
        if !self.in_flight {
            return Ok(());
        }
        for r in 0..self.rcpts.len() {
            if matches!(self.rcpts[r], RcptState::Pending { .. }) && !self.unknown[r] {
                append(dir, &self.header.id, &Event::Unknown { r })?;
                self.unknown[r] = true;
            }
        }
        Ok(())
    }

    pub fn pending(&self) -> impl Iterator<Item = usize> + '_ {
        self.rcpts
            .iter()
            .enumerate()
            .filter(|(_, s)| matches!(s, RcptState::Pending { .. }))
            .map(|(i, _)| i)
    }
}

/// Whether `id` can name a spool entry (ids are upper-case hex): anything
/// else given to the CLI is refused before it touches a path.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

pub fn msg_path(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("{id}.msg"))
}

pub fn journal_path(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("{id}.q"))
}

fn line<T: Serialize>(value: &T) -> io::Result<Vec<u8>> {
    let mut v = serde_json::to_vec(value).map_err(io::Error::other)?;
    v.push(b'\n');
    Ok(v)
}

/// Creates `dir` (and its parents) readable by its owner only: the spool
/// holds other people's mail. An existing directory is made private too.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

fn write_synced(path: &Path, bytes: &[&[u8]]) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    for b in bytes {
        f.write_all(b)?;
    }
    f.sync_all()
}

/// fsync of a directory, so that renames and unlinks in it are durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Writes a new entry durably.
/// `events` describe what is already known (an immediate attempt's
/// results), written with the header in one go.
pub fn create(dir: &Path, header: &Header, events: &[Event], message: &[u8]) -> io::Result<()> {
    let id = &header.id;
    let msg_tmp = dir.join(format!("{id}.msg.tmp"));
    let q_tmp = dir.join(format!("{id}.q.tmp"));
    let result = (|| {
        write_synced(&msg_tmp, &[message])?;
        let mut journal = line(header)?;
        for e in events {
            journal.extend(line(e)?);
        }
        write_synced(&q_tmp, &[&journal])?;
        std::fs::rename(&msg_tmp, msg_path(dir, id))?;
        std::fs::rename(&q_tmp, journal_path(dir, id))?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&msg_tmp);
        let _ = std::fs::remove_file(&q_tmp);
        let _ = std::fs::remove_file(msg_path(dir, id));
    }
    result
}

/// Appends an event to an entry's journal and makes it durable before
/// returning. The file is opened per event: a spool of 100,000 entries
/// must not hold 100,000 descriptors.
pub fn append(dir: &Path, id: &str, event: &Event) -> io::Result<()> {
    let mut journal = OpenOptions::new()
        .append(true)
        .open(journal_path(dir, id))?;
    journal.write_all(&line(event)?)?;
    journal.sync_data()
}

/// Removes an entry: the journal first (after that the entry is gone even
/// if the message file is left to recovery).
pub fn remove(dir: &Path, id: &str) -> io::Result<()> {
    match std::fs::remove_file(journal_path(dir, id)) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    match std::fs::remove_file(msg_path(dir, id)) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    sync_dir(dir)
}

/// Reads one entry's journal. `repair`: cut a torn last line (only the
/// daemon, holding the spool lock, may write).
pub fn load(dir: &Path, id: &str, repair: bool) -> io::Result<Loaded> {
    let path = journal_path(dir, id);
    let bad = |why: String| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {why}", path.display()),
        )
    };
    let len = std::fs::metadata(&path)?.len();
    if len > MAX_JOURNAL {
        return Err(bad(format!("journal larger than {MAX_JOURNAL} bytes")));
    }
    let text = std::fs::read(&path)?;
    let complete = text.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
    if complete < text.len() && repair {
        tracing::warn!(path = %path.display(), "cutting a torn last journal line");
        let f = OpenOptions::new().write(true).open(&path)?;
        f.set_len(complete as u64)?;
        f.sync_all()?;
    }
    parse_journal(&text[..complete], id).map_err(bad)
}

/// An entry from the complete lines of its journal (a torn last line
/// already cut off): the header line, then one event a line.
pub fn parse_journal(text: &[u8], id: &str) -> Result<Loaded, String> {
    let mut lines = text.split(|&b| b == b'\n').filter(|l| !l.is_empty());
    let first = lines.next().ok_or_else(|| "empty journal".to_owned())?;
    let header: Header = serde_json::from_slice(first).map_err(|e| format!("header: {e}"))?;
    if header.v != VERSION || header.id != id {
        return Err(format!(
            "header of version {} for id {}",
            header.v, header.id
        ));
    }
    let mut loaded = Loaded::new(header);
    for (n, l) in lines.enumerate() {
        let e: Event = serde_json::from_slice(l).map_err(|e| format!("event {}: {e}", n + 1))?;
        loaded.apply(&e);
    }
    Ok(loaded)
}

/// What recovery found.
#[derive(Debug, Default)]
pub struct Recovered {
    pub entries: Vec<Loaded>,
    /// Entries that could not be read, moved aside as `ID.q.bad`.
    pub damaged: Vec<String>,
    /// Half-written files removed.
    pub removed: usize,
}

/// Every entry of the spool, oldest first, after cleaning up what a crash
/// left half done. Only the lock holder calls this with `repair`.
pub fn load_all(dir: &Path, repair: bool) -> io::Result<Recovered> {
    let mut out = Recovered::default();
    let mut ids = Vec::new();
    let mut msgs = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(".tmp") {
            if repair {
                std::fs::remove_file(e.path())?;
                out.removed += 1;
            }
        } else if let Some(id) = name.strip_suffix(".q") {
            ids.push(id.to_owned());
        } else if let Some(id) = name.strip_suffix(".msg") {
            msgs.push(id.to_owned());
        }
    }
    ids.sort();
    for id in &ids {
        if !valid_id(id) {
            continue;
        }
        if !msgs.contains(id) {
            out.damaged.push(format!("{id}: message file missing"));
            if repair {
                let _ = std::fs::rename(journal_path(dir, id), dir.join(format!("{id}.q.bad")));
            }
            continue;
        }
        match load(dir, id, repair) {
            Ok(l) => out.entries.push(l),
            Err(e) => {
                out.damaged.push(e.to_string());
                if repair {
                    let _ = std::fs::rename(journal_path(dir, id), dir.join(format!("{id}.q.bad")));
                }
            }
        }
    }
    if repair {
        for id in msgs.iter().filter(|m| !ids.contains(m)) {
            // The message of an entry whose journal never committed, or
            // whose removal was cut short.
            std::fs::remove_file(msg_path(dir, id))?;
            out.removed += 1;
        }
        if out.removed > 0 {
            sync_dir(dir)?;
        }
    }
    out.entries.sort_by_key(|l| l.header.created_ms);
    Ok(out)
}

/// The lines of the message's header section (for `show` and DSNs).
pub fn headers_of(message: &[u8]) -> &[u8] {
    let end = message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 2)
        .or_else(|| message.windows(2).position(|w| w == b"\n\n").map(|p| p + 1))
        .unwrap_or(message.len());
    &message[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(id: &str) -> Header {
        Header {
            v: VERSION,
            id: id.into(),
            created_ms: 1,
            session: "s1".into(),
            sender: "a@x.test".into(),
            recipients: vec![
                SpoolRcpt {
                    address: "b@example.com".into(),
                    route: SpoolRoute::Local {
                        cluster: "c1".into(),
                        account: "b@example.com".into(),
                    },
                },
                SpoolRcpt {
                    address: "c@far.test".into(),
                    route: SpoolRoute::Relay,
                },
            ],
            eight_bit: false,
            smtputf8: false,
            size: 5,
        }
    }

    #[test]
    fn uncertain_recipients_are_those_an_unfinished_attempt_may_have_stored() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // Spooled while accept's first attempt may still run: both unknown.
        create(d, &header("C1"), &[], b"m").unwrap();
        assert_eq!(load(d, "C1", true).unwrap().uncertain(), [true, true]);
        // That attempt ended: nothing in flight.
        let attempt = Event::Attempt {
            n: 1,
            next: 5,
            error: None,
        };
        append(d, "C1", &attempt).unwrap();
        assert_eq!(load(d, "C1", true).unwrap().uncertain(), [false, false]);
        // A retry started and the process died: every pending one.
        append(d, "C1", &Event::Trying).unwrap();
        append(d, "C1", &Event::Delivered { r: 1 }).unwrap();
        assert_eq!(load(d, "C1", true).unwrap().uncertain(), [true, false]);
        // Made durable at the restart: still uncertain after it ended.
        let mut l = load(d, "C1", true).unwrap();
        l.remember_uncertain(d).unwrap();
        append(d, "C1", &attempt).unwrap();
        assert_eq!(load(d, "C1", true).unwrap().uncertain(), [true, false]);
        // It ended, having lost recipient 0's reply past the dot.
        append(d, "C1", &Event::Unknown { r: 0 }).unwrap();
        append(d, "C1", &attempt).unwrap();
        let l = load(d, "C1", true).unwrap();
        assert_eq!((l.uncertain(), l.in_flight), (vec![true, false], false));
        // A damaged index is ignored.
        append(d, "C1", &Event::Unknown { r: 7 }).unwrap();
        assert!(load(d, "C1", true).is_ok());
    }

    #[test]
    fn create_append_load_remove() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        create(d, &header("AB"), &[Event::Delivered { r: 0 }], b"hello").unwrap();
        append(
            d,
            "AB",
            &Event::Attempt {
                n: 1,
                next: 99,
                error: Some("451 later".into()),
            },
        )
        .unwrap();
        let l = load(d, "AB", true).unwrap();
        assert_eq!(l.rcpts[0], RcptState::Delivered);
        assert_eq!(l.pending().collect::<Vec<_>>(), [1]);
        assert_eq!((l.attempts, l.next), (1, 99));
        assert_eq!(l.last_error.as_deref(), Some("451 later"));
        assert_eq!(std::fs::read(msg_path(d, "AB")).unwrap(), b"hello");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(msg_path(d, "AB"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "other people's mail is private");
        remove(d, "AB").unwrap();
        assert!(load_all(d, true).unwrap().entries.is_empty());
    }

    #[test]
    fn recovery_cleans_up_after_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        create(d, &header("A1"), &[], b"m").unwrap();
        append(
            d,
            "A1",
            &Event::Failed {
                r: 0,
                reply: "550 no".into(),
            },
        )
        .unwrap();
        // A torn append, a half-written entry, an orphan message.
        let mut j = OpenOptions::new()
            .append(true)
            .open(journal_path(d, "A1"))
            .unwrap();
        j.write_all(b"{\"e\":\"deliv").unwrap();
        std::fs::write(d.join("B2.q.tmp"), b"x").unwrap();
        std::fs::write(d.join("B2.msg.tmp"), b"x").unwrap();
        std::fs::write(d.join("C3.msg"), b"x").unwrap();
        std::fs::write(d.join("D4.q"), b"not json\n").unwrap();
        std::fs::write(d.join("D4.msg"), b"x").unwrap();
        let r = load_all(d, true).unwrap();
        assert_eq!(r.entries.len(), 1);
        assert_eq!(
            r.entries[0].rcpts[0],
            RcptState::Failed {
                reply: "550 no".into(),
                bounced: false
            }
        );
        assert_eq!(r.damaged.len(), 1, "{:?}", r.damaged);
        assert_eq!(r.removed, 3);
        assert!(!d.join("C3.msg").exists());
        // The torn line is gone: the next append makes a valid journal.
        append(d, "A1", &Event::Bounced { r: 0 }).unwrap();
        let l = load(d, "A1", true).unwrap();
        assert!(matches!(
            l.rcpts[0],
            RcptState::Failed { bounced: true, .. }
        ));
    }

    #[test]
    fn ids_are_checked() {
        assert!(valid_id("18A3F00C2B"));
        assert!(!valid_id("../etc"));
        assert!(!valid_id(""));
    }

    #[test]
    fn header_section() {
        assert_eq!(headers_of(b"A: 1\r\nB: 2\r\n\r\nbody"), b"A: 1\r\nB: 2\r\n");
        assert_eq!(headers_of(b"A: 1\r\n"), b"A: 1\r\n");
    }
}
