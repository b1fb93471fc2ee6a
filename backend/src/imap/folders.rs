//! Mailbox management (RFC 3501 §6.3.3–6.3.11): CREATE, DELETE, RENAME,
//! SUBSCRIBE, UNSUBSCRIBE, LIST and LSUB (with RFC 6154 special-use and
//! RFC 3348 children attributes), and APPEND (with UIDPLUS's APPENDUID).
//!
//! Names are Maildir++ folders with `.` as the hierarchy delimiter; the
//! store validates them and answers with typed errors that map onto RFC
//! 5530 response codes.

use imap_codec::imap_types::command::CommandBody;
use imap_codec::imap_types::datetime::DateTime;
use imap_codec::imap_types::extensions::binary::LiteralOrLiteral8;
use imap_codec::imap_types::flag::Flag;
use imap_codec::imap_types::mailbox::{ListMailbox, Mailbox as MailboxArg};

use super::authenticated::mailbox_name;
use super::respond;
use super::selected::flag_bit;
use super::session::{Flow, Session};
use super::view::bits_info;
use crate::store::folders::matches_pattern;
use crate::store::keywords::Keywords;
use crate::store::{FolderInfo, StoreError};

fn list_pattern(reference: &MailboxArg<'_>, pattern: &ListMailbox<'_>) -> (String, String) {
    let reference = match reference {
        MailboxArg::Inbox => "INBOX".to_owned(),
        MailboxArg::Other(o) => String::from_utf8_lossy(o.as_ref()).into_owned(),
    };
    let pattern = match pattern {
        ListMailbox::Token(t) => String::from_utf8_lossy(t.as_ref()).into_owned(),
        ListMailbox::String(s) => String::from_utf8_lossy(s.as_ref()).into_owned(),
    };
    (reference, pattern)
}

fn attributes(out: &mut Vec<u8>, f: &FolderInfo, extra: &[&str]) {
    attributes_with(out, f, extra, true);
}

fn attributes_with(out: &mut Vec<u8>, f: &FolderInfo, extra: &[&str], children: bool) {
    out.push(b'(');
    let mut attrs: Vec<&str> = Vec::new();
    if f.noselect {
        attrs.push("\\Noselect");
    }
    if children {
        attrs.push(if f.has_children {
            "\\HasChildren"
        } else {
            "\\HasNoChildren"
        });
    }
    if let Some(s) = f.special_use {
        attrs.push(s);
    }
    attrs.extend_from_slice(extra);
    out.extend_from_slice(attrs.join(" ").as_bytes());
    out.push(b')');
}

