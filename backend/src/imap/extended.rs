//! Command syntax of extensions imap-codec does not parse: ESEARCH's
//! `SEARCH RETURN (...)` (RFC 4731) and LIST-EXTENDED's selection and
//! return options with LIST-STATUS (RFC 5258, RFC 5819).
//!
//! [`split`] takes those options off a framed command and leaves a plain
//! RFC 3501 command for imap-codec; the options travel beside it as
//! [`Extras`]. Only the option lists are cut, so every argument imap-codec
//! sees is still checked by its grammar.

use imap_codec::imap_types::status::StatusDataItemName;

/// What ESEARCH asked to get back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SearchReturn {
    pub min: bool,
    pub max: bool,
    pub all: bool,
    pub count: bool,
}

/// LIST-EXTENDED options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// Selection SUBSCRIBED: only subscribed mailboxes.
    pub subscribed_only: bool,
    /// Selection SPECIAL-USE: only special-use mailboxes.
    pub special_use_only: bool,
    /// RECURSIVEMATCH (with SUBSCRIBED): a parent whose descendant is
    /// subscribed is listed with `CHILDINFO ("SUBSCRIBED")`.
    pub recursive: bool,
    /// Return SUBSCRIBED: mark subscribed ones `\Subscribed`.
    pub return_subscribed: bool,
    /// Return CHILDREN: `\HasChildren`/`\HasNoChildren` (an extended LIST
    /// without it leaves them out, RFC 5258 §4).
    pub return_children: bool,
    /// Return STATUS (LIST-STATUS).
    pub status: Vec<StatusDataItemName>,
    /// `LIST "" (a b)`: every pattern (the command keeps the first).
    pub patterns: Vec<String>,
}

/// Options taken off a command.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extras {
    pub search: Option<SearchReturn>,
    /// SORT RETURN (...) (ESORT, RFC 5267).
    pub sort: Option<SearchReturn>,
    pub list: Option<ListOptions>,
}

/// Why the options could not be read.
pub type Invalid = &'static str;

/// Splits extension options off `cmd` (one whole framed command, CRLF
/// included). `Ok(None)`: nothing to take off, parse `cmd` as it is.
pub fn split(cmd: &[u8]) -> Result<Option<(Vec<u8>, Extras)>, Invalid> {
    let Some(sp) = cmd.iter().position(|b| *b == b' ') else {
        return Ok(None);
    };
    let (tag, rest) = (&cmd[..=sp], &cmd[sp + 1..]);
    let mut name_end = word_end(rest);
    let mut head = &rest[..name_end];
    if head.eq_ignore_ascii_case(b"UID") && rest.get(name_end) == Some(&b' ') {
        let more = &rest[name_end + 1..];
        name_end += 1 + word_end(more);
        head = &rest[..name_end];
    }
    let args = rest.get(name_end + 1..).unwrap_or_default();
    let upper = head.to_ascii_uppercase();
    if upper == b"SEARCH" || upper == b"UID SEARCH" {
        return search(tag, head, args);
    }
    if upper == b"SORT" || upper == b"UID SORT" {
        // Same option list; it answers with ESEARCH too.
        return search(tag, head, args).map(|o| {
            o.map(|(plain, e)| {
                (
                    plain,
                    Extras {
                        sort: e.search,
                        ..Extras::default()
                    },
                )
            })
        });
    }
    if upper == b"LIST" {
        return list(tag, head, args);
    }
    Ok(None)
}

fn word_end(b: &[u8]) -> usize {
    b.iter()
        .position(|c| *c == b' ' || *c == b'\r')
        .unwrap_or(b.len())
}

/// The parenthesised list at the start of `b` (no nesting beyond one
/// inner level, no literals): its inside and what follows it.
fn parens(b: &[u8]) -> Result<(&[u8], &[u8]), Invalid> {
    if b.first() != Some(&b'(') {
        return Err("Expected an option list");
    }
    let mut depth = 0;
    for (i, c) in b.iter().enumerate() {
        match c {
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                if depth == 0 {
                    return Ok((&b[1..i], &b[i + 1..]));
                }
            }
            b'{' | b'\r' | b'\n' | b'"' => return Err("Invalid option list"),
            _ => {}
        }
    }
    Err("Unterminated option list")
}

