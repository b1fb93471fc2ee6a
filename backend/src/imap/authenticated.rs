//! The authenticated state (RFC 3501 §6.3): selecting a mailbox, STATUS,
//! NAMESPACE (RFC 2342), ENABLE (RFC 5161), QUOTA (RFC 9208).

use std::sync::Arc;

use imap_codec::imap_types::command::CommandBody;
use imap_codec::imap_types::mailbox::Mailbox as MailboxArg;
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
            CommandBody::Select { mailbox, .. } => self.select(tag, &mailbox, false).await,
            CommandBody::Examine { mailbox, .. } => self.select(tag, &mailbox, true).await,
            CommandBody::Status {
                mailbox,
                item_names,
            } => self.status(tag, &mailbox, &item_names).await,
            CommandBody::Namespace => {
                respond::untagged(&mut self.out, "NAMESPACE ((\"\" \".\")) NIL NIL");
                self.ok(tag, "NAMESPACE completed.")
            }
            CommandBody::Enable { .. } => {
                // Nothing that changes responses is supported yet; RFC 5161
                // says to list only what was enabled.
                respond::untagged(&mut self.out, "ENABLED");
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

    /// Opens a mailbox handle, telling "no such mailbox" apart.
    pub(super) async fn open_mailbox(&self, name: &str) -> Result<Arc<OpenMailbox>, OpenError> {
        let Some(user) = &self.user else {
            return Err(OpenError::Store(StoreError::NoSuchMailbox(name.to_owned())));
        };
        let n = name.to_owned();
        let exists = user
            .run(move |store| store.mailbox_dir(&n).map(|d| d.join("cur").is_dir()))
            .await??;
        if !exists {
            return Err(OpenError::Store(StoreError::NoSuchMailbox(name.to_owned())));
        }
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

    async fn select(&mut self, tag: &str, mailbox: &MailboxArg<'_>, read_only: bool) -> Flow {
        // RFC 3501 §6.3.1: a failed SELECT leaves no mailbox selected.
        self.view = None;
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
        let look = user
            .run(move |_| view::look(&m, 0, !read_only))
            .await
            .map_err(std::io::Error::other)
            .and_then(|r| r);
        let look = match look {
            Ok(Some(l)) => l,
            Ok(None) => return self.store_failed(tag, "SELECT", &"no snapshot"),
            Err(e) => return self.store_failed(tag, "SELECT", &e),
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
            .run(move |_| -> std::io::Result<[u64; 6]> {
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
                ])
            })
            .await;
        let [messages, recent, uidnext, uidvalidity, unseen, deleted] = match counts {
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
