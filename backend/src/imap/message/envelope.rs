//! ENVELOPE (RFC 3501 §7.4.2) from raw header bytes, and the lenient
//! RFC 5322 §3.4 address-list parser it needs.
//!
//! Values are sent as they appear in the header (unfolded, encoded-words
//! left alone): clients decode them themselves, and mail-parser's address
//! parser would decode them, which is why addresses are parsed here.

use super::header;
use super::wire::write_nstring;

/// Appends the ENVELOPE list of the header block `block`.
pub(super) fn write_envelope(block: &[u8], out: &mut Vec<u8>) {
    let first = |name: &[u8]| header::first(block, name);
    let addresses = |name: &[u8]| first(name).map(|v| parse_addresses(&v)).unwrap_or_default();
    out.push(b'(');
    write_nstring(out, first(b"date").as_deref());
    out.push(b' ');
    write_nstring(out, first(b"subject").as_deref());
    let from = addresses(b"from");
    out.push(b' ');
    write_address_list(out, &from);
    for name in [&b"sender"[..], b"reply-to", b"to", b"cc", b"bcc"] {
        let list = addresses(name);
        // RFC 3501: sender and reply-to absent or empty are taken from From.
        let defaulted = list.is_empty() && name != b"to" && name != b"cc" && name != b"bcc";
        out.push(b' ');
        write_address_list(out, if defaulted { &from } else { &list });
    }
    out.push(b' ');
    write_nstring(out, first(b"in-reply-to").as_deref());
    out.push(b' ');
    write_nstring(out, first(b"message-id").as_deref());
    out.push(b')');
}

/// One ENVELOPE address: a mailbox, or a group start (host NIL, mailbox the
/// group name) or end (all NIL).
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Address {
    pub name: Option<Vec<u8>>,
    pub adl: Option<Vec<u8>>,
    pub mailbox: Option<Vec<u8>>,
    pub host: Option<Vec<u8>>,
}

fn write_address_list(out: &mut Vec<u8>, list: &[Address]) {
    if list.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for a in list {
        out.push(b'(');
        for (i, f) in [&a.name, &a.adl, &a.mailbox, &a.host]
            .into_iter()
            .enumerate()
        {
            if i > 0 {
                out.push(b' ');
            }
            write_nstring(out, f.as_deref());
        }
        out.push(b')');
    }
    out.push(b')');
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    /// An atom, a quoted string (unescaped) or a domain literal.
    Word(Vec<u8>),
    Special(u8),
    Comment(Vec<u8>),
}

/// A token and whether whitespace came before it (names keep single spaces).
type Spaced = (bool, Tok);

fn tokenize(s: &[u8]) -> Vec<Spaced> {
    let mut toks = Vec::new();
    let mut i = 0;
    let mut space = false;
    while i < s.len() {
        let b = s[i];
        match b {
            b' ' | b'\t' | b'\r' | b'\n' => {
                space = true;
                i += 1;
                continue;
            }
            b'"' => {
                let mut w = Vec::new();
                i += 1;
                while i < s.len() && s[i] != b'"' {
                    if s[i] == b'\\' && i + 1 < s.len() {
                        i += 1;
                    }
                    w.push(s[i]);
                    i += 1;
                }
                i += 1;
                toks.push((space, Tok::Word(w)));
            }
            b'(' => {
                let mut depth = 0usize;
                let mut c = Vec::new();
                while i < s.len() {
                    match s[i] {
                        b'\\' if i + 1 < s.len() => {
                            i += 1;
                            c.push(s[i]);
                        }
                        b'(' => {
                            if depth > 0 {
                                c.push(b'(');
                            }
                            depth += 1;
                        }
                        b')' => {
                            depth = depth.saturating_sub(1);
                            if depth == 0 {
                                i += 1;
                                break;
                            }
                            c.push(b')');
                        }
                        x => c.push(x),
                    }
                    i += 1;
                }
                toks.push((space, Tok::Comment(c)));
            }
            b'[' => {
                let end = s[i..]
                    .iter()
                    .position(|&x| x == b']')
                    .map_or(s.len(), |p| i + p + 1);
                toks.push((space, Tok::Word(s[i..end].to_vec())));
                i = end;
            }
            b'<' | b'>' | b':' | b';' | b'@' | b',' | b'.' | b')' | b']' | b'\\' => {
                toks.push((space, Tok::Special(b)));
                i += 1;
            }
            _ => {
                let start = i;
                while i < s.len() && !b" \t\r\n\"()<>[]:;@,.\\".contains(&s[i]) {
                    i += 1;
                }
                toks.push((space, Tok::Word(s[start..i].to_vec())));
            }
        }
        space = false;
    }
    toks
}

