//! The persistent UID list of one mailbox: `tandem-uidlist` beside the
//! Maildir's `cur/ new/ tmp/`.
//!
//! Text, one record a line, so an operator can read it:
//! ```text
//! T1 <uidvalidity> <next uid> <highest modseq>
//! <uid> <base name>          a message got a UID
//! -<uid>                     the message was expunged
//! ```
//! New assignments are appended and fsync'd before any client sees them; the
//! file is rewritten (temp file, fsync, rename, fsync directory) only to drop
//! expunged records. A torn last line from a crash is ignored and cut off.
//! `next uid` only grows: it is the larger of the header's and one past every
//! UID the log ever mentions, so a UID is never given to a second message,
//! even after a crash between an append and a rewrite. Every write happens
//! under an OS lock on `tandem-uidlist.lock` and starts by re-reading the
//! file, so several sessions (on one node or several) with the same mailbox
//! open agree on every UID: a file another session already numbered keeps
//! its number. An unreadable file is
//! moved aside and the mailbox gets a new UIDVALIDITY, which tells IMAP
//! clients to forget what they cached instead of trusting reused UIDs.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::maildir::sync_dir;

pub const FILE_NAME: &str = "tandem-uidlist";
const LOCK_NAME: &str = "tandem-uidlist.lock";
const MAGIC: &str = "T1";

/// The in-memory view of a UID list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UidList {
    pub uid_validity: u32,
    pub next_uid: u32,
    pub highest_modseq: u64,
    /// Live messages: UID -> base name.
    pub uids: BTreeMap<u32, String>,
    /// Records in the file that a rewrite would drop.
    dead_records: usize,
}

/// Where a UID list came from when it was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opened {
    Existing,
    Created,
    /// The old file could not be read and was moved aside.
    Recreated,
}

impl UidList {
    fn new(uid_validity: u32) -> UidList {
        UidList {
            uid_validity,
            next_uid: 1,
            highest_modseq: 1,
            uids: BTreeMap::new(),
            dead_records: 0,
        }
    }

    /// Loads the list of the mailbox at `dir`, creating it if absent.
    pub fn open(dir: &Path) -> io::Result<(UidList, Opened)> {
        if let Some(list) = read(dir)?.and_then(|(l, torn)| (!torn).then_some(l)) {
            return Ok((list, Opened::Existing));
        }
        // Missing, torn or broken: settle it under the lock, where no other
        // session is writing.
        let _lock = lock(dir)?;
        let path = dir.join(FILE_NAME);
        match fs::read(&path) {
            Ok(bytes) => match parse(&bytes) {
                Ok((list, torn)) => {
                    if torn {
                        cut_torn_tail(&path, &bytes)?;
                    }
                    Ok((list, Opened::Existing))
                }
                Err(why) => {
                    let aside = dir.join(format!("{FILE_NAME}.broken.{}", shared::time::now()));
                    tracing::error!(path = %path.display(), %why, aside = %aside.display(), "UID list unreadable; new UIDVALIDITY");
                    fs::rename(&path, &aside)?;
                    let list = UidList::new(fresh_validity(None));
                    list.rewrite(dir)?;
                    Ok((list, Opened::Recreated))
                }
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let list = UidList::new(fresh_validity(None));
                list.rewrite(dir)?;
                Ok((list, Opened::Created))
            }
            Err(e) => Err(e),
        }
    }

