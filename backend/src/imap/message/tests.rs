//! Expected strings are written from RFC 3501 §7.4.2 (and Dovecot's choices
//! where the RFC leaves room: MISSING_DOMAIN, an empty multipart's part).

use super::*;

const SIMPLE: &str = "Date: Mon, 7 Feb 1994 21:52:25 -0800\n\
From: Fred Foobar <foobar@Blurdybloop.example>\n\
Subject: afternoon meeting\n\
To: mooch@owatagu.siam.edu.example\n\
Message-Id: <B27397-0100000@Blurdybloop.example>\n\
MIME-Version: 1.0\n\
Content-Type: TEXT/PLAIN; CHARSET=US-ASCII\n\
\n\
Hello Joe, do you think we can meet at 3:30 tomorrow?\n";

const NO_HEADERS: &str = "\nJust a body\n";

const ALTERNATIVE: &str = "From: a@example.com\n\
Subject: alt\n\
Content-Type: multipart/alternative; boundary=\"XX\"\n\
\n\
preamble\n\
--XX\n\
Content-Type: text/plain; charset=utf-8\n\
\n\
plain\n\
--XX\n\
Content-Type: text/html; charset=utf-8\n\
Content-Transfer-Encoding: quoted-printable\n\
\n\
<p>caf=C3=A9</p>\n\
--XX--\n\
epilogue\n";

const MIXED: &str = "From: a@example.com\n\
To: b@example.com\n\
Subject: report\n\
MIME-Version: 1.0\n\
Content-Type: multipart/mixed; boundary=frontier\n\
\n\
--frontier\n\
Content-Type: text/plain\n\
\n\
See attached.\n\
--frontier\n\
Content-Type: application/pdf; name=\"r.pdf\"\n\
Content-Disposition: attachment; filename=\"r.pdf\"\n\
Content-Transfer-Encoding: base64\n\
Content-ID: <att1@example.com>\n\
Content-Description: The report\n\
Content-Language: en, de\n\
Content-Location: http://example.com/r.pdf\n\
\n\
JVBERi0xLjQK\n\
--frontier--\n";

const RFC822: &str = "From: a@example.com\n\
Subject: fwd\n\
Content-Type: multipart/mixed; boundary=b1\n\
\n\
--b1\n\
Content-Type: text/plain\n\
\n\
see below\n\
--b1\n\
Content-Type: message/rfc822\n\
\n\
From: c@example.com\n\
Subject: inner\n\
Date: Tue, 1 Jan 2019 10:00:00 +0000\n\
\n\
inner body\n\
--b1--\n";

/// mixed(text, alternative(plain, html)): nested part numbers.
const NESTED: &str = "Content-Type: multipart/mixed; boundary=outer\n\
\n\
--outer\n\
\n\
first\n\
--outer\n\
Content-Type: multipart/alternative; boundary=outer-inner\n\
\n\
--outer-inner\n\
Content-Type: text/plain\n\
\n\
two one\n\
--outer-inner\n\
Content-Type: text/html\n\
\n\
<b>two two</b>\n\
--outer-inner--\n\
\n\
--outer--\n";

const ADDRESSES: &str = "From: joe@example.com (Joe Q)\n\
Reply-To: \"Joe \\\"the\\\" Q\\\\ Public\" <joe@example.net>\n\
To: Team: alice@example.com, \"Bob B.\" <bob@example.com>;, carol@example.com\n\
Cc: undisclosed-recipients:;\n\
Bcc: nobody, <@relay.example:dan@example.org>\n\
Subject: say \"hi\" \\ bye\n\
\n\
x\n";

const ENCODED: &str = "From: =?utf-8?q?J=C3=B6rg?= <j@example.com>\n\
Subject: =?utf-8?q?caf=C3=A9?=\n  time\n\
X-Raw: caf\u{e9}\n\
\n\
body\n";

