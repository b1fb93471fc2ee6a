//! SEARCH, SORT and THREAD (RFC 3501 §6.4.4, RFC 5256) as commands: the
//! evaluation is [`super::search`]'s; here each message of the view becomes
//! a [`Candidate`] that reads and parses its file only when a key asks for
//! the header or the text.

use std::sync::Arc;

use imap_codec::imap_types::extensions::sort::SortCriterion;
use imap_codec::imap_types::extensions::thread::ThreadingAlgorithm;
use imap_codec::imap_types::search::SearchKey;

use super::extended::SearchReturn;
use super::message::{self, Parsed};
use super::respond;
use super::search::{self, Candidate, Context, SystemFlag, ThreadInput};
use super::session::{Flow, Session};
use super::view::{View, info_bits};
use crate::accounts::OpenMailbox;
use crate::store::keywords::Keywords;

/// One message being searched.
struct Msg<'a> {
    mb: &'a OpenMailbox,
    keywords: &'a Keywords,
    seq: u32,
    uid: u32,
    bits: u32,
    recent: bool,
    size: u64,
    /// INTERNALDATE, read when first asked.
    date: std::cell::OnceCell<i64>,
    /// The message, CRLF, once a key needed it; empty if unreadable.
    body: Option<Vec<u8>>,
}

impl Msg<'_> {
    fn parsed(&mut self) -> Parsed<'_> {
        if self.body.is_none() {
            let raw = self.mb.lock().read(self.uid).unwrap_or_default();
            self.body = Some(message::to_crlf(&raw).into_owned());
        }
        Parsed::new(self.body.as_deref().unwrap_or_default())
    }
}

impl Candidate for Msg<'_> {
    fn seq(&self) -> u32 {
        self.seq
    }
    fn uid(&self) -> u32 {
        self.uid
    }
    fn flag(&self, f: SystemFlag) -> bool {
        let letter = match f {
            SystemFlag::Seen => "S",
            SystemFlag::Answered => "R",
            SystemFlag::Flagged => "F",
            SystemFlag::Deleted => "T",
            SystemFlag::Draft => "D",
            SystemFlag::Recent => return self.recent,
        };
        self.bits & info_bits(letter) != 0
    }
    fn keyword(&self, name: &str) -> bool {
        if name.eq_ignore_ascii_case("$Forwarded") {
            return self.bits & info_bits("P") != 0;
        }
        self.keywords
            .all()
            .find(|(_, n)| n.eq_ignore_ascii_case(name))
            .is_some_and(|(l, _)| self.bits & info_bits(&l.to_string()) != 0)
    }
    fn size(&self) -> u64 {
        self.size
    }
    fn internal_date(&self) -> i64 {
        // A stat of the file the first time a key or sort asks.
        *self
            .date
            .get_or_init(|| self.mb.lock().internal_date_of(self.uid).unwrap_or(0))
    }
    fn modseq(&self) -> u64 {
        self.mb.lock().get(self.uid).map_or(1, |m| m.modseq)
    }
    fn header_values(&mut self, name: &str) -> Vec<String> {
        self.parsed().header_values(name)
    }
    fn sent_date(&mut self) -> Option<i64> {
        self.parsed().sent_date()
    }
    fn sent_date_local(&mut self) -> Option<i64> {
        self.parsed().sent_date_local()
    }
    fn text_contains(&mut self, needle: &str, with_headers: bool) -> bool {
        self.parsed().text_contains(needle, with_headers)
    }
}

/// What a query does with the messages that match.
enum Want {
    Search,
    /// SEARCH RETURN (RFC 4731), for the command with this tag.
    Esearch(SearchReturn, String),
    /// SORT RETURN (ESORT, RFC 5267): ESEARCH in sort order.
    Esort(Vec<SortCriterion>, SearchReturn, String),
    Sort(Vec<SortCriterion>),
    Thread(search::Algorithm),
}

