//! The folders of an account as IMAP mailboxes: LIST, CREATE, DELETE and
//! RENAME (RFC 3501 §6.3.3-6.3.5 and §6.3.8).
//!
//! Names are Maildir++ folders: the IMAP hierarchy delimiter is `.`, as in
//! Dovecot's and Courier's default layout, and the folder `A.B` is the
//! directory `.A.B` beside INBOX's `cur/ new/ tmp/`. Names are stored as the
//! client sent them (modified UTF-7), except that INBOX is case-insensitive
//! (see [`path::canonical`]). Every level of the hierarchy is its own flat
//! directory, so renaming a folder renames its children one by one.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::maildir::{self, FileName};
use super::path::{self, DELIMITER};
use super::{AccountStore, SPECIAL_USE, StoreError, quota};

/// Prefix of folders being deleted: never a folder name (names have no
/// empty level), so they drop out of every listing the moment they are renamed.
const DELETING: &str = "..DELETED.";

/// One mailbox as LIST shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderInfo {
    /// The IMAP name, `.`-separated (`INBOX`, `Archive.2024`).
    pub name: String,
    /// Some folder lives below this one (`\HasChildren`, else `\HasNoChildren`).
    pub has_children: bool,
    /// No Maildir of its own: only a level of a child's name (`\Noselect`);
    /// made by other software or by a crash half-way through a rename.
    pub noselect: bool,
    /// RFC 6154 attribute, from [`SPECIAL_USE`].
    pub special_use: Option<&'static str>,
}

impl AccountStore {
    /// Every mailbox, INBOX first, then by name (bytewise); the parents of
    /// folders that have no directory of their own are listed `noselect`.
    pub fn list(&self) -> Result<Vec<FolderInfo>, StoreError> {
        let real = self.folder_names()?;
        let mut all: BTreeSet<String> = real.clone();
        for name in &real {
            let mut end = 0;
            while let Some(i) = name[end..].find(DELIMITER) {
                end += i;
                all.insert(name[..end].to_owned());
                end += 1;
            }
        }
        let inbox_children = all.iter().any(|n| n.starts_with("INBOX."));
        all.remove("INBOX");
        let mut out = vec![FolderInfo {
            name: "INBOX".to_owned(),
            has_children: inbox_children,
            noselect: false,
            special_use: None,
        }];
        for name in &all {
            let prefix = format!("{name}{DELIMITER}");
            let has_children = all
                .range(prefix.clone()..)
                .next()
                .is_some_and(|n| n.starts_with(&prefix));
            out.push(FolderInfo {
                name: name.clone(),
                has_children,
                noselect: !real.contains(name),
                special_use: special_use(name),
            });
        }
        Ok(out)
    }

    /// Whether `name` is a mailbox that can be selected.
    pub fn exists(&self, name: &str) -> Result<bool, StoreError> {
        Ok(path::is_inbox(name) || self.mailbox_dir(name)?.is_dir())
    }

    /// IMAP CREATE: makes the folder and any missing parents (RFC 3501
    /// §6.3.3). `AlreadyExists` if the folder is there; INBOX always is.
    pub fn create_folder(&self, name: &str) -> Result<PathBuf, StoreError> {
        if path::is_inbox(name) {
            return Err(StoreError::AlreadyExists("INBOX".to_owned()));
        }
        path::check_folder_name(name)?;
        if self.mailbox_dir(name)?.is_dir() {
            return Err(StoreError::AlreadyExists(name.to_owned()));
        }
        for parent in parents(name) {
            if parent != "INBOX" {
                self.make_folder(parent)?;
            }
        }
        let dir = self.make_folder(name)?;
        maildir::sync_dir(&self.dir).map_err(|e| StoreError::io(&self.dir, e))?;
        Ok(dir)
    }