fn words(b: &[u8]) -> impl Iterator<Item = String> + '_ {
    b.split(|c| *c == b' ')
        .filter(|w| !w.is_empty())
        .map(|w| String::from_utf8_lossy(w).to_ascii_uppercase())
}

fn search(tag: &[u8], head: &[u8], args: &[u8]) -> Result<Option<(Vec<u8>, Extras)>, Invalid> {
    if args.len() < 7 || !args[..7].eq_ignore_ascii_case(b"RETURN ") {
        return Ok(None);
    }
    let (opts, rest) = parens(&args[7..])?;
    let mut r = SearchReturn::default();
    for w in words(opts) {
        match w.as_str() {
            "MIN" => r.min = true,
            "MAX" => r.max = true,
            "ALL" => r.all = true,
            "COUNT" => r.count = true,
            _ => return Err("Unsupported SEARCH RETURN option"),
        }
    }
    if r == SearchReturn::default() {
        // RFC 4731 §3.1: RETURN () means ALL.
        r.all = true;
    }
    let rest = rest.strip_prefix(b" ").ok_or("Expected search criteria")?;
    let mut plain = Vec::with_capacity(tag.len() + head.len() + rest.len() + 1);
    plain.extend_from_slice(tag);
    plain.extend_from_slice(head);
    plain.push(b' ');
    plain.extend_from_slice(rest);
    Ok(Some((
        plain,
        Extras {
            search: Some(r),
            ..Extras::default()
        },
    )))
}

fn status_item(w: &str) -> Result<StatusDataItemName, Invalid> {
    Ok(match w {
        "MESSAGES" => StatusDataItemName::Messages,
        "RECENT" => StatusDataItemName::Recent,
        "UIDNEXT" => StatusDataItemName::UidNext,
        "UIDVALIDITY" => StatusDataItemName::UidValidity,
        "UNSEEN" => StatusDataItemName::Unseen,
        "DELETED" => StatusDataItemName::Deleted,
        _ => return Err("Unsupported STATUS item"),
    })
}

