//! The MIME tree (RFC 2045, RFC 2046 §5) as byte ranges of the CRLF message,
//! and its BODY / BODYSTRUCTURE form (RFC 3501 §7.4.2).
//!
//! Boundaries are found here, by offsets, so that part sizes and section
//! bytes are exact; mail-parser parses the Content-Type and
//! Content-Disposition values (quoting, comments, RFC 2231 parameters).

use std::ops::Range;

use mail_parser::{HeaderName, HeaderValue, MessageParser};

use super::envelope::write_envelope;
use super::header::{self, fields};
use super::wire::{write_nstring, write_string, write_string_list};

/// Parts nested deeper than this are opaque application/octet-stream leaves,
/// which bounds both the recursion here and in every tree walk.
pub(super) const MAX_DEPTH: usize = 50;

/// Parts in one message, all levels together; past it, multiparts and
/// embedded messages are opaque leaves too, so that a message of tiny parts
/// cannot make a huge tree or BODYSTRUCTURE.
pub(super) const MAX_PARTS: usize = 10_000;

/// One MIME entity: header block (with its empty line), body, content type.
#[derive(Debug)]
pub(super) struct Part {
    pub header: Range<usize>,
    pub body: Range<usize>,
    pub mime: Mime,
    pub kind: Kind,
}

#[derive(Debug)]
pub(super) enum Kind {
    Leaf,
    Multipart(Vec<Part>),
    /// message/rfc822: the embedded message, parsed from this part's body.
    Message(Box<Part>),
}

/// Content-Type and Content-Disposition, names lowercased by mail-parser.
#[derive(Debug, Default)]
pub(super) struct Mime {
    pub ctype: String,
    pub subtype: String,
    pub params: Vec<(String, String)>,
    pub disposition: Option<(String, Vec<(String, String)>)>,
}

