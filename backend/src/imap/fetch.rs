//! FETCH and UID FETCH (RFC 3501 §6.4.5, §7.4.2).
//!
//! The items are turned into an owned plan once; the messages are then
//! fetched in batches on the blocking pool (each batch reads and parses its
//! files and writes its responses into one buffer), and each batch is sent
//! before the next is read, so a bulk FETCH streams in bounded memory.
//! Items that need no file (FLAGS, UID, RFC822.SIZE, INTERNALDATE) never
//! open one. A body fetch without PEEK sets \Seen and reports the new FLAGS
//! in the same response.
//!
//! CONDSTORE and QRESYNC (RFC 7162 §3.1.4, §3.2.6): the MODSEQ item, the
//! CHANGEDSINCE modifier (only messages changed after it, with their
//! MODSEQ) and, for UID FETCH, VANISHED (the set's UIDs expunged after it,
//! as `VANISHED (EARLIER)` first). With CONDSTORE enabled, every FETCH
//! response that carries FLAGS carries MODSEQ too.

use std::sync::Arc;

use imap_codec::imap_types::IntoStatic;
use imap_codec::imap_types::command::FetchModifier;
use imap_codec::imap_types::core::AString;
use imap_codec::imap_types::fetch::{
    MacroOrMessageDataItemNames, MessageDataItemName, Section as SectionArg,
};
use imap_codec::imap_types::sequence::SequenceSet;

use super::message::{self, Parsed, Section, SectionText};
use super::respond;
use super::selected::{out_of_range, resolve, write_flags};
use super::session::{Flow, Io, Session, Transport};
use super::view::{SEEN, bits_info};
use crate::accounts::OpenMailbox;

/// Messages per blocking job.
const BATCH: usize = 256;
/// Bytes of responses per blocking job before it returns early.
const BATCH_BYTES: usize = 1 << 20;

/// One item of a FETCH, owned.
#[derive(Debug, Clone)]
enum Item {
    Flags,
    Uid,
    ModSeq,
    InternalDate,
    Size,
    Envelope,
    Body,
    BodyStructure,
    /// `BODY[...]`, `BODY.PEEK[...]`, `RFC822`, `RFC822.HEADER`, `RFC822.TEXT`.
    Section {
        /// What goes before the data in the response, e.g. `BODY[HEADER]`.
        label: String,
        section: Section,
        partial: Option<(u32, u32)>,
        /// Sets \Seen (not PEEK, not RFC822.HEADER).
        seen: bool,
    },
    /// `BINARY[part]` and `BINARY.SIZE[part]` (RFC 3516).
    Binary {
        part: Vec<u32>,
        partial: Option<(u32, u32)>,
        seen: bool,
        size_only: bool,
    },
}

/// The message text of the error that becomes `NO [UNKNOWN-CTE]`.
const UNKNOWN_CTE: &str = "unknown content transfer encoding";

impl Item {
    fn needs_file(&self) -> bool {
        matches!(
            self,
            Item::Envelope
                | Item::Body
                | Item::BodyStructure
                | Item::Section { .. }
                | Item::Binary { .. }
        )
    }
}

fn section_spec(s: &Option<SectionArg<'_>>) -> (Section, String) {
    let names = |v: &[AString<'_>]| -> Vec<String> {
        v.iter()
            .map(|a| String::from_utf8_lossy(a.as_ref()).to_ascii_uppercase())
            .collect()
    };
    let part_of = |p: &Option<imap_codec::imap_types::fetch::Part>| -> Vec<u32> {
        p.as_ref()
            .map(|p| p.0.as_ref().iter().map(|n| n.get()).collect())
            .unwrap_or_default()
    };
    let (part, text) = match s {
        None => (Vec::new(), SectionText::Full),
        Some(SectionArg::Part(p)) => (
            p.0.as_ref().iter().map(|n| n.get()).collect(),
            SectionText::Full,
        ),
        Some(SectionArg::Header(p)) => (part_of(p), SectionText::Header),
        Some(SectionArg::HeaderFields(p, f)) => {
            (part_of(p), SectionText::HeaderFields(names(f.as_ref())))
        }
        Some(SectionArg::HeaderFieldsNot(p, f)) => {
            (part_of(p), SectionText::HeaderFieldsNot(names(f.as_ref())))
        }
        Some(SectionArg::Text(p)) => (part_of(p), SectionText::Text),
        Some(SectionArg::Mime(p)) => (
            p.0.as_ref().iter().map(|n| n.get()).collect(),
            SectionText::Mime,
        ),
    };
    let mut label = part
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(".");
    let suffix = match &text {
        SectionText::Full => String::new(),
        SectionText::Header => "HEADER".into(),
        SectionText::Text => "TEXT".into(),
        SectionText::Mime => "MIME".into(),
        SectionText::HeaderFields(f) => format!("HEADER.FIELDS ({})", f.join(" ")),
        SectionText::HeaderFieldsNot(f) => format!("HEADER.FIELDS.NOT ({})", f.join(" ")),
    };
    if !label.is_empty() && !suffix.is_empty() {
        label.push('.');
    }
    label.push_str(&suffix);
    (Section { part, text }, label)
}

