//! The persistent UID list of one mailbox: `tandem-uidlist` beside the
//! Maildir's `cur/ new/ tmp/`, with the modification sequences of CONDSTORE
//! and QRESYNC (RFC 7162).
//!
//! Text, one record a line, so an operator can read it:
//! ```text
//! T1 <uidvalidity> <next uid> <highest modseq> [<vanished floor>]
//! <uid> <base name>          a message got a UID
//! M<uid> <modseq> <info>     its flags (info letters, maybe empty) got a modseq
//! -<uid> <modseq>            the message was expunged (older files: `-<uid>`)
//! ```
//! New records are appended and fsync'd before any client sees them; the
//! file is rewritten (temp file, fsync, rename, fsync directory) only to drop
//! superseded records. A torn last line from a crash is ignored and cut off.
//! `next uid` only grows: it is the larger of the header's and one past every
//! UID the log ever mentions, so a UID is never given to a second message,
//! even after a crash between an append and a rewrite. Every write happens
//! under an OS lock on `tandem-uidlist.lock` and starts by reading what
//! other writers appended since (only the new bytes, unless the file was
//! replaced), so several sessions (on one node or several) with the same
//! mailbox open agree on every UID and never reuse a modseq.
//!
//! Modification sequences: a message gets one when it is numbered and a new
//! one at each flag change (`M` records, which also keep the flags they
//! were given, so a change made by other software while no Tandem process
//! watched is still noticed at the next open); an expunge gets one too.
//! The highest modseq is the maximum of the header and every record, so it
//! never goes backwards, across crashes included: a value is shown to a
//! client only after the record holding it was fsync'd. Expunge records are
//! kept by rewrites (the newest [`VANISHED_KEEP`]) for QRESYNC's VANISHED;
//! older ones are dropped and the header's floor says up to which modseq
//! the list may have forgotten expunges. A file without `M` records (an
//! older Tandem) opens with modseq 1 for every message; its `-<uid>`
//! records have no modseq and count as expunged "at any time".
//!
//! An unreadable file is moved aside and the mailbox gets a new
//! UIDVALIDITY, which tells IMAP clients to forget what they cached instead
//! of trusting reused UIDs.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::guard::WriteGuard;
use super::maildir::sync_dir;

pub const FILE_NAME: &str = "tandem-uidlist";
const LOCK_NAME: &str = "tandem-uidlist.lock";
const MAGIC: &str = "T1";
/// Expunge records a rewrite keeps for QRESYNC (the newest by modseq).
pub const VANISHED_KEEP: usize = 10_000;
/// Superseded records tolerated before a rewrite (and more than live ones).
const DEAD_LIMIT: usize = 1000;

/// The in-memory view of a UID list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UidList {
    pub uid_validity: u32,
    pub next_uid: u32,
    pub highest_modseq: u64,
    /// Live messages: UID -> base name.
    pub uids: BTreeMap<u32, String>,
    /// Live messages' modseq and the info letters it was given for
    /// (`None`: numbered by an older Tandem, never changed since). Absent: 1.
    meta: HashMap<u32, (u64, Option<String>)>,
    /// Expunged UIDs with the modseq of their expunge (0: unknown).
    vanished: BTreeMap<u32, u64>,
    /// Expunges up to this modseq may have been dropped from `vanished`.
    vanished_floor: u64,
    /// Records in the file that a rewrite would drop.
    dead_records: usize,
    /// How far the file was read: (device, inode, bytes).
    read_to: Option<(u64, u64, u64)>,
    /// Checked right before each change to the file.
    guard: WriteGuard,
}

/// A file's identity: device and inode.
type FileId = (u64, u64);

/// Where a UID list came from when it was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opened {
    Existing,
    Created,
    /// The old file could not be read and was moved aside.
    Recreated,
}

/// What the list knows of the expunges after some modseq.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Vanished {
    /// Exactly these UIDs (ascending) were expunged since.
    Since(Vec<u32>),
    /// The list forgot expunges that old; the caller falls back to "every
    /// UID the client may know that no longer exists" (RFC 7162 §3.2.5.1).
    TooOld,
}

