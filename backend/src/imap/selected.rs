//! The selected state (RFC 3501 §6.4): CHECK, CLOSE, UNSELECT (RFC 3691),
//! EXPUNGE and UID EXPUNGE (RFC 4315), STORE; FETCH, SEARCH and COPY/MOVE
//! live in their own modules. After each command the session tells the
//! client what changed in the mailbox (`refresh`).
//!
//! STORE takes CONDSTORE's UNCHANGEDSINCE (RFC 7162 §3.1.3): messages
//! changed after it are left alone and named in `[MODIFIED ...]`; all
//! changes of one STORE share one new modseq, recorded before the answer.

use imap_codec::imap_types::command::{CommandBody, StoreModifier};
use imap_codec::imap_types::flag::{Flag, StoreResponse, StoreType};
use imap_codec::imap_types::sequence::{SeqOrUid, Sequence, SequenceSet};

use super::respond;
use super::session::{Flow, Io, Session, Transport};
use super::view::{self, Expunges, bits_info, info_bits};

/// Resolves a sequence set against the view: indexes into `view.uids`,
/// ascending, without duplicates. With `uid`, the numbers are UIDs and `*`
/// is the highest UID (RFC 3501 §6.4.8: `n:*` always includes it).
pub(super) fn resolve(uids: &[u32], set: &SequenceSet, uid: bool) -> Vec<usize> {
    let n = uids.len();
    if n == 0 {
        return Vec::new();
    }
    let max = if uid { uids[n - 1] } else { n as u32 };
    let mut picked = vec![false; n];
    let mut any = false;
    for (a, b) in super::search::ranges(set, max) {
        let (lo, hi) = if uid {
            (
                uids.partition_point(|u| *u < a),
                uids.partition_point(|u| *u <= b),
            )
        } else {
            ((a as usize).saturating_sub(1).min(n), (b as usize).min(n))
        };
        for p in picked.iter_mut().take(hi).skip(lo) {
            *p = true;
            any = true;
        }
    }
    if !any {
        return Vec::new();
    }
    picked
        .iter()
        .enumerate()
        .filter_map(|(i, p)| p.then_some(i))
        .collect()
}

/// Whether a message-number set names numbers beyond the mailbox (RFC 3501
/// §9: a BAD for sequence numbers, silently ignored for UIDs).
pub(super) fn out_of_range(set: &SequenceSet, exists: u32) -> bool {
    set.0.as_ref().iter().any(|s| {
        let over = |v: &SeqOrUid| matches!(v, SeqOrUid::Value(n) if n.get() > exists);
        match s {
            Sequence::Single(a) => over(a),
            Sequence::Range(a, b) => over(a) && over(b),
        }
    })
}

/// A flag as a Maildir info bit; `None` for a keyword without a letter.
pub(super) fn flag_bit(f: &Flag<'_>, keyword: &mut impl FnMut(&str) -> Option<u32>) -> Option<u32> {
    Some(match f {
        Flag::Draft => info_bits("D"),
        Flag::Flagged => info_bits("F"),
        Flag::Answered => info_bits("R"),
        Flag::Seen => info_bits("S"),
        Flag::Deleted => info_bits("T"),
        Flag::Keyword(k) if k.as_ref().eq_ignore_ascii_case("$Forwarded") => info_bits("P"),
        Flag::Keyword(k) => return keyword(k.as_ref()),
        // \Recent and other backslash flags cannot be stored; ignore them.
        Flag::Extension(_) => 0,
    })
}