impl Mime {
    pub fn is(&self, ctype: &str, subtype: &str) -> bool {
        self.ctype == ctype && self.subtype == subtype
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn opaque() -> Mime {
        Mime {
            ctype: "application".into(),
            subtype: "octet-stream".into(),
            ..Mime::default()
        }
    }
}

/// Parses the entity at `range`. `in_digest`: the parent is multipart/digest,
/// whose parts default to message/rfc822 (RFC 2046 §5.1.5).
pub(super) fn parse(
    buf: &[u8],
    range: Range<usize>,
    depth: usize,
    in_digest: bool,
    budget: &mut usize,
) -> Part {
    *budget = budget.saturating_sub(1);
    let (header, body) = header::split(buf, range);
    let block = buf.get(header.clone()).unwrap_or_default();
    let mut mime = parse_mime(block, in_digest);
    let kind = if depth >= MAX_DEPTH || *budget == 0 {
        if mime.ctype == "multipart" || mime.is("message", "rfc822") {
            mime = Mime::opaque();
        }
        Kind::Leaf
    } else if mime.ctype == "multipart" {
        let digest = mime.subtype == "digest";
        let children = match mime.param("boundary") {
            Some(b) if !b.is_empty() => split_multipart(buf, body.clone(), b.as_bytes(), *budget)
                .into_iter()
                .map(|r| parse(buf, r, depth + 1, digest, budget))
                .collect(),
            _ => Vec::new(),
        };
        Kind::Multipart(children)
    } else if mime.is("message", "rfc822") {
        Kind::Message(Box::new(parse(buf, body.clone(), depth + 1, false, budget)))
    } else {
        Kind::Leaf
    };
    Part {
        header,
        body,
        mime,
        kind,
    }
}

/// Content type and disposition of a header block; text/plain (us-ascii) or,
/// in a digest, message/rfc822 when absent or unusable.
fn parse_mime(block: &[u8], in_digest: bool) -> Mime {
    // Only the two fields go to mail-parser, not the whole header.
    let mut tiny = Vec::new();
    for f in fields(block).filter(|f| f.is(b"content-type") || f.is(b"content-disposition")) {
        tiny.extend_from_slice(f.raw);
        if !f.raw.ends_with(b"\n") {
            tiny.extend_from_slice(b"\r\n");
        }
    }
    tiny.extend_from_slice(b"\r\n");
    let mut mime = Mime::default();
    let parsed = MessageParser::new().parse_headers(&tiny);
    let headers = parsed
        .as_ref()
        .and_then(|m| m.parts.first())
        .map(|p| p.headers.as_slice())
        .unwrap_or_default();
    for h in headers {
        let HeaderValue::ContentType(ct) = &h.value else {
            continue;
        };
        let params: Vec<(String, String)> = ct
            .attributes
            .iter()
            .flatten()
            .map(|a| (a.name.to_string(), a.value.to_string()))
            .collect();
        match h.name {
            HeaderName::ContentType if mime.ctype.is_empty() => {
                if let Some(sub) = ct.c_subtype.as_deref().filter(|s| !s.is_empty()) {
                    mime.ctype = ct.c_type.to_ascii_lowercase();
                    mime.subtype = sub.to_ascii_lowercase();
                    mime.params = params;
                }
            }
            HeaderName::ContentDisposition if mime.disposition.is_none() => {
                mime.disposition = Some((ct.c_type.to_string(), params));
            }
            _ => {}
        }
    }
    if mime.ctype.is_empty() {
        if in_digest {
            mime.ctype = "message".into();
            mime.subtype = "rfc822".into();
        } else {
            mime.ctype = "text".into();
            mime.subtype = "plain".into();
            mime.params = vec![("charset".into(), "us-ascii".into())];
        }
    }
    mime
}

/// The ranges of the body parts of a multipart body: after each delimiter
/// line up to the CRLF before the next one (that CRLF belongs to the
/// delimiter, RFC 2046 §5.1.1). A part never closed runs to the end, and so
/// does the `limit`th part.
fn split_multipart(
    buf: &[u8],
    body: Range<usize>,
    boundary: &[u8],
    limit: usize,
) -> Vec<Range<usize>> {
    let mut parts = Vec::new();
    let mut open: Option<usize> = None;
    let mut line = body.start;
    while line < body.end {
        let next = buf
            .get(line..body.end)
            .and_then(|r| r.iter().position(|&b| b == b'\n'))
            .map_or(body.end, |p| line + p + 1);
        let text = buf.get(line..next).unwrap_or_default();
        if let Some(close) = delimiter(text, boundary) {
            if let Some(start) = open.take() {
                // The CRLF before this line is the delimiter's, not the part's.
                let end = if line >= start + 2 && buf.get(line - 2..line) == Some(b"\r\n") {
                    line - 2
                } else {
                    line
                };
                parts.push(start..end.max(start));
            }
            if close {
                return parts;
            }
            if parts.len() + 1 >= limit {
                parts.push(next..body.end.max(next));
                return parts;
            }
            open = Some(next);
        }
        line = next;
    }
    if let Some(start) = open {
        parts.push(start..body.end.max(start));
    }
    parts
}

/// Whether `line` is a delimiter line for `boundary`: `Some(true)` for the
/// close delimiter. Only whitespace may follow, so that a nested boundary
/// that merely starts with ours is not taken for it.
fn delimiter(line: &[u8], boundary: &[u8]) -> Option<bool> {
    let rest = line.strip_prefix(b"--")?.strip_prefix(boundary)?;
    let (close, rest) = match rest.strip_prefix(b"--") {
        Some(r) => (true, r),
        None => (false, rest),
    };
    rest.iter()
        .all(|b| b.is_ascii_whitespace())
        .then_some(close)
}

/// Lines in a body: its LFs, plus a last line without one.
pub(super) fn count_lines(bytes: &[u8]) -> usize {
    let lfs = bytes.iter().filter(|&&b| b == b'\n').count();
    lfs + usize::from(!bytes.is_empty() && !bytes.ends_with(b"\n"))
}

/// Appends the BODY (`extensible` false) or BODYSTRUCTURE form of `part`.
pub(super) fn write_body(buf: &[u8], part: &Part, out: &mut Vec<u8>, extensible: bool) {
    out.push(b'(');
    match &part.kind {
        Kind::Multipart(children) => {
            if children.is_empty() {
                // body-type-mpart needs one part at least: an empty one, as Dovecot writes.
                out.extend_from_slice(
                    b"(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)",
                );
            }
            for child in children {
                write_body(buf, child, out, extensible);
            }
            out.push(b' ');
            write_string(out, part.mime.subtype.as_bytes());
            if extensible {
                out.push(b' ');
                write_params(out, &part.mime.params);
                write_extension(buf, part, out);
            }
        }
        kind => {
            let block = buf.get(part.header.clone()).unwrap_or_default();
            let body = buf.get(part.body.clone()).unwrap_or_default();
            write_string(out, part.mime.ctype.as_bytes());
            out.push(b' ');
            write_string(out, part.mime.subtype.as_bytes());
            out.push(b' ');
            write_params(out, &part.mime.params);
            out.push(b' ');
            write_nstring(out, header::first(block, b"content-id").as_deref());
            out.push(b' ');
            write_nstring(out, header::first(block, b"content-description").as_deref());
            out.push(b' ');
            let encoding =
                header::first(block, b"content-transfer-encoding").filter(|e| !e.is_empty());
            write_string(out, encoding.as_deref().unwrap_or(b"7bit"));
            out.extend_from_slice(format!(" {}", body.len()).as_bytes());
            if let Kind::Message(inner) = kind {
                out.push(b' ');
                write_envelope(buf.get(inner.header.clone()).unwrap_or_default(), out);
                out.push(b' ');
                write_body(buf, inner, out, extensible);
                out.extend_from_slice(format!(" {}", count_lines(body)).as_bytes());
            } else if part.mime.ctype == "text" {
                out.extend_from_slice(format!(" {}", count_lines(body)).as_bytes());
            }
            if extensible {
                // body-fld-md5: not computed.
                out.extend_from_slice(b" NIL");
                write_extension(buf, part, out);
            }
        }
    }
    out.push(b')');
}

fn write_params(out: &mut Vec<u8>, params: &[(String, String)]) {
    write_string_list(
        out,
        params
            .iter()
            .flat_map(|(n, v)| [n.as_bytes(), v.as_bytes()]),
    );
}

/// The disposition, language and location that end every extensible body.
fn write_extension(buf: &[u8], part: &Part, out: &mut Vec<u8>) {
    let block = buf.get(part.header.clone()).unwrap_or_default();
    out.push(b' ');
    match &part.mime.disposition {
        Some((kind, params)) => {
            out.push(b'(');
            write_string(out, kind.as_bytes());
            out.push(b' ');
            write_params(out, params);
            out.push(b')');
        }
        None => out.extend_from_slice(b"NIL"),
    }
    out.push(b' ');
    let langs: Vec<Vec<u8>> = header::first(block, b"content-language")
        .map(|v| {
            v.split(|&b| b == b',')
                .map(|l| header::trim(l).to_vec())
                .filter(|l| !l.is_empty())
                .collect()
        })
        .unwrap_or_default();
    match langs.as_slice() {
        [one] => write_string(out, one),
        many => write_string_list(out, many.iter().map(Vec::as_slice)),
    }
    out.push(b' ');
    write_nstring(out, header::first(block, b"content-location").as_deref());
}
