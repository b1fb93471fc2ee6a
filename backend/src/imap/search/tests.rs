//! Table tests of SEARCH, SORT and THREAD; search keys and sort criteria are
//! written in IMAP syntax and parsed by imap-codec, as the session gets them.

use imap_codec::{
    CommandCodec,
    decode::Decoder,
    imap_types::{
        IntoStatic, command::CommandBody, extensions::sort::SortCriterion, search::SearchKey,
    },
};

use super::*;

/// A test message; `reads` counts calls of the expensive accessors.
#[derive(Default, Clone)]
struct Msg {
    seq: u32,
    uid: u32,
    flags: Vec<SystemFlag>,
    keywords: Vec<&'static str>,
    size: u64,
    internal: i64,
    modseq: u64,
    headers: Vec<(&'static str, &'static str)>,
    sent: Option<i64>,
    body: &'static str,
    reads: usize,
}

impl Candidate for Msg {
    fn seq(&self) -> u32 {
        self.seq
    }
    fn uid(&self) -> u32 {
        self.uid
    }
    fn flag(&self, f: SystemFlag) -> bool {
        self.flags.contains(&f)
    }
    fn keyword(&self, name: &str) -> bool {
        self.keywords.iter().any(|k| k.eq_ignore_ascii_case(name))
    }
    fn size(&self) -> u64 {
        self.size
    }
    fn internal_date(&self) -> i64 {
        self.internal
    }
    fn modseq(&self) -> u64 {
        self.modseq
    }
    fn header_values(&mut self, name: &str) -> Vec<String> {
        self.reads += 1;
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.to_string())
            .collect()
    }
    fn sent_date(&mut self) -> Option<i64> {
        self.reads += 1;
        self.sent
    }
    fn text_contains(&mut self, needle: &str, with_headers: bool) -> bool {
        self.reads += 1;
        let mut text = self.body.to_lowercase();
        if with_headers {
            for (n, v) in &self.headers {
                text.push_str(&format!("\n{n}: {v}").to_lowercase());
            }
        }
        text.contains(&needle.to_lowercase())
    }
}

const JAN_1_2020: i64 = 1_577_836_800;
const FEB_1_2020: i64 = JAN_1_2020 + 31 * 86_400;
const FEB_2_2020: i64 = FEB_1_2020 + 86_400;

fn mailbox() -> Vec<Msg> {
    use SystemFlag::*;
    vec![
        Msg {
            seq: 1,
            uid: 10,
            flags: vec![Seen, Answered],
            keywords: vec!["$Work"],
            size: 100,
            internal: FEB_1_2020,
            modseq: 5,
            headers: vec![
                ("From", "Alice <alice@example.org>"),
                ("To", "bob@example.org"),
                ("Cc", "carol@example.net"),
                ("Subject", "Hello world"),
            ],
            sent: Some(FEB_1_2020 - 1),
            body: "the quick brown fox",
            ..Msg::default()
        },
        Msg {
            seq: 2,
            uid: 20,
            flags: vec![Recent],
            size: 200,
            internal: FEB_2_2020 - 1,
            modseq: 10,
            headers: vec![
                ("From", "bob@example.org"),
                ("Bcc", "dave@example.com"),
                ("Subject", "Re: Hello"),
                ("X-Spam", "yes"),
            ],
            body: "lazy dog",
            ..Msg::default()
        },
        Msg {
            seq: 3,
            uid: 30,
            flags: vec![Recent, Seen, Flagged, Deleted],
            size: 300,
            internal: FEB_2_2020,
            modseq: 15,
            headers: vec![("From", "Zed <carol@example.net>"), ("Subject", "")],
            sent: Some(FEB_2_2020 + 12 * 3600),
            ..Msg::default()
        },
        Msg {
            seq: 4,
            uid: 40,
            flags: vec![Draft],
            keywords: vec!["Junk"],
            size: 400,
            internal: JAN_1_2020 - 86_400,
            modseq: 20,
            headers: vec![
                ("From", "Dan <dan@example.com>"),
                ("Subject", "Other"),
                ("X-Spam", ""),
            ],
            sent: Some(JAN_1_2020),
            body: "nothing",
            ..Msg::default()
        },
    ]
}

const CTX: Context = Context {
    max_seq: 4,
    max_uid: 40,
    tz_offset_secs: 0,
};

