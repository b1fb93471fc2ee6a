//! One Maildir directory (`cur/ new/ tmp/`): unique file names, flags in the
//! `:2,` info suffix, and durable delivery.
//!
//! File names follow the Maildir convention plus the Maildir++/Dovecot size
//! fields: `<secs>.M<usecs>P<pid>Q<n>.<host>,S=<size>,W=<crlf size>:2,<flags>`.
//! `S=` is the size on disk (LF line ends), `W=` the size with CRLF line ends
//! as POP3 and IMAP count it, so neither needs a `stat` or a read. A copy
//! delivered by LMTP with an envelope id also carries `,E=<tag>` after
//! `W=` ([`delivery_tag`]: a hash of the ENVID and the recipient), which
//! lets a retry whose earlier outcome is unknown find the copy it already
//! stored ([`find_tag`]). Dovecot and Courier ignore comma fields they do
//! not know, and the tag is part of the base name, which never changes, so
//! it survives the move to `cur/` and flag changes.
//!
//! Delivery is the classic lock-free protocol, with the fsyncs that make it
//! durable: write into `tmp/`, fsync the file, rename into `new/`, fsync
//! `new/`. Only then may a protocol acknowledge the message.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::ops::ControlFlow::{self, Break, Continue};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// Maildir flags, in the order they must appear in the info suffix.
pub const FLAG_ORDER: &[u8] = b"DFPRST";

/// Message flags as stored in a file name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Flags {
    pub draft: bool,
    pub flagged: bool,
    pub passed: bool,
    pub replied: bool,
    pub seen: bool,
    pub trashed: bool,
}

impl Flags {
    /// Parses the letters after `:2,`; unknown letters (keywords a-z) are kept
    /// aside by the caller, not here.
    pub fn parse(letters: &str) -> Flags {
        let mut f = Flags::default();
        for c in letters.bytes() {
            match c {
                b'D' => f.draft = true,
                b'F' => f.flagged = true,
                b'P' => f.passed = true,
                b'R' => f.replied = true,
                b'S' => f.seen = true,
                b'T' => f.trashed = true,
                _ => {}
            }
        }
        f
    }

    pub fn letters(&self) -> String {
        let mut s = String::with_capacity(6);
        for (on, c) in [
            (self.draft, 'D'),
            (self.flagged, 'F'),
            (self.passed, 'P'),
            (self.replied, 'R'),
            (self.seen, 'S'),
            (self.trashed, 'T'),
        ] {
            if on {
                s.push(c);
            }
        }
        s
    }
}

/// What a file name says about its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileName<'a> {
    /// The name without the info suffix: stable for the message's lifetime.
    pub base: &'a str,
    /// Letters after `:2,` (system flags and keyword letters).
    pub info: &'a str,
    pub size: Option<u64>,
    pub vsize: Option<u64>,
    /// The `E=` delivery tag, if any.
    pub tag: Option<&'a str>,
}

impl<'a> FileName<'a> {
    /// Parses a name from `cur/` or `new/`; `None` for names that are not
    /// messages (dot files, editor leftovers).
    pub fn parse(name: &'a str) -> Option<FileName<'a>> {
        if name.is_empty() || name.starts_with('.') {
            return None;
        }
        let (base, info) = match name.split_once(':') {
            Some((b, rest)) => (b, rest.strip_prefix("2,").unwrap_or("")),
            None => (name, ""),
        };
        if base.is_empty() {
            return None;
        }
        let mut size = None;
        let mut vsize = None;
        let mut tag = None;
        for field in base.split(',').skip(1) {
            if let Some(v) = field.strip_prefix("S=") {
                size = v.parse().ok();
            } else if let Some(v) = field.strip_prefix("W=") {
                vsize = v.parse().ok();
            } else if let Some(v) = field.strip_prefix("E=") {
                tag = Some(v);
            }
        }
        Some(FileName {
            base,
            info,
            size,
            vsize,
            tag,
        })
    }
}

/// The name a file with `base` and `flags` has in `cur/`.
pub fn cur_name(base: &str, flags: &Flags, keywords: &str) -> String {
    let mut letters: Vec<u8> = flags.letters().into_bytes();
    letters.extend(keywords.bytes().filter(u8::is_ascii_lowercase));
    letters.sort_unstable();
    letters.dedup();
    format!("{base}:2,{}", String::from_utf8_lossy(&letters))
}

/// The host part of unique names, with `/` and `:` escaped as the Maildir
/// specification asks.
fn host() -> &'static str {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| {
        let raw =
            fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_else(|_| "localhost".into());
        raw.trim()
            .replace('/', "\\057")
            .replace(':', "\\072")
            .replace(',', "\\054")
    })
}