fn plan(items: MacroOrMessageDataItemNames<'_>, uid: bool) -> Vec<Item> {
    let names = match items {
        MacroOrMessageDataItemNames::Macro(m) => {
            m.expand().into_iter().map(|i| i.into_static()).collect()
        }
        MacroOrMessageDataItemNames::MessageDataItemNames(v) => v,
    };
    let mut plan = Vec::with_capacity(names.len() + 1);
    // RFC 3501 §6.4.8: UID FETCH always includes UID.
    if uid {
        plan.push(Item::Uid);
    }
    for n in names {
        let item = match n {
            MessageDataItemName::Flags => Item::Flags,
            MessageDataItemName::Uid => Item::Uid,
            MessageDataItemName::ModSeq => Item::ModSeq,
            MessageDataItemName::InternalDate => Item::InternalDate,
            MessageDataItemName::Rfc822Size => Item::Size,
            MessageDataItemName::Envelope => Item::Envelope,
            MessageDataItemName::Body => Item::Body,
            MessageDataItemName::BodyStructure => Item::BodyStructure,
            MessageDataItemName::BodyExt {
                section,
                partial,
                peek,
            } => {
                let (section, inner) = section_spec(&section);
                Item::Section {
                    label: format!("BODY[{inner}]"),
                    section,
                    partial: partial.map(|(o, n)| (o, n.get())),
                    seen: !peek,
                }
            }
            MessageDataItemName::Rfc822 => Item::Section {
                label: "RFC822".into(),
                section: Section {
                    part: vec![],
                    text: SectionText::Full,
                },
                partial: None,
                seen: true,
            },
            MessageDataItemName::Rfc822Header => Item::Section {
                label: "RFC822.HEADER".into(),
                section: Section {
                    part: vec![],
                    text: SectionText::Header,
                },
                partial: None,
                seen: false,
            },
            MessageDataItemName::Rfc822Text => Item::Section {
                label: "RFC822.TEXT".into(),
                section: Section {
                    part: vec![],
                    text: SectionText::Text,
                },
                partial: None,
                seen: true,
            },
            MessageDataItemName::Binary {
                section,
                partial,
                peek,
            } => Item::Binary {
                part: section.iter().map(|n| n.get()).collect(),
                partial: partial.map(|(o, n)| (o, n.get())),
                seen: !peek,
                size_only: false,
            },
            MessageDataItemName::BinarySize { section } => Item::Binary {
                part: section.iter().map(|n| n.get()).collect(),
                partial: None,
                seen: false,
                size_only: true,
            },
        };
        if matches!(item, Item::Uid | Item::ModSeq)
            && plan
                .iter()
                .any(|i| std::mem::discriminant(i) == std::mem::discriminant(&item))
        {
            continue;
        }
        plan.push(item);
    }
    plan
}

/// `dd-Mon-yyyy hh:mm:ss +0000`.
pub(super) fn internal_date(out: &mut Vec<u8>, unix: i64) {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (y, mo, d, h, mi, s) = shared::time::civil(unix);
    let m = MONTHS[(mo as usize).saturating_sub(1) % 12];
    out.extend_from_slice(format!("\"{d:02}-{m}-{y:04} {h:02}:{mi:02}:{s:02} +0000\"").as_bytes());
}

