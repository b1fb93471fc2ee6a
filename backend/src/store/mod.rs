//! The mail store of a cluster: one Maildir++ tree per account under the
//! cluster's `store_root`, shared by every node of the cluster.
//!
//! ```text
//! <root>/<h1>/<h2>/<address>/          INBOX (cur/ new/ tmp/), maildirsize
//! <root>/<h1>/<h2>/<address>/.Sent/    a folder, with a `maildirfolder` file
//! <root>/<h1>/<h2>/<address>/.A.B/     folder B inside folder A
//! ```
//! Every mailbox directory also holds Tandem's `tandem-uidlist` (see
//! [`index`]); other Maildir software ignores it, and Tandem rebuilds it from
//! the Maildir when files change behind its back.

pub mod folders;
pub mod guard;
pub mod index;
pub mod keywords;
pub mod mailbox;
pub mod maildir;
pub mod path;
pub mod quota;
pub mod subscriptions;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use shared::Address;

pub use folders::{FolderInfo, matches_pattern};
pub use guard::WriteGuard;
pub use keywords::{Info, Keywords};
pub use mailbox::{Changes, Mailbox, Message};
pub use path::PathError;

/// Folders every account has, with their RFC 6154 special use.
pub const SPECIAL_USE: &[(&str, &str)] = &[
    ("Drafts", "\\Drafts"),
    ("Sent", "\\Sent"),
    ("Trash", "\\Trash"),
    ("Junk", "\\Junk"),
];