impl UidList {
    fn new(uid_validity: u32) -> UidList {
        UidList {
            uid_validity,
            next_uid: 1,
            highest_modseq: 1,
            uids: BTreeMap::new(),
            meta: HashMap::new(),
            vanished: BTreeMap::new(),
            vanished_floor: 0,
            dead_records: 0,
            read_to: None,
            guard: WriteGuard::default(),
        }
    }

    /// Loads the list of the mailbox at `dir`, creating it if absent.
    pub fn open(dir: &Path) -> io::Result<(UidList, Opened)> {
        UidList::open_guarded(dir, WriteGuard::default())
    }

    /// [`UidList::open`], checking `guard` before each change to the file
    /// (this one and every later one).
    pub fn open_guarded(dir: &Path, guard: WriteGuard) -> io::Result<(UidList, Opened)> {
        let (mut list, how) = UidList::load_or_create(dir, &guard)?;
        list.guard = guard;
        Ok((list, how))
    }

    fn load_or_create(dir: &Path, guard: &WriteGuard) -> io::Result<(UidList, Opened)> {
        let path = dir.join(FILE_NAME);
        if let Some((bytes, (dev, ino))) = load(&path)?
            && let Ok((mut list, false)) = parse(&bytes)
        {
            list.read_to = Some((dev, ino, bytes.len() as u64));
            return Ok((list, Opened::Existing));
        }
        guard.check()?;
        // Missing, torn or broken: settle it under the lock, where no other
        // session is writing.
        let _lock = lock(dir)?;
        match load(&path)? {
            Some((bytes, (dev, ino))) => match parse(&bytes) {
                Ok((mut list, torn)) => {
                    let len = if torn {
                        cut_torn_tail(&path, &bytes)?
                    } else {
                        bytes.len() as u64
                    };
                    list.read_to = Some((dev, ino, len));
                    Ok((list, Opened::Existing))
                }
                Err(why) => {
                    let aside = dir.join(format!("{FILE_NAME}.broken.{}", shared::time::now()));
                    tracing::error!(path = %path.display(), %why, aside = %aside.display(), "UID list unreadable; new UIDVALIDITY");
                    fs::rename(&path, &aside)?;
                    let mut list = UidList::new(fresh_validity(None));
                    list.guard = guard.clone();
                    list.rewrite(dir)?;
                    Ok((list, Opened::Recreated))
                }
            },
            None => {
                let mut list = UidList::new(fresh_validity(None));
                list.guard = guard.clone();
                list.rewrite(dir)?;
                Ok((list, Opened::Created))
            }
        }
    }

    /// The guard checked before each change to the file.
    pub fn guard(&self) -> &WriteGuard {
        &self.guard
    }

    /// The modseq of a live message (1 if it never got one).
    pub fn modseq(&self, uid: u32) -> u64 {
        self.meta.get(&uid).map_or(1, |m| m.0)
    }

    /// The info letters the log last recorded for a live message.
    pub fn recorded_info(&self, uid: u32) -> Option<&str> {
        self.meta.get(&uid).and_then(|m| m.1.as_deref())
    }

    /// The UIDs expunged after `modseq`, if the list still knows them all.
    pub fn vanished_since(&self, modseq: u64) -> Vanished {
        if modseq < self.vanished_floor {
            return Vanished::TooOld;
        }
        Vanished::Since(
            self.vanished
                .iter()
                .filter(|(_, m)| **m > modseq)
                .map(|(u, _)| *u)
                .collect(),
        )
    }

