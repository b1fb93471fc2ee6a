//! The IMAP side of a mailbox: APPEND and COPY number what they add at
//! once, for RFC 4315's APPENDUID and COPYUID; INTERNALDATE is the file's
//! mtime, as in Dovecot.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::{Mailbox, Message};
use crate::store::guard::WriteGuard;
use crate::store::{maildir, quota};

impl Mailbox {
    /// IMAP APPEND: stores `body` (CRLF or LF; kept in LF form) in `cur/`
    /// with `info` letters (sorted, see [`crate::store::keywords::Info`]) and
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
        let (base, _) =
            maildir::deliver_to_cur(&self.dir, &body, info, Some(when), self.list.guard())?;
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

    /// INTERNALDATE of message `uid` as unix seconds, remembered in the
    /// index so the file is `stat`ed once, not at every FETCH or SEARCH.
    pub fn internal_date_of(&mut self, uid: u32) -> Option<i64> {
        let i = self.messages.binary_search_by_key(&uid, |m| m.uid).ok()?;
        if let Some(t) = self.messages[i].mtime {
            return Some(t);
        }
        let secs = self
            .internal_date(&self.messages[i])
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        self.messages[i].mtime = Some(secs);
        Some(secs)
    }

    /// IMAP COPY (and the first half of MOVE): puts the messages `uids` (in
    /// that order; missing ones skipped) into `dest` under new names with
    /// the same info letters and mtime, hard-linked where the filesystem
    /// allows and copied where not, and numbers them there. Returns (source
    /// UID, destination UID) pairs (RFC 4315 COPYUID). Durable when it
    /// returns. To copy within one mailbox, pass a second `Mailbox` of the
    /// same directory; `self` sees the copies, under the same UIDs, at its
    /// next sync.
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
            match self.place_copy(uid, &dest.dir, &base, dest.list.guard()) {
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
        let named: Vec<(String, String)> =
            placed.iter().map(|p| (p.1.clone(), p.2.clone())).collect();
        let dest_uids = dest.list.assign(&dest.dir, &named)?;
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
                modseq: dest.list.modseq(duid),
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
        guard: &WriteGuard,
    ) -> io::Result<Option<(String, SystemTime)>> {
        for attempt in 0..2 {
            let Some(m) = self.get(uid).cloned() else {
                return Ok(None);
            };
            let from = self.path(&m);
            let to = dest_cur(dest, base, &m.info);
            guard.check()?;
            let result = fs::hard_link(&from, &to).or_else(|e| {
                if e.kind() == io::ErrorKind::NotFound {
                    return Err(e);
                }
                // Another filesystem, or links not supported: copy durably.
                copy_file(&from, &dest.join("tmp").join(base), &to, guard)
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
            .assign(&self.dir, &[(base.clone(), info.to_owned())])?
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
            modseq: self.list.modseq(uid),
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
fn copy_file(from: &Path, tmp: &Path, to: &Path, guard: &WriteGuard) -> io::Result<()> {
    let copy = || -> io::Result<()> {
        let mtime = fs::metadata(from)?.modified()?;
        fs::copy(from, tmp)?;
        let f = fs::OpenOptions::new().write(true).open(tmp)?;
        f.set_modified(mtime)?;
        f.sync_all()?;
        guard.check()?;
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

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn copy_into_the_same_mailbox() {
        let t = tempfile::tempdir().unwrap();
        let mut a = Mailbox::open(t.path()).unwrap();
        a.append(b"x\n", "S", None).unwrap();
        let mut same = Mailbox::open(t.path()).unwrap();
        assert_eq!(a.copy_to(&[1], &mut same).unwrap(), vec![(1, 2)]);
        assert_eq!(a.sync().unwrap().added, vec![2]);
        assert_eq!(a.get(2).unwrap().info, "S");
        assert_eq!(Mailbox::open(t.path()).unwrap().next_uid(), 3);
    }
}