/// One message to fetch: sequence number, UID, flags as the client knows
/// them, \Recent.
#[derive(Debug, Clone, Copy)]
struct Target {
    seq: u32,
    uid: u32,
    bits: u32,
    recent: bool,
}

/// How a FETCH runs besides its items.
#[derive(Debug, Clone, Copy, Default)]
struct Opts {
    /// Sets \Seen on the messages it reads.
    set_seen: bool,
    /// CHANGEDSINCE: only messages with a higher modseq.
    changed_since: Option<u64>,
    /// CONDSTORE is enabled: MODSEQ goes wherever FLAGS does.
    modseq_with_flags: bool,
}

/// Fetches `targets` into `out`; returns how many were done and the flags
/// reported that differ from what the client knew. Blocking.
fn fetch_batch(
    mb: &OpenMailbox,
    plan: &[Item],
    targets: &[Target],
    opts: Opts,
    keywords: &[String],
    out: &mut Vec<u8>,
) -> std::io::Result<(usize, Vec<(u32, u32)>)> {
    let wants_envelope = plan.iter().any(|i| matches!(i, Item::Envelope));
    let wants_date = plan.iter().any(|i| matches!(i, Item::InternalDate));
    // Only the envelope needs the file: a cached one spares the read.
    let needs_body = plan
        .iter()
        .any(|i| i.needs_file() && !matches!(i, Item::Envelope));
    if opts.set_seen {
        // All \Seen changes of the batch first, under one modseq, so the
        // responses can tell it.
        let mut g = mb.lock();
        let mut any = false;
        for t in targets {
            let Some(m) = g.get(t.uid) else { continue };
            let bits = super::view::info_bits(&m.info);
            if bits & SEEN == 0 && g.stage_info(t.uid, &bits_info(bits | SEEN)).is_ok() {
                any = true;
            }
        }
        g.commit_modseqs()?;
        drop(g);
        if any {
            mb.changed();
        }
    }
    let with_flags = plan.iter().any(|i| matches!(i, Item::Flags));
    let with_modseq = plan.iter().any(|i| matches!(i, Item::ModSeq));
    let mut seen = Vec::new();
    let mut done = 0;
    for t in targets {
        if done > 0 && out.len() >= BATCH_BYTES {
            break;
        }
        done += 1;
        // What the index knows, under the lock; the file is read outside it.
        let (path, size, mtime, bits, modseq) = {
            let mut g = mb.lock();
            let Some(m) = g.get(t.uid).cloned() else {
                // Expunged by another session, not yet reported: RFC 3501
                // lets us answer with nothing for it.
                continue;
            };
            if opts.changed_since.is_some_and(|c| m.modseq <= c) {
                continue;
            }
            let size = g.vsize(t.uid).unwrap_or(m.size);
            // A stat per message, so only when asked (and then remembered).
            let mtime = if wants_date {
                g.internal_date_of(t.uid).unwrap_or(0)
            } else {
                0
            };
            let bits = super::view::info_bits(&m.info);
            (g.path(&m), size, mtime, bits, m.modseq)
        };
        let envelope = if wants_envelope {
            mb.envelope(t.uid)
        } else {
            None
        };
        let needs_file = needs_body || (wants_envelope && envelope.is_none());
        let raw = if needs_file {
            match std::fs::read(&path) {
                Ok(b) => Some(b),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    // Renamed by a flag change under us: ask the index again.
                    let mut g = mb.lock();
                    match g.read(t.uid) {
                        Ok(b) => Some(b),
                        Err(_) => continue,
                    }
                }
                Err(e) => return Err(e),
            }
        } else {
            None
        };
        let crlf = raw.as_deref().map(message::to_crlf);
        let parsed = crlf.as_deref().map(Parsed::new);
        out.extend_from_slice(b"* ");
        respond::number(out, t.seq as u64);
        out.extend_from_slice(b" FETCH (");
        let mut first = true;
        let flags_changed = bits != t.bits;
        for item in plan {
            if !first {
                out.push(b' ');
            }
            first = false;
            match item {
                Item::Flags => write_flags(out, bits, t.recent, keywords),
                Item::Uid => {
                    out.extend_from_slice(b"UID ");
                    respond::number(out, t.uid as u64);
                }
                Item::ModSeq => write_modseq(out, modseq),
                Item::InternalDate => {
                    out.extend_from_slice(b"INTERNALDATE ");
                    internal_date(out, mtime);
                }
                Item::Size => {
                    out.extend_from_slice(b"RFC822.SIZE ");
                    respond::number(out, size);
                }
                Item::Envelope => {
                    out.extend_from_slice(b"ENVELOPE ");
                    if let Some(e) = &envelope {
                        out.extend_from_slice(e);
                    } else if let Some(p) = &parsed {
                        let start = out.len();
                        p.write_envelope(out);
                        mb.cache_envelope(t.uid, &out[start..]);
                    }
                }
                Item::Body => {
                    out.extend_from_slice(b"BODY ");
                    if let Some(p) = &parsed {
                        p.write_body_structure(out, false);
                    }
                }
                Item::BodyStructure => {
                    out.extend_from_slice(b"BODYSTRUCTURE ");
                    if let Some(p) = &parsed {
                        p.write_body_structure(out, true);
                    }
                }
                Item::Section {
                    label,
                    section,
                    partial,
                    ..
                } => {
                    let data = parsed.as_ref().and_then(|p| p.section(section));
                    let data: &[u8] = data.as_deref().unwrap_or(b"");
                    out.extend_from_slice(label.as_bytes());
                    let data = match partial {
                        Some((origin, len)) => {
                            out.push(b'<');
                            respond::number(out, *origin as u64);
                            out.push(b'>');
                            let start = (*origin as usize).min(data.len());
                            let end = start.saturating_add(*len as usize).min(data.len());
                            &data[start..end]
                        }
                        None => data,
                    };
                    out.push(b' ');
                    respond::literal(out, data);
                }
                Item::Binary {
                    part,
                    partial,
                    size_only,
                    ..
                } => {
                    let decoded = match parsed.as_ref().and_then(|p| p.binary(part)) {
                        Some(Ok(d)) => d,
                        Some(Err(message::UnknownCte)) => {
                            return Err(std::io::Error::other(UNKNOWN_CTE));
                        }
                        None => std::borrow::Cow::Borrowed(&b""[..]),
                    };
                    let label: Vec<String> = part.iter().map(u32::to_string).collect();
                    if *size_only {
                        out.extend_from_slice(b"BINARY.SIZE[");
                        out.extend_from_slice(label.join(".").as_bytes());
                        out.extend_from_slice(b"] ");
                        respond::number(out, decoded.len() as u64);
                        continue;
                    }
                    out.extend_from_slice(b"BINARY[");
                    out.extend_from_slice(label.join(".").as_bytes());
                    out.push(b']');
                    let data: &[u8] = match partial {
                        Some((origin, len)) => {
                            out.push(b'<');
                            respond::number(out, *origin as u64);
                            out.push(b'>');
                            let start = (*origin as usize).min(decoded.len());
                            let end = start.saturating_add(*len as usize).min(decoded.len());
                            &decoded[start..end]
                        }
                        None => &decoded,
                    };
                    out.push(b' ');
                    // RFC 3516 §4.3: data with NUL goes as a literal8.
                    if data.contains(&0) {
                        out.push(b'~');
                    }
                    respond::literal(out, data);
                }
            }
        }
        if flags_changed && !with_flags {
            out.push(b' ');
            write_flags(out, bits, t.recent, keywords);
        }
        if opts.modseq_with_flags && (with_flags || flags_changed) && !with_modseq {
            out.push(b' ');
            write_modseq(out, modseq);
        }
        out.extend_from_slice(b")\r\n");
        if flags_changed {
            seen.push((t.uid, bits));
        }
    }
    Ok((done, seen))
}

