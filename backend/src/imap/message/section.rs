//! BODY[section] bytes (RFC 3501 §6.4.5): part numbers walk the MIME tree,
//! the text specifier picks header, fields, body or MIME header.

use std::borrow::Cow;

use super::header::fields;
use super::structure::{Kind, Part};
use super::{Section, SectionText};

/// The part a (non-empty) part number designates, starting from a message.
/// A message's parts are its multipart children, or for a single-part
/// message part 1 is the message itself (its body).
pub(super) fn find<'p>(root: &'p Part, path: &[u32]) -> Option<&'p Part> {
    let mut message = root;
    let mut found: Option<&Part> = None;
    for &n in path {
        let container = match found {
            None => message,
            Some(p) => match &p.kind {
                Kind::Message(inner) => {
                    message = inner;
                    message
                }
                Kind::Multipart(_) => p,
                Kind::Leaf => return None,
            },
        };
        let index = usize::try_from(n).ok()?.checked_sub(1)?;
        found = Some(match &container.kind {
            Kind::Multipart(children) => children.get(index)?,
            _ if index == 0 => container,
            _ => return None,
        });
    }
    found
}

pub(super) fn section<'a>(buf: &'a [u8], root: &Part, s: &Section) -> Option<Cow<'a, [u8]>> {
    let slice = |r: &std::ops::Range<usize>| buf.get(r.clone()).map(Cow::Borrowed);
    // The message whose header/text is asked for: the top one, or the one
    // embedded in a message/rfc822 part.
    let message = if s.part.is_empty() {
        if s.text == SectionText::Full {
            return Some(Cow::Borrowed(buf));
        }
        root
    } else {
        let part = find(root, &s.part)?;
        match (&s.text, &part.kind) {
            (SectionText::Full, _) => return slice(&part.body),
            (SectionText::Mime, _) => return slice(&part.header),
            (_, Kind::Message(inner)) => inner,
            _ => return None,
        }
    };
    match &s.text {
        SectionText::Full | SectionText::Header => slice(&message.header),
        SectionText::Text => slice(&message.body),
        SectionText::Mime => None,
        SectionText::HeaderFields(names) => Some(filter(buf, message, names, true)),
        SectionText::HeaderFieldsNot(names) => Some(filter(buf, message, names, false)),
    }
}

/// The header lines whose name is (`keep`) or is not in `names`, in their
/// order, then the empty line.
fn filter<'a>(buf: &[u8], message: &Part, names: &[String], keep: bool) -> Cow<'a, [u8]> {
    let block = buf.get(message.header.clone()).unwrap_or_default();
    let mut out = Vec::new();
    for f in fields(block) {
        let listed = names.iter().any(|n| f.is(n.as_bytes()));
        if listed == keep {
            out.extend_from_slice(f.raw);
            if !f.raw.ends_with(b"\n") {
                out.extend_from_slice(b"\r\n");
            }
        }
    }
    out.extend_from_slice(b"\r\n");
    Cow::Owned(out)
}
