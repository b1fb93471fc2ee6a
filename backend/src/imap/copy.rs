//! COPY and MOVE (RFC 3501 §6.4.7, RFC 6851), with UIDPLUS's COPYUID
//! (RFC 4315). The store links each message into the destination and
//! numbers it there before the answer; MOVE then expunges the originals, so
//! a crash in between leaves a copy, never a loss.

use std::sync::Arc;

use imap_codec::imap_types::mailbox::Mailbox as MailboxArg;
use imap_codec::imap_types::sequence::SequenceSet;

use super::authenticated::mailbox_name;
use super::respond;
use super::selected::{out_of_range, resolve};
use super::session::{Flow, Session};
use crate::accounts::{OpenError, OpenMailbox};
use crate::store::StoreError;

/// Copies `uids` from `src` to `dest` (which may be the same mailbox);
/// blocking. Returns (source UID, destination UID) pairs and the
/// destination's UIDVALIDITY.
fn copy_messages(
    src: &OpenMailbox,
    dest: &OpenMailbox,
    uids: &[u32],
) -> std::io::Result<(Vec<(u32, u32)>, u32)> {
    if std::ptr::eq(src, dest) {
        // Into itself: read each message and append it again.
        let mut g = src.lock();
        let mut pairs = Vec::with_capacity(uids.len());
        for &uid in uids {
            let Some(m) = g.get(uid).cloned() else {
                continue;
            };
            let body = g.read(uid)?;
            let when = g.internal_date(&m);
            let new = g.append(&body, &m.info, Some(when))?;
            pairs.push((uid, new));
        }
        let v = g.uid_validity();
        drop(g);
        src.add_recent(pairs.iter().map(|p| p.1));
        src.changed();
        return Ok((pairs, v));
    }
    // Two locks: always in the same order, so two sessions copying in
    // opposite directions cannot deadlock.
    let src_first = (src as *const OpenMailbox as usize) < (dest as *const OpenMailbox as usize);
    let (mut s, mut d) = if src_first {
        let s = src.lock();
        (s, dest.lock())
    } else {
        let d = dest.lock();
        (src.lock(), d)
    };
    let pairs = s.copy_to(uids, &mut d)?;
    let v = d.uid_validity();
    drop((s, d));
    dest.add_recent(pairs.iter().map(|p| p.1));
    dest.changed();
    Ok((pairs, v))
}

impl Session<'_> {
    pub(super) async fn copy(
        &mut self,
        tag: &str,
        set: &SequenceSet,
        mailbox: &MailboxArg<'_>,
        uid: bool,
        is_move: bool,
    ) -> Flow {
        let what = if is_move { "MOVE" } else { "COPY" };
        let Some(v) = &self.view else {
            return self.bad(tag, "No mailbox selected.");
        };
        if is_move && v.read_only {
            return self.no(tag, "[READ-ONLY] Mailbox is read-only.");
        }
        if !uid && out_of_range(set, v.exists()) {
            return self.bad(tag, "Invalid messageset.");
        }
        let uids: Vec<u32> = resolve(&v.uids, set, uid)
            .into_iter()
            .map(|i| v.uids[i])
            .collect();
        let src = v.mb.clone();
        let name = match mailbox_name(mailbox) {
            Ok(n) => n,
            Err(why) => return self.no(tag, &format!("[CANNOT] {why}")),
        };
        let dest: Arc<OpenMailbox> = match self.open_mailbox(&name).await {
            Ok(mb) => mb,
            Err(OpenError::Store(StoreError::NoSuchMailbox(_))) => {
                return self.no(tag, "[TRYCREATE] Mailbox doesn't exist.");
            }
            Err(e) => return self.open_failed(tag, e),
        };
        if uids.is_empty() {
            return self.ok(tag, &format!("{what} completed."));
        }
        let Some(user) = &self.user else {
            return self.bad(tag, "Log in first.");
        };
        let r = user
            .run(move |store| -> std::io::Result<(Vec<(u32, u32)>, u32)> {
                let (pairs, validity) = copy_messages(&src, &dest, &uids)?;
                if is_move {
                    let moved: Vec<u32> = pairs.iter().map(|p| p.0).collect();
                    super::selected::expunge_counted(&mut src.lock(), &moved, store.dir())?;
                    src.changed();
                }
                Ok((pairs, validity))
            })
            .await;
        let (pairs, validity) = match r {
            Ok(Ok(x)) => x,
            Ok(Err(e)) => return self.store_failed(tag, what, &e),
            Err(e) => return self.store_failed(tag, what, &e),
        };
        let code = if pairs.is_empty() {
            String::new()
        } else {
            format!(
                "[COPYUID {validity} {} {}] ",
                respond::sequence_set(pairs.iter().map(|p| p.0)),
                respond::sequence_set(pairs.iter().map(|p| p.1))
            )
        };
        if is_move {
            // RFC 6851 §4.3: COPYUID goes in an untagged OK before the
            // EXPUNGEs, so the tagged OK is free.
            if !code.is_empty() {
                self.out.extend_from_slice(b"* OK ");
                self.out.extend_from_slice(code.as_bytes());
                self.out.extend_from_slice(b"Moved UIDs.\r\n");
            }
            self.refresh(true).await;
            return self.ok(tag, "MOVE completed.");
        }
        self.refresh(false).await;
        self.ok(tag, &format!("{code}{what} completed."))
    }
}