    /// Reads, under the lock, what other sessions appended since the last
    /// read (or the whole file, if it was replaced). A torn tail is cut so
    /// appends start clean.
    fn refresh(&mut self, dir: &Path) -> io::Result<()> {
        let path = dir.join(FILE_NAME);
        let mut f = match File::open(&path) {
            Ok(f) => f,
            // Gone: our view is the best there is; the append or rewrite
            // that follows fails or recreates it.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let md = f.metadata()?;
        let (dev, ino) = (md.dev(), md.ino());
        let bad = |why: String| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {why}", path.display()),
            )
        };
        if let Some((d, i, at)) = self.read_to
            && (d, i) == (dev, ino)
            && md.len() >= at
        {
            if md.len() == at {
                return Ok(());
            }
            f.seek(SeekFrom::Start(at))?;
            let mut tail = Vec::new();
            f.read_to_end(&mut tail)?;
            let text = std::str::from_utf8(&tail).map_err(|_| bad("not UTF-8".into()))?;
            let complete = text.rfind('\n').map_or("", |i| &text[..=i]);
            if complete.len() < text.len() {
                self.guard.check()?;
                OpenOptions::new()
                    .write(true)
                    .open(&path)?
                    .set_len(at + complete.len() as u64)?;
            }
            self.apply(complete).map_err(bad)?;
            self.read_to = Some((dev, ino, at + complete.len() as u64));
            return Ok(());
        }
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes)?;
        let (mut list, torn) = parse(&bytes).map_err(bad)?;
        let len = if torn {
            self.guard.check()?;
            cut_torn_tail(&path, &bytes)?
        } else {
            bytes.len() as u64
        };
        list.read_to = Some((dev, ino, len));
        list.highest_modseq = list.highest_modseq.max(self.highest_modseq);
        list.guard = self.guard.clone();
        *self = list;
        Ok(())
    }

    /// Appends `text` (whole records), fsyncs, and applies it to the view;
    /// rewrites the file when it is mostly dead. Under the lock, after a refresh.
    fn write(&mut self, dir: &Path, text: &str) -> io::Result<()> {
        self.guard.check()?;
        append(dir, text)?;
        if let Some((_, _, len)) = &mut self.read_to {
            *len += text.len() as u64;
        }
        self.apply(text).map_err(io::Error::other)?;
        let live = self.uids.len() + self.vanished.len().min(VANISHED_KEEP);
        let dead = self.dead_records + self.vanished.len().saturating_sub(VANISHED_KEEP);
        if dead > DEAD_LIMIT && dead > live {
            self.rewrite(dir)?;
        }
        Ok(())
    }

    /// Gives UIDs to `messages` (base name, info letters), in order, and
    /// makes that durable; they share one new modseq. A base that another
    /// session numbered meanwhile keeps its UID; the rest get the next ones.
    /// The result is in the order of `messages`.
    pub fn assign(&mut self, dir: &Path, messages: &[(String, String)]) -> io::Result<Vec<u32>> {
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        let _lock = lock(dir)?;
        self.refresh(dir)?;
        let known: HashMap<&str, u32> = self.uids.iter().map(|(u, b)| (b.as_str(), *u)).collect();
        let modseq = self.highest_modseq + 1;
        let mut text = String::with_capacity(messages.len() * 80);
        let mut uids = Vec::with_capacity(messages.len());
        let mut next = self.next_uid;
        for (b, info) in messages {
            if let Some(u) = known.get(b.as_str()) {
                uids.push(*u);
                continue;
            }
            let uid = next;
            next = next
                .checked_add(1)
                .ok_or_else(|| io::Error::other("UID space exhausted"))?;
            text.push_str(&format!("{uid} {b}\nM{uid} {modseq} {info}\n"));
            uids.push(uid);
        }
        drop(known);
        if !text.is_empty() {
            self.write(dir, &text)?;
        }
        Ok(uids)
    }

    /// Gives the messages `changed` (UID, info letters now) one new modseq,
    /// durably, and returns it. With `force` false, a message whose log
    /// already records those letters is skipped: another process recorded
    /// the change. Expunged messages are skipped.
    pub fn touch(
        &mut self,
        dir: &Path,
        changed: &[(u32, String)],
        force: bool,
    ) -> io::Result<Option<u64>> {
        if changed.is_empty() {
            return Ok(None);
        }
        let _lock = lock(dir)?;
        self.refresh(dir)?;
        let modseq = self.highest_modseq + 1;
        let mut text = String::new();
        for (uid, info) in changed {
            if !self.uids.contains_key(uid)
                || (!force && self.recorded_info(*uid) == Some(info.as_str()))
            {
                continue;
            }
            text.push_str(&format!("M{uid} {modseq} {info}\n"));
        }
        if text.is_empty() {
            return Ok(None);
        }
        self.write(dir, &text)?;
        Ok(Some(modseq))
    }

    /// Records the info letters of messages whose log has none (numbered
    /// by an older Tandem) under their current modseq, so later changes by
    /// other software are noticed even across restarts. No new modseq.
    pub fn note(&mut self, dir: &Path, messages: &[(u32, String)]) -> io::Result<()> {
        if messages.is_empty() {
            return Ok(());
        }
        let _lock = lock(dir)?;
        self.refresh(dir)?;
        let mut text = String::new();
        for (uid, info) in messages {
            if self.uids.contains_key(uid) && self.recorded_info(*uid).is_none() {
                text.push_str(&format!("M{uid} {} {info}\n", self.modseq(*uid)));
            }
        }
        if text.is_empty() {
            return Ok(());
        }
        self.write(dir, &text)
    }

    /// Records that `uids` are gone, durably, under one new modseq.
    pub fn expunge(&mut self, dir: &Path, uids: &[u32]) -> io::Result<()> {
        if uids.is_empty() {
            return Ok(());
        }
        let _lock = lock(dir)?;
        self.refresh(dir)?;
        let modseq = self.highest_modseq + 1;
        let mut text = String::new();
        for u in uids {
            if self.uids.contains_key(u) {
                text.push_str(&format!("-{u} {modseq}\n"));
            }
        }
        if text.is_empty() {
            return Ok(());
        }
        self.write(dir, &text)
    }

    /// Applies whole records (each ending in a newline).
    fn apply(&mut self, text: &str) -> Result<(), String> {
        for line in text.split('\n').filter(|l| !l.is_empty()) {
            self.apply_line(line)
                .map_err(|why| format!("{why}: {line:?}"))?;
        }
        Ok(())
    }

    fn apply_line(&mut self, line: &str) -> Result<(), &'static str> {
        if let Some(rest) = line.strip_prefix('-') {
            let (u, m) = match rest.split_once(' ') {
                Some((u, m)) => (u, Some(m)),
                None => (rest, None),
            };
            let uid: u32 = u.parse().map_err(|_| "bad expunge")?;
            if self.uids.remove(&uid).is_some() {
                self.dead_records += 1;
            }
            if self.meta.remove(&uid).is_some() {
                self.dead_records += 1;
            }
            self.next_uid = self.next_uid.max(uid.saturating_add(1));
            match m {
                Some(m) => {
                    let modseq: u64 = m.parse().map_err(|_| "bad expunge modseq")?;
                    self.highest_modseq = self.highest_modseq.max(modseq);
                    if self.vanished.insert(uid, modseq).is_some() {
                        self.dead_records += 1;
                    }
                }
                // An older Tandem's record: no client can hold a modseq
                // from before, so QRESYNC never needs it.
                None => self.dead_records += 1,
            }
            return Ok(());
        }
        if let Some(rest) = line.strip_prefix('M') {
            let mut p = rest.splitn(3, ' ');
            let uid: u32 = p
                .next()
                .and_then(|v| v.parse().ok())
                .ok_or("bad modseq record")?;
            let modseq: u64 = p.next().and_then(|v| v.parse().ok()).ok_or("bad modseq")?;
            let info = p.next();
            if uid == 0
                || modseq == 0
                || info.is_some_and(|i| !i.bytes().all(|b| b.is_ascii_alphabetic()))
            {
                return Err("bad modseq record");
            }
            self.highest_modseq = self.highest_modseq.max(modseq);
            self.next_uid = self.next_uid.max(uid.saturating_add(1));
            if self.uids.contains_key(&uid) {
                if self
                    .meta
                    .insert(uid, (modseq, info.map(str::to_owned)))
                    .is_some()
                {
                    self.dead_records += 1;
                }
            } else {
                self.dead_records += 1;
            }
            return Ok(());
        }
        let (u, base) = line.split_once(' ').ok_or("bad record")?;
        let uid: u32 = u.parse().map_err(|_| "bad uid")?;
        if uid == 0 || base.is_empty() || base.contains(['/', ':']) {
            return Err("bad record");
        }
        if let Some(old) = self.uids.insert(uid, base.to_owned())
            && old != base
        {
            return Err("uid given twice");
        }
        self.next_uid = self.next_uid.max(uid.saturating_add(1));
        Ok(())
    }

    /// Writes the whole list atomically, keeping the newest
    /// [`VANISHED_KEEP`] expunges (the floor rises past the rest).
    pub fn rewrite(&mut self, dir: &Path) -> io::Result<()> {
        if self.vanished.len() > VANISHED_KEEP {
            let mut by_age: Vec<(u64, u32)> = self.vanished.iter().map(|(u, m)| (*m, *u)).collect();
            by_age.sort_unstable();
            for (m, u) in &by_age[..by_age.len() - VANISHED_KEEP] {
                self.vanished.remove(u);
                self.vanished_floor = self.vanished_floor.max(*m);
            }
        }
        let mut text = format!(
            "{MAGIC} {} {} {} {}\n",
            self.uid_validity, self.next_uid, self.highest_modseq, self.vanished_floor
        );
        for (u, b) in &self.uids {
            text.push_str(&format!("{u} {b}\n"));
            match self.meta.get(u) {
                Some((m, Some(info))) => text.push_str(&format!("M{u} {m} {info}\n")),
                Some((m, None)) => text.push_str(&format!("M{u} {m}\n")),
                None => {}
            }
        }
        for (u, m) in &self.vanished {
            text.push_str(&format!("-{u} {m}\n"));
        }
        let tmp: PathBuf = dir.join(format!("{FILE_NAME}.tmp.{}", std::process::id()));
        {
            let mut f = File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
        }
        let path = dir.join(FILE_NAME);
        if let Err(e) = self.guard.check() {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        fs::rename(&tmp, &path)?;
        sync_dir(dir)?;
        let md = fs::metadata(&path)?;
        self.read_to = Some((md.dev(), md.ino(), text.len() as u64));
        self.dead_records = 0;
        Ok(())
    }

    pub fn compacted(mut self, dir: &Path) -> io::Result<Self> {
        let _lock = lock(dir)?;
        self.refresh(dir)?;
        self.rewrite(dir)?;
        Ok(self)
    }
}

