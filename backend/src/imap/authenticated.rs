//! The authenticated state (RFC 3501 §6.3): selecting a mailbox, STATUS,
//! NAMESPACE (RFC 2342), ENABLE (RFC 5161), QUOTA (RFC 9208); the
//! CONDSTORE and QRESYNC parts of these (RFC 7162): ENABLE of both, SELECT
//! (CONDSTORE), SELECT (QRESYNC ...) with its `VANISHED (EARLIER)` and
//! changed flags, `[CLOSED]`, `[HIGHESTMODSEQ]` and STATUS HIGHESTMODSEQ.

use std::sync::Arc;

use imap_codec::imap_types::command::{CommandBody, SelectParameter};
use imap_codec::imap_types::mailbox::Mailbox as MailboxArg;
use imap_codec::imap_types::sequence::SequenceSet;
use imap_codec::imap_types::status::StatusDataItemName;

use super::respond;
use super::session::{Flow, Session};
use super::view::{self, SEEN, View};
use crate::accounts::{OpenError, OpenMailbox};
use crate::store::StoreError;

/// A mailbox argument as the store names it: `INBOX` in any case is INBOX.
pub(super) fn mailbox_name(m: &MailboxArg<'_>) -> Result<String, &'static str> {
    match m {
        MailboxArg::Inbox => Ok("INBOX".to_owned()),
        MailboxArg::Other(o) => {
            let name = std::str::from_utf8(o.as_ref()).map_err(|_| "Mailbox name is not UTF-8.")?;
            if name.eq_ignore_ascii_case("INBOX") {
                Ok("INBOX".to_owned())
            } else {
                Ok(name.to_owned())
            }
        }
    }
}

impl Session<'_> {
    pub(super) async fn authenticated(&mut self, tag: &str, body: CommandBody<'static>) -> Flow {
        match body {
            CommandBody::Select {
                mailbox,
                parameters,
            } => self.select(tag, &mailbox, false, &parameters).await,
            CommandBody::Examine {
                mailbox,
                parameters,
            } => self.select(tag, &mailbox, true, &parameters).await,
            CommandBody::Status {
                mailbox,
                item_names,
            } => self.status(tag, &mailbox, &item_names).await,
            CommandBody::Namespace => {
                respond::untagged(&mut self.out, "NAMESPACE ((\"\" \".\")) NIL NIL");
                self.ok(tag, "NAMESPACE completed.")
            }
            CommandBody::Enable { capabilities } => {
                // RFC 5161: list only what this command enabled.
                let mut line = String::from("ENABLED");
                for c in capabilities.as_ref() {
                    let name = c.to_string().to_ascii_uppercase();
                    let was = self.ext;
                    match name.as_str() {
                        "CONDSTORE" => self.enable_condstore(),
                        "QRESYNC" => {
                            self.enable_condstore();
                            self.ext.qresync = true;
                        }
                        _ => continue,
                    }
                    if was != self.ext {
                        line.push(' ');
                        line.push_str(&name);
                    }
                }
                respond::untagged(&mut self.out, &line);
                self.ok(tag, "ENABLE completed.")
            }
            CommandBody::GetQuotaRoot { mailbox } => {
                let Ok(name) = mailbox_name(&mailbox) else {
                    return self.bad(tag, "Invalid mailbox name.");
                };
                let mut line = Vec::from(&b"* QUOTAROOT "[..]);
                respond::mailbox(&mut line, &name);
                line.extend_from_slice(b" \"\"\r\n");
                self.out.extend_from_slice(&line);
                self.quota(tag).await
            }
            CommandBody::GetQuota { root } => {
                if !root.as_ref().is_empty() {
                    return self.no(tag, "[NONEXISTENT] No such quota root.");
                }
                self.quota(tag).await
            }
            CommandBody::SetQuota { .. } => {
                self.no(tag, "[NOPERM] Quotas are set by the operator.")
            }
            CommandBody::Check
            | CommandBody::Close
            | CommandBody::Unselect
            | CommandBody::Expunge
            | CommandBody::ExpungeUid { .. }
            | CommandBody::Search { .. }
            | CommandBody::Sort { .. }
            | CommandBody::Thread { .. }
            | CommandBody::Fetch { .. }
            | CommandBody::Store { .. }
            | CommandBody::Copy { .. }
            | CommandBody::Move { .. } => self.bad(tag, "No mailbox selected."),
            other => self.folders(tag, other).await,
        }
    }

    /// The node's handle of a mailbox; a cached one costs no I/O, and the
    /// store tells a mailbox that does not exist apart.
    pub(super) async fn open_mailbox(&self, name: &str) -> Result<Arc<OpenMailbox>, OpenError> {
        let Some(user) = &self.user else {
            return Err(OpenError::Store(StoreError::NoSuchMailbox(name.to_owned())));
        };
        user.mailbox(name).await
    }

    /// Answers a failed open: NONEXISTENT, bad name, or a server problem.
    pub(super) fn open_failed(&mut self, tag: &str, e: OpenError) -> Flow {
        match e {
            OpenError::Store(StoreError::NoSuchMailbox(_)) => {
                self.no(tag, "[NONEXISTENT] Mailbox doesn't exist.")
            }
            OpenError::Store(StoreError::Path(p)) => {
                self.no(tag, &format!("[CANNOT] Invalid mailbox name: {p}"))
            }
            e => self.store_failed(tag, "opening a mailbox", &e),
        }
    }

    async fn select(
        &mut self,
        tag: &str,
        mailbox: &MailboxArg<'_>,
        read_only: bool,
        parameters: &[SelectParameter],
    ) -> Flow {
        let mut resync = None;
        for p in parameters {
            match p {
                SelectParameter::CondStore => self.enable_condstore_quietly(),
                SelectParameter::QResync {
                    uid_validity,
                    mod_sequence_value,
                    known_uids,
                    ..
                } => {
                    if !self.ext.qresync {
                        return self.bad(tag, "QRESYNC is not enabled.");
                    }
                    resync = Some((
                        uid_validity.get(),
                        mod_sequence_value.get(),
                        known_uids.clone(),
                    ));
                }
            }
        }
        // RFC 3501 §6.3.1: a failed SELECT leaves no mailbox selected;
        // RFC 7162 §3.2.11: a QRESYNC client is told that one closed.
        if self.view.take().is_some() && self.ext.qresync {
            respond::untagged(&mut self.out, "OK [CLOSED] Previous mailbox closed.");
        }
        let name = match mailbox_name(mailbox) {
            Ok(n) => n,
            Err(why) => return self.no(tag, why),
        };
        let mb = match self.open_mailbox(&name).await {
            Ok(mb) => mb,
            Err(e) => return self.open_failed(tag, e),
        };
        let Some(user) = &self.user else {
            return self.bad(tag, "Log in first.");
        };
        let m = mb.clone();
        let r2 = resync.clone();
        let look = user
            .run(move |_| -> std::io::Result<_> {
                let look = view::look(&m, 0, !read_only)?;
                // QRESYNC with the right UIDVALIDITY: what vanished since.
                let gone = match (&look, r2) {
                    (Some(l), Some((validity, modseq, known))) if l.uid_validity == validity => {
                        Some(super::condstore::vanished(
                            &m.lock(),
                            modseq,
                            known.as_ref(),
                        ))
                    }
                    _ => None,
                };
                Ok(look.map(|l| (l, gone)))
            })
            .await
            .map_err(std::io::Error::other)
            .and_then(|r| r);
        let (look, gone) = match look {
            Ok(Some(l)) => l,
            Ok(None) => return self.store_failed(tag, "SELECT", &"no snapshot"),
            Err(e) => return self.store_failed(tag, "SELECT", &e),
        };
        let changed = match (&gone, &resync) {
            (Some(_), Some((_, modseq, known))) => changed_since(&look, *modseq, known.as_ref()),
            _ => Vec::new(),
        };
        let v = View::new(mb, read_only, look);
        let o = &mut self.out;
        view::flag_lists(o, &v.keywords);
        respond::untagged(o, &format!("{} EXISTS", v.exists()));
        respond::untagged(o, &format!("{} RECENT", v.recent.len()));
        if let Some(i) = v.bits.iter().position(|b| b & SEEN == 0) {
            respond::untagged(o, &format!("OK [UNSEEN {}] First unseen.", i + 1));
        }
        respond::untagged(
            o,
            &format!("OK [UIDVALIDITY {}] UIDs valid", v.uid_validity),
        );
        respond::untagged(
            o,
            &format!("OK [UIDNEXT {}] Predicted next UID", v.uid_next),
        );
        if self.ext.condstore {
            respond::untagged(
                o,
                &format!("OK [HIGHESTMODSEQ {}] Highest", v.highest_modseq),
            );
        }
        if let Some(gone) = &gone {
            super::condstore::write_vanished(o, gone, true);
        }
        for (seq, uid, bits, modseq) in changed {
            o.extend_from_slice(b"* ");
            respond::number(o, seq as u64);
            o.extend_from_slice(b" FETCH (UID ");
            respond::number(o, uid as u64);
            o.push(b' ');
            super::selected::write_flags(o, bits, v.is_recent(uid), &v.keywords);
            o.extend_from_slice(b" MODSEQ (");
            respond::number(o, modseq);
            o.extend_from_slice(b"))\r\n");
        }
        self.view = Some(v);
        if read_only {
            self.ok(tag, "[READ-ONLY] Examine completed.")
        } else {
            self.ok(tag, "[READ-WRITE] Select completed.")
        }
    }

    async fn status(
        &mut self,
        tag: &str,
        mailbox: &MailboxArg<'_>,
        items: &[StatusDataItemName],
    ) -> Flow {
        let name = match mailbox_name(mailbox) {
            Ok(n) => n,
            Err(why) => return self.no(tag, why),
        };
        if items
            .iter()
            .any(|i| matches!(i, StatusDataItemName::HighestModSeq))
        {
            self.enable_condstore();
        }
        match self.status_line(&name, items).await {
            Ok(line) => {
                self.out.extend_from_slice(&line);
                self.ok(tag, "STATUS completed.")
            }
            Err(e) => self.open_failed(tag, e),
        }
    }

    /// The `* STATUS` line of a mailbox (also for LIST-STATUS).
    pub(super) async fn status_line(
        &mut self,
        name: &str,
        items: &[StatusDataItemName],
    ) -> Result<Vec<u8>, OpenError> {
        let mb = self.open_mailbox(name).await?;
        let Some(user) = &self.user else {
            return Err(OpenError::Store(StoreError::NoSuchMailbox(name.to_owned())));
        };
        let counts = user
            .run(move |_| -> std::io::Result<[u64; 7]> {
                mb.sync()?;
                let g = mb.lock();
                let msgs = g.messages();
                let unseen = msgs.iter().filter(|m| !m.flags().seen).count();
                let recent = msgs.iter().filter(|m| m.in_new).count() + mb.unclaimed_recent();
                let deleted = msgs.iter().filter(|m| m.flags().trashed).count();
                Ok([
                    msgs.len() as u64,
                    recent as u64,
                    g.next_uid() as u64,
                    g.uid_validity() as u64,
                    unseen as u64,
                    deleted as u64,
                    g.highest_modseq(),
                ])
            })
            .await;
        let [
            messages,
            recent,
            uidnext,
            uidvalidity,
            unseen,
            deleted,
            highest,
        ] = match counts {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                return Err(OpenError::Store(StoreError::io(
                    std::path::Path::new(name),
                    e,
                )));
            }
            Err(e) => return Err(OpenError::Blocking(e)),
        };
        let mut line = Vec::from(&b"* STATUS "[..]);
        respond::mailbox(&mut line, name);
        line.extend_from_slice(b" (");
        let mut first = true;
        for item in items {
            let (word, n) = match item {
                StatusDataItemName::Messages => ("MESSAGES", messages),
                StatusDataItemName::Recent => ("RECENT", recent),
                StatusDataItemName::UidNext => ("UIDNEXT", uidnext),
                StatusDataItemName::UidValidity => ("UIDVALIDITY", uidvalidity),
                StatusDataItemName::Unseen => ("UNSEEN", unseen),
                StatusDataItemName::Deleted => ("DELETED", deleted),
                StatusDataItemName::HighestModSeq => ("HIGHESTMODSEQ", highest),
                _ => continue,
            };
            if !first {
                line.push(b' ');
            }
            first = false;
            line.extend_from_slice(word.as_bytes());
            line.push(b' ');
            respond::number(&mut line, n);
        }
        line.extend_from_slice(b")\r\n");
        Ok(line)
    }

    /// `* QUOTA "" (STORAGE used limit)` in KiB (RFC 9208 §5.1).
    async fn quota(&mut self, tag: &str) -> Flow {
        let Some(user) = &self.user else {
            return self.bad(tag, "Log in first.");
        };
        let limit = user.account.quota;
        let usage = match user.run(move |store| store.usage(limit)).await {
            Ok(Ok(u)) => u,
            Ok(Err(e)) => return self.store_failed(tag, "GETQUOTA", &e),
            Err(e) => return self.store_failed(tag, "GETQUOTA", &e),
        };
        if limit == 0 {
            respond::untagged(&mut self.out, "QUOTA \"\" ()");
        } else {
            respond::untagged(
                &mut self.out,
                &format!(
                    "QUOTA \"\" (STORAGE {} {})",
                    usage.bytes.div_ceil(1024),
                    limit / 1024
                ),
            );
        }
        self.ok(tag, "GETQUOTA completed.")
    }
}

/// The messages of a fresh look changed after `modseq` (and among `known`
/// UIDs, if given), for QRESYNC: (sequence number, UID, flag bits, modseq).
fn changed_since(
    look: &view::Look,
    modseq: u64,
    known: Option<&SequenceSet>,
) -> Vec<(u32, u32, u32, u64)> {
    let known: Option<Vec<u32>> = known.map(|k| {
        let uids: Vec<u32> = look.messages.iter().map(|m| m.uid).collect();
        super::selected::resolve(&uids, k, true)
            .into_iter()
            .map(|i| uids[i])
            .collect()
    });
    look.messages
        .iter()
        .enumerate()
        .filter(|(_, m)| m.modseq > modseq)
        .filter(|(_, m)| {
            known
                .as_ref()
                .is_none_or(|k| k.binary_search(&m.uid).is_ok())
        })
        .map(|(i, m)| (i as u32 + 1, m.uid, m.bits, m.modseq))
        .collect()
}