/// Why a store operation failed. The first group is the client's doing (a
/// name that cannot be, or names a mailbox that is or is not there); `Io` is
/// the server's, and may go away on retry.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The name is not acceptable (IMAP: `NO [CANNOT]`).
    #[error(transparent)]
    Path(#[from] PathError),
    /// IMAP: `NO [NONEXISTENT]` (RFC 5530).
    #[error("mailbox {0:?} does not exist")]
    NoSuchMailbox(String),
    /// IMAP: `NO [ALREADYEXISTS]` (RFC 5530).
    #[error("mailbox {0:?} already exists")]
    AlreadyExists(String),
    /// DELETE of a folder with subfolders, which Tandem refuses as Dovecot
    /// does (IMAP: `NO [INUSE]` or plain `NO`).
    #[error("mailbox {0:?} has children, delete them first")]
    HasChildren(String),
    /// An operation the mailbox does not allow: deleting INBOX, renaming a
    /// folder into itself (IMAP: `NO [CANNOT]`).
    #[error("{0}")]
    NotAllowed(&'static str),
    /// The server's trouble (IMAP: `NO [SERVERBUG]`/`[UNAVAILABLE]`).
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

impl StoreError {
    pub fn io(path: &Path, source: io::Error) -> StoreError {
        StoreError::Io {
            path: path.to_owned(),
            source,
        }
    }

    /// The RFC 5530 response code an IMAP `NO` should carry.
    pub fn imap_code(&self) -> &'static str {
        match self {
            StoreError::Path(_) | StoreError::NotAllowed(_) => "CANNOT",
            StoreError::NoSuchMailbox(_) => "NONEXISTENT",
            StoreError::AlreadyExists(_) => "ALREADYEXISTS",
            StoreError::HasChildren(_) => "INUSE",
            StoreError::Io { .. } => "SERVERBUG",
        }
    }
}

/// The store of one cluster.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    pub fn new(root: impl Into<PathBuf>) -> Store {
        Store { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The account's tree; nothing is created until [`AccountStore::ensure`].
    pub fn account(&self, address: &Address) -> Result<AccountStore, StoreError> {
        Ok(AccountStore {
            dir: path::account_dir(&self.root, address)?,
        })
    }
}

/// One account's Maildir++ tree.
#[derive(Debug, Clone)]
pub struct AccountStore {
    dir: PathBuf,
}

impl AccountStore {
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Creates INBOX and the special-use folders if they are missing.
    pub fn ensure(&self) -> Result<(), StoreError> {
        let fresh = !self.dir.join("cur").is_dir();
        maildir::create(&self.dir).map_err(|e| StoreError::io(&self.dir, e))?;
        if fresh {
            let mut subscribed = vec!["INBOX"];
            for (name, _) in SPECIAL_USE {
                self.make_folder(name)?;
                subscribed.push(name);
            }
            self.set_subscriptions(&subscribed)?;
            if let Some(parent) = self.dir.parent() {
                maildir::sync_dir(parent).map_err(|e| StoreError::io(parent, e))?;
            }
        }
        Ok(())
    }

    /// The directory of a mailbox: INBOX is the account directory itself.
    pub fn mailbox_dir(&self, name: &str) -> Result<PathBuf, StoreError> {
        if path::is_inbox(name) {
            return Ok(self.dir.clone());
        }
        Ok(self.dir.join(path::folder_dir_name(name)?))
    }

    /// Creates the Maildir of a folder if it is missing (no parents, no error
    /// if present); see [`AccountStore::create_folder`] for IMAP CREATE.
    pub(crate) fn make_folder(&self, name: &str) -> Result<PathBuf, StoreError> {
        let dir = self.mailbox_dir(name)?;
        maildir::create(&dir).map_err(|e| StoreError::io(&dir, e))?;
        // Maildir++ marks folders so that delivery agents know quota lives above.
        let marker = dir.join("maildirfolder");
        if !marker.exists() {
            fs::write(&marker, b"").map_err(|e| StoreError::io(&marker, e))?;
        }
        Ok(dir)
    }

    /// Opens (and syncs) a mailbox; blocking.
    pub fn open_mailbox(&self, name: &str) -> Result<Mailbox, StoreError> {
        self.open_mailbox_guarded(name, WriteGuard::default())
    }

    /// Opens (and syncs) a mailbox whose every write must pass `guard`.
    pub fn open_mailbox_guarded(
        &self,
        name: &str,
        guard: WriteGuard,
    ) -> Result<Mailbox, StoreError> {
        let dir = self.mailbox_dir(name)?;
        // A level without a Maildir of its own (\Noselect) is no mailbox.
        if !path::is_inbox(name) && !dir.join("cur").is_dir() {
            return Err(StoreError::NoSuchMailbox(name.to_owned()));
        }
        Mailbox::open_guarded(&dir, guard).map_err(|e| StoreError::io(&dir, e))
    }

    /// Delivers a message to INBOX, durably; blocking. Returns its path.
    pub fn deliver(&self, body: &[u8]) -> Result<PathBuf, StoreError> {
        self.deliver_parts(&[body], None)
    }

    /// Delivers the concatenation of `parts` (in LF form) to INBOX, durably:
    /// per-recipient headers in front of a body shared by all recipients,
    /// without copying the body. `tag` ([`maildir::delivery_tag`]) goes
    /// into the file name. Returns the message's path.
    pub fn deliver_parts(&self, parts: &[&[u8]], tag: Option<&str>) -> Result<PathBuf, StoreError> {
        self.ensure()?;
        let (mut size, mut vsize) = (0, 0);
        for p in parts {
            let (s, v) = maildir::sizes(p);
            size += s;
            vsize += v;
        }
        let (_, path) = maildir::deliver_from(&self.dir, size, vsize, None, tag, |f| {
            use std::io::Write;
            parts.iter().try_for_each(|p| f.write_all(p))
        })
        .map_err(|e| StoreError::io(&self.dir, e))?;
        let _ = quota::add(&self.dir, size as i64, 1);
        Ok(path)
    }

    /// Whether INBOX holds a copy delivered with `tag`, in `new/` or `cur/`,
    /// or one is being written (a directory scan: only for retries whose
    /// outcome is unknown).
    pub fn find_delivery(&self, tag: &str) -> Result<maildir::Tagged, StoreError> {
        maildir::find_tag(&self.dir, tag).map_err(|e| StoreError::io(&self.dir, e))
    }

    /// Quota usage (bytes, messages) against `limit` bytes.
    pub fn usage(&self, limit: u64) -> Result<quota::Usage, StoreError> {
        self.ensure()?;
        quota::usage(&self.dir, limit).map_err(|e| StoreError::io(&self.dir, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_layout_is_maildir_plus_plus() {
        let t = tempfile::tempdir().unwrap();
        let store = Store::new(t.path());
        let acc = store
            .account(&Address::parse("alice@example.com").unwrap())
            .unwrap();
        acc.ensure().unwrap();
        for d in [
            "cur",
            "new",
            "tmp",
            ".Sent/cur",
            ".Drafts/new",
            ".Trash/tmp",
            ".Junk/cur",
        ] {
            assert!(acc.dir().join(d).is_dir(), "{d}");
        }
        assert!(acc.dir().join(".Sent/maildirfolder").is_file());
        acc.deliver(b"Subject: hi\n\nbody\n").unwrap();
        let inbox = acc.open_mailbox("INBOX").unwrap();
        assert_eq!(inbox.messages().len(), 1);
        assert_eq!(acc.usage(0).unwrap().messages, 1);
        assert!(acc.open_mailbox("../../etc").is_err());
        assert!(acc.open_mailbox("Sent").unwrap().messages().is_empty());
    }
}
