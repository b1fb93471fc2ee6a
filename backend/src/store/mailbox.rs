//! One mailbox: a Maildir and its UID list, kept in step.
//!
//! [`Mailbox::sync`] reconciles the two. Files nobody has seen (deliveries,
//! other software) get the next UIDs in delivery order; UIDs whose file is
//! gone (expunged elsewhere) are dropped; flag changes are read from the
//! names. UIDs are made durable before `sync` returns, so no client is ever
//! shown a UID that a crash could give to another message. A sync is skipped
//! when neither `new/` nor `cur/` changed since the last one.
//!
//! Flag changes get a new modification sequence (RFC 7162) in the UID
//! list: [`Mailbox::set_info`] records it durably before returning (the
//! renamed file's directory is fsync'd first, so a modseq never survives a
//! crash that the flags it stands for did not); batches stage their
//! renames with [`Mailbox::stage_info`] and record them all under one
//! modseq with [`Mailbox::commit_modseqs`]. A sync finds changes made by
//! other software (letters differing from what the list recorded, also
//! across restarts) and gives them a modseq too.
//!
//! IMAP's additions: [`Mailbox::append`] and [`Mailbox::copy_to`] number
//! what they add at once (RFC 4315 APPENDUID/COPYUID); INTERNALDATE is the
//! file's mtime, as in Dovecot; \Recent is "still in `new/`" and ends with
//! the first session's [`Mailbox::mark_old`].
//!
//! All methods do blocking file I/O; async callers run them on the blocking
//! pool (`shared::blocking`).

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

mod imap;

use super::guard::WriteGuard;
pub use super::index::Vanished;
use super::index::{Opened, UidList};
use super::keywords::Info;
use super::maildir::{self, FileName, Flags};

/// A file found by a sync: in `new/`, info letters, size and vsize from its name.
type OnDisk = (bool, String, Option<u64>, Option<u64>);

/// One message as the mailbox knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub uid: u32,
    /// Name without the info suffix; stable for the message's lifetime.
    pub base: String,
    /// Letters after `:2,`.
    pub info: String,
    /// Still in `new/` (never seen by a client).
    pub in_new: bool,
    /// Bytes on disk (LF line ends).
    pub size: u64,
    /// Bytes with CRLF line ends, if known without reading the file.
    pub vsize: Option<u64>,
    /// The file's mtime in seconds since the epoch (INTERNALDATE), when this
    /// session already knows it (it appended or copied the message).
    pub mtime: Option<i64>,
    /// Modification sequence (RFC 7162): raised by every flag change.
    pub modseq: u64,
}

impl Message {
    pub fn flags(&self) -> Flags {
        Flags::parse(&self.info)
    }

    /// System flags and keyword letters (see [`super::keywords`]).
    pub fn parsed_info(&self) -> Info {
        Info::parse(&self.info)
    }

    /// Name of the file in its directory.
    pub fn file_name(&self) -> String {
        if self.in_new && self.info.is_empty() {
            self.base.clone()
        } else {
            format!("{}:2,{}", self.base, self.info)
        }
    }
}

/// What a sync found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changes {
    pub added: Vec<u32>,
    pub expunged: Vec<u32>,
    pub flags: Vec<u32>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.expunged.is_empty() && self.flags.is_empty()
    }
}

pub struct Mailbox {
    dir: PathBuf,
    list: UidList,
    /// Sorted by UID.
    messages: Vec<Message>,
    seen_mtimes: Option<(SystemTime, SystemTime)>,
    /// Messages renamed by `stage_info` whose modseq is not recorded yet.
    pending: Vec<u32>,
}

/// How old a directory's mtime must be to vouch for its listing.
const MTIME_SETTLED: std::time::Duration = std::time::Duration::from_secs(2);

impl Mailbox {
    /// Opens (creating if needed) the Maildir at `dir` and syncs it.
    pub fn open(dir: &Path) -> io::Result<Mailbox> {
        Mailbox::open_guarded(dir, WriteGuard::default())
    }