/// `MODSEQ (n)`.
fn write_modseq(out: &mut Vec<u8>, modseq: u64) {
    out.extend_from_slice(b"MODSEQ (");
    respond::number(out, modseq);
    out.push(b')');
}

impl Session<'_> {
    pub(super) async fn fetch<S: Transport>(
        &mut self,
        io: &mut Io<S>,
        tag: &str,
        set: &SequenceSet,
        items: MacroOrMessageDataItemNames<'static>,
        uid: bool,
        modifiers: &[FetchModifier],
    ) -> Flow {
        let mut changed_since = None;
        let mut want_vanished = false;
        for m in modifiers {
            match m {
                FetchModifier::ChangedSince(n) => changed_since = Some(n.get()),
                FetchModifier::Vanished => want_vanished = true,
            }
        }
        if want_vanished && !(uid && changed_since.is_some() && self.ext.qresync) {
            // RFC 7162 §3.2.6: UID FETCH only, with CHANGEDSINCE, QRESYNC enabled.
            return self.bad(tag, "VANISHED needs UID FETCH, CHANGEDSINCE and QRESYNC.");
        }
        let mut plan = plan(items, uid);
        if changed_since.is_some() && !plan.iter().any(|i| matches!(i, Item::ModSeq)) {
            plan.push(Item::ModSeq);
        }
        if plan.iter().any(|i| matches!(i, Item::ModSeq)) {
            self.enable_condstore();
        }
        let Some(v) = &self.view else {
            return self.bad(tag, "No mailbox selected.");
        };
        if !uid && out_of_range(set, v.exists()) {
            return self.bad(tag, "Invalid messageset.");
        }
        let plan = Arc::new(plan);
        let opts = Opts {
            set_seen: !v.read_only
                && plan.iter().any(|i| {
                    matches!(
                        i,
                        Item::Section { seen: true, .. } | Item::Binary { seen: true, .. }
                    )
                }),
            changed_since,
            modseq_with_flags: self.ext.condstore,
        };
        if let (true, Some(since), Some(user)) = (want_vanished, changed_since, &self.user) {
            let (mb, set) = (v.mb.clone(), set.clone());
            let gone = user
                .run(move |_| super::condstore::vanished(&mb.lock(), since, Some(&set)))
                .await;
            match gone {
                Ok(g) => super::condstore::write_vanished(&mut self.out, &g, true),
                Err(e) => return self.store_failed(tag, "FETCH", &e),
            }
        }
        let Some(v) = &self.view else {
            return self.bad(tag, "No mailbox selected.");
        };
        let mut targets: Vec<Target> = resolve(&v.uids, set, uid)
            .into_iter()
            .map(|i| Target {
                seq: i as u32 + 1,
                uid: v.uids[i],
                bits: v.bits[i],
                recent: v.is_recent(v.uids[i]),
            })
            .collect();
        let mb = v.mb.clone();
        let keywords = Arc::new(v.keywords.clone());
        while !targets.is_empty() {
            let Some(user) = &self.user else { break };
            let take = targets.len().min(BATCH);
            let batch: Vec<Target> = targets.drain(..take).collect();
            let (mb2, plan2, kw) = (mb.clone(), plan.clone(), keywords.clone());
            let mut buf = std::mem::take(&mut self.out);
            let r = user
                .run(move |_| {
                    let r = fetch_batch(&mb2, &plan2, &batch, opts, &kw, &mut buf);
                    (r.map(|(done, seen)| (done, seen, batch)), buf)
                })
                .await;
            let (r, buf) = match r {
                Ok(x) => x,
                Err(e) => return self.store_failed(tag, "FETCH", &e),
            };
            self.out = buf;
            let (done, seen, batch) = match r {
                Ok(x) => x,
                Err(e) if e.to_string() == UNKNOWN_CTE => {
                    return self.no(tag, "[UNKNOWN-CTE] Unknown content transfer encoding.");
                }
                Err(e) => return self.store_failed(tag, "FETCH", &e),
            };
            // Whatever did not fit goes back to the front.
            if done < batch.len() {
                let rest: Vec<Target> = batch[done..].to_vec();
                targets.splice(0..0, rest);
            }
            if let Some(v) = &mut self.view {
                for (u, bits) in seen {
                    v.set_bits(u, bits);
                }
            }
            if self.out.len() >= BATCH_BYTES / 2 && self.flush(io).await.is_err() {
                return Flow::Close;
            }
        }
        self.refresh(false).await;
        self.ok(tag, "FETCH completed.")
    }
}
