//! The write guard: a check made immediately before each write the owner of
//! an account makes to its mailboxes, so a node that lost the account (its
//! lease ran out, perhaps while the process was stopped) writes nothing
//! more, even before its fence task has run. See the safety rule in
//! `crate::cluster`.
//!
//! A [`Mailbox`](super::Mailbox) checks its guard before renaming a message
//! file (flags, `new/` to `cur/`), unlinking one (EXPUNGE), renaming an
//! APPENDed or COPYed message into `cur/`, and appending to or rewriting its
//! UID list. LMTP delivery into `new/` is lock-free and needs no guard.

use std::io;
use std::sync::Arc;

/// Whether writes are still allowed (a node's lease is surely alive).
pub trait Permit: Send + Sync + 'static {
    fn may_write(&self) -> bool;
}

/// The error a refused write fails with, inside an [`io::Error`].
#[derive(Debug, thiserror::Error)]
#[error("this node may no longer write the account (its lease ran out)")]
pub struct Fenced;

/// A mailbox's guard; the default allows every write (a single node).
#[derive(Clone, Default)]
pub struct WriteGuard(Option<Arc<dyn Permit>>);

impl WriteGuard {
    pub fn new(permit: Arc<dyn Permit>) -> WriteGuard {
        WriteGuard(Some(permit))
    }

    pub fn allows(&self) -> bool {
        self.0.as_ref().is_none_or(|p| p.may_write())
    }

    /// `Ok` if a write may go ahead now; call it right before the syscall.
    pub fn check(&self) -> io::Result<()> {
        if self.allows() {
            Ok(())
        } else {
            Err(io::Error::other(Fenced))
        }
    }
}

impl std::fmt::Debug for WriteGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "WriteGuard(lease)"
        } else {
            "WriteGuard(none)"
        })
    }
}

/// Guards are not part of what they guard: two UID lists with the same
/// records are equal whoever may write them.
impl PartialEq for WriteGuard {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for WriteGuard {}

/// Whether `e` is a write the guard refused.
pub fn is_fenced(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<Fenced>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    struct Flag(AtomicBool);

    impl Permit for Flag {
        fn may_write(&self) -> bool {
            self.0.load(Ordering::SeqCst)
        }
    }

    #[test]
    fn the_guard_refuses_once_the_permit_ends() {
        assert!(
            WriteGuard::default().check().is_ok(),
            "no permit: a single node"
        );
        let flag = Arc::new(Flag(AtomicBool::new(true)));
        let g = WriteGuard::new(flag.clone());
        assert!(g.check().is_ok());
        flag.0.store(false, Ordering::SeqCst);
        let e = g.check().expect_err("refused");
        assert!(is_fenced(&e), "{e}");
        assert!(!is_fenced(&io::Error::other("disk full")));
    }
}