/// Reads the file and its identity (device, inode); `None` if missing.
fn load(path: &Path) -> io::Result<Option<(Vec<u8>, FileId)>> {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let md = f.metadata()?;
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes)?;
    Ok(Some((bytes, (md.dev(), md.ino()))))
}

/// Cuts a torn last line; returns the length kept.
fn cut_torn_tail(path: &Path, bytes: &[u8]) -> io::Result<u64> {
    let keep = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1) as u64;
    OpenOptions::new().write(true).open(path)?.set_len(keep)?;
    Ok(keep)
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
    let (header, rest) = text.split_once('\n').unwrap_or((text, ""));
    let mut h = header.split(' ');
    if h.next() != Some(MAGIC) {
        return Err(format!("bad header {header:?}"));
    }
    let num = |s: Option<&str>| s.and_then(|v| v.parse::<u64>().ok());
    let (Some(validity), Some(next), Some(modseq)) = (num(h.next()), num(h.next()), num(h.next()))
    else {
        return Err(format!("bad header {header:?}"));
    };
    let floor = num(h.next()).unwrap_or(0);
    let mut list = UidList::new(u32::try_from(validity).map_err(|_| "bad uidvalidity")?);
    list.next_uid = u32::try_from(next).map_err(|_| "bad next uid")?.max(1);
    list.highest_modseq = modseq.max(1).max(floor);
    list.vanished_floor = floor;
    // Only whole lines count; a torn last one is left for the caller to cut.
    let complete = rest.rfind('\n').map_or("", |i| &rest[..=i]);
    list.apply(complete)?;
    Ok((list, torn))
}

#[cfg(test)]
mod tests;