fn parsed_out(raw: &str, f: impl Fn(&Parsed<'_>, &mut Vec<u8>)) -> String {
    let crlf = to_crlf(raw.as_bytes());
    let p = Parsed::new(&crlf);
    let mut out = Vec::new();
    f(&p, &mut out);
    String::from_utf8(out).expect("utf-8 output")
}

#[test]
fn envelope() {
    let fred = r#"(("Fred Foobar" NIL "foobar" "Blurdybloop.example"))"#;
    let a = r#"((NIL NIL "a" "example.com"))"#;
    let joe = r#"(("Joe Q" NIL "joe" "example.com"))"#;
    let jorg = r#"(("=?utf-8?q?J=C3=B6rg?=" NIL "j" "example.com"))"#;
    let cases: &[(&str, &str, String)] = &[
        (
            "simple",
            SIMPLE,
            format!(
                r#"("Mon, 7 Feb 1994 21:52:25 -0800" "afternoon meeting" {fred} {fred} {fred} ((NIL NIL "mooch" "owatagu.siam.edu.example")) NIL NIL NIL "<B27397-0100000@Blurdybloop.example>")"#
            ),
        ),
        (
            "no headers",
            NO_HEADERS,
            "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)".into(),
        ),
        (
            "missing date",
            ALTERNATIVE,
            format!(r#"(NIL "alt" {a} {a} {a} NIL NIL NIL NIL NIL)"#),
        ),
        (
            "groups, quoting, comment name, route",
            ADDRESSES,
            format!(
                concat!(
                    r#"(NIL "say \"hi\" \\ bye" {joe} {joe} (("Joe \"the\" Q\\ Public" NIL "joe" "example.net")) "#,
                    r#"((NIL NIL "Team" NIL)(NIL NIL "alice" "example.com")("Bob B." NIL "bob" "example.com")(NIL NIL NIL NIL)(NIL NIL "carol" "example.com")) "#,
                    r#"((NIL NIL "undisclosed-recipients" NIL)(NIL NIL NIL NIL)) "#,
                    r#"((NIL NIL "nobody" "MISSING_DOMAIN")(NIL "@relay.example" "dan" "example.org")) NIL NIL)"#
                ),
                joe = joe
            ),
        ),
        (
            "encoded word kept raw, folded",
            ENCODED,
            format!(
                r#"(NIL "=?utf-8?q?caf=C3=A9?=  time" {jorg} {jorg} {jorg} NIL NIL NIL NIL NIL)"#
            ),
        ),
    ];
    for (name, raw, want) in cases {
        assert_eq!(parsed_out(raw, |p, o| p.write_envelope(o)), *want, "{name}");
    }
}

#[test]
fn eight_bit_header_is_a_literal() {
    let got = parsed_out("Subject: caf\u{e9}\n\nx\n", |p, o| p.write_envelope(o));
    assert_eq!(
        got,
        "(NIL {5}\r\ncaf\u{e9} NIL NIL NIL NIL NIL NIL NIL NIL)"
    );
}

#[test]
fn body_structure() {
    let plain = |params: &str, size: usize, lines: usize| {
        format!(r#"("text" "plain" {params} NIL NIL "7bit" {size} {lines}"#)
    };
    let cases: &[(&str, &str, bool, String)] = &[
        (
            "simple BODY",
            SIMPLE,
            false,
            plain(r#"("charset" "US-ASCII")"#, 55, 1) + ")",
        ),
        (
            "simple BODYSTRUCTURE",
            SIMPLE,
            true,
            plain(r#"("charset" "US-ASCII")"#, 55, 1) + " NIL NIL NIL NIL)",
        ),
        (
            "no headers",
            NO_HEADERS,
            true,
            plain(r#"("charset" "us-ascii")"#, 13, 1) + " NIL NIL NIL NIL)",
        ),
        (
            "alternative BODY",
            ALTERNATIVE,
            false,
            format!(
                r#"({}("text" "html" ("charset" "utf-8") NIL NIL "quoted-printable" 16 1) "alternative")"#,
                plain(r#"("charset" "utf-8")"#, 5, 1) + ")"
            ),
        ),
        (
            "alternative BODYSTRUCTURE",
            ALTERNATIVE,
            true,
            format!(
                r#"({} NIL NIL NIL NIL)("text" "html" ("charset" "utf-8") NIL NIL "quoted-printable" 16 1 NIL NIL NIL NIL) "alternative" ("boundary" "XX") NIL NIL NIL)"#,
                plain(r#"("charset" "utf-8")"#, 5, 1)
            ),
        ),
        (
            "mixed with attachment",
            MIXED,
            true,
            format!(
                concat!(
                    r#"({} NIL NIL NIL NIL)"#,
                    r#"("application" "pdf" ("name" "r.pdf") "<att1@example.com>" "The report" "base64" 12 NIL ("attachment" ("filename" "r.pdf")) ("en" "de") "http://example.com/r.pdf")"#,
                    r#" "mixed" ("boundary" "frontier") NIL NIL NIL)"#
                ),
                plain("NIL", 13, 1)
            ),
        ),
        (
            "message/rfc822",
            RFC822,
            true,
            format!(
                concat!(
                    r#"({} NIL NIL NIL NIL)"#,
                    r#"("message" "rfc822" NIL NIL NIL "7bit" 87 "#,
                    r#"("Tue, 1 Jan 2019 10:00:00 +0000" "inner" ((NIL NIL "c" "example.com")) ((NIL NIL "c" "example.com")) ((NIL NIL "c" "example.com")) NIL NIL NIL NIL NIL) "#,
                    r#"{} NIL NIL NIL NIL) 5 NIL NIL NIL NIL)"#,
                    r#" "mixed" ("boundary" "b1") NIL NIL NIL)"#
                ),
                plain("NIL", 9, 1),
                plain(r#"("charset" "us-ascii")"#, 10, 1)
            ),
        ),
        (
            "message/rfc822 BODY",
            RFC822,
            false,
            format!(
                concat!(
                    r#"({}"#,
                    r#"("message" "rfc822" NIL NIL NIL "7bit" 87 "#,
                    r#"("Tue, 1 Jan 2019 10:00:00 +0000" "inner" ((NIL NIL "c" "example.com")) ((NIL NIL "c" "example.com")) ((NIL NIL "c" "example.com")) NIL NIL NIL NIL NIL) "#,
                    r#"{}) 5) "mixed")"#
                ),
                plain("NIL", 9, 1) + ")",
                plain(r#"("charset" "us-ascii")"#, 10, 1)
            ),
        ),
        (
            "multipart without boundary",
            "Content-Type: multipart/mixed\n\nx\n",
            false,
            r#"(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0) "mixed")"#.into(),
        ),
    ];
    for (name, raw, ext, want) in cases {
        assert_eq!(
            parsed_out(raw, |p, o| p.write_body_structure(o, *ext)),
            *want,
            "{name}"
        );
    }
}

fn sec(part: &[u32], text: SectionText) -> Section {
    Section {
        part: part.to_vec(),
        text,
    }
}

fn names(n: &[&str]) -> Vec<String> {
    n.iter().map(|s| s.to_string()).collect()
}

#[test]
fn sections() {
    use SectionText::*;
    let inner = "From: c@example.com\r\nSubject: inner\r\nDate: Tue, 1 Jan 2019 10:00:00 +0000\r\n\r\ninner body";
    let rfc822 = to_crlf(RFC822.as_bytes()).into_owned();
    let top_header =
        "From: a@example.com\r\nSubject: fwd\r\nContent-Type: multipart/mixed; boundary=b1\r\n\r\n";
    let cases: &[(&str, &str, Section, Option<&str>)] = &[
        (
            "whole",
            RFC822,
            sec(&[], Full),
            Some(std::str::from_utf8(&rfc822).expect("utf-8")),
        ),
        ("header", RFC822, sec(&[], Header), Some(top_header)),
        (
            "text",
            RFC822,
            sec(&[], Text),
            Some(&std::str::from_utf8(&rfc822).expect("utf-8")[top_header.len()..]),
        ),
        (
            "fields in message order",
            RFC822,
            sec(&[], HeaderFields(names(&["subject", "FROM"]))),
            Some("From: a@example.com\r\nSubject: fwd\r\n\r\n"),
        ),
        (
            "fields none match",
            RFC822,
            sec(&[], HeaderFields(names(&["x-none"]))),
            Some("\r\n"),
        ),
        (
            "fields not",
            RFC822,
            sec(&[], HeaderFieldsNot(names(&["Subject", "From"]))),
            Some("Content-Type: multipart/mixed; boundary=b1\r\n\r\n"),
        ),
        ("top mime", RFC822, sec(&[], Mime), None),
        ("part 1", RFC822, sec(&[1], Full), Some("see below")),
        (
            "part 1 mime",
            RFC822,
            sec(&[1], Mime),
            Some("Content-Type: text/plain\r\n\r\n"),
        ),
        (
            "part 1 header: not a message",
            RFC822,
            sec(&[1], Header),
            None,
        ),
        (
            "part 1.1: leaf has no parts",
            RFC822,
            sec(&[1, 1], Full),
            None,
        ),
        ("embedded message", RFC822, sec(&[2], Full), Some(inner)),
        (
            "embedded mime",
            RFC822,
            sec(&[2], Mime),
            Some("Content-Type: message/rfc822\r\n\r\n"),
        ),
        (
            "embedded header",
            RFC822,
            sec(&[2], Header),
            Some(&inner[..inner.len() - 10]),
        ),
        ("embedded text", RFC822, sec(&[2], Text), Some("inner body")),
        (
            "embedded fields",
            RFC822,
            sec(&[2], HeaderFields(names(&["subject"]))),
            Some("Subject: inner\r\n\r\n"),
        ),
        (
            "embedded fields not",
            RFC822,
            sec(&[2], HeaderFieldsNot(names(&["subject", "date"]))),
            Some("From: c@example.com\r\n\r\n"),
        ),
        (
            "embedded single part is 2.1",
            RFC822,
            sec(&[2, 1], Full),
            Some("inner body"),
        ),
        ("embedded 2.2 missing", RFC822, sec(&[2, 2], Full), None),
        ("part 3 missing", RFC822, sec(&[3], Full), None),
        ("part 0 missing", RFC822, sec(&[0], Full), None),
        (
            "single part: 1 is the body",
            SIMPLE,
            sec(&[1], Full),
            Some("Hello Joe, do you think we can meet at 3:30 tomorrow?\r\n"),
        ),
        ("single part: 2 missing", SIMPLE, sec(&[2], Full), None),
        (
            "nested 1: no headers",
            NESTED,
            sec(&[1], Full),
            Some("first"),
        ),
        (
            "nested 1 mime: empty header",
            NESTED,
            sec(&[1], Mime),
            Some("\r\n"),
        ),
        (
            "nested 2 is the multipart body",
            NESTED,
            sec(&[2], Full),
            Some(
                "--outer-inner\r\nContent-Type: text/plain\r\n\r\ntwo one\r\n--outer-inner\r\nContent-Type: text/html\r\n\r\n<b>two two</b>\r\n--outer-inner--\r\n",
            ),
        ),
        ("nested 2.1", NESTED, sec(&[2, 1], Full), Some("two one")),
        (
            "nested 2.2",
            NESTED,
            sec(&[2, 2], Full),
            Some("<b>two two</b>"),
        ),
        (
            "nested 2.2 mime",
            NESTED,
            sec(&[2, 2], Mime),
            Some("Content-Type: text/html\r\n\r\n"),
        ),
        ("nested 2.3 missing", NESTED, sec(&[2, 3], Full), None),
        ("nested 2.2.1 missing", NESTED, sec(&[2, 2, 1], Full), None),
        (
            "unclosed boundary: last part runs to the end",
            "Content-Type: multipart/mixed; boundary=z\n\n--z\n\none\n--z\n\ntwo\n",
            sec(&[2], Full),
            Some("two\r\n"),
        ),
    ];
    for (name, raw, s, want) in cases {
        let crlf = to_crlf(raw.as_bytes());
        let got = Parsed::new(&crlf).section(s);
        assert_eq!(got.as_deref(), want.map(str::as_bytes), "{name}");
    }
}

#[test]
fn header_values_decode() {
    let crlf = to_crlf(ENCODED.as_bytes());
    let p = Parsed::new(&crlf);
    let cases: &[(&str, &[&str])] = &[
        // mail-parser's unstructured decoder collapses the fold's spaces.
        ("subject", &["caf\u{e9} time"]),
        ("SUBJECT", &["caf\u{e9} time"]),
        ("from", &["J\u{f6}rg <j@example.com>"]),
        ("x-raw", &["caf\u{e9}"]),
        ("x-missing", &[]),
    ];
    for (name, want) in cases {
        assert_eq!(p.header_values(name), *want, "{name}");
    }
    let crlf = to_crlf(b"Received: one\nX: a\nReceived: two\n  folded\n\nbody\n");
    assert_eq!(
        Parsed::new(&crlf).header_values("received"),
        ["one", "two  folded"]
    );
}

#[test]
fn sent_date() {
    let cases: &[(&str, Option<i64>)] = &[
        (SIMPLE, Some(760_686_745)),
        (ALTERNATIVE, None),
        ("Date: not a date\n\nx\n", None),
        (
            "Date: Tue, 1 Jan 2019 10:00:00 +0000\n\nx\n",
            Some(1_546_336_800),
        ),
    ];
    for (raw, want) in cases {
        let crlf = to_crlf(raw.as_bytes());
        assert_eq!(Parsed::new(&crlf).sent_date(), *want, "{raw}");
    }
}

#[test]
fn text_search() {
    let latin1_b64 = "Subject: hidden\nContent-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: base64\n\nR3L832U=\n";
    let cases: &[(&str, &str, bool, bool)] = &[
        (SIMPLE, "MEET AT", false, true),
        (SIMPLE, "afternoon", false, false),
        (SIMPLE, "afternoon", true, true),
        (SIMPLE, "", false, true),
        (ALTERNATIVE, "CAF\u{c9}", false, true),
        (ALTERNATIVE, "preamble", false, false),
        (latin1_b64, "gr\u{fc}\u{df}e", false, true),
        (latin1_b64, "hidden", false, false),
        (latin1_b64, "hidden", true, true),
        (RFC822, "Inner Body", false, true),
        (RFC822, "subject: inner", false, true),
        (MIXED, "JVBER", false, false),
        (ENCODED, "j\u{f6}rg", true, true),
    ];
    for (raw, needle, with_headers, want) in cases {
        let crlf = to_crlf(raw.as_bytes());
        assert_eq!(
            Parsed::new(&crlf).text_contains(needle, *with_headers),
            *want,
            "{needle:?} in {raw:?}"
        );
    }
}

#[test]
fn crlf_conversion() {
    let cases: &[(&[u8], &[u8], bool)] = &[
        (b"a\r\nb\r\n", b"a\r\nb\r\n", true),
        (b"a\nb\n", b"a\r\nb\r\n", false),
        (b"\na\r\nb\n", b"\r\na\r\nb\r\n", false),
        (b"a\rb", b"a\rb", true),
        (b"", b"", true),
    ];
    for (raw, want, borrowed) in cases {
        let got = to_crlf(raw);
        assert_eq!(&*got, *want);
        assert_eq!(matches!(got, std::borrow::Cow::Borrowed(_)), *borrowed);
    }
}

#[test]
fn strings() {
    let cases: &[(&[u8], &[u8])] = &[
        (b"plain", b"\"plain\""),
        (b"", b"\"\""),
        (b"a\"b\\c", b"\"a\\\"b\\\\c\""),
        (b"two\r\nlines", b"{10}\r\ntwo\r\nlines"),
        (b"\xc3\xa9", b"{2}\r\n\xc3\xa9"),
    ];
    for (s, want) in cases {
        let mut out = Vec::new();
        write_string(&mut out, s);
        assert_eq!(out, *want);
    }
    let mut out = Vec::new();
    write_nstring(&mut out, None);
    assert_eq!(out, b"NIL");
}

/// Whether parentheses balance outside IMAP strings and literals.
fn balanced(out: &[u8]) -> bool {
    let mut depth = 0i64;
    let mut i = 0;
    while i < out.len() {
        match out[i] {
            b'"' => {
                i += 1;
                while i < out.len() && out[i] != b'"' {
                    i += if out[i] == b'\\' { 2 } else { 1 };
                }
                if i >= out.len() {
                    return false;
                }
            }
            b'{' => {
                let close = match out[i..].iter().position(|&b| b == b'}') {
                    Some(p) => i + p,
                    None => return false,
                };
                let n: usize = match std::str::from_utf8(&out[i + 1..close])
                    .ok()
                    .and_then(|s| s.parse().ok())
                {
                    Some(n) => n,
                    None => return false,
                };
                if out.get(close + 1..close + 3) != Some(b"\r\n") {
                    return false;
                }
                i = close + 2 + n;
            }
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            _ => {}
        }
        i += 1;
    }
    depth == 0 && i == out.len()
}

/// Runs every entry point on `raw` and checks the output is well formed.
fn exercise(raw: &[u8]) {
    let crlf = to_crlf(raw);
    let p = Parsed::new(&crlf);
    let mut out = Vec::new();
    p.write_envelope(&mut out);
    assert!(
        balanced(&out),
        "envelope of {raw:?}: {}",
        String::from_utf8_lossy(&out)
    );
    for ext in [false, true] {
        out.clear();
        p.write_body_structure(&mut out, ext);
        assert!(
            balanced(&out),
            "body of {raw:?}: {}",
            String::from_utf8_lossy(&out)
        );
    }
    for part in [&[][..], &[1], &[2], &[1, 1], &[2, 1], &[1, 2, 1]] {
        for text in [
            SectionText::Full,
            SectionText::Header,
            SectionText::Text,
            SectionText::Mime,
            SectionText::HeaderFields(names(&["subject"])),
            SectionText::HeaderFieldsNot(names(&["subject"])),
        ] {
            let _ = p.section(&sec(part, text));
        }
    }
    let _ = p.header_values("subject");
    let _ = p.sent_date();
    let _ = p.text_contains("x", true);
}

/// xorshift64: a fixed-seed generator, so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn garbage_never_panics() {
    const PIECES: &[&[u8]] = &[
        b"\n",
        b"\r\n",
        b"\r",
        b" ",
        b":",
        b"\"",
        b"(",
        b")",
        b"<",
        b">",
        b"@",
        b",",
        b";",
        b"\\",
        b"=?",
        b"?=",
        b"--b",
        b"--b--",
        b"--c\n",
        b"From: ",
        b"To: g:",
        b"Subject: ",
        b"Date: ",
        b"Content-Type: ",
        b"multipart/mixed; boundary=b\n",
        b"multipart/digest; boundary=c\n",
        b"message/rfc822\n",
        b"text/plain; charset=",
        b"utf-16",
        b"Content-Transfer-Encoding: base64\n",
        b"quoted-printable",
        b"Content-Disposition: attachment; filename*=utf-8''%E2",
        b"Content-Language: ",
        b"\xff\xfe",
        b"\0",
    ];
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    for _ in 0..3000 {
        let mut raw = Vec::new();
        for _ in 0..rng.below(60) {
            if rng.below(4) == 0 {
                raw.extend((0..rng.below(8)).map(|_| rng.next() as u8));
            } else {
                raw.extend_from_slice(PIECES[rng.below(PIECES.len())]);
            }
        }
        exercise(&raw);
    }
}

#[test]
fn truncated_mime_never_panics() {
    for raw in [MIXED, RFC822, NESTED, ALTERNATIVE, ADDRESSES] {
        for cut in 0..=raw.len() {
            exercise(&raw.as_bytes()[..cut]);
        }
    }
}

#[test]
fn part_count_is_capped() {
    let mut raw = b"Content-Type: multipart/mixed; boundary=b\n\n".to_vec();
    for _ in 0..3 * structure::MAX_PARTS {
        raw.extend_from_slice(b"--b\n\nx\n");
    }
    raw.extend_from_slice(b"--b--\n");
    exercise(&raw);
    let crlf = to_crlf(&raw);
    let mut out = Vec::new();
    Parsed::new(&crlf).write_body_structure(&mut out, false);
    let parts = out.windows(6).filter(|w| w == b"\"text\"").count();
    assert!(parts < structure::MAX_PARTS, "{parts} parts");
}

#[test]
fn deep_nesting_is_capped() {
    let mut multipart = Vec::new();
    let mut message = Vec::new();
    for i in 0..1000 {
        multipart.extend_from_slice(
            format!("Content-Type: multipart/mixed; boundary=b{i}\n\n--b{i}\n").as_bytes(),
        );
        message.extend_from_slice(b"Content-Type: message/rfc822\n\n");
    }
    multipart.extend_from_slice(b"\nleaf\n");
    message.extend_from_slice(b"Subject: leaf\n\nleaf\n");
    for raw in [&multipart, &message] {
        exercise(raw);
        let crlf = to_crlf(raw);
        let mut out = Vec::new();
        Parsed::new(&crlf).write_body_structure(&mut out, true);
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains(r#""application" "octet-stream""#), "{text}");
        let depth = out.iter().scan(0i64, |d, &b| {
            *d += i64::from(b == b'(') - i64::from(b == b')');
            Some(*d)
        });
        assert!(depth.max().unwrap_or(0) < 3 * structure::MAX_DEPTH as i64);
    }
}
