//! IMAP string encoding (RFC 3501 §4.3, §4.5): quoted when the bytes allow,
//! a synchronising literal otherwise, NIL for absent values.

/// Longer strings go out as literals: a client reads those without scanning
/// for escapes, and Dovecot does the same for long values.
const MAX_QUOTED: usize = 1024;

/// Appends `s` as an IMAP string: a quoted string when every byte is 7-bit
/// and neither CR, LF nor NUL (`"` and `\` escaped), a literal `{n}\r\n...`
/// otherwise.
pub fn write_string(out: &mut Vec<u8>, s: &[u8]) {
    let quotable = s.len() <= MAX_QUOTED
        && s.iter()
            .all(|&b| (1..0x80).contains(&b) && b != b'\r' && b != b'\n');
    if quotable {
        out.push(b'"');
        for &b in s {
            if b == b'"' || b == b'\\' {
                out.push(b'\\');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        out.push(b'{');
        out.extend_from_slice(s.len().to_string().as_bytes());
        out.extend_from_slice(b"}\r\n");
        out.extend_from_slice(s);
    }
}

/// Appends `s` as an nstring: NIL when absent, [`write_string`] otherwise.
pub fn write_nstring(out: &mut Vec<u8>, s: Option<&[u8]>) {
    match s {
        Some(s) => write_string(out, s),
        None => out.extend_from_slice(b"NIL"),
    }
}

/// Appends a parenthesised list of strings, or NIL when empty (the form of
/// body-fld-param and body-fld-lang lists).
pub(super) fn write_string_list<'s>(out: &mut Vec<u8>, items: impl IntoIterator<Item = &'s [u8]>) {
    let mut any = false;
    for item in items {
        out.push(if any { b' ' } else { b'(' });
        write_string(out, item);
        any = true;
    }
    out.extend_from_slice(if any { b")" } else { b"NIL" });
}
