//! Where an account lives on the cluster's store, and what its mailbox
//! directories are called.
//!
//! An account's directory is `<root>/<h1>/<h2>/<address>`, where `h1 h2` are
//! the first two bytes of SHA-256 of the normalised address in hex: 65,536
//! buckets keep every directory small at millions of accounts, and the hash
//! spreads accounts of one big domain as evenly as those of many small ones.
//! The name itself is the normalised address, which [`shared::Address`]
//! guarantees is dot-atom ASCII without `/`, `\`, NUL or a leading dot, and
//! at most 254 bytes (under NAME_MAX). The checks here repeat that guarantee
//! so that a path never escapes the root even if an address type changes.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use shared::Address;

/// Maildir++ folder names: `.Sent`, `.Archive.2024` (`.` is the hierarchy
/// separator). Longest folder name accepted, in bytes.
pub const MAX_FOLDER_NAME: usize = 200;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("address {0:?} cannot name a directory")]
    BadAddress(String),
    #[error("mailbox name {0:?} is not allowed: {1}")]
    BadMailbox(String, &'static str),
}

/// The directory of `address` under `root`.
pub fn account_dir(root: &Path, address: &Address) -> Result<PathBuf, PathError> {
    let name = address.as_str();
    let safe = !name.is_empty()
        && name.len() <= 254
        && !name.starts_with('.')
        && !name
            .bytes()
            .any(|b| b == b'/' || b == b'\\' || b == 0 || !b.is_ascii_graphic());
    if !safe {
        return Err(PathError::BadAddress(name.to_owned()));
    }
    let h = Sha256::digest(name.as_bytes());
    Ok(root
        .join(format!("{:02x}", h[0]))
        .join(format!("{:02x}", h[1]))
        .join(name))
}

/// Most hierarchy levels in a folder name.
pub const MAX_FOLDER_DEPTH: usize = 16;

/// IMAP's hierarchy delimiter, which is also Maildir++'s: `Archive.2024` is
/// folder `2024` inside `Archive`, stored as the directory `.Archive.2024`.
pub const DELIMITER: char = '.';

/// A mailbox name in canonical form: `INBOX` in any case becomes `INBOX`, as
/// does the first level of `inbox.x` (RFC 3501 §5.1: INBOX is
/// case-insensitive). Everything else is kept byte for byte (names arrive in
/// modified UTF-7, or UTF-8 with UTF8=ACCEPT, and are stored as sent).
pub fn canonical(name: &str) -> String {
    match name.get(..5) {
        Some(head)
            if head.eq_ignore_ascii_case("INBOX")
                && (name.len() == 5 || name[5..].starts_with(DELIMITER)) =>
        {
            format!("INBOX{}", &name[5..])
        }
        _ => name.to_owned(),
    }
}

/// Whether `name` is INBOX, in any case.
pub fn is_inbox(name: &str) -> bool {
    name.eq_ignore_ascii_case("INBOX")
}

/// Checks a mailbox name other than INBOX: not empty, at most
/// [`MAX_FOLDER_NAME`] bytes and [`MAX_FOLDER_DEPTH`] levels, no empty level
/// (so no leading, trailing or doubled `.`, hence no `..`), no `/`, `\`,
/// control characters, or the LIST wildcards `*` and `%`.
pub fn check_folder_name(name: &str) -> Result<(), PathError> {
    let bad = |why| Err(PathError::BadMailbox(name.to_owned(), why));
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > MAX_FOLDER_NAME {
        return bad("too long");
    }
    if is_inbox(name) {
        return bad("INBOX is the account directory itself");
    }
    if name.split(DELIMITER).any(str::is_empty) {
        return bad("empty hierarchy level");
    }
    if name.split(DELIMITER).count() > MAX_FOLDER_DEPTH {
        return bad("too deep");
    }
    if name
        .bytes()
        .any(|b| b == b'/' || b == b'\\' || b == 0 || b < 0x20 || b == 0x7f)
    {
        return bad("contains '/', '\\' or a control character");
    }
    if name.contains(['*', '%']) {
        return bad("contains a LIST wildcard");
    }
    Ok(())
}

