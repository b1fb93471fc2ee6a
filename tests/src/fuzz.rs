//! The fuzz targets: one function per parser, taking arbitrary bytes.
//!
//! Each target feeds its input to a parser the way the network or a
//! crash-damaged file would, and checks more than "no panic" where the
//! parser promises more: a framer gives the same commands whether the bytes
//! arrive whole or split anywhere, a normalised address parses to itself,
//! an escaped LDAP value unescapes to the original.
//!
//! The same functions run two ways: under AFL++ (`fuzz/`, a crate outside
//! the workspace built with `cargo afl`) for coverage-guided search, and in
//! the default test run (`tests/tests/fuzz_corpus.rs`), which replays every
//! seed and every crash ever found, so a fixed crash stays fixed.

use std::sync::OnceLock;

/// A fuzz target: arbitrary bytes in, a panic for a finding.
pub type Target = fn(&[u8]);

/// Every target by name, as the corpus directories are named.
pub const TARGETS: &[(&str, Target)] = &[
    ("imap_command", imap_command),
    ("smtp_command", smtp_command),
    ("smtp_data", smtp_data),
    ("smtp_bdat", smtp_bdat),
    ("pop3_command", pop3_command),
    ("proxy_header", proxy_header),
    ("address", address),
    ("sasl_plain", sasl_plain),
    ("ldap_escape", ldap_escape),
    ("mime", mime),
    ("spool_journal", spool_journal),
];

/// The target called `name`.
pub fn target(name: &str) -> Option<Target> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

/// Split points taken from the input's first byte: the rest is fed in
/// pieces of 1..=first+1 bytes, so every split pattern is reachable.
fn pieces(data: &[u8]) -> (usize, &[u8]) {
    match data.split_first() {
        Some((&n, rest)) => (usize::from(n % 64) + 1, rest),
        None => (1, data),
    }
}

/// IMAP: the framer (limits, literals, LITERAL+) and imap-codec's parse of
/// each framed command. Fed whole and in pieces, it must frame the same.
pub fn imap_command(data: &[u8]) {
    use backend::imap::codec::parse_command;
    use backend::imap::frame::{Frame, Framer, Limits};

    let limits = Limits {
        max_line: 1024,
        max_literal: 512,
        max_append_literal: 2048,
        max_command: 4096,
    };
    let frames = |chunk: usize, input: &[u8]| -> Vec<String> {
        let mut framer = Framer::new(limits);
        let mut seen = Vec::new();
        let mut fed = 0;
        loop {
            match framer.step() {
                Frame::NeedMore => {
                    if fed >= input.len() {
                        return seen;
                    }
                    let end = (fed + chunk).min(input.len());
                    framer.buffer().extend_from_slice(&input[fed..end]);
                    fed = end;
                }
                Frame::Continue => seen.push("+".into()),
                Frame::Command(range) => {
                    let bytes = framer.bytes(range).to_vec();
                    let _ = parse_command(&bytes);
                    seen.push(format!("C{bytes:?}"));
                    framer.consume();
                }
                Frame::Rejected { tag, why } => seen.push(format!("R{tag:?}{why:?}")),
            }
        }
    };
    let (chunk, input) = pieces(data);
    let whole = frames(input.len().max(1), input);
    assert_eq!(
        whole,
        frames(chunk, input),
        "framing depends on how bytes arrive"
    );
}

/// SMTP/LMTP command lines.
pub fn smtp_command(data: &[u8]) {
    if let Ok(command) = shared::smtp::command::parse(data) {
        let _ = format!("{command:?}");
    }
}

/// DATA bodies, strict (frontend) and lenient (LMTP) forms: fed whole and
/// in pieces they must end at the same place with the same body.
pub fn smtp_data(data: &[u8]) {
    use shared::smtp::data::{DotReader, Form, Step};
    let (chunk, input) = pieces(data);
    for form in [Form::Crlf, Form::Lf] {
        let run = |chunk: usize| {
            let mut r = DotReader::new(4096, form).with_max_line(256);
            let mut body = Vec::new();
            let mut end = None;
            for (i, piece) in input.chunks(chunk.max(1)).enumerate() {
                if let Step::Done(n) = r.feed(piece, &mut body) {
                    end = Some(i * chunk + n);
                    break;
                }
            }
            (end, body, r.over(), r.size(), r.flaws().any())
        };
        assert_eq!(
            run(input.len().max(1)),
            run(chunk),
            "DATA depends on how bytes arrive"
        );
    }
}

