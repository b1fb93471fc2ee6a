//! Header blocks and fields (RFC 5322 §2.2) over CRLF bytes, by offsets.
//!
//! Our own splitter rather than mail-parser's: IMAP needs the exact bytes of
//! each field (HEADER.FIELDS) and the raw, undecoded values (ENVELOPE), and
//! this is a handful of bounded loops that cannot panic.

use std::ops::Range;

/// Splits `buf[range]` into its header block (including the empty line that
/// ends it) and its body. No empty line at all: everything is header.
pub(super) fn split(buf: &[u8], range: Range<usize>) -> (Range<usize>, Range<usize>) {
    let bytes = buf.get(range.clone()).unwrap_or_default();
    let end = if bytes.starts_with(b"\r\n") {
        Some(2)
    } else {
        bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map(|p| p + 4)
    };
    match end {
        Some(e) => (range.start..range.start + e, range.start + e..range.end),
        None => (range.clone(), range.end..range.end),
    }
}

/// One header field: its name, its value (after the colon, folds kept,
/// final CRLF dropped) and all its bytes (final CRLF included).
#[derive(Debug, Clone, Copy)]
pub(super) struct Field<'a> {
    pub name: &'a [u8],
    pub value: &'a [u8],
    pub raw: &'a [u8],
}

impl Field<'_> {
    pub fn is(&self, name: &[u8]) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }
}

/// The fields of a header block, in order, up to the empty line.
pub(super) fn fields(block: &[u8]) -> Fields<'_> {
    Fields { block, pos: 0 }
}

pub(super) struct Fields<'a> {
    block: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for Fields<'a> {
    type Item = Field<'a>;

    fn next(&mut self) -> Option<Field<'a>> {
        let rest = self.block.get(self.pos..)?;
        if rest.is_empty() || rest.starts_with(b"\r\n") {
            return None;
        }
        // A field runs to the end of its line and of every continuation line.
        let mut end = line_end(rest, 0);
        while end < rest.len() && matches!(rest[end], b' ' | b'\t') {
            end = line_end(rest, end);
        }
        let raw = &rest[..end];
        self.pos += end;
        let content = raw.strip_suffix(b"\r\n").unwrap_or(raw);
        let first_line = &content[..line_end(content, 0).min(content.len())];
        let (name, value) = match first_line.iter().position(|&b| b == b':') {
            Some(colon) => (&content[..colon], &content[colon + 1..]),
            None => (content, &content[content.len()..]),
        };
        Some(Field {
            name: trim(name),
            value,
            raw,
        })
    }
}

/// The offset just past the LF ending the line that contains `from`.
fn line_end(bytes: &[u8], from: usize) -> usize {
    bytes
        .get(from..)
        .and_then(|r| r.iter().position(|&b| b == b'\n'))
        .map_or(bytes.len(), |p| from + p + 1)
}

/// Trims spaces and tabs at both ends.
pub(super) fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// A value unfolded (RFC 5322 §2.2.3: CRLF before whitespace removed) and
/// trimmed; any other CR or LF left over from broken input becomes a space.
pub(super) fn unfold(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len());
    let mut i = 0;
    while i < value.len() {
        match value[i] {
            b'\r' if value.get(i + 1) == Some(&b'\n') => i += 2,
            b'\r' | b'\n' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    trim(&out).to_vec()
}

/// The unfolded value of the first field called `name`.
pub(super) fn first(block: &[u8], name: &[u8]) -> Option<Vec<u8>> {
    fields(block).find(|f| f.is(name)).map(|f| unfold(f.value))
}