fn parse(command: &str) -> CommandBody<'static> {
    let line = format!("a {command}\r\n");
    match CommandCodec::new().decode(line.as_bytes()) {
        Ok(([], c)) => c.into_static().body,
        other => panic!("{command:?} does not parse: {other:?}"),
    }
}

fn search_keys(criteria: &str) -> Vec<SearchKey<'static>> {
    match parse(&format!("SEARCH {criteria}")) {
        CommandBody::Search { criteria, .. } => criteria.into_inner(),
        other => panic!("not a SEARCH: {other:?}"),
    }
}

fn sort_criteria(criteria: &str) -> Vec<SortCriterion> {
    match parse(&format!("SORT {criteria} UTF-8 ALL")) {
        CommandBody::Sort { sort_criteria, .. } => sort_criteria.into_inner(),
        other => panic!("not a SORT: {other:?}"),
    }
}

fn search(criteria: &str, ctx: &Context) -> Vec<u32> {
    let keys = search_keys(criteria);
    mailbox()
        .iter_mut()
        .filter_map(|m| matches_all(&keys, m, ctx).then_some(m.seq))
        .collect()
}

#[test]
fn every_key() {
    let cases: &[(&str, &[u32])] = &[
        ("ALL", &[1, 2, 3, 4]),
        ("ANSWERED", &[1]),
        ("UNANSWERED", &[2, 3, 4]),
        ("DELETED", &[3]),
        ("UNDELETED", &[1, 2, 4]),
        ("DRAFT", &[4]),
        ("UNDRAFT", &[1, 2, 3]),
        ("FLAGGED", &[3]),
        ("UNFLAGGED", &[1, 2, 4]),
        ("SEEN", &[1, 3]),
        ("UNSEEN", &[2, 4]),
        ("RECENT", &[2, 3]),
        ("NEW", &[2]),
        ("OLD", &[1, 4]),
        ("KEYWORD $work", &[1]),
        ("UNKEYWORD $Work", &[2, 3, 4]),
        ("LARGER 200", &[3, 4]),
        ("SMALLER 200", &[1]),
        // Internal dates at day boundaries: 1 at 00:00:00, 2 at 23:59:59 of
        // 1 Feb, 3 at 00:00:00 of 2 Feb.
        ("BEFORE 1-Feb-2020", &[4]),
        ("ON 1-Feb-2020", &[1, 2]),
        ("SINCE 1-Feb-2020", &[1, 2, 3]),
        ("SINCE 2-Feb-2020", &[3]),
        ("BEFORE 2-Feb-2020", &[1, 2, 4]),
        // Sent dates: 1 at 23:59:59 of 31 Jan, 2 has none.
        ("SENTBEFORE 1-Feb-2020", &[1, 4]),
        ("SENTON 31-Jan-2020", &[1]),
        ("SENTON 2-Feb-2020", &[3]),
        ("SENTSINCE 1-Feb-2020", &[3]),
        ("FROM alice", &[1]),
        ("FROM EXAMPLE.ORG", &[1, 2]),
        ("TO bob", &[1]),
        ("CC carol", &[1]),
        ("BCC dave", &[2]),
        ("SUBJECT hello", &[1, 2]),
        ("SUBJECT \"\"", &[1, 2, 3, 4]),
        ("HEADER X-Spam \"\"", &[2, 4]),
        ("HEADER x-spam YES", &[2]),
        ("BODY fox", &[1]),
        ("BODY alice", &[]),
        ("TEXT alice", &[1]),
        ("TEXT DOG", &[2]),
        ("1:2", &[1, 2]),
        ("3:*", &[3, 4]),
        ("*", &[4]),
        ("*:3", &[3, 4]),
        ("2,4", &[2, 4]),
        ("UID 20:30", &[2, 3]),
        ("UID 15", &[]),
        ("UID *", &[4]),
        // `*` is the highest UID even below the other end of the range.
        ("UID 50:*", &[4]),
        ("UID 1:*", &[1, 2, 3, 4]),
        ("MODSEQ 10", &[2, 3, 4]),
        ("MODSEQ \"/flags/\\\\draft\" all 15", &[3, 4]),
        ("NOT SEEN", &[2, 4]),
        ("OR SEEN DRAFT", &[1, 3, 4]),
        ("NOT OR SEEN DRAFT", &[2]),
        ("OR NOT SEEN (FLAGGED DELETED)", &[2, 3, 4]),
        ("NOT (OR FROM alice SUBJECT other)", &[2, 3]),
        ("NOT NOT NEW", &[2]),
        ("SEEN LARGER 150 FROM carol", &[3]),
        ("(SEEN UNDELETED) OR TEXT fox BODY dog", &[1]),
        ("UID 1:* 1:2 NOT 2", &[1]),
    ];
    for (criteria, want) in cases {
        assert_eq!(search(criteria, &CTX), *want, "SEARCH {criteria}");
    }
}