/// BDAT chunks: the same body whatever the chunk boundaries.
pub fn smtp_bdat(data: &[u8]) {
    use shared::smtp::data::{Chunks, Form};
    let (chunk, input) = pieces(data);
    for form in [Form::Crlf, Form::Lf] {
        let run = |chunk: usize| {
            let mut c = Chunks::new(4096, form).with_max_line(256);
            let mut body = Vec::new();
            for piece in input.chunks(chunk.max(1)) {
                if c.admit(piece.len() as u64) {
                    c.push(piece, &mut body);
                }
            }
            c.finish(&mut body);
            (body, c.over(), c.size(), c.flaws().any())
        };
        assert_eq!(
            run(input.len().max(1)),
            run(chunk),
            "BDAT depends on chunk boundaries"
        );
    }
}

pub fn pop3_command(data: &[u8]) {
    let _ = shared::pop3::parse(data);
}

/// PROXY v1/v2 headers as a load balancer (or an attacker on a trusted
/// network) would send them; never reads past the header.
pub fn proxy_header(data: &[u8]) {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    let Some(rt) = runtime(&RT) else { return };
    let mut input = data;
    let r = rt.block_on(shared::net::proxy::read_header(
        &mut input,
        std::time::Duration::from_secs(1),
    ));
    if r.is_ok() {
        assert!(input.len() <= data.len());
    }
}

fn runtime(cell: &OnceLock<tokio::runtime::Runtime>) -> Option<&tokio::runtime::Runtime> {
    if cell.get().is_none() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .ok()?;
        let _ = cell.set(rt);
    }
    cell.get()
}

/// Mail addresses: a normalised address parses to itself.
pub fn address(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(a) = shared::Address::parse(text) {
        let again = shared::Address::parse(a.as_str());
        assert_eq!(
            again.as_ref().ok(),
            Some(&a),
            "normalisation is not idempotent"
        );
    }
    let _ = shared::Domain::parse(text);
}

/// SASL PLAIN, base64 and raw; what parses re-encodes to the same.
pub fn sasl_plain(data: &[u8]) {
    let _ = shared::sasl::decode_plain(data);
    if let Ok(p) = shared::sasl::parse_plain(data) {
        let encoded = shared::sasl::encode_plain(&p.authzid, &p.authcid, &p.password);
        let back = shared::sasl::decode_plain(encoded.as_bytes());
        assert_eq!(back.ok(), Some(p), "PLAIN does not round-trip");
    }
}

/// LDAP filter values (RFC 4515) and DN values (RFC 4514): no
/// metacharacter survives escaping, and escaping is reversible.
pub fn ldap_escape(data: &[u8]) {
    use locator::ldap::filter::{escape_dn_value, escape_value};
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let escaped = escape_value(text);
    let mut bytes = escaped.bytes();
    let mut raw = Vec::new();
    while let Some(b) = bytes.next() {
        assert!(
            !matches!(b, b'*' | b'(' | b')' | 0),
            "unescaped {b:#x} in {escaped:?}"
        );
        if b == b'\\' {
            let hex: Vec<u8> = bytes.by_ref().take(2).collect();
            let hex = std::str::from_utf8(&hex).unwrap_or("");
            let Ok(v) = u8::from_str_radix(hex, 16) else {
                panic!("bad escape in {escaped:?}");
            };
            raw.push(v);
        } else {
            raw.push(b);
        }
    }
    assert_eq!(raw, text.as_bytes(), "escape_value is not reversible");
    let dn = escape_dn_value(text);
    assert!(
        !dn.bytes().any(|b| b.is_ascii_control()),
        "control byte in DN {dn:?}"
    );
}

/// A message as it may arrive: MIME tree, ENVELOPE, BODYSTRUCTURE,
/// sections, BINARY, decoded text search.
pub fn mime(data: &[u8]) {
    use backend::imap::message::{Parsed, Section, SectionText, to_crlf};
    let crlf = to_crlf(data);
    let parsed = Parsed::new(&crlf);
    let mut out = Vec::new();
    parsed.write_envelope(&mut out);
    parsed.write_body_structure(&mut out, true);
    parsed.write_body_structure(&mut out, false);
    for part in [vec![], vec![1], vec![1, 1], vec![2], vec![2, 1, 3]] {
        for text in [
            SectionText::Full,
            SectionText::Header,
            SectionText::Text,
            SectionText::Mime,
        ] {
            let section = Section {
                part: part.clone(),
                text,
            };
            if let Some(bytes) = parsed.section(&section) {
                assert!(bytes.len() <= crlf.len() * 2 + 64);
            }
        }
        let _ = parsed.binary(&part);
    }
    let _ = parsed.encode_binary_parts();
    let _ = parsed.header_values("subject");
    let _ = parsed.sent_date();
    let _ = parsed.sent_date_local();
    let _ = parsed.text_contains("needle", true);
}

/// A spool journal as a crash may leave it: read without repair it is an
/// entry or an error, never a panic.
pub fn spool_journal(data: &[u8]) {
    let _ = frontend::queue::spool::parse_journal(data, "fuzz");
}