impl Session<'_> {
    /// Commands of the selected state; `Err` hands others back.
    pub(super) async fn selected<S: Transport>(
        &mut self,
        tag: &str,
        body: CommandBody<'static>,
        io: &mut Io<S>,
    ) -> Result<Flow, CommandBody<'static>> {
        Ok(match body {
            CommandBody::Check => {
                self.refresh(true).await;
                self.ok(tag, "CHECK completed.")
            }
            CommandBody::Close => {
                if let Some(v) = &self.view
                    && !v.read_only
                    && let Err(e) = self.expunge_deleted(None).await
                {
                    return Ok(self.store_failed(tag, "CLOSE", &e));
                }
                self.view = None;
                self.ok(tag, "CLOSE completed.")
            }
            CommandBody::Unselect => {
                self.view = None;
                self.ok(tag, "UNSELECT completed.")
            }
            CommandBody::Expunge => self.expunge(tag, None).await,
            CommandBody::ExpungeUid { sequence_set } => self.expunge(tag, Some(sequence_set)).await,
            CommandBody::Store {
                sequence_set,
                kind,
                response,
                flags,
                uid,
                modifiers,
            } => {
                let unchanged_since = modifiers
                    .iter()
                    .map(|m| match m {
                        StoreModifier::UnchangedSince(n) => *n,
                    })
                    .next();
                let how = StoreHow {
                    kind,
                    response,
                    uid,
                    unchanged_since,
                };
                self.store(tag, &sequence_set, how, &flags).await
            }
            CommandBody::Fetch {
                sequence_set,
                macro_or_item_names,
                uid,
                modifiers,
            } => {
                self.fetch(io, tag, &sequence_set, macro_or_item_names, uid, &modifiers)
                    .await
            }
            CommandBody::Search { criteria, uid, .. } => {
                self.search(tag, criteria.into_inner(), uid).await
            }
            CommandBody::Sort {
                sort_criteria,
                search_criteria,
                uid,
                ..
            } => {
                self.sort(
                    tag,
                    sort_criteria.into_inner(),
                    search_criteria.into_inner(),
                    uid,
                )
                .await
            }
            CommandBody::Thread {
                algorithm,
                search_criteria,
                uid,
                ..
            } => {
                self.thread(tag, algorithm, search_criteria.into_inner(), uid)
                    .await
            }
            CommandBody::Copy {
                sequence_set,
                mailbox,
                uid,
            } => self.copy(tag, &sequence_set, &mailbox, uid, false).await,
            CommandBody::Move {
                sequence_set,
                mailbox,
                uid,
            } => self.copy(tag, &sequence_set, &mailbox, uid, true).await,
            other => return Err(other),
        })
    }

    /// Tells the client what changed in the selected mailbox. Expunges wait
    /// while `allow_expunge` is false (during FETCH, STORE, SEARCH).
    pub(super) async fn refresh(&mut self, allow_expunge: bool) {
        let (Some(user), Some(v)) = (&self.user, &self.view) else {
            return;
        };
        let mb = v.mb.clone();
        let (since, claim) = (v.generation(), !v.read_only);
        let look = user.run(move |_| view::look(&mb, since, claim)).await;
        let look = match look {
            Ok(Ok(Some(l))) => l,
            Ok(Ok(None)) => return,
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                // Deleted (or renamed away) by another session: nothing
                // left to show, and the view's numbers mean nothing now.
                tracing::info!(session = %self.id, "selected mailbox is gone");
                self.out.extend_from_slice(
                    b"* BYE Selected mailbox was deleted, have to disconnect.\r\n",
                );
                self.view = None;
                self.gone = true;
                return;
            }
            Ok(Err(e)) => {
                self.i.metrics.store_errors.inc();
                tracing::error!(session = %self.id, error = %e, "mailbox sync failed");
                return;
            }
            Err(_) => return,
        };
        let how = if allow_expunge {
            Expunges::Report
        } else {
            Expunges::Hold
        };
        let Some(v) = &mut self.view else { return };
        v.apply(look, how, self.ext, &mut self.out, write_flags);
    }

    /// Expunges the \Deleted messages (of `set`, UIDs); returns how many.
    async fn expunge_deleted(&mut self, set: Option<SequenceSet>) -> std::io::Result<usize> {
        let (Some(user), Some(v)) = (&self.user, &self.view) else {
            return Ok(0);
        };
        let mb = v.mb.clone();
        let allowed: Option<Vec<u32>> = set.map(|s| {
            resolve(&v.uids, &s, true)
                .into_iter()
                .map(|i| v.uids[i])
                .collect()
        });
        user.run(move |store| -> std::io::Result<usize> {
            let mut g = mb.lock();
            g.sync()?;
            let doomed: Vec<u32> = g
                .messages()
                .iter()
                .filter(|m| m.flags().trashed)
                .filter(|m| {
                    allowed
                        .as_ref()
                        .is_none_or(|a| a.binary_search(&m.uid).is_ok())
                })
                .map(|m| m.uid)
                .collect();
            let gone = expunge_counted(&mut g, &doomed, store.dir())?;
            drop(g);
            if !gone.is_empty() {
                mb.changed();
            }
            Ok(gone.len())
        })
        .await
        .map_err(std::io::Error::other)?
    }

    async fn expunge(&mut self, tag: &str, set: Option<SequenceSet>) -> Flow {
        if self.view.as_ref().is_some_and(|v| v.read_only) {
            return self.no(tag, "[READ-ONLY] Mailbox is read-only.");
        }
        if let Err(e) = self.expunge_deleted(set).await {
            return self.store_failed(tag, "EXPUNGE", &e);
        }
        self.refresh(true).await;
        self.ok(tag, "EXPUNGE completed.")
    }

    async fn store(
        &mut self,
        tag: &str,
        set: &SequenceSet,
        how: StoreHow,
        flags: &[Flag<'static>],
    ) -> Flow {
        let StoreHow {
            kind,
            response,
            uid,
            unchanged_since,
        } = how;
        if unchanged_since.is_some() {
            self.enable_condstore();
        }
        let (Some(user), Some(v)) = (&self.user, &self.view) else {
            return self.bad(tag, "No mailbox selected.");
        };
        if v.read_only {
            return self.no(tag, "[READ-ONLY] Mailbox is read-only.");
        }
        if !uid && out_of_range(set, v.exists()) {
            return self.bad(tag, "Invalid messageset.");
        }
        let mb = v.mb.clone();
        let keywords = flags
            .iter()
            .filter_map(|f| match f {
                Flag::Keyword(k) if !k.as_ref().eq_ignore_ascii_case("$Forwarded") => {
                    Some(k.as_ref().to_owned())
                }
                _ => None,
            })
            .collect::<Vec<_>>();
        let mut mask = 0u32;
        for f in flags {
            mask |= flag_bit(f, &mut |_| Some(0)).unwrap_or(0);
        }
        let targets: Vec<(u32, u32)> = resolve(&v.uids, set, uid)
            .into_iter()
            .map(|i| (i as u32 + 1, v.uids[i]))
            .collect();
        let dir = mb.lock().dir().to_owned();
        let result = user
            .run(move |_| -> std::io::Result<Stored> {
                let mut mask = mask;
                let mut kw = crate::store::keywords::Keywords::load(&dir)?;
                for k in &keywords {
                    match kw.letter_for(k, true)? {
                        Some(letter) => mask |= info_bits(&letter.to_string()),
                        None => return Err(std::io::Error::other("TOOMANYKEYWORDS")),
                    }
                }
                let names = view::keyword_names(&dir)?;
                let mut g = mb.lock();
                let mut done = Vec::with_capacity(targets.len());
                let mut modified = Vec::new();
                for (seq, uid) in targets {
                    let Some(m) = g.get(uid) else { continue };
                    if unchanged_since.is_some_and(|n| m.modseq > n) {
                        modified.push(if how.uid { uid } else { seq });
                        continue;
                    }
                    let old = info_bits(&m.info);
                    let new = match kind {
                        StoreType::Replace => mask,
                        StoreType::Add => old | mask,
                        StoreType::Remove => old & !mask,
                    };
                    if new != old {
                        match g.stage_info(uid, &bits_info(new)) {
                            Ok(_) => {}
                            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                            Err(e) => return Err(e),
                        }
                    }
                    done.push((seq, uid, new, new != old));
                }
                g.commit_modseqs()?;
                let done = done
                    .into_iter()
                    .map(|(seq, uid, bits, changed)| {
                        let modseq = g.get(uid).map_or(1, |m| m.modseq);
                        (seq, uid, bits, modseq, changed)
                    })
                    .collect();
                drop(g);
                mb.changed();
                Ok(Stored {
                    done,
                    names,
                    modified,
                })
            })
            .await;
        let Stored {
            done,
            names,
            modified,
        } = match result {
            Ok(Ok(d)) => d,
            Ok(Err(e)) if e.to_string() == "TOOMANYKEYWORDS" => {
                return self.no(tag, "[LIMIT] Too many keywords in this mailbox.");
            }
            Ok(Err(e)) => return self.store_failed(tag, "STORE", &e),
            Err(e) => return self.store_failed(tag, "STORE", &e),
        };
        let Some(v) = &mut self.view else {
            return self.bad(tag, "No mailbox selected.");
        };
        if v.keywords != names {
            view::flag_lists(&mut self.out, &names);
        }
        v.keywords = names;
        let condstore = self.ext.condstore;
        for (seq, u, bits, modseq, changed) in done {
            v.set_bits(u, bits);
            // RFC 7162 §3.1.3: with CONDSTORE, even .SILENT tells the new MODSEQ.
            let silent = response == StoreResponse::Silent;
            if silent && !(condstore && changed) {
                continue;
            }
            let recent = v.is_recent(u);
            let o = &mut self.out;
            o.extend_from_slice(b"* ");
            respond::number(o, seq as u64);
            o.extend_from_slice(b" FETCH (");
            if !silent {
                write_flags(o, bits, recent, &v.keywords);
                o.push(b' ');
            }
            if uid {
                o.extend_from_slice(b"UID ");
                respond::number(o, u as u64);
                o.push(b' ');
            }
            if condstore {
                o.extend_from_slice(b"MODSEQ (");
                respond::number(o, modseq);
                o.extend_from_slice(b") ");
            }
            o.pop();
            o.extend_from_slice(b")\r\n");
        }
        self.refresh(false).await;
        if modified.is_empty() {
            self.ok(tag, "STORE completed.")
        } else {
            let set = respond::sequence_set(modified.iter().copied());
            self.ok(tag, &format!("[MODIFIED {set}] Conditional STORE failed."))
        }
    }
}

