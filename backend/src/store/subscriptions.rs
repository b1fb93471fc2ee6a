//! IMAP subscriptions (RFC 3501 §6.3.6-6.3.7, LSUB and LIST (SUBSCRIBED)):
//! the Maildir++ `subscriptions` file in the account directory, one mailbox
//! name a line, as Courier and Dovecot's Maildir++ layout keep it.
//!
//! Every change rewrites the file atomically (temp file, fsync, rename, fsync
//! directory). Two sessions changing subscriptions at the same instant can
//! lose one change (last writer wins); nothing is ever torn.

use std::fs::{self, File};
use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};

use super::maildir::sync_dir;
use super::path;
use super::{AccountStore, StoreError};

pub const FILE_NAME: &str = "subscriptions";

impl AccountStore {
    /// Subscribed names, in file order, without duplicates. Names need not
    /// exist as mailboxes (RFC 3501 allows subscribing to others).
    pub fn subscriptions(&self) -> Result<Vec<String>, StoreError> {
        let p = self.dir.join(FILE_NAME);
        let text = match fs::read_to_string(&p) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(StoreError::io(&p, e)),
        };
        let mut out: Vec<String> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            // Dovecot 2.2+ may write a `V\t2` header and tab-separated levels.
            if i == 0 && line.starts_with("V\t") {
                continue;
            }
            let name = path::canonical(&line.trim_start_matches('\t').replace('\t', "."));
            if !name.is_empty() && !out.contains(&name) {
                out.push(name);
            }
        }
        Ok(out)
    }

    /// IMAP SUBSCRIBE; subscribing twice is not an error.
    pub fn subscribe(&self, name: &str) -> Result<(), StoreError> {
        let name = checked(name)?;
        let mut subs = self.subscriptions()?;
        if subs.contains(&name) {
            return Ok(());
        }
        subs.push(name);
        self.write_subscriptions(&subs)
    }

    /// IMAP UNSUBSCRIBE; `false` if `name` was not subscribed.
    pub fn unsubscribe(&self, name: &str) -> Result<bool, StoreError> {
        let name = path::canonical(name);
        let mut subs = self.subscriptions()?;
        let before = subs.len();
        subs.retain(|s| *s != name);
        if subs.len() == before {
            return Ok(false);
        }
        self.write_subscriptions(&subs)?;
        Ok(true)
    }

    /// Replaces the subscriptions (a new account's defaults).
    pub(crate) fn set_subscriptions(&self, names: &[&str]) -> Result<(), StoreError> {
        let names = names
            .iter()
            .map(|n| checked(n))
            .collect::<Result<Vec<_>, _>>()?;
        self.write_subscriptions(&names)
    }

    /// Follows a RENAME: subscribed old names become the new ones.
    pub(crate) fn rename_subscriptions(
        &self,
        moves: &[(String, String)],
    ) -> Result<(), StoreError> {
        let mut subs = self.subscriptions()?;
        let mut changed = false;
        for s in &mut subs {
            if let Some((_, new)) = moves.iter().find(|(old, _)| old == s) {
                *s = new.clone();
                changed = true;
            }
        }
        if changed {
            subs.dedup();
            self.write_subscriptions(&subs)?;
        }
        Ok(())
    }

    fn write_subscriptions(&self, names: &[String]) -> Result<(), StoreError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let tmp = self.dir.join(format!(
            "{FILE_NAME}.tmp.{}.{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let mut text = String::new();
        for n in names {
            text.push_str(n);
            text.push('\n');
        }
        let write = || -> io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            fs::rename(&tmp, self.dir.join(FILE_NAME))?;
            sync_dir(&self.dir)
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            StoreError::io(&self.dir.join(FILE_NAME), e)
        })
    }
}

/// A name fit for the file: a valid mailbox name, canonical.
fn checked(name: &str) -> Result<String, StoreError> {
    if !path::is_inbox(name) {
        path::check_folder_name(name)?;
    }
    Ok(path::canonical(name))
}

#[cfg(test)]
mod tests {
    use crate::store::Store;
    use shared::Address;

    #[test]
    fn subscribe_unsubscribe_and_defaults() {
        let t = tempfile::tempdir().unwrap();
        let acc = Store::new(t.path())
            .account(&Address::parse("bob@example.com").unwrap())
            .unwrap();
        assert!(acc.subscriptions().unwrap().is_empty());
        acc.ensure().unwrap();
        assert_eq!(
            acc.subscriptions().unwrap(),
            ["INBOX", "Drafts", "Sent", "Trash", "Junk"]
        );
        acc.subscribe("Lists.rust").unwrap();
        acc.subscribe("Lists.rust").unwrap();
        assert!(acc.unsubscribe("Junk").unwrap());
        assert!(!acc.unsubscribe("Junk").unwrap());
        assert!(acc.unsubscribe("inbox").unwrap());
        assert!(acc.subscribe("a\nb").is_err());
        assert_eq!(
            std::fs::read_to_string(acc.dir().join(super::FILE_NAME)).unwrap(),
            "Drafts\nSent\nTrash\nLists.rust\n"
        );
        // A second ensure of an existing account changes nothing.
        acc.ensure().unwrap();
        assert_eq!(acc.subscriptions().unwrap().len(), 4);
        // Dovecot's v2 format is read too.
        std::fs::write(acc.dir().join(super::FILE_NAME), "V\t2\n\nINBOX\nA\tB\n").unwrap();
        assert_eq!(acc.subscriptions().unwrap(), ["INBOX", "A.B"]);
    }
}
