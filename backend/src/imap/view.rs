//! The selected mailbox as one session's client knows it (RFC 3501 §5.2,
//! §7.4.1): message sequence numbers, the flags last reported, \Recent.
//!
//! All sessions of an account on this node share one [`OpenMailbox`]; each
//! keeps its own `View` and, after a command, compares it with the mailbox
//! to tell its client what changed (EXISTS, EXPUNGE, FETCH FLAGS). The
//! comparison runs only when the mailbox's generation moved, and costs one
//! merge walk over two UID-sorted lists.
//!
//! With CONDSTORE enabled (RFC 7162 §3.1) flag updates carry the message's
//! MODSEQ; with QRESYNC (§3.2.10) expunges are told as one `VANISHED`.
//!
//! Flags are kept as a `u32` per message (six Maildir system letters and
//! the 26 keyword letters), so a 100,000-message view is under a megabyte.

use std::collections::HashSet;
use std::io;
use std::sync::Arc;

use crate::accounts::OpenMailbox;
use crate::store::Mailbox;

/// The Maildir info letters as bits: `DFPRST` then `a`..`z`.
pub fn info_bits(info: &str) -> u32 {
    info.bytes().fold(0, |acc, b| acc | letter_bit(b))
}

fn letter_bit(b: u8) -> u32 {
    match b {
        b'D' => 1,
        b'F' => 1 << 1,
        b'P' => 1 << 2,
        b'R' => 1 << 3,
        b'S' => 1 << 4,
        b'T' => 1 << 5,
        b'a'..=b'z' => 1 << (6 + (b - b'a')),
        _ => 0,
    }
}

/// Bits back to info letters, in the order Maildir requires.
pub fn bits_info(bits: u32) -> String {
    let mut s = String::new();
    for (i, c) in b"DFPRST".iter().enumerate() {
        if bits & (1 << i) != 0 {
            s.push(*c as char);
        }
    }
    for k in 0..26u8 {
        if bits & (1 << (6 + k)) != 0 {
            s.push((b'a' + k) as char);
        }
    }
    s
}

pub const SEEN: u32 = 1 << 4;
pub const DELETED: u32 = 1 << 5;

/// One message as a snapshot of the mailbox has it.
#[derive(Debug, Clone, Copy)]
pub struct Snap {
    pub uid: u32,
    pub bits: u32,
    pub modseq: u64,
}

/// What a look at the mailbox found, computed off the reactor.
pub struct Look {
    pub generation: u64,
    pub messages: Vec<Snap>,
    /// Messages this look took out of `new/`: \Recent for this session.
    pub recent: Vec<u32>,
    pub uid_validity: u32,
    pub uid_next: u32,
    pub highest_modseq: u64,
    /// Keyword names by letter (`a` first); empty where unmapped.
    pub keywords: Vec<String>,
}

/// Keyword names of the mailbox at `dir`, by letter.
pub fn keyword_names(dir: &std::path::Path) -> io::Result<Vec<String>> {
    let kw = crate::store::keywords::Keywords::load(dir)?;
    let mut names = vec![String::new(); 26];
    for (letter, name) in kw.all() {
        if letter.is_ascii_lowercase() {
            names[(letter as u8 - b'a') as usize] = name.to_owned();
        }
    }
    Ok(names)
}

/// Syncs the mailbox and, if it changed since `since`, snapshots it.
/// Blocking. With `claim_recent`, messages still in `new/` move to `cur/`
/// and are reported as this session's \Recent.
pub fn look(mb: &OpenMailbox, since: u64, claim_recent: bool) -> io::Result<Option<Look>> {
    let mut guard = mb.lock();
    let changes = guard.sync()?;
    mb.synced(&guard, &changes);
    let mut recent = Vec::new();
    if claim_recent {
        if guard.messages().iter().any(|m| m.in_new) {
            recent = guard.mark_old()?;
        }
        recent.extend(mb.take_recent());
    }
    if mb.generation() == since && recent.is_empty() {
        return Ok(None);
    }
    if !claim_recent {
        // EXAMINE: the messages are \Recent, but a read-only session
        // leaves them for the next one to claim (RFC 3501 §2.3.2).
        recent = guard
            .messages()
            .iter()
            .filter(|m| m.in_new)
            .map(|m| m.uid)
            .collect();
        recent.extend(mb.peek_recent());
    }
    recent.retain(|u| guard.get(*u).is_some());
    recent.sort_unstable();
    recent.dedup();
    let keywords = keyword_names(guard.dir())?;
    Ok(Some(snapshot(&guard, mb.generation(), recent, keywords)))
}