#[test]
fn date_keys_use_the_context_offset() {
    // One hour east of UTC, message 2 (23:59:59 UTC) arrived on 2 Feb.
    let ctx = Context {
        tz_offset_secs: 3600,
        ..CTX
    };
    let cases: &[(&str, &[u32])] = &[
        ("ON 1-Feb-2020", &[1]),
        ("ON 2-Feb-2020", &[2, 3]),
        // SENT* compare the day as the Date: header writes it, whatever the
        // server's offset (these candidates write UTC).
        ("SENTON 1-Feb-2020", &[]),
        ("SENTON 31-Jan-2020", &[1]),
    ];
    for (criteria, want) in cases {
        assert_eq!(search(criteria, &ctx), *want, "SEARCH {criteria}");
    }
}

#[test]
fn content_is_read_only_when_cheap_keys_do_not_decide() {
    // (criteria, expensive reads over the whole mailbox)
    let cases: &[(&str, usize)] = &[
        ("ALL", 0),
        ("SEEN 1:*", 0),
        ("FROM carol DELETED", 1),
        ("DELETED FROM carol", 1),
        ("OR FROM x SEEN", 2),
        ("NOT (FROM x ANSWERED)", 1),
        ("SENTON 1-Jan-2020 UID 40", 1),
        ("TEXT x", 4),
    ];
    for (criteria, want) in cases {
        let keys = search_keys(criteria);
        let mut msgs = mailbox();
        for m in &mut msgs {
            matches_all(&keys, m, &CTX);
        }
        let reads: usize = msgs.iter().map(|m| m.reads).sum();
        assert_eq!(reads, *want, "SEARCH {criteria}");
    }
}

#[test]
fn needs_content_table() {
    let cases: &[(&str, bool)] = &[
        ("ALL", false),
        ("SEEN UID 1:* LARGER 5 BEFORE 1-Jan-2020 MODSEQ 3", false),
        ("NOT OR SEEN (DRAFT KEYWORD x)", false),
        ("SUBJECT x", true),
        ("NOT OR SEEN (DRAFT BODY x)", true),
        ("OR HEADER a b SEEN", true),
        ("SENTSINCE 1-Jan-2020", true),
        ("SEEN TEXT x", true),
        ("FROM a", true),
        ("TO a", true),
        ("CC a", true),
        ("BCC a", true),
        ("SENTON 1-Jan-2020", true),
        ("SENTBEFORE 1-Jan-2020", true),
    ];
    for (criteria, want) in cases {
        assert_eq!(needs_content(&search_keys(criteria)), *want, "{criteria}");
    }
}

#[test]
fn sequence_sets() {
    let set = |s: &str| match search_keys(s).remove(0) {
        SearchKey::SequenceSet(set) => set,
        other => panic!("{other:?}"),
    };
    // (set, n, max, expected)
    let cases: &[(&str, u32, u32, bool)] = &[
        ("1", 1, 5, true),
        ("1", 2, 5, false),
        ("*", 5, 5, true),
        ("*", 4, 5, false),
        ("2:4", 4, 5, true),
        ("4:2", 3, 5, true),
        ("4:2", 5, 5, false),
        ("10:*", 5, 5, true),
        ("10:*", 4, 5, false),
        ("*:10", 7, 5, true),
        ("1,3:4,7", 7, 9, true),
        ("1,3:4,7", 5, 9, false),
        ("*", 0, 0, true),
    ];
    for (s, n, max, want) in cases {
        assert_eq!(
            in_set(&set(s), *n, *max),
            *want,
            "{n} in {s} with * = {max}"
        );
    }
}

