//! One mailbox: a Maildir and its UID list, kept in step.
//!
//! [`Mailbox::sync`] reconciles the two. Files nobody has seen (deliveries,
//! other software) get the next UIDs in delivery order; UIDs whose file is
//! gone (expunged elsewhere) are dropped; flag changes are read from the
//! names. UIDs are made durable before `sync` returns, so no client is ever
//! shown a UID that a crash could give to another message. A sync is skipped
//! when neither `new/` nor `cur/` changed since the last one.
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

use super::index::{Opened, UidList};
use super::keywords::Info;
use super::maildir::{self, FileName, Flags};
use super::quota;

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
}

impl Mailbox {
    /// Opens (creating if needed) the Maildir at `dir` and syncs it.
    pub fn open(dir: &Path) -> io::Result<Mailbox> {
        maildir::create(dir)?;
        let (list, how) = UidList::open(dir)?;
        if how == Opened::Recreated {
            tracing::warn!(dir = %dir.display(), "mailbox index rebuilt from the Maildir");
        }
        let mut mb = Mailbox {
            dir: dir.to_owned(),
            list,
            messages: Vec::new(),
            seen_mtimes: None,
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
                    });
                }
            }
        }
        if !changes.expunged.is_empty() {
            self.list.expunge(&self.dir, &changes.expunged)?;
        }

        // Unknown files get UIDs in delivery order: by the time in their name.
        let mut fresh: Vec<(String, OnDisk)> = on_disk.into_iter().collect();
        fresh.sort_by(|a, b| delivery_key(&a.0).cmp(&delivery_key(&b.0)));
        let bases: Vec<String> = fresh.iter().map(|(b, _)| b.clone()).collect();
        let uids = self.list.assign(&self.dir, &bases)?;
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
            });
            changes.added.push(uid);
        }
        // Assigning re-reads the UID list: another session may have numbered
        // some of these files (so UIDs can come out of order) or expunged
        // messages we still showed.
        kept.sort_by_key(|m| m.uid);
        kept.dedup_by_key(|m| m.uid);
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
        self.seen_mtimes = Some(before);
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

    /// Sets the info letters of a message (renaming its file in `cur/`).
    pub fn set_info(&mut self, uid: u32, info: &str) -> io::Result<bool> {
        let Ok(i) = self.messages.binary_search_by_key(&uid, |m| m.uid) else {
            return Ok(false);
        };
        if self.messages[i].info == info && !self.messages[i].in_new {
            return Ok(false);
        }
        let from = self.path(&self.messages[i]);
        let mut m = self.messages[i].clone();
        m.info = info.to_owned();
        m.in_new = false;
        let to = self.path(&m);
        fs::rename(&from, &to)?;
        self.messages[i] = m;
        self.list.bump_modseq();
        Ok(true)
    }

    /// Deletes messages for good: unlink, fsync the directories, then record
    /// the expunge in the UID list.
    pub fn expunge(&mut self, uids: &[u32]) -> io::Result<Vec<u32>> {
        let mut gone = Vec::with_capacity(uids.len());
        for uid in uids {
            let Some(m) = self.get(*uid) else { continue };
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

impl Mailbox {
    /// The mailbox's highest modification sequence (CONDSTORE). It grows
    /// with flag changes made through this `Mailbox`, but is only written
    /// to disk when the UID list is rewritten: not yet fit to advertise.
    pub fn highest_modseq(&self) -> u64 {
        self.list.highest_modseq
    }

    /// IMAP APPEND: stores `body` (CRLF or LF; kept in LF form) in `cur/`
    /// with `info` letters (sorted, see [`super::keywords::Info`]) and
    /// INTERNALDATE `internal_date` (now if `None`), numbers it, and returns
    /// its UID. Durable when it returns. Quota is counted, not enforced.
    pub fn append(
        &mut self,
        body: &[u8],
        info: &str,
        internal_date: Option<SystemTime>,
    ) -> io::Result<u32> {
        if info.contains(['/', ':', ',']) || info.chars().any(|c| !c.is_ascii_alphabetic()) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("bad info letters {info:?}"),
            ));
        }
        let body = maildir::to_lf(body);
        let when = internal_date.unwrap_or_else(SystemTime::now);
        let (base, _) = maildir::deliver_to_cur(&self.dir, &body, info, Some(when))?;
        let (size, vsize) = maildir::sizes(&body);
        let uid = self.add_numbered(base, info, size, vsize, when)?;
        let _ = quota::add(&self.quota_root(), size as i64, 1);
        Ok(uid)
    }

    /// INTERNALDATE of a message: the file's mtime; failing that (the file
    /// was renamed under us), the delivery time in its name; failing that,
    /// the epoch.
    pub fn internal_date(&self, m: &Message) -> SystemTime {
        if let Some(t) = m.mtime.and_then(from_secs) {
            return t;
        }
        fs::metadata(self.path(m))
            .and_then(|md| md.modified())
            .ok()
            .or_else(|| maildir::time_in_name(&m.base))
            .unwrap_or(SystemTime::UNIX_EPOCH)
    }

    /// IMAP COPY (and the first half of MOVE): puts the messages `uids` (in
    /// that order; missing ones skipped) into `dest` under new names with
    /// the same info letters and mtime, hard-linked where the filesystem
    /// allows and copied where not, and numbers them there. Returns (source
    /// UID, destination UID) pairs (RFC 4315 COPYUID). Durable when it
    /// returns. `dest` must be another mailbox than `self`.
    pub fn copy_to(&mut self, uids: &[u32], dest: &mut Mailbox) -> io::Result<Vec<(u32, u32)>> {
        let mut placed: Vec<(u32, String, String, u64, u64, SystemTime)> = Vec::new();
        let cleanup = |placed: &[(u32, String, String, u64, u64, SystemTime)]| {
            for (_, base, info, ..) in placed {
                let _ = fs::remove_file(dest_cur(&dest.dir, base, info));
            }
        };
        for &uid in uids {
            let Some(m) = self.get(uid).cloned() else {
                continue;
            };
            let vsize = match m.vsize.map_or_else(|| self.vsize(uid), Ok) {
                Ok(v) => v,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => {
                    cleanup(&placed);
                    return Err(e);
                }
            };
            let base = maildir::unique_base(m.size, vsize);
            match self.place_copy(uid, &dest.dir, &base) {
                Ok(Some((info, mtime))) => placed.push((uid, base, info, m.size, vsize, mtime)),
                Ok(None) => {}
                Err(e) => {
                    cleanup(&placed);
                    return Err(e);
                }
            }
        }
        if placed.is_empty() {
            return Ok(Vec::new());
        }
        if let Err(e) = maildir::sync_dir(&dest.dir.join("cur")) {
            cleanup(&placed);
            return Err(e);
        }
        let bases: Vec<String> = placed.iter().map(|p| p.1.clone()).collect();
        let dest_uids = dest.list.assign(&dest.dir, &bases)?;
        let mut pairs = Vec::with_capacity(placed.len());
        let mut bytes = 0;
        for ((src, base, info, size, vsize, mtime), duid) in placed.into_iter().zip(dest_uids) {
            bytes += size;
            dest.insert(Message {
                uid: duid,
                base,
                info,
                in_new: false,
                size,
                vsize: Some(vsize),
                mtime: to_secs(mtime),
            });
            pairs.push((src, duid));
        }
        let _ = quota::add(&dest.quota_root(), bytes as i64, pairs.len() as i64);
        Ok(pairs)
    }

    /// Links (or copies) message `uid` to `dest/cur/<base>:2,<info>`;
    /// returns its info and mtime, or `None` if the message is gone.
    fn place_copy(
        &mut self,
        uid: u32,
        dest: &Path,
        base: &str,
    ) -> io::Result<Option<(String, SystemTime)>> {
        for attempt in 0..2 {
            let Some(m) = self.get(uid).cloned() else {
                return Ok(None);
            };
            let from = self.path(&m);
            let to = dest_cur(dest, base, &m.info);
            let result = fs::hard_link(&from, &to).or_else(|e| {
                if e.kind() == io::ErrorKind::NotFound {
                    return Err(e);
                }
                // Another filesystem, or links not supported: copy durably.
                copy_file(&from, &dest.join("tmp").join(base), &to)
            });
            match result {
                Ok(()) => {
                    let mtime = fs::metadata(&to)
                        .and_then(|md| md.modified())
                        .unwrap_or_else(|_| self.internal_date(&m));
                    return Ok(Some((m.info, mtime)));
                }
                // Renamed (flags) or expunged by another session: look again once.
                Err(e) if e.kind() == io::ErrorKind::NotFound && attempt == 0 => {
                    self.seen_mtimes = None;
                    self.sync()?;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// Records a file this session put in `cur/` and numbers it.
    fn add_numbered(
        &mut self,
        base: String,
        info: &str,
        size: u64,
        vsize: u64,
        mtime: SystemTime,
    ) -> io::Result<u32> {
        let uid = self
            .list
            .assign(&self.dir, std::slice::from_ref(&base))?
            .first()
            .copied()
            .ok_or_else(|| io::Error::other("no UID assigned"))?;
        self.insert(Message {
            uid,
            base,
            info: info.to_owned(),
            in_new: false,
            size,
            vsize: Some(vsize),
            mtime: to_secs(mtime),
        });
        Ok(uid)
    }

    /// Adds a message this session numbered, keeping the UID order. The
    /// directory mtimes are left as they were, so the next sync still looks
    /// at what other sessions did meanwhile.
    fn insert(&mut self, m: Message) {
        match self.messages.binary_search_by_key(&m.uid, |x| x.uid) {
            Ok(i) => self.messages[i] = m,
            Err(i) => self.messages.insert(i, m),
        }
    }

    /// The account directory, where `maildirsize` lives: a folder's parent.
    fn quota_root(&self) -> PathBuf {
        if self.dir.join("maildirfolder").exists()
            && let Some(parent) = self.dir.parent()
        {
            return parent.to_owned();
        }
        self.dir.clone()
    }
}

fn dest_cur(dest: &Path, base: &str, info: &str) -> PathBuf {
    dest.join("cur").join(format!("{base}:2,{info}"))
}

/// Copies `from` to `tmp`, keeping its mtime, fsyncs it and renames it to `to`.
fn copy_file(from: &Path, tmp: &Path, to: &Path) -> io::Result<()> {
    let copy = || -> io::Result<()> {
        let mtime = fs::metadata(from)?.modified()?;
        fs::copy(from, tmp)?;
        let f = fs::OpenOptions::new().write(true).open(tmp)?;
        f.set_modified(mtime)?;
        f.sync_all()?;
        fs::rename(tmp, to)
    };
    copy().inspect_err(|_| {
        let _ = fs::remove_file(tmp);
    })
}

fn to_secs(t: SystemTime) -> Option<i64> {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).ok(),
        Err(e) => i64::try_from(e.duration().as_secs()).ok().map(|s| -s),
    }
}

fn from_secs(s: i64) -> Option<SystemTime> {
    let d = std::time::Duration::from_secs(s.unsigned_abs());
    if s >= 0 {
        SystemTime::UNIX_EPOCH.checked_add(d)
    } else {
        SystemTime::UNIX_EPOCH.checked_sub(d)
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
mod tests {
    use super::*;

    #[test]
    fn sync_assigns_in_delivery_order_and_sees_outside_changes() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path();
        maildir::create(dir).unwrap();
        // Written by other software, out of order, one already in cur/ with flags.
        fs::write(dir.join("new/1700000002.M5P1.other"), "b\n").unwrap();
        fs::write(dir.join("cur/1700000001.M999999P1.other:2,S"), "a\n").unwrap();
        fs::write(dir.join("new/1700000002.M10P1.other"), "c\n").unwrap();
        let mut mb = Mailbox::open(dir).unwrap();
        let order: Vec<(u32, &str)> = mb
            .messages()
            .iter()
            .map(|m| (m.uid, m.base.as_str()))
            .collect();
        assert_eq!(
            order,
            vec![
                (1, "1700000001.M999999P1.other"),
                (2, "1700000002.M5P1.other"),
                (3, "1700000002.M10P1.other")
            ]
        );
        assert!(mb.get(1).unwrap().flags().seen);
        assert_eq!(
            mb.get(2).unwrap().size,
            2,
            "size from stat when the name lacks S="
        );

        maildir::deliver(dir, b"d\n", None).unwrap();
        fs::rename(
            dir.join("new/1700000002.M5P1.other"),
            dir.join("cur/1700000002.M5P1.other:2,FS"),
        )
        .unwrap();
        fs::remove_file(dir.join("new/1700000002.M10P1.other")).unwrap();
        let c = mb.sync().unwrap();
        assert_eq!((c.added, c.expunged, c.flags), (vec![4], vec![3], vec![2]));
        assert!(
            mb.sync().unwrap().is_empty(),
            "nothing changed, nothing to do"
        );

        let validity = mb.uid_validity();
        drop(mb);
        let mb = Mailbox::open(dir).unwrap();
        assert_eq!(mb.uid_validity(), validity);
        assert_eq!(
            mb.messages().iter().map(|m| m.uid).collect::<Vec<_>>(),
            vec![1, 2, 4]
        );
        assert_eq!(mb.next_uid(), 5);
    }

    #[test]
    fn flags_mark_old_and_expunge() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path();
        maildir::create(dir).unwrap();
        for b in [b"one\n".as_slice(), b"two\n", b"three\n"] {
            maildir::deliver(dir, b, None).unwrap();
        }
        let mut mb = Mailbox::open(dir).unwrap();
        assert!(mb.messages().iter().all(|m| m.in_new));
        mb.mark_old().unwrap();
        assert!(mb.messages().iter().all(|m| !m.in_new));
        assert_eq!(fs::read_dir(dir.join("cur")).unwrap().count(), 3);
        assert!(mb.set_info(2, "RS").unwrap());
        assert_eq!(mb.read(2).unwrap(), b"two\n");
        assert_eq!(mb.vsize(3).unwrap(), 7);
        assert_eq!(mb.expunge(&[1, 3]).unwrap(), vec![1, 3]);
        assert_eq!(mb.total_size(), 4);
        let mut mb = Mailbox::open(dir).unwrap();
        assert_eq!(mb.messages().len(), 1);
        assert!(mb.get(2).unwrap().flags().replied);
        maildir::deliver(dir, b"four\n", None).unwrap();
        assert_eq!(
            mb.sync().unwrap().added,
            vec![4],
            "UIDs of expunged messages are never reused"
        );
    }

    #[test]
    fn append_numbers_at_once_and_keeps_internal_date() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path();
        let mut mb = Mailbox::open(dir).unwrap();
        let mut other = Mailbox::open(dir).unwrap();
        let when = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_234_567_890);
        let u1 = mb
            .append(b"Subject: a\r\n\r\nhi\r\n", "DSa", Some(when))
            .unwrap();
        let u2 = other.append(b"Subject: b\n\nho\n", "", None).unwrap();
        let u3 = mb.append(b"c\n", "S", None).unwrap();
        assert_eq!((u1, u2, u3), (1, 2, 3), "two sessions never share a UID");
        assert_eq!(
            mb.read(1).unwrap(),
            b"Subject: a\n\nhi\n",
            "stored in LF form"
        );
        let m = mb.get(1).unwrap().clone();
        assert_eq!((m.size, m.vsize, m.info.as_str()), (15, Some(18), "DSa"));
        assert_eq!(mb.internal_date(&m), when);
        assert_eq!(fs::metadata(mb.path(&m)).unwrap().modified().unwrap(), when);
        assert!(mb.append(b"x", "S/", None).is_err());
        let c = mb.sync().unwrap();
        assert_eq!(c.added, vec![2], "the other session's message shows up");
        let mut reopened = Mailbox::open(dir).unwrap();
        assert_eq!(
            reopened
                .messages()
                .iter()
                .map(|m| m.uid)
                .collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        let m = reopened.get(1).unwrap().clone();
        assert_eq!(
            reopened.internal_date(&m),
            when,
            "from the file, not the cache"
        );
        assert!(
            reopened.mark_old().unwrap().is_empty(),
            "appended into cur/"
        );
        maildir::deliver(dir, b"new\n", None).unwrap();
        reopened.sync().unwrap();
        assert_eq!(
            reopened.mark_old().unwrap(),
            vec![4],
            "recent for this session"
        );
        assert!(mb.sync().unwrap().flags.is_empty());
    }

    #[test]
    fn copy_keeps_flags_and_dates_and_gives_new_uids() {
        let t = tempfile::tempdir().unwrap();
        let (a, b) = (t.path().join("a"), t.path().join("b"));
        let mut src = Mailbox::open(&a).unwrap();
        let mut dst = Mailbox::open(&b).unwrap();
        dst.append(b"already\n", "", None).unwrap();
        let when = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
        src.append(b"one\n", "FS", Some(when)).unwrap();
        src.append(b"two\n", "", None).unwrap();
        // A message from other software without S=/W= in its name.
        fs::write(a.join("new/1700000000.M1P1.other"), "three\r\n").unwrap();
        src.sync().unwrap();
        let pairs = src.copy_to(&[3, 1, 99], &mut dst).unwrap();
        assert_eq!(pairs, vec![(3, 2), (1, 3)]);
        assert_eq!(dst.read(3).unwrap(), b"one\n");
        let m = dst.get(3).unwrap().clone();
        assert_eq!(m.info, "FS");
        assert_eq!(dst.internal_date(&m), when);
        assert_ne!(m.base, src.get(1).unwrap().base, "a new unique name");
        assert_eq!(dst.get(2).unwrap().vsize, Some(7));
        // The copies are independent: expunging the source keeps them.
        src.expunge(&[1, 3]).unwrap();
        let mut again = Mailbox::open(&b).unwrap();
        assert_eq!(again.messages().len(), 3);
        assert_eq!(again.read(2).unwrap(), b"three\r\n");
        assert!(again.get(3).unwrap().flags().flagged);
        assert_eq!(again.next_uid(), 4);
    }
}