    /// [`Mailbox::open`] for an owner whose every write must pass `guard`
    /// (see [`super::guard`]).
    pub fn open_guarded(dir: &Path, guard: WriteGuard) -> io::Result<Mailbox> {
        maildir::create(dir)?;
        let (list, how) = UidList::open_guarded(dir, guard)?;
        if how == Opened::Recreated {
            tracing::warn!(dir = %dir.display(), "mailbox index rebuilt from the Maildir");
        }
        let mut mb = Mailbox {
            dir: dir.to_owned(),
            list,
            messages: Vec::new(),
            seen_mtimes: None,
            pending: Vec::new(),
        };
        mb.sync()?;
        Ok(mb)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn uid_validity(&self) -> u32 {
        self.list.uid_validity
    }

    pub fn next_uid(&self) -> u32 {
        self.list.next_uid
    }

    pub fn messages(&self) -> &[Message] {
        &self.messages
    }

    pub fn get(&self, uid: u32) -> Option<&Message> {
        self.messages
            .binary_search_by_key(&uid, |m| m.uid)
            .ok()
            .map(|i| &self.messages[i])
    }

    /// Bytes used by all messages, for quota.
    pub fn total_size(&self) -> u64 {
        self.messages.iter().map(|m| m.size).sum()
    }

    fn mtimes(&self) -> io::Result<(SystemTime, SystemTime)> {
        Ok((
            fs::metadata(self.dir.join("new"))?.modified()?,
            fs::metadata(self.dir.join("cur"))?.modified()?,
        ))
    }

    /// Reconciles the UID list with the files; see the module docs.
    pub fn sync(&mut self) -> io::Result<Changes> {
        self.commit_modseqs()?;
        let before = self.mtimes()?;
        if self.seen_mtimes == Some(before) {
            return Ok(Changes::default());
        }
        let mut on_disk: HashMap<String, (bool, String, Option<u64>, Option<u64>)> = HashMap::new();
        for (sub, in_new) in [("new", true), ("cur", false)] {
            for entry in fs::read_dir(self.dir.join(sub))? {
                let entry = entry?;
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                let Some(parsed) = FileName::parse(name) else {
                    continue;
                };
                // A file seen in both (mid-rename by another process) counts once, in cur/.
                on_disk
                    .entry(parsed.base.to_owned())
                    .and_modify(|e| {
                        if !in_new {
                            *e = (false, parsed.info.to_owned(), parsed.size, parsed.vsize);
                        }
                    })
                    .or_insert((in_new, parsed.info.to_owned(), parsed.size, parsed.vsize));
            }
        }

        let mut changes = Changes::default();
        let mut kept = Vec::with_capacity(self.list.uids.len());
        // Letters that differ from the list's record: changed by other
        // software (or by a process that did not record it yet).
        let mut touched: Vec<(u32, String)> = Vec::new();
        let mut unrecorded: Vec<(u32, String)> = Vec::new();
        for (uid, base) in &self.list.uids {
            match on_disk.remove(base) {
                None => changes.expunged.push(*uid),
                Some((in_new, info, size, vsize)) => {
                    let old = self.get(*uid);
                    match old {
                        Some(m) if m.info != info => changes.flags.push(*uid),
                        Some(_) => {}
                        // Numbered by another session: new to this one.
                        None => changes.added.push(*uid),
                    }
                    match self.list.recorded_info(*uid) {
                        Some(r) if r != info => touched.push((*uid, info.clone())),
                        Some(_) => {}
                        None if old.is_some_and(|m| m.info != info) => {
                            touched.push((*uid, info.clone()));
                        }
                        None => unrecorded.push((*uid, info.clone())),
                    }
                    let size = match (size, old) {
                        (Some(s), _) => s,
                        (None, Some(m)) => m.size,
                        (None, None) => self.stat_size(in_new, base, &info),
                    };
                    kept.push(Message {
                        uid: *uid,
                        base: base.clone(),
                        info,
                        in_new,
                        size,
                        vsize: vsize.or(old.and_then(|m| m.vsize)),
                        mtime: old.and_then(|m| m.mtime),
                        modseq: 0,
                    });
                }
            }
        }
        if !changes.expunged.is_empty() {
            self.list.expunge(&self.dir, &changes.expunged)?;
        }
        self.list.touch(&self.dir, &touched, false)?;
        self.list.note(&self.dir, &unrecorded)?;

        // Unknown files get UIDs in delivery order: by the time in their name.
        let mut fresh: Vec<(String, OnDisk)> = on_disk.into_iter().collect();
        // The key parses the name: once per file, not once per comparison.
        fresh.sort_by_cached_key(|(base, _)| {
            let (s, u, _) = delivery_key(base);
            (s, u, base.clone())
        });
        let named: Vec<(String, String)> = fresh
            .iter()
            .map(|(b, (_, info, ..))| (b.clone(), info.clone()))
            .collect();
        let uids = self.list.assign(&self.dir, &named)?;
        for (uid, (base, (in_new, info, size, vsize))) in uids.into_iter().zip(fresh) {
            let size = size.unwrap_or_else(|| self.stat_size(in_new, &base, &info));
            kept.push(Message {
                uid,
                base,
                info,
                in_new,
                size,
                vsize,
                mtime: None,
                modseq: 0,
            });
            changes.added.push(uid);
        }
        // Assigning re-reads the UID list: another session may have numbered
        // some of these files (so UIDs can come out of order) or expunged
        // messages we still showed.
        kept.sort_by_key(|m| m.uid);
        kept.dedup_by_key(|m| m.uid);
        for m in &mut kept {
            m.modseq = self.list.modseq(m.uid);
        }
        for m in &self.messages {
            if kept.binary_search_by_key(&m.uid, |k| k.uid).is_err()
                && !changes.expunged.contains(&m.uid)
            {
                changes.expunged.push(m.uid);
            }
        }
        changes.expunged.sort_unstable();
        changes.added.sort_unstable();
        self.messages = kept;
        // A directory timestamp is coarse (a clock tick locally, a second
        // on some NFS servers): a file added right after the listing above
        // can leave it unchanged. Only timestamps older than any tick are
        // trusted to mean "nothing new"; a fresher one is listed again next
        // time (a delivery by another process or node was missed before).
        let now = SystemTime::now();
        let settled = |t: SystemTime| now.duration_since(t).is_ok_and(|d| d >= MTIME_SETTLED);
        self.seen_mtimes = (settled(before.0) && settled(before.1)).then_some(before);
        Ok(changes)
    }

    fn stat_size(&self, in_new: bool, base: &str, info: &str) -> u64 {
        let m = Message {
            uid: 0,
            base: base.to_owned(),
            info: info.to_owned(),
            in_new,
            size: 0,
            vsize: None,
            mtime: None,
            modseq: 0,
        };
        fs::metadata(self.path(&m)).map_or(0, |md| md.len())
    }

    /// The file of a message as last synced.
    pub fn path(&self, m: &Message) -> PathBuf {
        self.dir
            .join(if m.in_new { "new" } else { "cur" })
            .join(m.file_name())
    }

    /// Reads a message; if it was renamed under us (a flag change by another
    /// program), syncs once and retries.
    pub fn read(&mut self, uid: u32) -> io::Result<Vec<u8>> {
        for attempt in 0..2 {
            let Some(m) = self.get(uid) else {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("no message with UID {uid}"),
                ));
            };
            match fs::read(self.path(m)) {
                Err(e) if e.kind() == io::ErrorKind::NotFound && attempt == 0 => {
                    self.seen_mtimes = None;
                    self.sync()?;
                }
                other => return other,
            }
        }
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("message {uid} vanished"),
        ))
    }

    /// The CRLF size of a message, reading it if the name does not say.
    pub fn vsize(&mut self, uid: u32) -> io::Result<u64> {
        if let Some(v) = self.get(uid).and_then(|m| m.vsize) {
            return Ok(v);
        }
        let body = self.read(uid)?;
        let v = maildir::sizes(&body).1;
        if let Ok(i) = self.messages.binary_search_by_key(&uid, |m| m.uid) {
            self.messages[i].vsize = Some(v);
        }
        Ok(v)
    }

    /// Moves messages from `new/` to `cur/`: they have now been seen by a
    /// client (IMAP's \Recent ends here; POP3 does it too, as Dovecot does).
    /// Returns the UIDs this call moved: the messages that are \Recent for
    /// this session (another session that got there first gets the others).
    pub fn mark_old(&mut self) -> io::Result<Vec<u32>> {
        let mut moved = Vec::new();
        for i in 0..self.messages.len() {
            if !self.messages[i].in_new {
                continue;
            }
            let from = self.path(&self.messages[i]);
            let mut m = self.messages[i].clone();
            m.in_new = false;
            let to = self.path(&m);
            self.list.guard().check()?;
            match fs::rename(&from, &to) {
                Ok(()) => {
                    moved.push(m.uid);
                    self.messages[i] = m;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        if !moved.is_empty() {
            maildir::sync_dir(&self.dir.join("cur"))?;
            maildir::sync_dir(&self.dir.join("new"))?;
            self.seen_mtimes = self.mtimes().ok();
        }
        Ok(moved)
    }

    /// Sets the info letters of a message (renaming its file in `cur/`)
    /// and records its new modseq durably. Returns whether the file moved.
    pub fn set_info(&mut self, uid: u32, info: &str) -> io::Result<bool> {
        let moved = self.stage_info(uid, info)?;
        self.commit_modseqs()?;
        Ok(moved)
    }

    /// Like [`Mailbox::set_info`], but the modseq waits for
    /// [`Mailbox::commit_modseqs`] (or the next sync), so a batch costs
    /// one log write.
    pub fn stage_info(&mut self, uid: u32, info: &str) -> io::Result<bool> {
        let Ok(i) = self.messages.binary_search_by_key(&uid, |m| m.uid) else {
            return Ok(false);
        };
        if self.messages[i].info == info && !self.messages[i].in_new {
            return Ok(false);
        }
        let from = self.path(&self.messages[i]);
        let mut m = self.messages[i].clone();
        let changed = m.info != info;
        m.info = info.to_owned();
        m.in_new = false;
        let to = self.path(&m);
        self.list.guard().check()?;
        fs::rename(&from, &to)?;
        self.messages[i] = m;
        if changed {
            self.pending.push(uid);
        }
        Ok(true)
    }

    /// Gives the staged flag changes one new modseq, durably: the renames
    /// are fsync'd first, then the log record.
    pub fn commit_modseqs(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.pending.sort_unstable();
        self.pending.dedup();
        let changed: Vec<(u32, String)> = self
            .pending
            .iter()
            .filter_map(|u| self.get(*u).map(|m| (m.uid, m.info.clone())))
            .collect();
        maildir::sync_dir(&self.dir.join("cur"))?;
        self.list.touch(&self.dir, &changed, true)?;
        self.pending.clear();
        for (uid, _) in changed {
            if let Ok(i) = self.messages.binary_search_by_key(&uid, |m| m.uid) {
                self.messages[i].modseq = self.list.modseq(uid);
            }
        }
        Ok(())
    }

    /// The mailbox's highest modification sequence (RFC 7162): every value
    /// it returns is on disk and never goes backwards.
    pub fn highest_modseq(&self) -> u64 {
        self.list.highest_modseq
    }

    /// The UIDs expunged after `modseq` (QRESYNC's VANISHED), ascending;
    /// `None` if the list forgot expunges that old.
    pub fn vanished_since(&self, modseq: u64) -> Option<Vec<u32>> {
        match self.list.vanished_since(modseq) {
            Vanished::Since(v) => Some(v),
            Vanished::TooOld => None,
        }
    }

    /// Deletes messages for good: unlink, fsync the directories, then record
    /// the expunge in the UID list.
    pub fn expunge(&mut self, uids: &[u32]) -> io::Result<Vec<u32>> {
        let mut gone = Vec::with_capacity(uids.len());
        for uid in uids {
            let Some(m) = self.get(*uid) else { continue };
            self.list.guard().check()?;
            match fs::remove_file(self.path(m)) {
                Ok(()) => gone.push(*uid),
                Err(e) if e.kind() == io::ErrorKind::NotFound => gone.push(*uid),
                Err(e) => return Err(e),
            }
        }
        if gone.is_empty() {
            return Ok(gone);
        }
        maildir::sync_dir(&self.dir.join("cur"))?;
        maildir::sync_dir(&self.dir.join("new"))?;
        self.list.expunge(&self.dir, &gone)?;
        self.messages.retain(|m| !gone.contains(&m.uid));
        self.seen_mtimes = self.mtimes().ok();
        Ok(gone)
    }
}

/// Orders base names by the delivery time they start with (`secs.Musecs...`
/// or the older `secs.pid.host`), then by the whole name.
fn delivery_key(base: &str) -> (u64, u64, &str) {
    let mut parts = base.splitn(3, '.');
    let secs = parts
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(u64::MAX);
    let usecs = parts
        .next()
        .and_then(|p| p.strip_prefix('M'))
        .and_then(|p| p.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|d| d.parse().ok())
        .unwrap_or(0);
    (secs, usecs, base)
}

#[cfg(test)]
mod tests;