/// The tag of the copy for `recipient` of the transaction with envelope id
/// `envid`: 64-bit FNV-1a in 16 hex digits, stable across processes,
/// versions and nodes (std's hasher promises none of that). Collisions
/// only matter within one mailbox and between retried transactions, where
/// 2^-64 is nothing. The ENVID is the sender's (a frontend's queue id), so
/// it is hashed, never put in a file name as sent.
pub fn delivery_tag(envid: &str, recipient: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in envid.bytes().chain([0]).chain(recipient.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Where the copy with a delivery tag stands in one Maildir.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tagged {
    /// In `new/` or `cur/`: delivered.
    Stored,
    /// Only a recent file in `tmp/`: a delivery of it is being written
    /// (say the transaction the retry repeats is still running).
    Storing,
    Absent,
}

/// A `tmp/` file older than this is a dead delivery's leftover, not one
/// in progress: a retry that meets it stores its own copy.
const STORING_FOR: std::time::Duration = std::time::Duration::from_secs(600);

/// Whether a message whose name carries `tag` is in `new/` or `cur/` of
/// the Maildir at `dir` (or being written in `tmp/`): one scan of the
/// directories, read from the shared store so that a copy stored by any
/// node counts.
pub fn find_tag(dir: &Path, tag: &str) -> io::Result<Tagged> {
    let mut found = false;
    each_message(dir, |_, name| {
        found = name.tag == Some(tag);
        Ok(if found { Break(()) } else { Continue(()) })
    })?;
    if found {
        return Ok(Tagged::Stored);
    }
    let rd = match fs::read_dir(dir.join("tmp")) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Tagged::Absent),
        Err(e) => return Err(e),
    };
    let since = std::time::SystemTime::now() - STORING_FOR;
    for entry in rd {
        let entry = entry?;
        let name = entry.file_name();
        let ours = name
            .to_str()
            .and_then(FileName::parse)
            .is_some_and(|n| n.tag == Some(tag));
        // A file gone since the listing was renamed into new/ meanwhile.
        let recent = || {
            entry
                .metadata()
                .and_then(|m| m.modified())
                .map_or(true, |t| t > since)
        };
        if ours && recent() {
            return Ok(Tagged::Storing);
        }
    }
    Ok(Tagged::Absent)
}