    /// IMAP DELETE: removes a folder and every message in it. A folder with
    /// children is refused (`HasChildren`), as Dovecot does, rather than
    /// turned into a `\Noselect` level; INBOX cannot be deleted.
    ///
    /// The folder is first renamed out of sight (`..DELETED.<unique>`), so a
    /// crash leaves either the whole folder or nothing visible; leftovers of
    /// such crashes are removed by the next delete of the account.
    pub fn delete_folder(&self, name: &str) -> Result<(), StoreError> {
        if path::is_inbox(name) {
            return Err(StoreError::NotAllowed("INBOX cannot be deleted"));
        }
        let dir = self.mailbox_dir(name)?;
        if !dir.is_dir() {
            return Err(StoreError::NoSuchMailbox(name.to_owned()));
        }
        let canonical = path::canonical(name);
        if self.children(&canonical)?.next().is_some() {
            return Err(StoreError::HasChildren(name.to_owned()));
        }
        let (bytes, count) = weigh(&dir).map_err(|e| StoreError::io(&dir, e))?;
        let aside = self.dir.join(deleting_name());
        fs::rename(&dir, &aside).map_err(|e| StoreError::io(&dir, e))?;
        maildir::sync_dir(&self.dir).map_err(|e| StoreError::io(&self.dir, e))?;
        if count > 0 {
            let _ = quota::add(&self.dir, -(bytes as i64), -(count as i64));
        }
        // The folder is gone for everyone now; the rest is cleaning up.
        if let Err(e) = fs::remove_dir_all(&aside) {
            tracing::warn!(dir = %aside.display(), error = %e, "could not remove a deleted folder");
        }
        self.purge_deleted();
        Ok(())
    }

    /// IMAP RENAME (RFC 3501 §6.3.5): the folder and all its children move
    /// (`A` -> `X`, `A.B` -> `X.B`) with their UID lists, so UIDVALIDITY and
    /// UIDs stay. Missing parents of the new name are created. Renaming INBOX
    /// moves its messages into a new folder and leaves INBOX empty (its
    /// children stay); the moved messages get new UIDs there.
    pub fn rename_folder(&self, from: &str, to: &str) -> Result<(), StoreError> {
        if path::is_inbox(to) {
            return Err(StoreError::AlreadyExists("INBOX".to_owned()));
        }
        path::check_folder_name(to)?;
        let to = path::canonical(to);
        if path::is_inbox(from) {
            return self.rename_inbox(&to);
        }
        path::check_folder_name(from)?;
        let from = path::canonical(from);
        if to == from || to.starts_with(&format!("{from}{DELIMITER}")) {
            return Err(StoreError::NotAllowed(
                "a mailbox cannot be renamed into itself",
            ));
        }
        // (old name, new name) for the folder (if it has a Maildir) and every child.
        let mut moves: Vec<(String, String)> = Vec::new();
        if self.mailbox_dir(&from)?.is_dir() {
            moves.push((from.clone(), to.clone()));
        }
        for child in self.children(&from)? {
            let new = format!("{to}{}", &child[from.len()..]);
            moves.push((child, new));
        }
        if moves.is_empty() {
            return Err(StoreError::NoSuchMailbox(from));
        }
        for (_, new) in &moves {
            path::check_folder_name(new)?;
            if self.mailbox_dir(new)?.exists() {
                return Err(StoreError::AlreadyExists(new.clone()));
            }
        }
        for parent in parents(&to) {
            if parent != "INBOX" && !self.mailbox_dir(parent)?.is_dir() {
                self.make_folder(parent)?;
            }
        }
        for (old, new) in &moves {
            let (a, b) = (self.mailbox_dir(old)?, self.mailbox_dir(new)?);
            fs::rename(&a, &b).map_err(|e| StoreError::io(&a, e))?;
        }
        maildir::sync_dir(&self.dir).map_err(|e| StoreError::io(&self.dir, e))?;
        self.rename_subscriptions(&moves)?;
        Ok(())
    }

    fn rename_inbox(&self, to: &str) -> Result<(), StoreError> {
        let target = self.mailbox_dir(to)?;
        if target.exists() {
            return Err(StoreError::AlreadyExists(to.to_owned()));
        }
        let target = self.create_folder(to)?;
        let io_err = |p: &Path| {
            let p = p.to_owned();
            move |e| StoreError::io(&p, e)
        };
        for sub in ["new", "cur"] {
            let from_dir = self.dir.join(sub);
            let to_dir = target.join(sub);
            for entry in fs::read_dir(&from_dir).map_err(io_err(&from_dir))? {
                let entry = entry.map_err(io_err(&from_dir))?;
                let name = entry.file_name();
                if name.to_str().and_then(FileName::parse).is_none() {
                    continue;
                }
                match fs::rename(entry.path(), to_dir.join(&name)) {
                    Ok(()) => {}
                    // Expunged or renamed meanwhile by another session.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(StoreError::io(&entry.path(), e)),
                }
            }
            maildir::sync_dir(&to_dir).map_err(io_err(&to_dir))?;
            maildir::sync_dir(&from_dir).map_err(io_err(&from_dir))?;
        }
        Ok(())
    }