fn snapshot(mb: &Mailbox, generation: u64, recent: Vec<u32>, keywords: Vec<String>) -> Look {
    Look {
        keywords,
        generation,
        messages: mb
            .messages()
            .iter()
            .map(|m| Snap {
                uid: m.uid,
                bits: info_bits(&m.info),
                modseq: m.modseq,
            })
            .collect(),
        recent,
        uid_validity: mb.uid_validity(),
        uid_next: mb.next_uid(),
        highest_modseq: mb.highest_modseq(),
    }
}

pub struct View {
    pub mb: Arc<OpenMailbox>,
    pub read_only: bool,
    generation: u64,
    /// UID of message `seq` at `uids[seq - 1]`, ascending.
    pub uids: Vec<u32>,
    /// Flags of each message as last reported to the client.
    pub bits: Vec<u32>,
    pub recent: HashSet<u32>,
    /// Expunges seen but not yet reported (a FETCH, STORE or SEARCH was
    /// running, RFC 3501 §7.4.1).
    expunge_pending: bool,
    pub uid_validity: u32,
    pub uid_next: u32,
    /// HIGHESTMODSEQ as of the last look.
    pub highest_modseq: u64,
    /// Keyword names by letter, as last read.
    pub keywords: Vec<String>,
}

/// The RFC 7162 extensions a client enabled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Enabled {
    pub condstore: bool,
    pub qresync: bool,
}

/// How a refresh may renumber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expunges {
    Report,
    Hold,
}

impl View {
    pub fn new(mb: Arc<OpenMailbox>, read_only: bool, look: Look) -> View {
        let mut v = View {
            mb,
            read_only,
            generation: look.generation,
            uids: Vec::with_capacity(look.messages.len()),
            bits: Vec::with_capacity(look.messages.len()),
            recent: look.recent.iter().copied().collect(),
            expunge_pending: false,
            uid_validity: look.uid_validity,
            uid_next: look.uid_next,
            highest_modseq: look.highest_modseq,
            keywords: look.keywords,
        };
        for s in look.messages {
            v.uids.push(s.uid);
            v.bits.push(s.bits);
        }
        v
    }

    pub fn generation(&self) -> u64 {
        if self.expunge_pending {
            0
        } else {
            self.generation
        }
    }

    pub fn exists(&self) -> u32 {
        self.uids.len() as u32
    }

    pub fn max_uid(&self) -> u32 {
        self.uids.last().copied().unwrap_or(0)
    }

    /// Sequence number of `uid`, if the client knows it.
    pub fn seq_of(&self, uid: u32) -> Option<u32> {
        self.uids.binary_search(&uid).ok().map(|i| i as u32 + 1)
    }

    pub fn is_recent(&self, uid: u32) -> bool {
        self.recent.contains(&uid)
    }