    /// Re-reads the file under the lock: other sessions may have numbered
    /// or expunged messages since. A torn tail is cut so appends start clean.
    fn refresh(&mut self, dir: &Path) -> io::Result<()> {
        let path = dir.join(FILE_NAME);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            // Gone or unreadable: our view is the best there is; the append
            // or rewrite that follows fails or recreates it.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        match parse(&bytes) {
            Ok((list, torn)) => {
                if torn {
                    cut_torn_tail(&path, &bytes)?;
                }
                let modseq = self.highest_modseq.max(list.highest_modseq);
                *self = list;
                self.highest_modseq = modseq;
                Ok(())
            }
            Err(why) => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {why}", path.display()),
            )),
        }
    }

    /// Gives UIDs to `bases`, in order, and makes that durable. A base that
    /// another session numbered meanwhile keeps its UID; the rest get the
    /// next ones. The result is in the order of `bases`.
    pub fn assign(&mut self, dir: &Path, bases: &[String]) -> io::Result<Vec<u32>> {
        if bases.is_empty() {
            return Ok(Vec::new());
        }
        let _lock = lock(dir)?;
        self.refresh(dir)?;
        let known: std::collections::HashMap<&str, u32> =
            self.uids.iter().map(|(u, b)| (b.as_str(), *u)).collect();
        let mut text = String::with_capacity(bases.len() * 64);
        let mut uids = Vec::with_capacity(bases.len());
        let mut next = self.next_uid;
        for b in bases {
            if let Some(u) = known.get(b.as_str()) {
                uids.push(*u);
                continue;
            }
            let uid = next;
            next = next
                .checked_add(1)
                .ok_or_else(|| io::Error::other("UID space exhausted"))?;
            text.push_str(&format!("{uid} {b}\n"));
            uids.push(uid);
        }
        drop(known);
        if !text.is_empty() {
            append(dir, &text)?;
        }
        self.next_uid = next;
        for (u, b) in uids.iter().zip(bases) {
            self.uids.insert(*u, b.clone());
        }
        Ok(uids)
    }

    /// Records that `uids` are gone, durably; compacts when the log is mostly dead.
    pub fn expunge(&mut self, dir: &Path, uids: &[u32]) -> io::Result<()> {
        let mut text = String::new();
        for u in uids {
            if self.uids.remove(u).is_some() {
                text.push_str(&format!("-{u}\n"));
                self.dead_records += 2;
            }
        }
        if text.is_empty() {
            return Ok(());
        }
        let _lock = lock(dir)?;
        if self.dead_records > 1000 && self.dead_records > self.uids.len() {
            self.refresh(dir)?;
            for u in uids {
                self.uids.remove(u);
            }
            self.rewrite(dir)?;
            self.dead_records = 0;
            Ok(())
        } else {
            append(dir, &text)
        }
    }

    /// Bumps and returns the mailbox's modification sequence (CONDSTORE).
    pub fn bump_modseq(&mut self) -> u64 {
        self.highest_modseq += 1;
        self.highest_modseq
    }

    /// Writes the whole list atomically.
    pub fn rewrite(&self, dir: &Path) -> io::Result<()> {
        let mut text = format!(
            "{MAGIC} {} {} {}\n",
            self.uid_validity, self.next_uid, self.highest_modseq
        );
        for (u, b) in &self.uids {
            text.push_str(&format!("{u} {b}\n"));
        }
        let tmp: PathBuf = dir.join(format!("{FILE_NAME}.tmp.{}", std::process::id()));
        {
            let mut f = File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
        }
        fs::rename(&tmp, dir.join(FILE_NAME))?;
        sync_dir(dir)
    }

    pub fn compacted(mut self, dir: &Path) -> io::Result<Self> {
        let _lock = lock(dir)?;
        self.refresh(dir)?;
        self.rewrite(dir)?;
        self.dead_records = 0;
        Ok(self)
    }
}