    /// Names of folders with a directory of their own, canonical, sorted.
    fn folder_names(&self) -> Result<BTreeSet<String>, StoreError> {
        let mut names = BTreeSet::new();
        let rd = match fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(names),
            Err(e) => return Err(StoreError::io(&self.dir, e)),
        };
        for entry in rd {
            let entry = entry.map_err(|e| StoreError::io(&self.dir, e))?;
            let file_name = entry.file_name();
            let Some(name) = file_name.to_str().and_then(path::folder_of_dir_name) else {
                continue;
            };
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                names.insert(path::canonical(name));
            }
        }
        Ok(names)
    }

    /// Folders below `name` (canonical), at any depth.
    fn children(&self, name: &str) -> Result<impl Iterator<Item = String>, StoreError> {
        let prefix = format!("{name}{DELIMITER}");
        Ok(self
            .folder_names()?
            .into_iter()
            .filter(move |n| n.starts_with(&prefix)))
    }

    /// Removes what crashed deletes left behind; best effort, as another
    /// node may be removing the same tree.
    fn purge_deleted(&self) {
        let Ok(rd) = fs::read_dir(&self.dir) else {
            return;
        };
        for entry in rd.flatten() {
            if entry.file_name().to_string_lossy().starts_with(DELETING) {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
    }
}

fn special_use(name: &str) -> Option<&'static str> {
    SPECIAL_USE
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, use_)| *use_)
}

/// `A`, `A.B` for `A.B.C`.
fn parents(name: &str) -> impl Iterator<Item = &str> {
    name.match_indices(DELIMITER).map(move |(i, _)| &name[..i])
}

