//! CONDSTORE and QRESYNC (RFC 7162): enabling them, and the VANISHED
//! answers. The modseqs themselves live in the store's UID list
//! ([`crate::store::Mailbox::highest_modseq`]); FETCH, STORE, SELECT and the
//! untagged updates use them where those commands are implemented.

use imap_codec::imap_types::sequence::SequenceSet;

use super::respond;
use super::session::Session;
use crate::store::Mailbox;

impl Session<'_> {
    /// Turns CONDSTORE on (ENABLE, or a CONDSTORE-enabling command, RFC
    /// 7162 §3.1); with a mailbox selected, tells its HIGHESTMODSEQ once.
    pub(super) fn enable_condstore(&mut self) {
        if self.ext.condstore {
            return;
        }
        self.ext.condstore = true;
        if let Some(v) = &self.view {
            respond::untagged(
                &mut self.out,
                &format!("OK [HIGHESTMODSEQ {}] Highest", v.highest_modseq),
            );
        }
    }
}

impl Session<'_> {
    /// Turns CONDSTORE on without a word: SELECT (CONDSTORE) tells
    /// HIGHESTMODSEQ itself.
    pub(super) fn enable_condstore_quietly(&mut self) {
        self.ext.condstore = true;
    }
}

/// The UIDs of `set` (all, if `None`) expunged after `modseq`, ascending.
/// When the store no longer remembers expunges that old, every UID of the
/// set below UIDNEXT that does not exist (RFC 7162 §3.2.5.1 allows it;
/// clients ignore UIDs they never knew). Blocking: the caller holds the lock.
pub(super) fn vanished(mb: &Mailbox, modseq: u64, set: Option<&SequenceSet>) -> Vec<u32> {
    let max = mb.next_uid().saturating_sub(1);
    let within: Option<Vec<(u32, u32)>> = set.map(|s| super::search::ranges(s, max).collect());
    let inside = |u: u32| {
        within
            .as_ref()
            .is_none_or(|r| r.iter().any(|(a, b)| (*a..=*b).contains(&u)))
    };
    if let Some(known) = mb.vanished_since(modseq) {
        return known.into_iter().filter(|u| inside(*u)).collect();
    }
    let mut out = Vec::new();
    let all = vec![(1, max)];
    for (a, b) in within.as_ref().unwrap_or(&all) {
        for u in (*a).max(1)..=(*b).min(max) {
            if mb.get(u).is_none() {
                out.push(u);
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// `* VANISHED [(EARLIER) ]uids`, nothing if `uids` is empty.
pub(super) fn write_vanished(out: &mut Vec<u8>, uids: &[u32], earlier: bool) {
    if uids.is_empty() {
        return;
    }
    out.extend_from_slice(b"* VANISHED ");
    if earlier {
        out.extend_from_slice(b"(EARLIER) ");
    }
    out.extend_from_slice(respond::sequence_set(uids.iter().copied()).as_bytes());
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use imap_codec::imap_types::sequence::SequenceSet;

    #[test]
    fn vanished_falls_back_to_what_is_missing() {
        let t = tempfile::tempdir().unwrap();
        let mut mb = Mailbox::open(t.path()).unwrap();
        for _ in 0..6 {
            mb.append(b"x\n", "", None).unwrap();
        }
        let before = mb.highest_modseq();
        mb.expunge(&[2, 5]).unwrap();
        let set = SequenceSet::try_from("1:4").unwrap();
        assert_eq!(vanished(&mb, before, None), vec![2, 5]);
        assert_eq!(vanished(&mb, before, Some(&set)), vec![2]);
        assert!(vanished(&mb, mb.highest_modseq(), None).is_empty());
        // Forgotten history is not modelled here; the fallback is the same
        // computation over what exists.
        let star = SequenceSet::try_from("3:*").unwrap();
        assert_eq!(vanished(&mb, before, Some(&star)), vec![5]);
    }
}