fn list(tag: &[u8], head: &[u8], args: &[u8]) -> Result<Option<(Vec<u8>, Extras)>, Invalid> {
    let mut o = ListOptions::default();
    let mut extended = false;
    let mut args = args;
    if args.first() == Some(&b'(') {
        let (sel, rest) = parens(args)?;
        let mut recursive = false;
        for w in words(sel) {
            match w.as_str() {
                "SUBSCRIBED" => o.subscribed_only = true,
                "SPECIAL-USE" => o.special_use_only = true,
                // Nothing is remote.
                "REMOTE" => {}
                "RECURSIVEMATCH" => recursive = true,
                _ => return Err("Unsupported LIST selection option"),
            }
        }
        if recursive && !o.subscribed_only {
            // RFC 5258 §3: it only refines another selection option.
            return Err("RECURSIVEMATCH needs SUBSCRIBED");
        }
        o.recursive = recursive;
        args = rest.strip_prefix(b" ").ok_or("Expected a reference name")?;
        extended = true;
    }
    let end = args
        .iter()
        .rposition(|c| !matches!(c, b'\r' | b'\n'))
        .map_or(0, |i| i + 1);
    let (body, crlf) = args.split_at(end);
    let mut body = body;
    if body.ends_with(b")")
        && let Some(at) = find_return(body)
    {
        let (opts, tail) = parens(&body[at + 8..])?;
        if !tail.is_empty() {
            return Err("Unexpected data after RETURN options");
        }
        let mut it = words_with_lists(opts).into_iter();
        while let Some(w) = it.next() {
            match w.as_str() {
                "SUBSCRIBED" => o.return_subscribed = true,
                "CHILDREN" => o.return_children = true,
                "SPECIAL-USE" => {}
                "STATUS" => {
                    let items = it.next().ok_or("Expected STATUS items")?;
                    let inner = items
                        .strip_prefix('(')
                        .and_then(|s| s.strip_suffix(')'))
                        .ok_or("Expected STATUS items")?;
                    for i in inner.split(' ').filter(|s| !s.is_empty()) {
                        o.status.push(status_item(i)?);
                    }
                }
                _ => return Err("Unsupported LIST return option"),
            }
        }
        body = &body[..at];
        extended = true;
    }
    // Several patterns: `ref (p1 p2 ...)`; the command keeps the first.
    let mut first_pattern: Option<Vec<u8>> = None;
    if body.ends_with(b")")
        && let Some(at) = body.iter().rposition(|c| *c == b'(')
        && at > 0
        && body[at - 1] == b' '
        && let Some(inside) = quoted_list(&body[at..])
    {
        o.patterns = pattern_words(inside)?;
        let first = o.patterns.first().ok_or("Empty pattern list")?;
        let mut quoted = Vec::with_capacity(first.len() + 2);
        quoted.push(b'"');
        for c in first.bytes() {
            if c == b'"' || c == b'\\' {
                quoted.push(b'\\');
            }
            quoted.push(c);
        }
        quoted.push(b'"');
        first_pattern = Some(quoted);
        body = &body[..at - 1];
        extended = true;
    }
    if !extended {
        return Ok(None);
    }
    let mut plain = Vec::with_capacity(tag.len() + head.len() + body.len() + 3);
    plain.extend_from_slice(tag);
    plain.extend_from_slice(head);
    plain.push(b' ');
    plain.extend_from_slice(body);
    if let Some(p) = first_pattern {
        plain.push(b' ');
        plain.extend_from_slice(&p);
    }
    plain.extend_from_slice(crlf);
    Ok(Some((
        plain,
        Extras {
            list: Some(o),
            ..Extras::default()
        },
    )))
}

/// The inside of `(...)` spanning all of `b`, quoted strings allowed.
fn quoted_list(b: &[u8]) -> Option<&[u8]> {
    let inside = b.strip_prefix(b"(")?.strip_suffix(b")")?;
    let mut quoted = false;
    let mut escaped = false;
    for c in inside {
        match (quoted, escaped, c) {
            (true, true, _) => escaped = false,
            (true, false, b'\\') => escaped = true,
            (_, false, b'"') => quoted = !quoted,
            (false, _, b'(' | b')' | b'{' | b'\r' | b'\n') => return None,
            _ => {}
        }
    }
    (!quoted).then_some(inside)
}

/// The patterns of a pattern list: atoms or quoted strings.
fn pattern_words(b: &[u8]) -> Result<Vec<String>, Invalid> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b' ' => i += 1,
            b'"' => {
                let mut s = Vec::new();
                i += 1;
                loop {
                    match b.get(i) {
                        None => return Err("Unterminated pattern"),
                        Some(b'"') => break,
                        Some(b'\\') => {
                            s.push(*b.get(i + 1).ok_or("Unterminated pattern")?);
                            i += 2;
                        }
                        Some(c) => {
                            s.push(*c);
                            i += 1;
                        }
                    }
                }
                i += 1;
                out.push(String::from_utf8(s).map_err(|_| "Pattern is not UTF-8")?);
            }
            _ => {
                let end = b[i..]
                    .iter()
                    .position(|c| *c == b' ')
                    .map_or(b.len(), |e| i + e);
                out.push(
                    String::from_utf8(b[i..end].to_vec()).map_err(|_| "Pattern is not UTF-8")?,
                );
                i = end;
            }
        }
    }
    Ok(out)
}

/// Where ` RETURN (` starts in `b`, searching from the end.
fn find_return(b: &[u8]) -> Option<usize> {
    (0..b.len().saturating_sub(8))
        .rev()
        .find(|&i| b[i..i + 9].eq_ignore_ascii_case(b" RETURN ("))
}

