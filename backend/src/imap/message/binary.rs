//! BINARY[section] (RFC 3516): a part's body with its content transfer
//! encoding undone, so a client gets the attachment's bytes instead of
//! base64 it must decode.

use std::borrow::Cow;

use base64::Engine;

use super::header;
use super::section::find;
use super::structure::{Kind, Part};

/// The part's encoding is not one a server can undo (`NO [UNKNOWN-CTE]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownCte;

/// The decoded body of the part at `path` (the whole message, as it is,
/// for an empty path); `None` when there is no such part.
pub(super) fn binary<'a>(
    buf: &'a [u8],
    root: &Part,
    path: &[u32],
) -> Option<Result<Cow<'a, [u8]>, UnknownCte>> {
    if path.is_empty() {
        return Some(Ok(Cow::Borrowed(buf)));
    }
    let part = find(root, path)?;
    let body = buf.get(part.body.clone())?;
    Some(match cte_of(buf, part).as_str() {
        "" | "7bit" | "8bit" | "binary" => Ok(Cow::Borrowed(body)),
        "base64" => Ok(Cow::Owned(base64(body))),
        "quoted-printable" => Ok(Cow::Owned(quoted_printable(body))),
        _ => Err(UnknownCte),
    })
}

/// The transfer encoding a part's header declares, lowercased.
fn cte_of(buf: &[u8], part: &Part) -> String {
    let head = buf.get(part.header.clone()).unwrap_or_default();
    header::first(head, b"content-transfer-encoding")
        .map(|v| String::from_utf8_lossy(&v).trim().to_ascii_lowercase())
        .unwrap_or_default()
}

/// APPEND of binary content (RFC 3516 §4.4): single parts whose transfer
/// encoding is `binary` are stored re-encoded as base64, their
/// Content-Transfer-Encoding rewritten, since the store keeps messages as
/// text with LF line ends, which raw bytes would not survive. BINARY[]
/// fetches give the original bytes back. `None`: nothing to change.
pub(super) fn encode_binary_parts(buf: &[u8], root: &Part) -> Option<Vec<u8>> {
    let mut binary = Vec::new();
    let mut stack = vec![root];
    while let Some(p) = stack.pop() {
        match &p.kind {
            Kind::Multipart(children) => stack.extend(children.iter()),
            Kind::Leaf if cte_of(buf, p) == "binary" => binary.push(p),
            _ => {}
        }
    }
    if binary.is_empty() {
        return None;
    }
    binary.sort_by_key(|p| p.header.start);
    let mut out = Vec::with_capacity(buf.len() * 4 / 3 + 64);
    let mut at = 0;
    for p in binary {
        let head = buf.get(p.header.clone())?;
        out.extend_from_slice(buf.get(at..p.header.start)?);
        for f in header::fields(head) {
            if f.is(b"content-transfer-encoding") {
                out.extend_from_slice(b"Content-Transfer-Encoding: base64\r\n");
            } else {
                out.extend_from_slice(f.raw);
            }
        }
        out.extend_from_slice(b"\r\n");
        let body = buf.get(p.body.clone())?;
        let encoded = base64::engine::general_purpose::STANDARD.encode(body);
        for line in encoded.as_bytes().chunks(76) {
            out.extend_from_slice(line);
            out.extend_from_slice(b"\r\n");
        }
        at = p.body.end;
    }
    out.extend_from_slice(buf.get(at..)?);
    Some(out)
}

/// Base64 with the line breaks and any other non-alphabet bytes ignored,
/// as mail needs; a broken tail is dropped, not an error.
fn base64(body: &[u8]) -> Vec<u8> {
    let clean: Vec<u8> = body
        .iter()
        .copied()
        .filter(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/'))
        .collect();
    let whole = clean.len() / 4 * 4;
    let (head, tail) = clean.split_at(whole);
    let engine = base64::engine::general_purpose::STANDARD_NO_PAD;
    let mut out = engine.decode(head).unwrap_or_default();
    if tail.len() >= 2 {
        out.extend(engine.decode(tail).unwrap_or_default());
    }
    out
}

/// Quoted-printable (RFC 2045 §6.7): `=XX` escapes, `=` soft line breaks,
/// trailing whitespace on encoded lines dropped; malformed escapes kept.
fn quoted_printable(body: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(body.len());
    for line in body.split_inclusive(|b| *b == b'\n') {
        let (text, newline) = match line.strip_suffix(b"\r\n") {
            Some(t) => (t, true),
            None => match line.strip_suffix(b"\n") {
                Some(t) => (t, true),
                None => (line, false),
            },
        };
        let text = {
            let end = text
                .iter()
                .rposition(|b| !matches!(b, b' ' | b'\t'))
                .map_or(0, |i| i + 1);
            &text[..end]
        };
        let (text, soft) = match text.strip_suffix(b"=") {
            Some(t) => (t, true),
            None => (text, false),
        };
        let mut i = 0;
        while i < text.len() {
            if text[i] == b'='
                && let (Some(h), Some(l)) = (
                    text.get(i + 1).and_then(|b| hex(*b)),
                    text.get(i + 2).and_then(|b| hex(*b)),
                )
            {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
            out.push(text[i]);
            i += 1;
        }
        if newline && !soft {
            out.extend_from_slice(b"\r\n");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_printable_decodes() {
        for (qp, want) in [
            (&b"caf=C3=A9\r\n"[..], &b"caf\xc3\xa9\r\n"[..]),
            (b"soft=\r\nbreak\r\n", b"softbreak\r\n"),
            (b"trailing   \r\n", b"trailing\r\n"),
            (b"bad=ZZ escape", b"bad=ZZ escape"),
            (b"end=", b"end"),
        ] {
            assert_eq!(
                quoted_printable(qp),
                want,
                "{}",
                String::from_utf8_lossy(qp)
            );
        }
    }

    #[test]
    fn binary_parts_are_stored_as_base64_and_fetched_as_sent() {
        let raw = b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n\x00\r\x01\n\xff";
        let p = crate::imap::message::Parsed::new(raw);
        let stored = p.encode_binary_parts().expect("rewritten");
        let text = String::from_utf8(stored.clone()).expect("7-bit now");
        assert!(
            text.contains("Content-Transfer-Encoding: base64\r\n\r\nAA0BCv8=\r\n"),
            "{text}"
        );
        let again = crate::imap::message::Parsed::new(&stored);
        assert_eq!(
            again.binary(&[1]).expect("part").expect("cte").as_ref(),
            b"\x00\r\x01\n\xff"
        );
        let plain = crate::imap::message::Parsed::new(b"Subject: x\r\n\r\nhello\r\n");
        assert!(plain.encode_binary_parts().is_none());
    }

    #[test]
    fn base64_decodes_across_lines() {
        assert_eq!(base64(b"aGVs\r\nbG8=\r\n"), b"hello");
        assert_eq!(base64(b"aGVsbG8"), b"hello");
        assert_eq!(base64(b"!!"), b"");
    }
}
