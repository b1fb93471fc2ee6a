//! The message-structure layer under FETCH and SEARCH (RFC 3501 §6.4.4,
//! §6.4.5, §7.4.2; RFC 9051 keeps the same forms).
//!
//! Messages are stored with LF line ends; IMAP serves them with CRLF, so
//! everything here works on the CRLF form ([`to_crlf`]) and every size, line
//! count and section is what the client sees. [`Parsed::new`] splits the
//! MIME tree once (by byte offsets, see [`structure`]); each FETCH item or
//! SEARCH key then reads it.
//!
//! - [`envelope`]: ENVELOPE, raw header values, addresses and groups;
//! - [`structure`]: the MIME tree, BODY and BODYSTRUCTURE;
//! - [`section`]: BODY[section] bytes;
//! - [`text`]: decoded header values, Date, body text search;
//! - [`wire`]: IMAP strings.

mod binary;
mod envelope;
mod header;
mod section;
mod structure;
mod text;
mod wire;

#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::cell::OnceCell;

pub use binary::UnknownCte;
pub use wire::{write_nstring, write_string};

/// The message with every bare LF made CRLF; borrowed when it already is.
pub fn to_crlf(raw: &[u8]) -> Cow<'_, [u8]> {
    let bare = |i: usize| raw[i] == b'\n' && (i == 0 || raw[i - 1] != b'\r');
    let count = (0..raw.len()).filter(|&i| bare(i)).count();
    if count == 0 {
        return Cow::Borrowed(raw);
    }
    let mut out = Vec::with_capacity(raw.len() + count);
    for (i, &b) in raw.iter().enumerate() {
        if bare(i) {
            out.push(b'\r');
        }
        out.push(b);
    }
    Cow::Owned(out)
}

/// A BODY[...] section spec (RFC 3501 §6.4.5), apart from the IMAP parser's
/// types. `part` empty means the whole message; partial `<o.n>` is the
/// caller's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub part: Vec<u32>,
    pub text: SectionText,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SectionText {
    /// The part's body (`BODY[1]`), or the whole message (`BODY[]`).
    Full,
    Header,
    HeaderFields(Vec<String>),
    HeaderFieldsNot(Vec<String>),
    Text,
    Mime,
}

/// A message parsed once for any number of FETCH items and SEARCH keys.
/// Parsing costs one pass per nesting level over the bytes; the tree holds
/// offsets and content types, not copies. The decoded text for
/// [`Parsed::text_contains`] is built on its first call and kept.
#[derive(Debug)]
pub struct Parsed<'a> {
    buf: &'a [u8],
    root: structure::Part,
    texts: OnceCell<text::Texts>,
}

impl<'a> Parsed<'a> {
    /// Parses `crlf` (the output of [`to_crlf`]). Never panics; broken MIME
    /// gives a best-effort tree.
    pub fn new(crlf: &'a [u8]) -> Parsed<'a> {
        let mut budget = structure::MAX_PARTS;
        let root = structure::parse(crlf, 0..crlf.len(), 0, false, &mut budget);
        Parsed {
            buf: crlf,
            root,
            texts: OnceCell::new(),
        }
    }

    fn top_header(&self) -> &'a [u8] {
        self.buf.get(self.root.header.clone()).unwrap_or_default()
    }

    /// Appends the ENVELOPE list: raw (unfolded, not decoded) header values,
    /// NIL for missing fields, sender and reply-to defaulting to from.
    pub fn write_envelope(&self, out: &mut Vec<u8>) {
        envelope::write_envelope(self.top_header(), out);
    }

    /// Appends BODY (`extensible` false) or BODYSTRUCTURE (true).
    pub fn write_body_structure(&self, out: &mut Vec<u8>, extensible: bool) {
        structure::write_body(self.buf, &self.root, out, extensible);
    }

    /// The bytes of a BODY[...] section, `None` when there is no such part
    /// (the caller then sends an empty string, as Dovecot does).
    pub fn section(&self, section: &Section) -> Option<Cow<'a, [u8]>> {
        section::section(self.buf, &self.root, section)
    }

    /// Every value of the top-level header field `name` (any case),
    /// unfolded, encoded-words decoded to UTF-8.
    /// BINARY[part] (RFC 3516): the part's body with its transfer encoding
    /// undone; `None` when there is no such part.
    pub fn binary(&self, part: &[u32]) -> Option<Result<Cow<'a, [u8]>, UnknownCte>> {
        binary::binary(self.buf, &self.root, part)
    }

    /// The message to store for an APPEND: `binary` parts re-encoded as
    /// base64 (RFC 3516 §4.4); `None` when there are none.
    pub fn encode_binary_parts(&self) -> Option<Vec<u8>> {
        binary::encode_binary_parts(self.buf, &self.root)
    }

    pub fn header_values(&self, name: &str) -> Vec<String> {
        text::header_values(self.top_header(), name)
    }

    /// The Date field as seconds since the epoch (UTC); `None` when missing
    /// or unparsable.
    pub fn sent_date(&self) -> Option<i64> {
        text::sent_date(self.top_header())
    }

    /// The Date: header's local wall-clock time, as seconds counted as if
    /// UTC (for SENTON and friends, which compare the day as written).
    pub fn sent_date_local(&self) -> Option<i64> {
        text::sent_date_local(self.top_header())
    }

    /// Whether the decoded text of the text/* parts (and the headers of
    /// embedded messages; the top header too when `with_headers`, SEARCH
    /// TEXT) contains `needle`, ignoring case (Unicode lowercase). The
    /// first call decodes every text part; later calls reuse it.
    pub fn text_contains(&self, needle: &str, with_headers: bool) -> bool {
        self.texts
            .get_or_init(|| text::Texts::new(self.buf, &self.root))
            .contains(needle, with_headers)
    }
}