impl Session<'_> {
    /// Folder commands and APPEND; anything left is not a command we know.
    pub(super) async fn folders(&mut self, tag: &str, body: CommandBody<'static>) -> Flow {
        match body {
            CommandBody::Create { mailbox } => {
                self.folder_op(tag, &mailbox, "CREATE", |store, name| {
                    // RFC 3501 §6.3.3: a trailing delimiter only declares
                    // that children will follow; the name is without it.
                    let name = name.strip_suffix('.').unwrap_or(name);
                    store.create_folder(name).map(|_| ())
                })
                .await
            }
            CommandBody::Delete { mailbox } => {
                let flow = self
                    .folder_op(tag, &mailbox, "DELETE", |store, name| {
                        store.delete_folder(name)
                    })
                    .await;
                self.forget(&mailbox);
                flow
            }
            CommandBody::Rename { from, to } => {
                let Ok(to) = mailbox_name(&to) else {
                    return self.no(tag, "[CANNOT] Invalid mailbox name.");
                };
                let flow = self
                    .folder_op(tag, &from, "RENAME", move |store, name| {
                        store.rename_folder(name, &to)
                    })
                    .await;
                self.forget(&from);
                flow
            }
            CommandBody::Subscribe { mailbox } => {
                self.folder_op(tag, &mailbox, "SUBSCRIBE", |store, name| {
                    store.subscribe(name)
                })
                .await
            }
            CommandBody::Unsubscribe { mailbox } => {
                self.folder_op(tag, &mailbox, "UNSUBSCRIBE", |store, name| {
                    store.unsubscribe(name).map(|_| ())
                })
                .await
            }
            CommandBody::List {
                reference,
                mailbox_wildcard,
            } => self.list(tag, &reference, &mailbox_wildcard, false).await,
            CommandBody::Lsub {
                reference,
                mailbox_wildcard,
            } => self.list(tag, &reference, &mailbox_wildcard, true).await,
            CommandBody::Append {
                mailbox,
                flags,
                date,
                message,
            } => self.append(tag, &mailbox, &flags, date, message).await,
            other => self.bad(tag, &format!("Unsupported command {}.", other.name())),
        }
    }

    /// Handles a selected mailbox that was deleted or renamed away.
    fn forget(&mut self, mailbox: &MailboxArg<'_>) {
        if let (Some(user), Ok(name)) = (&self.user, mailbox_name(mailbox)) {
            user.forget_mailbox(&name);
        }
    }

    /// Runs a store operation on a named mailbox and answers OK or the
    /// store's RFC 5530 code.
    async fn folder_op(
        &mut self,
        tag: &str,
        mailbox: &MailboxArg<'_>,
        what: &str,
        op: impl FnOnce(&crate::store::AccountStore, &str) -> Result<(), StoreError> + Send + 'static,
    ) -> Flow {
        let name = match mailbox_name(mailbox) {
            Ok(n) => n,
            Err(why) => return self.no(tag, &format!("[CANNOT] {why}")),
        };
        let Some(user) = &self.user else {
            return self.bad(tag, "Log in first.");
        };
        let result = user.run(move |store| op(store, &name)).await;
        match result {
            Ok(Ok(())) => self.ok(tag, &format!("{what} completed.")),
            Ok(Err(e @ StoreError::Io { .. })) => self.store_failed(tag, what, &e),
            Ok(Err(e)) => {
                let text = format!("[{}] {}.", e.imap_code(), capitalised(&e.to_string()));
                self.no(tag, &text)
            }
            Err(e) => self.store_failed(tag, what, &e),
        }
    }

    async fn list(
        &mut self,
        tag: &str,
        reference: &MailboxArg<'_>,
        pattern: &ListMailbox<'_>,
        subscribed: bool,
    ) -> Flow {
        let (reference, pattern) = list_pattern(reference, pattern);
        let cmd = if subscribed { "LSUB" } else { "LIST" };
        let opts = self.extras.list.take();
        let patterns = match &opts {
            Some(o) if !o.patterns.is_empty() => o.patterns.clone(),
            _ => vec![pattern.clone()],
        };
        if pattern.is_empty() && patterns.len() == 1 && !subscribed {
            // RFC 3501 §6.3.8: the delimiter and the root of the reference.
            self.out
                .extend_from_slice(b"* LIST (\\Noselect) \".\" \"\"\r\n");
            return self.ok(tag, "LIST completed.");
        }
        let fulls: Vec<String> = patterns
            .into_iter()
            .map(|pattern| {
                if reference.is_empty() || pattern.starts_with('.') {
                    pattern
                } else if reference.ends_with('.') {
                    format!("{reference}{pattern}")
                } else {
                    format!("{reference}.{pattern}")
                }
            })
            .collect();
        let matches = |name: &str| fulls.iter().any(|f| matches_pattern(f, name, '.'));
        // A subscribed child another pattern lists by itself spares its
        // parent the CHILDINFO (RECURSIVEMATCH with several patterns).
        let listed_apart = |child: &str, parent: &str| {
            fulls
                .iter()
                .any(|f| matches_pattern(f, child, '.') && !matches_pattern(f, parent, '.'))
        };
        let Some(user) = &self.user else {
            return self.bad(tag, "Log in first.");
        };
        let r = user
            .run(
                move |store| -> Result<(Vec<FolderInfo>, Vec<String>), StoreError> {
                    let all = store.list()?;
                    let subs = if subscribed {
                        store.subscriptions()?
                    } else {
                        Vec::new()
                    };
                    Ok((all, subs))
                },
            )
            .await;
        let (all, subs) = match r {
            Ok(Ok(x)) => x,
            Ok(Err(e)) => return self.store_failed(tag, cmd, &e),
            Err(e) => return self.store_failed(tag, cmd, &e),
        };
        let mut line = Vec::new();
        if subscribed {
            let mut shown: Vec<&str> = Vec::new();
            for name in &subs {
                if matches(name) {
                    let info = all.iter().find(|f| &f.name == name);
                    line.extend_from_slice(b"* LSUB ");
                    match info {
                        Some(f) => attributes(&mut line, f, &[]),
                        None => line.extend_from_slice(b"(\\Noselect)"),
                    }
                    line.extend_from_slice(b" \".\" ");
                    respond::mailbox(&mut line, name);
                    line.extend_from_slice(b"\r\n");
                    shown.push(name);
                    continue;
                }
                // RFC 3501 §6.3.9: with `%`, an unsubscribed parent of a
                // subscribed mailbox that matches is listed \Noselect.
                let mut at = name.len();
                while let Some(dot) = name[..at].rfind('.') {
                    let parent = &name[..dot];
                    at = dot;
                    if matches(parent)
                        && !subs.iter().any(|s| s == parent)
                        && !shown.contains(&parent)
                    {
                        line.extend_from_slice(b"* LSUB (\\Noselect) \".\" ");
                        respond::mailbox(&mut line, parent);
                        line.extend_from_slice(b"\r\n");
                        shown.push(parent);
                        break;
                    }
                }
            }
            self.out.extend_from_slice(&line);
            return self.ok(tag, "LSUB completed.");
        }
        // Plain LIST always says \HasChildren/\HasNoChildren (CHILDREN);
        // an extended one only when asked to.
        let children = opts.as_ref().is_none_or(|o| o.return_children);
        let o = opts.unwrap_or_default();
        let want_subs = o.subscribed_only || o.return_subscribed;
        let subs = if want_subs {
            match self.subscriptions(tag).await {
                Ok(s) => s,
                Err(flow) => return flow,
            }
        } else {
            subs
        };
        let mut status_for = Vec::new();
        for f in all.iter().filter(|f| matches(&f.name)) {
            let is_sub = want_subs && subs.contains(&f.name);
            // RFC 5258 §3: with RECURSIVEMATCH, an unsubscribed mailbox
            // with a subscribed descendant the patterns do not list
            // themselves is listed with CHILDINFO.
            let below = format!("{}.", f.name);
            let childinfo = o.recursive && !is_sub && {
                let mut desc = subs.iter().filter(|s| s.starts_with(&below)).peekable();
                desc.peek().is_some() && !desc.any(|s| listed_apart(s, &f.name))
            };
            if (o.subscribed_only && !is_sub && !childinfo)
                || (o.special_use_only && f.special_use.is_none())
            {
                continue;
            }
            line.extend_from_slice(b"* LIST ");
            attributes_with(
                &mut line,
                f,
                if is_sub { &["\\Subscribed"] } else { &[] },
                children,
            );
            line.extend_from_slice(b" \".\" ");
            respond::mailbox(&mut line, &f.name);
            if childinfo {
                line.extend_from_slice(b" (\"CHILDINFO\" (\"SUBSCRIBED\"))");
            }
            line.extend_from_slice(b"\r\n");
            if !o.status.is_empty() && !f.noselect {
                // RFC 5819: each STATUS right after its LIST line.
                self.out.extend_from_slice(&line);
                line.clear();
                status_for.push(f.name.clone());
                if let Ok(s) = self.status_line(&f.name, &o.status).await {
                    self.out.extend_from_slice(&s);
                }
            }
        }
        if o.subscribed_only {
            // Subscribed names that no longer exist (RFC 5258 §3.1).
            for name in subs.iter().filter(|n| matches(n)) {
                if !all.iter().any(|f| &f.name == name) {
                    line.extend_from_slice(b"* LIST (\\NonExistent \\Subscribed) \".\" ");
                    respond::mailbox(&mut line, name);
                    line.extend_from_slice(b"\r\n");
                }
            }
        }
        if o.recursive {
            // Parents that are no mailbox of their own but hold subscribed
            // ones the patterns do not list (RFC 5258 §3, CHILDINFO).
            let mut told: Vec<&str> = Vec::new();
            for s in &subs {
                let mut at = s.len();
                while let Some(dot) = s[..at].rfind('.') {
                    at = dot;
                    let parent = &s[..dot];
                    if told.contains(&parent)
                        || all.iter().any(|f| f.name == parent)
                        || subs.iter().any(|x| x == parent)
                        || !matches(parent)
                    {
                        continue;
                    }
                    let below = format!("{parent}.");
                    if subs
                        .iter()
                        .any(|x| x.starts_with(&below) && listed_apart(x, parent))
                    {
                        continue;
                    }
                    told.push(parent);
                    line.extend_from_slice(b"* LIST () \".\" ");
                    respond::mailbox(&mut line, parent);
                    line.extend_from_slice(b" (\"CHILDINFO\" (\"SUBSCRIBED\"))\r\n");
                }
            }
        }
        self.out.extend_from_slice(&line);
        self.ok(tag, &format!("{cmd} completed."))
    }

    async fn subscriptions(&mut self, tag: &str) -> Result<Vec<String>, Flow> {
        let Some(user) = &self.user else {
            return Err(Flow::Close);
        };
        match user.run(|store| store.subscriptions()).await {
            Ok(Ok(s)) => Ok(s),
            Ok(Err(e)) => Err(self.store_failed(tag, "LIST", &e)),
            Err(e) => Err(self.store_failed(tag, "LIST", &e)),
        }
    }

    async fn append(
        &mut self,
        tag: &str,
        mailbox: &MailboxArg<'_>,
        flags: &[Flag<'static>],
        date: Option<DateTime>,
        message: LiteralOrLiteral8<'static>,
    ) -> Flow {
        let name = match mailbox_name(mailbox) {
            Ok(n) => n,
            Err(why) => return self.no(tag, &format!("[CANNOT] {why}")),
        };
        let body: Vec<u8> = match message {
            LiteralOrLiteral8::Literal(l) => l.data().to_vec(),
            LiteralOrLiteral8::Literal8(l) => l.data.to_vec(),
        };
        // Raw `binary` parts would not survive the store's LF text form:
        // they are kept as base64 and BINARY[] gives their bytes back.
        let body = super::message::Parsed::new(&body)
            .encode_binary_parts()
            .unwrap_or(body);
        let mb = match self.open_mailbox(&name).await {
            Ok(mb) => mb,
            Err(crate::accounts::OpenError::Store(StoreError::NoSuchMailbox(_))) => {
                return self.no(tag, "[TRYCREATE] Mailbox doesn't exist.");
            }
            Err(e) => return self.open_failed(tag, e),
        };
        let Some(user) = &self.user else {
            return self.bad(tag, "Log in first.");
        };
        let limit = user.account.quota;
        let when = date.map(|d| {
            let secs = d.as_ref().timestamp();
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs.max(0) as u64)
        });
        let keywords: Vec<String> = flags
            .iter()
            .filter_map(|f| match f {
                Flag::Keyword(k) if !k.as_ref().eq_ignore_ascii_case("$Forwarded") => {
                    Some(k.as_ref().to_owned())
                }
                _ => None,
            })
            .collect();
        let mut mask = 0;
        for f in flags {
            mask |= flag_bit(f, &mut |_| Some(0)).unwrap_or(0);
        }
        let r = user
            .run(
                move |store| -> Result<Result<(u32, u32), &'static str>, StoreError> {
                    if limit > 0 {
                        let used = store.usage(limit)?;
                        if used.bytes + body.len() as u64 > limit {
                            return Ok(Err("[OVERQUOTA] Quota exceeded."));
                        }
                    }
                    let dir = mb.lock().dir().to_owned();
                    let io = |e| StoreError::io(&dir, e);
                    let mut kw = Keywords::load(&dir).map_err(io)?;
                    let mut mask = mask;
                    for k in &keywords {
                        match kw.letter_for(k, true).map_err(io)? {
                            Some(l) => mask |= super::view::info_bits(&l.to_string()),
                            None => return Ok(Err("[LIMIT] Too many keywords in this mailbox.")),
                        }
                    }
                    let mut g = mb.lock();
                    let uid = g.append(&body, &bits_info(mask), when).map_err(io)?;
                    let validity = g.uid_validity();
                    drop(g);
                    mb.add_recent([uid]);
                    mb.changed();
                    Ok(Ok((validity, uid)))
                },
            )
            .await;
        match r {
            Ok(Ok(Ok((validity, uid)))) => {
                self.refresh(true).await;
                self.ok(
                    tag,
                    &format!("[APPENDUID {validity} {uid}] Append completed."),
                )
            }
            Ok(Ok(Err(text))) => self.no(tag, text),
            Ok(Err(e)) => self.store_failed(tag, "APPEND", &e),
            Err(e) => self.store_failed(tag, "APPEND", &e),
        }
    }
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}