/// How to STORE: the command's words besides the set and the flags.
#[derive(Debug, Clone, Copy)]
struct StoreHow {
    kind: StoreType,
    response: StoreResponse,
    uid: bool,
    /// CONDSTORE's UNCHANGEDSINCE.
    unchanged_since: Option<u64>,
}

/// What STORE did: per message (sequence number, UID, new flag bits,
/// modseq, whether the flags changed); the mailbox's keyword names
/// afterwards; the messages UNCHANGEDSINCE kept (UIDs for UID STORE).
struct Stored {
    done: Vec<(u32, u32, u32, u64, bool)>,
    names: Vec<String>,
    modified: Vec<u32>,
}

/// Expunges `uids` and takes their bytes off the account's quota usage.
pub(super) fn expunge_counted(
    mb: &mut crate::store::Mailbox,
    uids: &[u32],
    account_dir: &std::path::Path,
) -> std::io::Result<Vec<u32>> {
    let bytes: u64 = uids.iter().filter_map(|u| mb.get(*u)).map(|m| m.size).sum();
    let gone = mb.expunge(uids)?;
    if !gone.is_empty() {
        let _ = crate::store::quota::add(account_dir, -(bytes as i64), -(gone.len() as i64));
    }
    Ok(gone)
}

/// `FLAGS (...)` for a message's info bits; keyword letters by the names
/// in `keywords` (from the mailbox's keyword file).
pub(super) fn write_flags(out: &mut Vec<u8>, bits: u32, recent: bool, keywords: &[String]) {
    out.extend_from_slice(b"FLAGS (");
    let system = crate::store::maildir::Flags::parse(&bits_info(bits & 0x3f));
    let start = out.len();
    respond::system_flags(out, &system, recent);
    for (k, name) in keywords.iter().enumerate().take(26) {
        if bits & (1 << (6 + k)) != 0 && !name.is_empty() {
            if out.len() > start {
                out.push(b' ');
            }
            out.extend_from_slice(name.as_bytes());
        }
    }
    out.push(b')');
}
