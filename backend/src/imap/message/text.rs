//! Decoded text for SEARCH and SORT (RFC 3501 §6.4.4): header values with
//! encoded-words decoded (RFC 2047), the Date as a timestamp, and the body
//! text transfer-decoded and converted to UTF-8.

use mail_parser::decoders::base64::base64_decode;
use mail_parser::decoders::charsets::map::charset_decoder;
use mail_parser::decoders::quoted_printable::quoted_printable_decode;
use mail_parser::{DateTime, MessageParser};

use super::header::{self, fields, unfold};
use super::structure::{Kind, Part};

/// The values of every field called `name` in `block`, decoded.
pub(super) fn header_values(block: &[u8], name: &str) -> Vec<String> {
    fields(block)
        .filter(|f| f.is(name.as_bytes()))
        .map(|f| decode_unstructured(&unfold(f.value)))
        .collect()
}

/// Decodes encoded-words in an unfolded value, read as unstructured text
/// (mail-parser's Subject parser, fed a one-field header).
fn decode_unstructured(value: &[u8]) -> String {
    if !value.windows(2).any(|w| w == b"=?") {
        return String::from_utf8_lossy(value).into_owned();
    }
    let mut tiny = Vec::with_capacity(value.len() + 16);
    tiny.extend_from_slice(b"Subject: ");
    tiny.extend_from_slice(value);
    tiny.extend_from_slice(b"\r\n\r\n");
    MessageParser::new()
        .parse_headers(&tiny)
        .and_then(|m| m.subject().map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(value).into_owned())
}

/// The first Date field as seconds since the epoch, UTC.
pub(super) fn sent_date(block: &[u8]) -> Option<i64> {
    let value = header::first(block, b"date")?;
    let date = DateTime::parse_rfc822(&String::from_utf8_lossy(&value))?;
    date.is_valid().then(|| date.to_timestamp())
}

/// The Date: header's wall-clock time as written, counted as if it were
/// UTC: its calendar day is the day the sender wrote (SEARCH SENTON,
/// RFC 3501 §6.4.4, disregards time and timezone).
pub(super) fn sent_date_local(block: &[u8]) -> Option<i64> {
    let value = header::first(block, b"date")?;
    let date = DateTime::parse_rfc822(&String::from_utf8_lossy(&value))?;
    if !date.is_valid() {
        return None;
    }
    let offset = i64::from(date.tz_hour) * 3600 + i64::from(date.tz_minute) * 60;
    let offset = if date.tz_before_gmt { -offset } else { offset };
    Some(date.to_timestamp() + offset)
}

/// The searchable text of a message, lowercased once for any number of
/// SEARCH keys.
#[derive(Debug)]
pub(super) struct Texts {
    /// The top header, `Name: decoded value` lines.
    header: String,
    /// The text/* bodies and the headers of embedded messages.
    body: String,
}

impl Texts {
    pub fn new(buf: &[u8], root: &Part) -> Texts {
        let mut body = String::new();
        collect(buf, root, &mut body);
        Texts {
            header: header_text(buf, root).unwrap_or_default().to_lowercase(),
            body: body.to_lowercase(),
        }
    }

    /// Whether `needle` occurs, ignoring case, in the bodies (and the top
    /// header when `with_headers`).
    pub fn contains(&self, needle: &str, with_headers: bool) -> bool {
        let needle = needle.to_lowercase();
        self.body.contains(&needle) || (with_headers && self.header.contains(&needle))
    }
}

/// Appends the text under `part`; recursion is bounded by the tree's depth
/// cap.
fn collect(buf: &[u8], part: &Part, out: &mut String) {
    match &part.kind {
        Kind::Multipart(children) => children.iter().for_each(|c| collect(buf, c, out)),
        Kind::Message(inner) => {
            out.push_str(&header_text(buf, inner).unwrap_or_default());
            collect(buf, inner, out);
        }
        Kind::Leaf if part.mime.ctype == "text" => {
            out.push_str(&body_text(buf, part));
            out.push('\n');
        }
        Kind::Leaf => {}
    }
}

/// A header block as `Name: decoded value` lines.
fn header_text(buf: &[u8], part: &Part) -> Option<String> {
    let block = buf.get(part.header.clone())?;
    let mut text = String::new();
    for f in fields(block) {
        text.push_str(&String::from_utf8_lossy(f.name));
        text.push_str(": ");
        text.push_str(&decode_unstructured(&unfold(f.value)));
        text.push('\n');
    }
    Some(text)
}

/// A leaf's body, transfer-decoded, then converted from its charset (UTF-8,
/// lossily, when the charset is absent or unknown).
pub(super) fn body_text(buf: &[u8], part: &Part) -> String {
    let raw = buf.get(part.body.clone()).unwrap_or_default();
    let block = buf.get(part.header.clone()).unwrap_or_default();
    let encoding = header::first(block, b"content-transfer-encoding").unwrap_or_default();
    let decoded = if encoding.eq_ignore_ascii_case(b"base64") {
        base64_decode(raw)
    } else if encoding.eq_ignore_ascii_case(b"quoted-printable") {
        quoted_printable_decode(raw)
    } else {
        None
    };
    let bytes = decoded.as_deref().unwrap_or(raw);
    match part
        .mime
        .param("charset")
        .and_then(|c| charset_decoder(c.as_bytes()))
    {
        Some(decode) => decode(bytes),
        None => String::from_utf8_lossy(bytes).into_owned(),
    }
}
