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

/// The Maildir++ directory name of a folder (not INBOX), given with `.` as
/// hierarchy separator: `Archive.2024` -> `.Archive.2024`.
pub fn folder_dir_name(name: &str) -> Result<String, PathError> {
    let bad = |why| Err(PathError::BadMailbox(name.to_owned(), why));
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > MAX_FOLDER_NAME {
        return bad("too long");
    }
    if name.eq_ignore_ascii_case("INBOX") {
        return bad("INBOX is the account directory itself");
    }
    if name.starts_with('.') || name.ends_with('.') || name.contains("..") {
        return bad("empty hierarchy level");
    }
    if name
        .bytes()
        .any(|b| b == b'/' || b == b'\\' || b == 0 || b < 0x20 || b == 0x7f)
    {
        return bad("contains '/', '\\' or a control character");
    }
    Ok(format!(".{name}"))
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
        ] {
            assert!(folder_dir_name(bad).is_err(), "{bad:?}");
        }
        assert!(folder_dir_name(&"x".repeat(MAX_FOLDER_NAME + 1)).is_err());
    }
}