/// Words, keeping a parenthesised group as one word.
fn words_with_lists(b: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut depth = 0;
    for &c in b {
        match c {
            b'(' => {
                depth += 1;
                cur.push('(');
            }
            b')' => {
                depth -= 1;
                cur.push(')');
            }
            b' ' if depth == 0 => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur).to_ascii_uppercase());
                }
            }
            c => cur.push(c as char),
        }
    }
    if !cur.is_empty() {
        out.push(cur.to_ascii_uppercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(cmd: &str) -> (String, Extras) {
        let (b, e) = split(cmd.as_bytes()).unwrap().unwrap();
        (String::from_utf8(b).unwrap(), e)
    }

    #[test]
    fn esearch_options_come_off() {
        let (p, e) = plain("a UID SEARCH RETURN (MIN COUNT) UNSEEN\r\n");
        assert_eq!(p, "a UID SEARCH UNSEEN\r\n");
        let r = e.search.unwrap();
        assert!(r.min && r.count && !r.max && !r.all);
        let (p, e) = plain("b search return () ALL\r\n");
        assert_eq!(p, "b search ALL\r\n");
        assert!(e.search.unwrap().all);
        assert_eq!(split(b"c SEARCH UNSEEN\r\n"), Ok(None));
        assert!(split(b"d SEARCH RETURN (SAVE) ALL\r\n").is_err());
        let (p, e) = plain("s UID SORT RETURN (MIN ALL) (ARRIVAL) UTF-8 ALL\r\n");
        assert_eq!(p, "s UID SORT (ARRIVAL) UTF-8 ALL\r\n");
        assert!(e.sort.unwrap().min && e.search.is_none());
        assert!(split(b"d SEARCH RETURN (MIN ALL\r\n").is_err());
    }

    #[test]
    fn list_extended_options_come_off() {
        let (p, e) =
            plain("a LIST (SUBSCRIBED) \"\" \"*\" RETURN (CHILDREN STATUS (MESSAGES UNSEEN))\r\n");
        assert_eq!(p, "a LIST \"\" \"*\"\r\n");
        let o = e.list.unwrap();
        assert!(o.subscribed_only && !o.return_subscribed);
        assert_eq!(
            o.status,
            vec![StatusDataItemName::Messages, StatusDataItemName::Unseen]
        );
        let (p, e) = plain("b LIST \"\" % RETURN (SUBSCRIBED)\r\n");
        assert_eq!(p, "b LIST \"\" %\r\n");
        assert!(e.list.unwrap().return_subscribed);
        assert_eq!(split(b"c LIST \"\" *\r\n"), Ok(None));
        let (p, e) = plain("f LIST \"\" (a.* \"b c\")\r\n");
        assert_eq!(p, "f LIST \"\" \"a.*\"\r\n");
        assert_eq!(e.list.unwrap().patterns, vec!["a.*", "b c"]);
        assert!(split(b"g LIST (RECURSIVEMATCH) \"\" *\r\n").is_err());
        assert!(split(b"d LIST (BOGUS) \"\" *\r\n").is_err());
        assert!(split(b"e LIST \"\" * RETURN (STATUS (NOPE))\r\n").is_err());
    }

    #[test]
    fn arbitrary_input_never_panics() {
        // A fixed-seed xorshift over a small alphabet of the bytes that
        // matter here, plus every prefix of a few real commands.
        let alphabet = b"aL IST SEARCH RETURN UID()\"\\{}*%.\r\n0";
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..20_000 {
            let len = (x % 60) as usize;
            let mut cmd = Vec::with_capacity(len);
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                cmd.push(alphabet[(x % alphabet.len() as u64) as usize]);
            }
            let _ = split(&cmd);
        }
        for real in [
            &b"a LIST (SUBSCRIBED RECURSIVEMATCH) \"\" (\"a\" b) RETURN (STATUS (MESSAGES))\r\n"[..],
            b"b UID SEARCH RETURN (MIN MAX) ALL\r\n",
        ] {
            for n in 0..=real.len() {
                let _ = split(&real[..n]);
            }
        }
    }
}