/// The Maildir++ directory name of a folder (not INBOX), given with `.` as
/// hierarchy separator: `Archive.2024` -> `.Archive.2024`; `inbox.x` ->
/// `.INBOX.x` (see [`canonical`]).
pub fn folder_dir_name(name: &str) -> Result<String, PathError> {
    check_folder_name(name)?;
    Ok(format!(".{}", canonical(name)))
}

/// The folder name of a directory in the account directory, if it is one:
/// `.Sent` -> `Sent`. Names starting with `..` (folders being deleted) and
/// names that [`check_folder_name`] refuses (made by other software) are not
/// listed, so everything listed can be opened; `.INBOX` (only a level of
/// `INBOX.x` names) is not a folder either.
pub fn folder_of_dir_name(dir_name: &str) -> Option<&str> {
    let name = dir_name.strip_prefix('.')?;
    check_folder_name(name).is_ok().then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_dirs_fan_out_under_root() {
        let root = Path::new("/srv/mail/c1");
        let a = Address::parse("alice@example.com").unwrap();
        let d = account_dir(root, &a).unwrap();
        assert!(d.starts_with(root));
        assert_eq!(d.components().count(), root.components().count() + 3);
        assert!(d.ends_with("alice@example.com"));
        let b = Address::parse("ALICE@example.COM").unwrap();
        assert_eq!(
            account_dir(root, &b).unwrap(),
            d,
            "normalised addresses share a directory"
        );
        let c = Address::parse("bob@example.com").unwrap();
        assert_ne!(
            account_dir(root, &c).unwrap().parent(),
            d.parent(),
            "different buckets (for these two)"
        );
    }

    #[test]
    fn hostile_addresses_never_escape() {
        for s in [
            "../x@example.com",
            "a/b@example.com",
            "a\0b@x.com",
            &format!("{}@x.com", "a".repeat(300)),
        ] {
            assert!(
                Address::parse(s).is_err(),
                "{s:?} must not even be an address"
            );
        }
        // Every address that does parse stays under the root.
        let root = Path::new("/srv/mail/c1");
        for s in ["x.y@example.com", "'*%@example.com", "a@b", "~@example.com"] {
            let d = account_dir(root, &Address::parse(s).unwrap()).unwrap();
            assert!(
                d.starts_with(root) && !d.components().any(|c| c.as_os_str() == ".."),
                "{s}"
            );
        }
    }

    #[test]
    fn folder_names() {
        assert_eq!(folder_dir_name("Sent").unwrap(), ".Sent");
        assert_eq!(folder_dir_name("Archive.2024").unwrap(), ".Archive.2024");
        for bad in [
            "", "INBOX", "inbox", ".x", "x.", "a..b", "a/b", "../etc", "a\\b", "a\0b", "a\nb",
            "a*", "b%c", "..", ".", "a.b.",
        ] {
            assert!(folder_dir_name(bad).is_err(), "{bad:?}");
        }
        assert!(folder_dir_name(&"x".repeat(MAX_FOLDER_NAME + 1)).is_err());
        assert!(folder_dir_name(&vec!["a"; MAX_FOLDER_DEPTH + 1].join(".")).is_err());
        assert_eq!(folder_dir_name("inbox.x").unwrap(), ".INBOX.x");
        assert_eq!(folder_dir_name("INBOXES").unwrap(), ".INBOXES");
        assert_eq!(canonical("Inbox"), "INBOX");
        assert_eq!(folder_of_dir_name(".Sent"), Some("Sent"));
        assert_eq!(folder_of_dir_name(".A.B"), Some("A.B"));
        for not in ["..DELETED.1", ".", "..", "cur", ".a.", "", ".INBOX", ".a*"] {
            assert_eq!(folder_of_dir_name(not), None, "{not:?}");
        }
    }
}