/// Runs `keys` over every message of the view; blocking. Returns the
/// response line (without `* ` and CRLF).
fn run_query(
    mb: &OpenMailbox,
    messages: Vec<(u32, u32, u32, bool)>,
    keys: &[SearchKey<'_>],
    ctx: Context,
    uid: bool,
    want: Want,
) -> std::io::Result<Vec<u8>> {
    let keywords = Keywords::load(mb.lock().dir())?;
    let with_modseq = mentions_modseq(keys);
    // The modseq of each hit, when a MODSEQ key asks for it reported.
    let mut modseqs: Vec<u64> = Vec::new();
    let mut hits: Vec<u32> = Vec::new();
    let mut sortable = Vec::new();
    let mut threadable = Vec::new();
    for (seq, u, bits, recent) in messages {
        let size = {
            let mut g = mb.lock();
            let Some(m) = g.get(u) else { continue };
            let size = m.size;
            g.vsize(u).unwrap_or(size)
        };
        let mut msg = Msg {
            mb,
            keywords: &keywords,
            seq,
            uid: u,
            bits,
            recent,
            size,
            date: std::cell::OnceCell::new(),
            body: None,
        };
        if !search::matches_all(keys, &mut msg, &ctx) {
            continue;
        }
        let id = if uid { u } else { seq };
        match &want {
            Want::Search | Want::Esearch(..) => {
                if with_modseq {
                    modseqs.push(msg.modseq());
                }
                hits.push(id)
            }
            Want::Sort(_) | Want::Esort(..) => sortable.push((id, search::sort_keys(&mut msg))),
            Want::Thread(_) => {
                let p = msg.parsed();
                let first = |n: &str| p.header_values(n).into_iter().next();
                let ids = |s: Option<String>| -> Vec<String> {
                    s.map(|s| {
                        s.split_whitespace()
                            .filter(|w| w.starts_with('<'))
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default()
                };
                let mut references = ids(first("References"));
                if references.is_empty() {
                    references = ids(first("In-Reply-To")).into_iter().take(1).collect();
                }
                let input = ThreadInput {
                    id,
                    message_id: first("Message-ID").map(|s| s.trim().to_owned()),
                    references,
                    subject: first("Subject").unwrap_or_default(),
                    date: p.sent_date().unwrap_or_else(|| msg.internal_date()),
                    seq,
                };
                threadable.push(input);
            }
        }
    }
    let mut out = Vec::new();
    match want {
        Want::Search => {
            out.extend_from_slice(b"SEARCH");
            for h in &hits {
                out.push(b' ');
                respond::number(&mut out, *h as u64);
            }
            // RFC 7162 §3.1.5: a MODSEQ search tells the highest modseq found.
            if let Some(m) = modseqs.iter().max() {
                out.extend_from_slice(b" (MODSEQ ");
                respond::number(&mut out, *m);
                out.push(b')');
            }
        }
        Want::Esearch(r, tag) => {
            esearch(&mut out, &tag, uid, r, &hits);
            // RFC 7162 §3.2: the highest modseq of the messages returned:
            // only the MIN and MAX ones when nothing else is asked.
            let returned = if r.all || r.count {
                modseqs.iter().max().copied()
            } else {
                let ends = [
                    r.min.then(|| modseqs.first()).flatten(),
                    r.max.then(|| modseqs.last()).flatten(),
                ];
                ends.into_iter().flatten().max().copied()
            };
            if let Some(m) = returned {
                out.extend_from_slice(b" MODSEQ ");
                respond::number(&mut out, m);
            }
        }
        Want::Esort(criteria, r, tag) => {
            search::sort(&mut sortable, &criteria);
            let ids: Vec<u32> = sortable.iter().map(|(id, _)| *id).collect();
            esort(&mut out, &tag, uid, r, &ids);
        }
        Want::Sort(criteria) => {
            search::sort(&mut sortable, &criteria);
            out.extend_from_slice(b"SORT");
            for (id, _) in sortable {
                out.push(b' ');
                respond::number(&mut out, id as u64);
            }
        }
        Want::Thread(alg) => {
            out.extend_from_slice(b"THREAD ");
            let threads = search::thread(alg, threadable);
            search::write_threads(&mut out, &threads);
        }
    }
    Ok(out)
}

impl Session<'_> {
    async fn query(
        &mut self,
        tag: &str,
        keys: Vec<SearchKey<'static>>,
        uid: bool,
        want: Want,
        done: &str,
    ) -> Flow {
        let (Some(user), Some(v)) = (&self.user, &self.view) else {
            return self.bad(tag, "No mailbox selected.");
        };
        let ctx = Context {
            max_seq: v.exists(),
            max_uid: v.max_uid(),
            tz_offset_secs: 0,
        };
        let messages = snapshot(v);
        let mb: Arc<OpenMailbox> = v.mb.clone();
        let r = user
            .run(move |_| run_query(&mb, messages, &keys, ctx, uid, want))
            .await;
        let line = match r {
            Ok(Ok(l)) => l,
            Ok(Err(e)) => return self.store_failed(tag, "SEARCH", &e),
            Err(e) => return self.store_failed(tag, "SEARCH", &e),
        };
        self.out.extend_from_slice(b"* ");
        self.out.extend_from_slice(&line);
        self.out.extend_from_slice(b"\r\n");
        // RFC 3501 §7.4.1: no EXPUNGE during SEARCH (it would shift the
        // numbers just sent); UID SEARCH may, but holding is simpler and legal.
        self.refresh(false).await;
        self.ok(tag, done)
    }

    pub(super) async fn search(
        &mut self,
        tag: &str,
        keys: Vec<SearchKey<'static>>,
        uid: bool,
    ) -> Flow {
        if mentions_modseq(&keys) {
            // RFC 7162 §3.1: a CONDSTORE-enabling command.
            self.enable_condstore();
        }
        let want = match self.extras.search.take() {
            Some(r) => Want::Esearch(r, tag.to_owned()),
            None => Want::Search,
        };
        self.query(tag, keys, uid, want, "SEARCH completed.").await
    }

    pub(super) async fn sort(
        &mut self,
        tag: &str,
        criteria: Vec<SortCriterion>,
        keys: Vec<SearchKey<'static>>,
        uid: bool,
    ) -> Flow {
        let want = match self.extras.sort.take() {
            Some(r) => Want::Esort(criteria, r, tag.to_owned()),
            None => Want::Sort(criteria),
        };
        self.query(tag, keys, uid, want, "SORT completed.").await
    }

    pub(super) async fn thread(
        &mut self,
        tag: &str,
        algorithm: ThreadingAlgorithm<'static>,
        keys: Vec<SearchKey<'static>>,
        uid: bool,
    ) -> Flow {
        let alg = match algorithm {
            ThreadingAlgorithm::OrderedSubject => search::Algorithm::OrderedSubject,
            ThreadingAlgorithm::References => search::Algorithm::References,
            _ => return self.bad(tag, "Unsupported threading algorithm."),
        };
        self.query(tag, keys, uid, Want::Thread(alg), "THREAD completed.")
            .await
    }
}

/// `ESEARCH (TAG "t") [UID] MIN a MAX b COUNT n ALL set` (RFC 4731 §3.1;
/// MIN, MAX and ALL are left out when nothing matched).
fn esearch(out: &mut Vec<u8>, tag: &str, uid: bool, r: SearchReturn, hits: &[u32]) {
    out.extend_from_slice(b"ESEARCH (TAG ");
    respond::string(out, tag.as_bytes());
    out.push(b')');
    if uid {
        out.extend_from_slice(b" UID");
    }
    if let (true, Some(min)) = (r.min, hits.first()) {
        out.extend_from_slice(b" MIN ");
        respond::number(out, *min as u64);
    }
    if let (true, Some(max)) = (r.max, hits.last()) {
        out.extend_from_slice(b" MAX ");
        respond::number(out, *max as u64);
    }
    if r.count {
        out.extend_from_slice(b" COUNT ");
        respond::number(out, hits.len() as u64);
    }
    if r.all && !hits.is_empty() {
        out.extend_from_slice(b" ALL ");
        out.extend_from_slice(respond::sequence_set(hits.iter().copied()).as_bytes());
    }
}

/// Whether a MODSEQ key appears anywhere in the criteria.
fn mentions_modseq(keys: &[SearchKey<'_>]) -> bool {
    keys.iter().any(|k| match k {
        SearchKey::ModSequence { .. } => true,
        SearchKey::And(v) => mentions_modseq(v.as_ref()),
        SearchKey::Not(k) => mentions_modseq(std::slice::from_ref(&**k)),
        SearchKey::Or(a, b) => {
            mentions_modseq(std::slice::from_ref(&**a))
                || mentions_modseq(std::slice::from_ref(&**b))
        }
        _ => false,
    })
}

/// ESEARCH for SORT RETURN: MIN and MAX are the first and last in sort
/// order, ALL lists them in that order (RFC 5267 §3.2).
fn esort(out: &mut Vec<u8>, tag: &str, uid: bool, r: SearchReturn, ids: &[u32]) {
    out.extend_from_slice(b"ESEARCH (TAG ");
    respond::string(out, tag.as_bytes());
    out.push(b')');
    if uid {
        out.extend_from_slice(b" UID");
    }
    if let (true, Some(first)) = (r.min, ids.first()) {
        out.extend_from_slice(b" MIN ");
        respond::number(out, *first as u64);
    }
    if let (true, Some(last)) = (r.max, ids.last()) {
        out.extend_from_slice(b" MAX ");
        respond::number(out, *last as u64);
    }
    if r.count {
        out.extend_from_slice(b" COUNT ");
        respond::number(out, ids.len() as u64);
    }
    if r.all && !ids.is_empty() {
        out.extend_from_slice(b" ALL ");
        out.extend_from_slice(respond::sequence_set(ids.iter().copied()).as_bytes());
    }
}

fn snapshot(v: &View) -> Vec<(u32, u32, u32, bool)> {
    v.uids
        .iter()
        .zip(&v.bits)
        .enumerate()
        .map(|(i, (u, b))| (i as u32 + 1, *u, *b, v.is_recent(*u)))
        .collect()
}