/// Calls `f` with every message file of `new/` and `cur/` (names that are
/// not messages skipped, a missing directory taken as empty) until it
/// breaks.
pub fn each_message(
    dir: &Path,
    mut f: impl FnMut(&fs::DirEntry, FileName<'_>) -> io::Result<ControlFlow<()>>,
) -> io::Result<()> {
    for sub in ["new", "cur"] {
        let rd = match fs::read_dir(dir.join(sub)) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in rd {
            let entry = entry?;
            let name = entry.file_name();
            let Some(parsed) = name.to_str().and_then(FileName::parse) else {
                continue;
            };
            if f(&entry, parsed)?.is_break() {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// A name no other delivery on any node can produce: time, pid, a process
/// counter and the host.
pub fn unique_base(size: u64, vsize: u64) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        "{}.M{}P{}Q{}.{},S={size},W={vsize}",
        now.as_secs(),
        now.subsec_micros(),
        std::process::id(),
        n,
        host()
    )
}

/// Creates `cur/ new/ tmp/` under `dir` if missing.
pub fn create(dir: &Path) -> io::Result<()> {
    for sub in ["cur", "new", "tmp"] {
        fs::create_dir_all(dir.join(sub))?;
    }
    Ok(())
}

/// Fsyncs a directory so that a rename or unlink in it is durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Counts what a message weighs: bytes on disk and bytes with CRLF line ends.
pub fn sizes(body: &[u8]) -> (u64, u64) {
    let lf = memchr_count(b'\n', body);
    let crlf = body.windows(2).filter(|w| w == b"\r\n").count() as u64;
    (body.len() as u64, body.len() as u64 + (lf - crlf))
}

fn memchr_count(needle: u8, hay: &[u8]) -> u64 {
    hay.iter().filter(|b| **b == needle).count() as u64
}

/// Writes `body` (already in LF form) as a new message of the Maildir at
/// `dir`, durably, and returns its base name. `body` is written as one
/// buffer; callers stream large messages through [`deliver_from`].
pub fn deliver(dir: &Path, body: &[u8], flags: Option<&Flags>) -> io::Result<(String, PathBuf)> {
    deliver_from(dir, body.len() as u64, sizes(body).1, flags, None, |f| {
        f.write_all(body)
    })
}

/// Durable delivery with the content written by `write` into the temp file.
/// `size`/`vsize` go into the name and must match what `write` writes;
/// `tag` (a [`delivery_tag`]) too, when given.
pub fn deliver_from(
    dir: &Path,
    size: u64,
    vsize: u64,
    flags: Option<&Flags>,
    tag: Option<&str>,
    write: impl FnOnce(&mut File) -> io::Result<()>,
) -> io::Result<(String, PathBuf)> {
    let mut base = unique_base(size, vsize);
    if let Some(tag) = tag {
        base.push_str(",E=");
        base.push_str(tag);
    }
    let tmp = dir.join("tmp").join(&base);
    let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
    let written = write(&mut f).and_then(|()| f.sync_all());
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    drop(f);
    // A message with flags (IMAP APPEND) goes straight to cur/.
    let (sub, name) = match flags {
        Some(fl) => ("cur", cur_name(&base, fl, "")),
        None => ("new", base.clone()),
    };
    let target = dir.join(sub).join(&name);
    if let Err(e) = fs::rename(&tmp, &target) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(&dir.join(sub))?;
    Ok((base, target))
}

/// `body` with CRLF line ends turned into LF, as messages are stored (a
/// lone CR is kept); borrowed when there is nothing to change.
pub fn to_lf(body: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if !body.windows(2).any(|w| w == b"\r\n") {
        return std::borrow::Cow::Borrowed(body);
    }
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        if body[i] == b'\r' && body.get(i + 1) == Some(&b'\n') {
            i += 1;
            continue;
        }
        out.push(body[i]);
        i += 1;
    }
    std::borrow::Cow::Owned(out)
}

/// Durable delivery straight into `cur/` with `info` letters and the file's
/// mtime set to `mtime` (IMAP APPEND: the mtime is the INTERNALDATE, as in
/// Dovecot). `body` must be in LF form. Returns the base name and the path.
pub fn deliver_to_cur(
    dir: &Path,
    body: &[u8],
    info: &str,
    mtime: Option<std::time::SystemTime>,
    guard: &super::guard::WriteGuard,
) -> io::Result<(String, PathBuf)> {
    let (size, vsize) = sizes(body);
    let base = unique_base(size, vsize);
    let tmp = dir.join("tmp").join(&base);
    let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
    let written = f
        .write_all(body)
        .and_then(|()| match mtime {
            Some(t) => f.set_modified(t),
            None => Ok(()),
        })
        .and_then(|()| f.sync_all());
    drop(f);
    let target = dir.join("cur").join(format!("{base}:2,{info}"));
    // The message becomes visible with the rename: the last moment to ask.
    let placed = written
        .and_then(|()| guard.check())
        .and_then(|()| fs::rename(&tmp, &target));
    if let Err(e) = placed {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(&dir.join("cur"))?;
    Ok((base, target))
}

/// The delivery time a base name starts with (`<secs>.`), if it does.
pub fn time_in_name(base: &str) -> Option<std::time::SystemTime> {
    let secs: u64 = base.split('.').next()?.parse().ok()?;
    std::time::UNIX_EPOCH.checked_add(std::time::Duration::from_secs(secs))
}

/// Removes `tmp/` files older than a day and a half, as the Maildir
/// specification suggests: leftovers of deliveries that died mid-write.
pub fn clean_tmp(dir: &Path) -> io::Result<usize> {
    let cutoff = std::time::SystemTime::now() - std::time::Duration::from_secs(36 * 3600);
    let mut removed = 0;
    for entry in fs::read_dir(dir.join("tmp"))? {
        let entry = entry?;
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t < cutoff);
        if old && fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse() {
        let n = FileName::parse("1700000000.M1P2Q3.host,S=120,W=124:2,FS").unwrap();
        assert_eq!(n.base, "1700000000.M1P2Q3.host,S=120,W=124");
        assert_eq!((n.size, n.vsize, n.info), (Some(120), Some(124), "FS"));
        let n = FileName::parse("1700000000.12345.host").unwrap();
        assert_eq!((n.size, n.info), (None, ""));
        let n = FileName::parse("x:1,weird").unwrap();
        assert_eq!((n.base, n.info), ("x", ""));
        assert!(FileName::parse(".nfs0001").is_none());
        assert!(FileName::parse(":2,S").is_none());
        assert!(FileName::parse("").is_none());
        let n = FileName::parse("1.M1P2Q3.host,S=1,W=2,E=00ff:2,S").unwrap();
        assert_eq!((n.size, n.vsize, n.tag), (Some(1), Some(2), Some("00ff")));
        assert_eq!(n.base, "1.M1P2Q3.host,S=1,W=2,E=00ff");
    }

    #[test]
    fn tags_are_stable_and_found_in_new_and_cur() {
        let tag = delivery_tag("18F3A2B00000001", "bob@example.com");
        assert_eq!(tag.len(), 16);
        assert_eq!(tag, delivery_tag("18F3A2B00000001", "bob@example.com"));
        assert_ne!(tag, delivery_tag("18F3A2B00000001", "alice@example.com"));
        assert_ne!(tag, delivery_tag("18F3A2B00000002", "bob@example.com"));
        // The separator keeps (envid, recipient) pairs apart.
        assert_ne!(delivery_tag("ab", "c"), delivery_tag("a", "bc"));
        assert_eq!(delivery_tag("", ""), "af63bd4c8601b7df");

        let t = tempfile::tempdir().unwrap();
        create(t.path()).unwrap();
        assert_eq!(find_tag(t.path(), &tag).unwrap(), Tagged::Absent);
        let (base, p) =
            deliver_from(t.path(), 2, 3, None, Some(&tag), |f| f.write_all(b"x\n")).unwrap();
        assert!(base.ends_with(&format!(",W=3,E={tag}")), "{base}");
        assert_eq!(find_tag(t.path(), &tag).unwrap(), Tagged::Stored);
        let other = delivery_tag("other", "bob@example.com");
        assert_eq!(find_tag(t.path(), &other).unwrap(), Tagged::Absent);
        // Seen by a reader: moved to cur/ with flags, still found.
        let cur = t
            .path()
            .join("cur")
            .join(cur_name(&base, &Flags::parse("S"), ""));
        fs::rename(&p, &cur).unwrap();
        assert_eq!(find_tag(t.path(), &tag).unwrap(), Tagged::Stored);
        fs::remove_file(&cur).unwrap();
        assert_eq!(find_tag(t.path(), &tag).unwrap(), Tagged::Absent);
        // Being written by another transaction: neither stored nor absent;
        // a leftover of a delivery that died long ago is absent.
        let tmp = t.path().join("tmp").join(&base);
        fs::write(&tmp, b"x").unwrap();
        assert_eq!(find_tag(t.path(), &tag).unwrap(), Tagged::Storing);
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        File::options()
            .write(true)
            .open(&tmp)
            .unwrap()
            .set_modified(old)
            .unwrap();
        assert_eq!(find_tag(t.path(), &tag).unwrap(), Tagged::Absent);
    }

    #[test]
    fn flag_letters_sorted() {
        let f = Flags::parse("STRFa");
        assert!(f.seen && f.trashed && f.replied && f.flagged && !f.draft);
        assert_eq!(f.letters(), "FRST");
        assert_eq!(cur_name("b", &f, "ca"), "b:2,FRSTac");
        assert_eq!(cur_name("b", &Flags::default(), ""), "b:2,");
    }

    #[test]
    fn lf_form_and_cur_delivery() {
        assert_eq!(&*to_lf(b"a\r\nb\rc\n"), b"a\nb\rc\n");
        assert!(matches!(to_lf(b"a\nb"), std::borrow::Cow::Borrowed(_)));
        let t = tempfile::tempdir().unwrap();
        create(t.path()).unwrap();
        let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
        let (base, p) = deliver_to_cur(
            t.path(),
            b"x\n",
            "Sa",
            Some(when),
            &crate::store::guard::WriteGuard::default(),
        )
        .unwrap();
        assert!(p.starts_with(t.path().join("cur")) && p.to_string_lossy().ends_with(":2,Sa"));
        assert_eq!(fs::metadata(&p).unwrap().modified().unwrap(), when);
        assert!(time_in_name(&base).is_some());
        assert_eq!(time_in_name("junk"), None);
    }

    #[test]
    fn crlf_sizes() {
        assert_eq!(sizes(b"a\nb\n"), (4, 6));
        assert_eq!(sizes(b"a\r\nb\n"), (5, 6));
        assert_eq!(sizes(b""), (0, 0));
    }

    #[test]
    fn delivery_is_in_new_and_unique() {
        let t = tempfile::tempdir().unwrap();
        create(t.path()).unwrap();
        let (b1, p1) = deliver(t.path(), b"Subject: x\n\nhi\n", None).unwrap();
        let (b2, _) = deliver(t.path(), b"Subject: y\n\nho\n", None).unwrap();
        assert_ne!(b1, b2);
        assert!(p1.starts_with(t.path().join("new")));
        assert_eq!(fs::read(&p1).unwrap(), b"Subject: x\n\nhi\n");
        let n = FileName::parse(&b1).unwrap();
        assert_eq!((n.size, n.vsize), (Some(15), Some(18)));
        assert_eq!(fs::read_dir(t.path().join("tmp")).unwrap().count(), 0);
        let flagged = Flags {
            seen: true,
            ..Flags::default()
        };
        let (_, p3) = deliver(t.path(), b"x\n", Some(&flagged)).unwrap();
        assert!(p3.to_string_lossy().ends_with(":2,S") && p3.starts_with(t.path().join("cur")));
    }
}