fn deleting_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        "{DELETING}{}.{}.{}",
        now.as_nanos(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Bytes and messages of one Maildir, as quota counts them.
fn weigh(dir: &Path) -> io::Result<(u64, u64)> {
    let (mut bytes, mut count) = (0, 0);
    maildir::each_message(dir, |entry, parsed| {
        bytes += parsed
            .size
            .unwrap_or_else(|| entry.metadata().map_or(0, |m| m.len()));
        count += 1;
        Ok(std::ops::ControlFlow::Continue(()))
    })?;
    Ok((bytes, count))
}

/// IMAP LIST pattern matching (RFC 3501 §6.3.8): `*` matches anything, `%`
/// anything but `delim`. The INBOX part of a name (INBOX itself, or the
/// first level of `INBOX.x`) matches case-insensitively.
pub fn matches_pattern(pattern: &str, name: &str, delim: char) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let inbox_len = if path::canonical(name).starts_with("INBOX")
        && (n.len() == 5 || n.get(5) == Some(&delim))
    {
        5
    } else {
        0
    };
    let eq = |pc: char, j: usize| {
        let nc = n[j];
        if j < inbox_len {
            pc.eq_ignore_ascii_case(&nc)
        } else {
            pc == nc
        }
    };
    // prev[j]: the pattern so far matches n[..j]. O(|p|·|n|), no backtracking.
    let mut prev = vec![false; n.len() + 1];
    prev[0] = true;
    for &pc in &p {
        let mut cur = vec![false; n.len() + 1];
        for j in 0..=n.len() {
            cur[j] = match pc {
                '*' => prev[j] || (j > 0 && cur[j - 1]),
                '%' => prev[j] || (j > 0 && n[j - 1] != delim && cur[j - 1]),
                _ => j > 0 && prev[j - 1] && eq(pc, j - 1),
            };
        }
        prev = cur;
    }
    prev[n.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use shared::Address;

    fn account() -> (tempfile::TempDir, AccountStore) {
        let t = tempfile::tempdir().unwrap();
        let acc = Store::new(t.path())
            .account(&Address::parse("alice@example.com").unwrap())
            .unwrap();
        acc.ensure().unwrap();
        (t, acc)
    }

    fn names(acc: &AccountStore) -> Vec<String> {
        acc.list().unwrap().into_iter().map(|f| f.name).collect()
    }

    #[test]
    fn list_patterns() {
        let names = [
            "INBOX",
            "INBOX.x",
            "Sent",
            "Sent Items",
            "Sent.2024",
            "A",
            "A.B",
            "A.B.C",
            "Ab",
        ];
        let table: &[(&str, &[&str])] = &[
            ("*", &names),
            ("%", &["INBOX", "Sent", "Sent Items", "A", "Ab"]),
            ("INBOX", &["INBOX"]),
            ("inbox", &["INBOX"]),
            ("InBoX.%", &["INBOX.x"]),
            ("inb*", &["INBOX", "INBOX.x"]),
            ("Sent*", &["Sent", "Sent Items", "Sent.2024"]),
            ("Sent%", &["Sent", "Sent Items"]),
            ("%.%", &["INBOX.x", "Sent.2024", "A.B"]),
            ("A.%", &["A.B"]),
            ("A.*", &["A.B", "A.B.C"]),
            ("A*", &["A", "A.B", "A.B.C", "Ab"]),
            ("a", &[]),
            ("*C", &["A.B.C"]),
            ("%C", &[]),
            ("", &[]),
            ("**%%*", &names),
        ];
        for (pattern, want) in table {
            let got: Vec<&str> = names
                .iter()
                .copied()
                .filter(|n| matches_pattern(pattern, n, '.'))
                .collect();
            assert_eq!(&got, want, "pattern {pattern:?}");
        }
        assert!(matches_pattern("%/%", "a/b", '/'));
        assert!(!matches_pattern("%", "a/b", '/'));
        assert!(matches_pattern("Ent&AOk-*", "Ent&AOk-es", '.'));
    }

    #[test]
    fn create_list_and_special_use() {
        let (_t, acc) = account();
        assert_eq!(names(&acc), ["INBOX", "Drafts", "Junk", "Sent", "Trash"]);
        acc.create_folder("A.B.C").unwrap();
        assert!(acc.dir().join(".A/maildirfolder").is_file(), "parents made");
        assert!(acc.dir().join(".A.B/cur").is_dir());
        assert!(matches!(
            acc.create_folder("A.B"),
            Err(StoreError::AlreadyExists(_))
        ));
        assert!(matches!(
            acc.create_folder("inbox"),
            Err(StoreError::AlreadyExists(_))
        ));
        assert!(matches!(
            acc.create_folder("a..b"),
            Err(StoreError::Path(_))
        ));
        acc.create_folder("inbox.Child").unwrap();
        let list = acc.list().unwrap();
        let get = |n: &str| list.iter().find(|f| f.name == n).unwrap();
        assert!(get("INBOX").has_children);
        assert!(get("A").has_children && get("A.B").has_children);
        assert!(!get("A.B.C").has_children && !get("A.B.C").noselect);
        assert_eq!(get("Sent").special_use, Some("\\Sent"));
        assert_eq!(get("A").special_use, None);
        // A level without a Maildir (other software) is listed \Noselect.
        fs::create_dir_all(acc.dir().join(".X.Y/cur")).unwrap();
        let list = acc.list().unwrap();
        let x = list.iter().find(|f| f.name == "X").unwrap();
        assert!(x.noselect && x.has_children);
        assert!(matches!(
            acc.open_mailbox("X"),
            Err(StoreError::NoSuchMailbox(_))
        ));
        assert!(acc.exists("X.Y").unwrap() && !acc.exists("X").unwrap());
    }

    #[test]
    fn delete_refuses_children_and_inbox_and_updates_quota() {
        let (_t, acc) = account();
        acc.create_folder("A.B").unwrap();
        let dir = acc.mailbox_dir("A.B").unwrap();
        maildir::deliver(&dir, b"12345\n", None).unwrap();
        assert_eq!(acc.usage(0).unwrap().bytes, 6);
        assert!(matches!(
            acc.delete_folder("A"),
            Err(StoreError::HasChildren(_))
        ));
        assert!(matches!(
            acc.delete_folder("INBOX"),
            Err(StoreError::NotAllowed(_))
        ));
        assert!(matches!(
            acc.delete_folder("Nope"),
            Err(StoreError::NoSuchMailbox(_))
        ));
        acc.delete_folder("A.B").unwrap();
        assert!(!dir.exists());
        assert_eq!(acc.usage(0).unwrap().bytes, 0);
        acc.delete_folder("A").unwrap();
        assert_eq!(names(&acc), ["INBOX", "Drafts", "Junk", "Sent", "Trash"]);
        // A crash between the rename and the removal leaves nothing visible,
        // nothing counted, and the next delete cleans up.
        fs::create_dir_all(acc.dir().join("..DELETED.1.2.3/cur")).unwrap();
        fs::write(acc.dir().join("..DELETED.1.2.3/cur/1.M1P1.h,S=9"), "x").unwrap();
        assert!(!names(&acc).iter().any(|n| n.contains("DELETED")));
        assert_eq!(quota::recalculate(acc.dir(), 0).unwrap().bytes, 0);
        acc.delete_folder("Junk").unwrap();
        assert!(!acc.dir().join("..DELETED.1.2.3").exists());
    }

    #[test]
    fn rename_moves_children_and_keeps_uidvalidity() {
        let (_t, acc) = account();
        acc.create_folder("A.B").unwrap();
        maildir::deliver(&acc.mailbox_dir("A").unwrap(), b"a\n", None).unwrap();
        maildir::deliver(&acc.mailbox_dir("A.B").unwrap(), b"b\n", None).unwrap();
        let (va, vb) = (
            acc.open_mailbox("A").unwrap().uid_validity(),
            acc.open_mailbox("A.B").unwrap().uid_validity(),
        );
        acc.subscribe("A.B").unwrap();
        assert!(matches!(
            acc.rename_folder("A", "Sent"),
            Err(StoreError::AlreadyExists(_))
        ));
        assert!(matches!(
            acc.rename_folder("A", "A.B.C"),
            Err(StoreError::NotAllowed(_))
        ));
        assert!(matches!(
            acc.rename_folder("Nope", "Z"),
            Err(StoreError::NoSuchMailbox(_))
        ));
        acc.rename_folder("A", "P.X").unwrap();
        assert_eq!(
            names(&acc),
            [
                "INBOX", "Drafts", "Junk", "P", "P.X", "P.X.B", "Sent", "Trash"
            ]
        );
        let x = acc.open_mailbox("P.X").unwrap();
        let xb = acc.open_mailbox("P.X.B").unwrap();
        assert_eq!((x.uid_validity(), xb.uid_validity()), (va, vb));
        assert_eq!(x.messages()[0].uid, 1);
        assert_eq!(xb.messages().len(), 1);
        assert!(acc.subscriptions().unwrap().contains(&"P.X.B".to_owned()));
        assert!(!acc.subscriptions().unwrap().contains(&"A.B".to_owned()));
    }

    #[test]
    fn rename_inbox_moves_messages_and_keeps_inbox() {
        let (_t, acc) = account();
        acc.deliver(b"one\n").unwrap();
        acc.deliver(b"two\n").unwrap();
        acc.create_folder("INBOX.Kid").unwrap();
        let mut inbox = acc.open_mailbox("INBOX").unwrap();
        inbox.mark_old().unwrap();
        assert!(inbox.set_info(1, "S").unwrap());
        acc.rename_folder("inbox", "Old").unwrap();
        let old = acc.open_mailbox("Old").unwrap();
        assert_eq!(old.messages().len(), 2);
        assert!(old.messages()[0].flags().seen);
        assert!(acc.open_mailbox("INBOX").unwrap().messages().is_empty());
        assert!(acc.exists("INBOX.Kid").unwrap(), "INBOX's children stay");
        assert!(inbox.sync().unwrap().expunged == vec![1, 2]);
        assert!(matches!(
            acc.rename_folder("INBOX", "Old"),
            Err(StoreError::AlreadyExists(_))
        ));
    }
}
