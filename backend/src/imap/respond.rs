//! Writing server responses by hand into the session's output buffer.
//!
//! Responses are written directly, not built as imap-types values and
//! encoded: a FETCH of 100,000 messages is 100,000 responses, and appending
//! bytes to one reused buffer is the cheapest way there is. The grammar
//! helpers here (quoted strings, literals, flag lists) are the only places
//! that decide how a value goes on the wire.

use crate::store::maildir::Flags;

/// Status of a tagged (or untagged) result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    No,
    Bad,
}

impl Status {
    fn word(self) -> &'static [u8] {
        match self {
            Status::Ok => b"OK",
            Status::No => b"NO",
            Status::Bad => b"BAD",
        }
    }

    /// The `result` label of the command metrics.
    pub fn label(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::No => "no",
            Status::Bad => "bad",
        }
    }
}

/// `tag STATUS text` (`*` when `tag` is None).
pub fn status(out: &mut Vec<u8>, tag: Option<&str>, st: Status, text: &str) {
    out.extend_from_slice(tag.unwrap_or("*").as_bytes());
    out.push(b' ');
    out.extend_from_slice(st.word());
    out.push(b' ');
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// An untagged line: `* text`.
pub fn untagged(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(b"* ");
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// A number in decimal, without an allocation.
pub fn number(out: &mut Vec<u8>, n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut n = n;
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// A string: quoted when it can be, else a literal (one definition, the
/// message layer's).
pub use super::message::write_string as string;

/// `{n}\r\n` and the bytes.
pub fn literal(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'{');
    number(out, s.len() as u64);
    out.extend_from_slice(b"}\r\n");
    out.extend_from_slice(s);
}

/// A mailbox name: an atom when it is one, else a string.
pub fn mailbox(out: &mut Vec<u8>, name: &str) {
    let atom = !name.is_empty()
        && name.bytes().all(|b| {
            b.is_ascii_graphic()
                && !matches!(b, b'(' | b')' | b'{' | b'"' | b'\\' | b'%' | b'*' | b']')
        });
    if atom {
        out.extend_from_slice(name.as_bytes());
    } else {
        string(out, name.as_bytes());
    }
}

/// The system flags of a message, for a FLAGS list (without parentheses).
pub fn system_flags(out: &mut Vec<u8>, f: &Flags, recent: bool) {
    let mut first = true;
    let mut put = |out: &mut Vec<u8>, s: &[u8]| {
        if !first {
            out.push(b' ');
        }
        first = false;
        out.extend_from_slice(s);
    };
    // Maildir's P (passed) is IMAP's $Forwarded, as Dovecot maps it.
    for (on, name) in [
        (f.seen, b"\\Seen".as_slice()),
        (f.replied, b"\\Answered"),
        (f.flagged, b"\\Flagged"),
        (f.trashed, b"\\Deleted"),
        (f.draft, b"\\Draft"),
        (recent, b"\\Recent"),
        (f.passed, b"$Forwarded"),
    ] {
        if on {
            put(out, name);
        }
    }
}

/// A sequence set with runs joined, `1:3,7`, for COPYUID and ESEARCH
/// (in the order given: ESORT's ALL keeps its sort order).
pub fn sequence_set(uids: impl Iterator<Item = u32>) -> String {
    let mut out = String::new();
    let mut run: Option<(u32, u32)> = None;
    let flush = |out: &mut String, (a, b): (u32, u32)| {
        if !out.is_empty() {
            out.push(',');
        }
        if a == b {
            out.push_str(&a.to_string());
        } else {
            out.push_str(&format!("{a}:{b}"));
        }
    };
    for u in uids {
        run = match run {
            Some((a, b)) if u == b + 1 => Some((a, u)),
            Some(r) => {
                flush(&mut out, r);
                Some((u, u))
            }
            None => Some((u, u)),
        };
    }
    if let Some(r) = run {
        flush(&mut out, r);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(f: impl Fn(&mut Vec<u8>)) -> String {
        let mut v = Vec::new();
        f(&mut v);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn strings_quote_or_go_literal() {
        assert_eq!(s(|o| string(o, b"plain")), "\"plain\"");
        assert_eq!(s(|o| string(o, b"a\"b\\c")), "\"a\\\"b\\\\c\"");
        assert_eq!(s(|o| string(o, b"two\r\nlines")), "{10}\r\ntwo\r\nlines");
        assert_eq!(s(|o| string(o, "é".as_bytes())), "{2}\r\né");
        assert_eq!(s(|o| mailbox(o, "INBOX")), "INBOX");
        assert_eq!(s(|o| mailbox(o, "My Folder")), "\"My Folder\"");
        assert_eq!(s(|o| mailbox(o, "")), "\"\"");
        assert_eq!(s(|o| number(o, 0)), "0");
        assert_eq!(s(|o| number(o, u64::MAX)), u64::MAX.to_string());
    }

    #[test]
    fn flags_in_imap_names() {
        let f = Flags::parse("FPST");
        assert_eq!(
            s(|o| system_flags(o, &f, true)),
            "\\Seen \\Flagged \\Deleted \\Recent $Forwarded"
        );
        assert_eq!(s(|o| system_flags(o, &Flags::default(), false)), "");
    }

    #[test]
    fn sequence_sets_join_runs() {
        assert_eq!(sequence_set([1, 2, 3, 5, 7, 8].into_iter()), "1:3,5,7:8");
        assert_eq!(sequence_set([4].into_iter()), "4");
        assert_eq!(sequence_set(std::iter::empty()), "");
    }
}