    /// Applies a look: appends the untagged responses for what changed to
    /// `out` (`flags` writes one `FLAGS (...)` list for a message). `ext`
    /// says what the client enabled: MODSEQ in flag updates, VANISHED
    /// instead of EXPUNGE.
    pub fn apply(
        &mut self,
        look: Look,
        how: Expunges,
        ext: Enabled,
        out: &mut Vec<u8>,
        mut flags: impl FnMut(&mut Vec<u8>, u32, bool, &[String]),
    ) {
        if look.keywords != self.keywords {
            // A new keyword: clients learn the flag list before a message
            // carries it (RFC 3501 §7.2.6).
            flag_lists(out, &look.keywords);
        }
        self.keywords = look.keywords;
        self.recent.extend(look.recent.iter().copied());
        self.uid_next = look.uid_next;
        self.highest_modseq = look.highest_modseq;
        let mut vanished = Vec::new();
        let _ = &mut flags;
        let (mut uids, mut bits) = (
            Vec::with_capacity(look.messages.len()),
            Vec::with_capacity(look.messages.len()),
        );
        let mut held = false;
        let mut removed = 0u32;
        let mut j = 0;
        let snap = &look.messages;
        for i in 0..self.uids.len() {
            let uid = self.uids[i];
            while j < snap.len() && snap[j].uid < uid {
                // A UID below one the client knows cannot be new; skip it.
                j += 1;
            }
            if j < snap.len() && snap[j].uid == uid {
                let now = snap[j].bits;
                if now != self.bits[i] {
                    let seq = i as u32 + 1 - removed;
                    out.extend_from_slice(b"* ");
                    super::respond::number(out, seq as u64);
                    out.extend_from_slice(b" FETCH (");
                    flags(out, now, self.recent.contains(&uid), &self.keywords);
                    out.extend_from_slice(b" UID ");
                    super::respond::number(out, uid as u64);
                    if ext.condstore {
                        out.extend_from_slice(b" MODSEQ (");
                        super::respond::number(out, snap[j].modseq);
                        out.push(b')');
                    }
                    out.extend_from_slice(b")\r\n");
                }
                uids.push(uid);
                bits.push(now);
                j += 1;
            } else if how == Expunges::Report {
                if ext.qresync {
                    vanished.push(uid);
                } else {
                    let seq = i as u32 + 1 - removed;
                    out.extend_from_slice(b"* ");
                    super::respond::number(out, seq as u64);
                    out.extend_from_slice(b" EXPUNGE\r\n");
                }
                removed += 1;
                self.recent.remove(&uid);
            } else {
                held = true;
                uids.push(uid);
                bits.push(self.bits[i]);
            }
        }
        super::condstore::write_vanished(out, &vanished, false);
        let known = uids.len();
        for s in &snap[j..] {
            if s.uid > uids.last().copied().unwrap_or(0) {
                uids.push(s.uid);
                bits.push(s.bits);
            }
        }
        let grew = uids.len() > known;
        self.uids = uids;
        self.bits = bits;
        if grew || removed > 0 {
            // RFC 3501 §7.3.1: EXISTS after expunges too, so the count is right.
            out.extend_from_slice(b"* ");
            super::respond::number(out, self.uids.len() as u64);
            out.extend_from_slice(b" EXISTS\r\n");
        }
        if grew || !look.recent.is_empty() {
            let r = self.uids.iter().filter(|u| self.recent.contains(u)).count();
            out.extend_from_slice(b"* ");
            super::respond::number(out, r as u64);
            out.extend_from_slice(b" RECENT\r\n");
        }
        self.expunge_pending = held;
        self.generation = look.generation;
    }

    /// Records flags the session itself set (and reported), so the next
    /// refresh does not report them again.
    pub fn set_bits(&mut self, uid: u32, bits: u32) {
        if let Ok(i) = self.uids.binary_search(&uid) {
            self.bits[i] = bits;
        }
    }

    /// Forgets expunged messages the session itself reported.
    pub fn remove(&mut self, uid: u32) -> Option<u32> {
        let i = self.uids.binary_search(&uid).ok()?;
        self.uids.remove(i);
        self.bits.remove(i);
        self.recent.remove(&uid);
        Some(i as u32 + 1)
    }
}

/// `* FLAGS (...)` and `* OK [PERMANENTFLAGS (...)]` with the mailbox's
/// keywords.
pub fn flag_lists(out: &mut Vec<u8>, keywords: &[String]) {
    let kw: String = keywords
        .iter()
        .filter(|k| !k.is_empty())
        .map(|k| format!(" {k}"))
        .collect();
    out.extend_from_slice(
        format!(
            "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Forwarded{kw})\r\n\
             * OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Forwarded{kw} \\*)] Flags permitted.\r\n"
        )
        .as_bytes(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_letters_round_trip_through_bits() {
        for info in ["", "S", "DFPRST", "Sab", "RSz", "FSacy"] {
            assert_eq!(bits_info(info_bits(info)), info);
        }
        assert_eq!(info_bits("S"), SEEN);
        assert_eq!(info_bits("T"), DELETED);
    }
}