/// Reads and parses the list; `None` if missing or unreadable.
fn read(dir: &Path) -> io::Result<Option<(UidList, bool)>> {
    match fs::read(dir.join(FILE_NAME)) {
        Ok(bytes) => Ok(parse(&bytes).ok()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn cut_torn_tail(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let keep = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    OpenOptions::new()
        .write(true)
        .open(path)?
        .set_len(keep as u64)
}

/// Holds the mailbox's UID list lock until dropped (an OS lock: a crashed
/// holder releases it).
fn lock(dir: &Path) -> io::Result<File> {
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(LOCK_NAME))?;
    f.lock()?;
    Ok(f)
}

fn append(dir: &Path, text: &str) -> io::Result<()> {
    let mut f = OpenOptions::new().append(true).open(dir.join(FILE_NAME))?;
    f.write_all(text.as_bytes())?;
    f.sync_data()
}

/// A UIDVALIDITY for a new list: the current time, so it differs from any
/// earlier list of this mailbox (RFC 3501 §2.3.1.1), and above `previous`.
fn fresh_validity(previous: Option<u32>) -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    // The last value this process gave out: a mailbox deleted and created
    // again within one second must still get a new UIDVALIDITY (RFC 3501
    // §2.3.1.1), or clients would keep its old UIDs.
    static LAST: AtomicU32 = AtomicU32::new(0);
    let now = u32::try_from(shared::time::now()).unwrap_or(u32::MAX);
    let floor = previous.map_or(1, |p| p.saturating_add(1));
    let mut next = 0;
    let _ = LAST.fetch_update(Ordering::AcqRel, Ordering::Acquire, |last| {
        next = now.max(floor).max(last.saturating_add(1)).max(1);
        Some(next)
    });
    next
}

/// Parses a list; the flag says whether the last line was torn.
fn parse(bytes: &[u8]) -> Result<(UidList, bool), String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_owned())?;
    let torn = !text.is_empty() && !text.ends_with('\n');
    let mut lines = text.split('\n');
    let header = lines.next().unwrap_or_default();
    let mut h = header.split(' ');
    if h.next() != Some(MAGIC) {
        return Err(format!("bad header {header:?}"));
    }
    let num = |s: Option<&str>| s.and_then(|v| v.parse::<u64>().ok());
    let (Some(validity), Some(next), Some(modseq)) = (num(h.next()), num(h.next()), num(h.next()))
    else {
        return Err(format!("bad header {header:?}"));
    };
    let mut list = UidList::new(u32::try_from(validity).map_err(|_| "bad uidvalidity")?);
    list.next_uid = u32::try_from(next).map_err(|_| "bad next uid")?.max(1);
    list.highest_modseq = modseq.max(1);
    let records: Vec<&str> = lines.collect();
    // The last element is "" after a final newline, or a torn line.
    let complete = &records[..records.len().saturating_sub(1)];
    for (i, line) in complete.iter().enumerate() {
        if line.is_empty() {
            continue;
        }
        if let Some(u) = line.strip_prefix('-') {
            let uid: u32 = u
                .parse()
                .map_err(|_| format!("line {}: bad expunge", i + 2))?;
            list.uids.remove(&uid);
            list.dead_records += 2;
            list.next_uid = list.next_uid.max(uid.saturating_add(1));
            continue;
        }
        let (u, base) = line
            .split_once(' ')
            .ok_or_else(|| format!("line {}: bad record", i + 2))?;
        let uid: u32 = u.parse().map_err(|_| format!("line {}: bad uid", i + 2))?;
        if uid == 0 || base.is_empty() || base.contains(['/', ':']) {
            return Err(format!("line {}: bad record", i + 2));
        }
        if let Some(old) = list.uids.insert(uid, base.to_owned())
            && old != base
        {
            return Err(format!("line {}: uid {uid} given twice", i + 2));
        }
        list.next_uid = list.next_uid.max(uid.saturating_add(1));
    }
    Ok((list, torn))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize, tag: &str) -> Vec<String> {
        (0..n)
            .map(|i| format!("17000{i}.M1P1Q{i}.{tag},S=1,W=1"))
            .collect()
    }

    #[test]
    fn assign_expunge_reload() {
        let t = tempfile::tempdir().unwrap();
        let (mut l, how) = UidList::open(t.path()).unwrap();
        assert_eq!(how, Opened::Created);
        assert_eq!(l.assign(t.path(), &names(3, "a")).unwrap(), vec![1, 2, 3]);
        l.expunge(t.path(), &[2, 3]).unwrap();
        let (l2, how) = UidList::open(t.path()).unwrap();
        assert_eq!(how, Opened::Existing);
        assert_eq!(l2.uids.keys().copied().collect::<Vec<_>>(), vec![1]);
        assert_eq!(l2.next_uid, 4, "expunged UIDs are not reused");
        assert_eq!(l2.uid_validity, l.uid_validity);
        let mut l2 = l2.compacted(t.path()).unwrap();
        assert_eq!(l2.assign(t.path(), &names(1, "b")).unwrap(), vec![4]);
        let (l3, _) = UidList::open(t.path()).unwrap();
        assert_eq!(l3.next_uid, 5);
        assert_eq!(l3.uids.len(), 2);
    }

    #[test]
    fn torn_tail_is_cut_and_uids_stay_unique() {
        let t = tempfile::tempdir().unwrap();
        let (mut l, _) = UidList::open(t.path()).unwrap();
        l.assign(t.path(), &names(2, "a")).unwrap();
        let p = t.path().join(FILE_NAME);
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"3 1700.M1P1Q9.torn,S=").unwrap();
        drop(f);
        let (mut l2, _) = UidList::open(t.path()).unwrap();
        assert_eq!(l2.uids.len(), 2);
        assert_eq!(l2.assign(t.path(), &names(1, "c")).unwrap(), vec![3]);
        let (l3, _) = UidList::open(t.path()).unwrap();
        assert_eq!(
            l3.uids.get(&3).map(String::as_str),
            Some("170000.M1P1Q0.c,S=1,W=1")
        );
    }

    #[test]
    fn two_sessions_agree_on_uids() {
        let t = tempfile::tempdir().unwrap();
        let (mut a, _) = UidList::open(t.path()).unwrap();
        let (mut b, _) = UidList::open(t.path()).unwrap();
        let n = names(3, "x");
        assert_eq!(a.assign(t.path(), &n[..2]).unwrap(), vec![1, 2]);
        // b has a stale view; it sees a's numbers instead of reusing them.
        assert_eq!(
            b.assign(t.path(), &[n[2].clone(), n[1].clone()]).unwrap(),
            vec![3, 2]
        );
        assert_eq!(b.next_uid, 4);
        assert_eq!(a.assign(t.path(), &names(1, "y")).unwrap(), vec![4]);
        let (c, _) = UidList::open(t.path()).unwrap();
        assert_eq!(c.uids.len(), 4);
        assert_eq!(c.next_uid, 5);
    }

    #[test]
    fn broken_file_gets_new_validity() {
        let t = tempfile::tempdir().unwrap();
        fs::write(t.path().join(FILE_NAME), "garbage\n1 x\n").unwrap();
        let (l, how) = UidList::open(t.path()).unwrap();
        assert_eq!(how, Opened::Recreated);
        assert!(l.uids.is_empty());
        assert!(
            fs::read_dir(t.path()).unwrap().any(|e| e
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains("broken"))
        );
    }

    #[test]
    fn parse_rejects_nonsense() {
        for bad in [
            "",
            "T1 1 1\n",
            "T2 1 1 1\n",
            "T1 1 1 1\n0 x\n",
            "T1 1 1 1\n1 a/b\n",
            "T1 1 1 1\nx y\n",
            "T1 1 1 1\n1 a\n1 b\n",
        ] {
            assert!(parse(bad.as_bytes()).is_err(), "{bad:?}");
        }
        let (l, torn) = parse(b"T1 7 1 1\n5 a\n-9\n").unwrap();
        assert!(!torn);
        assert_eq!(
            (l.uid_validity, l.next_uid),
            (7, 10),
            "an expunge record raises next uid"
        );
    }
}