#[test]
fn sort_orders() {
    let cases: &[(&str, &[u32])] = &[
        ("(SUBJECT)", &[3, 2, 1, 4]),
        ("(REVERSE SUBJECT)", &[4, 1, 2, 3]),
        ("(SIZE)", &[1, 2, 3, 4]),
        ("(REVERSE SIZE)", &[4, 3, 2, 1]),
        ("(FROM)", &[1, 2, 3, 4]),
        ("(REVERSE FROM)", &[4, 3, 2, 1]),
        ("(DISPLAYFROM)", &[1, 2, 4, 3]),
        // 2 has no Date: and sorts by its arrival.
        ("(DATE)", &[4, 1, 2, 3]),
        ("(ARRIVAL)", &[4, 1, 2, 3]),
        // Ties stay in mailbox order, also when reversed.
        ("(TO)", &[2, 3, 4, 1]),
        ("(REVERSE TO)", &[1, 2, 3, 4]),
        ("(CC)", &[2, 3, 4, 1]),
        ("(DISPLAYTO)", &[2, 3, 4, 1]),
        ("(TO REVERSE SIZE)", &[4, 3, 2, 1]),
        ("(REVERSE CC ARRIVAL)", &[1, 4, 2, 3]),
    ];
    for (criteria, want) in cases {
        let mut items: Vec<(u32, SortKeys)> = mailbox()
            .iter_mut()
            .map(|m| (m.seq, sort_keys(m)))
            .collect();
        sort(&mut items, &sort_criteria(criteria));
        let got: Vec<u32> = items.iter().map(|(id, _)| *id).collect();
        assert_eq!(got, *want, "SORT {criteria}");
    }
}

#[test]
fn sort_keys_of_a_message() {
    let keys = sort_keys(&mut mailbox()[0]);
    assert_eq!(
        keys,
        SortKeys {
            arrival: FEB_1_2020,
            cc: "CAROL".into(),
            date: FEB_1_2020 - 1,
            from: "ALICE".into(),
            size: 100,
            subject: "HELLO WORLD".into(),
            to: "BOB".into(),
            display_from: "alice".into(),
            display_to: "bob@example.org".into(),
            seq: 1,
        }
    );
}

fn input(id: u32, mid: &str, refs: &[&str], subject: &str, date: i64) -> ThreadInput {
    ThreadInput {
        id,
        message_id: (!mid.is_empty()).then(|| mid.to_string()),
        references: refs.iter().map(|r| r.to_string()).collect(),
        subject: subject.into(),
        date,
        seq: id,
    }
}

fn wire(threads: &[Thread]) -> String {
    let mut out = Vec::new();
    write_threads(&mut out, threads);
    String::from_utf8(out).unwrap_or_default()
}

#[test]
fn thread_references() {
    let msgs = vec![
        input(1, "<a>", &[], "Project", 100),
        input(2, "<b>", &["<a>"], "Re: Project", 200),
        input(3, "<c>", &["<a>", "<b>"], "Re: Project", 300),
        input(4, "<d>", &["<a>", "<b>"], "Re: Project", 250),
        // Two replies to a message not in the result share a dummy parent.
        input(5, "<e>", &["<lost>"], "Re: Lost", 150),
        input(6, "<f>", &["<lost>"], "Re: Lost", 160),
        // A lone reply to a missing message becomes a root itself.
        input(7, "<g>", &["<gone>"], "Other", 50),
        // A loop: each claims to reply to the other.
        input(8, "<h>", &["<i>"], "Loop", 400),
        input(9, "<i>", &["<h>"], "Re: Loop", 410),
        input(10, "<j>", &["<j>"], "Self", 500),
        // No references, but a reply to an existing subject.
        input(11, "<k>", &[], "Re: Project", 600),
        // Two originals with one subject become siblings under a dummy.
        input(12, "<l>", &[], "Lunch", 700),
        input(13, "<m>", &[], "lunch", 710),
        // A duplicated Message-ID counts only for the first message.
        input(14, "<a>", &[], "Dup", 800),
        // A missing message in the middle of the chain is pruned.
        input(15, "<n>", &["<a>", "<zz>"], "Re: Project", 900),
        input(16, "", &["<a>"], "Re: Project", 50),
    ];
    assert_eq!(
        wire(&thread(Algorithm::References, msgs)),
        "(7)(1 (16)(2 (4)(3))(11)(15))((5)(6))(9 8)(10)((12)(13))(14)"
    );
}

/// Message-ID, references, subject, date; the id and seq are the position.
type Row<'a> = (&'a str, &'a [&'a str], &'a str, i64);