/// Parses an unfolded address-list value, groups included. Never fails:
/// whatever is not an address is skipped or made into one.
pub(super) fn parse_addresses(value: &[u8]) -> Vec<Address> {
    let mut out = Vec::new();
    let mut cur: Vec<Spaced> = Vec::new();
    let mut angle = false;
    let mut in_group = false;
    for tok in tokenize(value) {
        match tok.1 {
            Tok::Special(b'<') => angle = true,
            Tok::Special(b'>') => angle = false,
            Tok::Special(b':') if !angle && !in_group => {
                let (name, _) = phrase(&cur);
                out.push(Address {
                    mailbox: Some(name.unwrap_or_default()),
                    ..Address::default()
                });
                in_group = true;
                cur.clear();
                continue;
            }
            Tok::Special(b',') if !angle => {
                out.extend(mailbox(&cur));
                cur.clear();
                continue;
            }
            Tok::Special(b';') if !angle && in_group => {
                out.extend(mailbox(&cur));
                out.push(Address::default());
                in_group = false;
                cur.clear();
                continue;
            }
            _ => {}
        }
        cur.push(tok);
    }
    out.extend(mailbox(&cur));
    if in_group {
        out.push(Address::default());
    }
    out
}

/// A display name from tokens (comments skipped), single-spaced, plus the
/// last comment for when there is no name (`user@host (Real Name)`).
fn phrase(toks: &[Spaced]) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
    let mut name = Vec::new();
    let mut comment = None;
    for (space, t) in toks {
        match t {
            Tok::Comment(c) => comment = Some(c.clone()),
            Tok::Word(w) => {
                if *space && !name.is_empty() {
                    name.push(b' ');
                }
                name.extend_from_slice(w);
            }
            Tok::Special(b) => {
                if *space && !name.is_empty() {
                    name.push(b' ');
                }
                name.push(*b);
            }
        }
    }
    let name = (!name.is_empty()).then_some(name);
    (name, comment.filter(|c| !c.is_empty()))
}

/// One mailbox from its tokens: `name <route:local@domain>` or `local@domain`.
fn mailbox(toks: &[Spaced]) -> Option<Address> {
    if toks.iter().all(|(_, t)| matches!(t, Tok::Comment(_))) {
        return None;
    }
    let open = toks.iter().position(|(_, t)| *t == Tok::Special(b'<'));
    let (name, comment, spec) = match open {
        Some(o) => {
            let close = toks[o..]
                .iter()
                .position(|(_, t)| *t == Tok::Special(b'>'))
                .map_or(toks.len(), |p| o + p);
            let (name, comment) = phrase(&toks[..o]);
            let (_, after) = phrase(toks.get(close + 1..).unwrap_or_default());
            (name, comment.or(after), &toks[o + 1..close])
        }
        None => {
            let (_, comment) = phrase(toks);
            (None, comment, toks)
        }
    };
    let spec: Vec<&Tok> = spec
        .iter()
        .map(|(_, t)| t)
        .filter(|t| !matches!(t, Tok::Comment(_)))
        .collect();
    // A source route (`@a,@b:`) ends at the last colon.
    let colon = spec.iter().rposition(|t| **t == Tok::Special(b':'));
    let adl = colon.map(|c| join(&spec[..c]));
    let spec = colon.map_or(&spec[..], |c| &spec[c + 1..]);
    let at = spec.iter().position(|t| **t == Tok::Special(b'@'));
    let (local, domain) = match at {
        Some(a) => (join(&spec[..a]), join(&spec[a + 1..])),
        None => (join(spec), Vec::new()),
    };
    // Dovecot's placeholders: a NIL host would read as a group marker.
    let missing = |v: Vec<u8>, what: &[u8]| Some(if v.is_empty() { what.to_vec() } else { v });
    Some(Address {
        name: name.or(comment),
        adl: adl.filter(|a| !a.is_empty()),
        mailbox: missing(local, b"MISSING_MAILBOX"),
        host: missing(domain, b"MISSING_DOMAIN"),
    })
}

fn join(toks: &[&Tok]) -> Vec<u8> {
    let mut out = Vec::new();
    for t in toks {
        match t {
            Tok::Word(w) => out.extend_from_slice(w),
            Tok::Special(b) => out.push(*b),
            Tok::Comment(_) => {}
        }
    }
    out
}