#[test]
fn thread_references_edge_cases() {
    let cases: &[(&[Row<'_>], &str)] = &[
        (&[], ""),
        // References that contradict each other keep the first links.
        (
            &[
                ("<x>", &["<p>", "<q>"], "a", 1),
                ("<y>", &["<q>", "<p>"], "b", 2),
            ],
            "((1)(2))",
        ),
        // A parent given by References wins over one guessed earlier.
        (
            &[("<x>", &["<p>", "<q>"], "a", 1), ("<q>", &["<r>"], "b", 2)],
            "(2 1)",
        ),
        // Equal dates fall back to mailbox order.
        (
            &[
                ("<x>", &[], "a", 5),
                ("<y>", &[], "b", 5),
                ("<z>", &["x"], "c", 5),
            ],
            "(1 3)(2)",
        ),
        // Subject grouping, RFC 5256 step 5.C: a message joins a dummy (ii),
        (
            &[
                ("<x>", &["<p>"], "Re: s", 1),
                ("<y>", &["<p>"], "Re: s", 2),
                ("<z>", &[], "s", 3),
            ],
            "((1)(2)(3))",
        ),
        // two dummies become one (i),
        (
            &[
                ("<w>", &["<p>"], "s", 1),
                ("<x>", &["<p>"], "s", 2),
                ("<y>", &["<q>"], "Re: s", 3),
                ("<z>", &["<q>"], "s", 4),
            ],
            "((1)(2)(3)(4))",
        ),
        // a reply goes under the original even when it is older (iii),
        (&[("<x>", &[], "Re: s", 1), ("<y>", &[], "s", 2)], "(2 1)"),
        // and two replies become siblings (iv).
        (
            &[("<x>", &[], "Re: s", 1), ("<y>", &[], "Fwd: s", 2)],
            "((1)(2))",
        ),
        // Empty subjects are not grouped.
        (&[("<x>", &[], "", 1), ("<y>", &[], "", 2)], "(1)(2)"),
    ];
    for (msgs, want) in cases {
        let msgs = msgs
            .iter()
            .enumerate()
            .map(|(i, (mid, refs, subject, date))| input(i as u32 + 1, mid, refs, subject, *date))
            .collect();
        assert_eq!(wire(&thread(Algorithm::References, msgs)), *want);
    }
}

#[test]
fn thread_ordered_subject() {
    let msgs = vec![
        input(1, "<a>", &[], "Hello", 300),
        input(2, "<b>", &[], "Re: hello", 100),
        input(3, "<c>", &[], "Other", 200),
        input(4, "<d>", &[], "Fwd: Hello", 400),
        input(5, "<e>", &[], "", 50),
        input(6, "<f>", &[], "other", 250),
    ];
    assert_eq!(
        wire(&thread(Algorithm::OrderedSubject, msgs)),
        "(5)(2 (1)(4))(3 6)"
    );
}

#[test]
fn write_thread_lists() {
    let leaf = |id| Thread {
        id: Some(id),
        children: vec![],
    };
    let node = |id, children| Thread { id, children };
    let cases: Vec<(Vec<Thread>, &str)> = vec![
        (vec![], ""),
        (vec![leaf(1)], "(1)"),
        (vec![node(Some(1), vec![leaf(2)]), leaf(3)], "(1 2)(3)"),
        (vec![node(Some(3), vec![leaf(4), leaf(5)])], "(3 (4)(5))"),
        (vec![node(None, vec![leaf(3), leaf(5)])], "((3)(5))"),
        (vec![node(None, vec![leaf(3)])], "(3)"),
        (vec![node(None, vec![])], ""),
        // RFC 5256 §4 example.
        (
            vec![
                leaf(2),
                node(
                    Some(3),
                    vec![node(
                        Some(6),
                        vec![
                            node(Some(4), vec![leaf(23)]),
                            node(Some(44), vec![node(Some(7), vec![leaf(96)])]),
                        ],
                    )],
                ),
            ],
            "(2)(3 6 (4 23)(44 7 96))",
        ),
    ];
    for (threads, want) in cases {
        assert_eq!(wire(&threads), want);
    }
}

#[test]
fn deep_chains_neither_loop_nor_overflow() {
    const N: u32 = 50_000;
    let msgs: Vec<ThreadInput> = (1..=N)
        .map(|i| {
            let refs: Vec<&str> = vec![];
            let mut m = input(i, &format!("<{i}>"), &refs, "deep", i64::from(i));
            if i > 1 {
                m.references = vec![format!("<{}>", i - 1)];
            }
            m
        })
        .collect();
    let threads = thread(Algorithm::References, msgs);
    let out = wire(&threads);
    assert!(out.starts_with("(1 2 3 "), "{}", &out[..20]);
    assert!(out.ends_with(&format!(" {N})")));
    drop(threads);
}
