//! The few IMAP commands a proxy answers itself before login (RFC 9051 /
//! 3501 syntax); pure. Everything else before login is `BAD`.

/// Longest tag, user name or password accepted.
pub const MAX_ITEM: usize = 1024;
/// ID's parameter list: RFC 2971 allows 30 fields of 30-byte names and
/// 1,024-byte values.
pub const MAX_ID: usize = 32 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Capability,
    Noop,
    Logout,
    StartTls,
    /// ID with its parameter list as sent (logged, not interpreted).
    Id(String),
    Login {
        user: Vec<u8>,
        password: Vec<u8>,
    },
    /// AUTHENTICATE mechanism [initial-response].
    Authenticate {
        mechanism: String,
        initial: Option<Vec<u8>>,
    },
}

/// What a line holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    Command {
        tag: String,
        command: Command,
    },
    /// The line ends with a literal `{n}` or `{n+}`: read `n` bytes, append
    /// them and the next line, then parse the whole again.
    NeedLiteral {
        tag: String,
        size: usize,
        sync: bool,
    },
    Bad {
        tag: Option<String>,
        why: &'static str,
    },
}

/// Parses a command line (without CRLF), literals already inlined as
/// `{n}\r\n<bytes>`.
pub fn parse(line: &[u8]) -> Parsed {
    let Some(sp) = line.iter().position(|&b| b == b' ') else {
        return bad(tag_of(line), "Missing command.");
    };
    let (tag, rest) = (&line[..sp], &line[sp + 1..]);
    if tag.is_empty() || tag.len() > 64 || !tag.iter().all(|&b| is_tag_char(b)) {
        return bad(None, "Invalid tag.");
    }
    let tag = String::from_utf8_lossy(tag).into_owned();
    // A literal announced at the very end of the line must be fetched first.
    if let Some((size, sync)) = trailing_literal(line) {
        if size > MAX_ITEM {
            return Parsed::Bad {
                tag: Some(tag),
                why: "Literal too big.",
            };
        }
        return Parsed::NeedLiteral { tag, size, sync };
    }
    let (verb, args) = match rest.iter().position(|&b| b == b' ') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &rest[rest.len()..]),
    };
    let verb = String::from_utf8_lossy(verb).to_ascii_uppercase();
    let command = match verb.as_str() {
        "CAPABILITY" if args.is_empty() => Command::Capability,
        "NOOP" if args.is_empty() => Command::Noop,
        "LOGOUT" if args.is_empty() => Command::Logout,
        "STARTTLS" if args.is_empty() => Command::StartTls,
        "ID" if !args.is_empty() && args.len() <= MAX_ID => {
            Command::Id(String::from_utf8_lossy(args).into_owned())
        }
        "LOGIN" => {
            let mut rest = args;
            let (Some(user), Some(password)) = (astring(&mut rest), astring(&mut rest)) else {
                return Parsed::Bad {
                    tag: Some(tag),
                    why: "LOGIN needs a user name and a password.",
                };
            };
            if !rest.is_empty() {
                return Parsed::Bad {
                    tag: Some(tag),
                    why: "Junk after LOGIN arguments.",
                };
            }
            Command::Login { user, password }
        }
        "AUTHENTICATE" => {
            let mut parts = args.split(|&b| b == b' ');
            let mech = parts.next().unwrap_or_default();
            let initial = parts.next().map(<[u8]>::to_vec);
            if mech.is_empty()
                || parts.next().is_some()
                || !mech.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-')
            {
                return Parsed::Bad {
                    tag: Some(tag),
                    why: "AUTHENTICATE needs a mechanism.",
                };
            }
            Command::Authenticate {
                mechanism: String::from_utf8_lossy(mech).to_ascii_uppercase(),
                initial,
            }
        }
        "CAPABILITY" | "NOOP" | "LOGOUT" | "STARTTLS" | "ID" => {
            return Parsed::Bad {
                tag: Some(tag),
                why: "Invalid arguments.",
            };
        }
        _ => {
            return Parsed::Bad {
                tag: Some(tag),
                why: "Log in first.",
            };
        }
    };
    Parsed::Command { tag, command }
}

fn bad(tag: Option<String>, why: &'static str) -> Parsed {
    Parsed::Bad { tag, why }
}

fn tag_of(line: &[u8]) -> Option<String> {
    (!line.is_empty() && line.len() <= 64 && line.iter().all(|&b| is_tag_char(b)))
        .then(|| String::from_utf8_lossy(line).into_owned())
}

/// ASTRING-CHAR minus '+' (RFC 9051 `tag`).
fn is_tag_char(b: u8) -> bool {
    b > 0x20 && b < 0x7f && !b"(){%*\"\\+]".contains(&b)
}

fn trailing_literal(line: &[u8]) -> Option<(usize, bool)> {
    let inner = line.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|&b| b == b'{')?;
    let mut digits = &inner[open + 1..];
    let sync = match digits.strip_suffix(b"+") {
        Some(d) => {
            digits = d;
            false
        }
        None => true,
    };
    if digits.is_empty() || digits.len() > 10 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits)
        .ok()?
        .parse()
        .ok()
        .map(|n| (n, sync))
}

/// One astring (atom, quoted string or inlined literal) and the space after.
fn astring(rest: &mut &[u8]) -> Option<Vec<u8>> {
    let s = *rest;
    let (value, used) = match s.first()? {
        b'"' => {
            let mut out = Vec::new();
            let mut i = 1;
            loop {
                match s.get(i)? {
                    b'"' => break,
                    b'\\' => {
                        let c = *s.get(i + 1)?;
                        if c != b'"' && c != b'\\' {
                            return None;
                        }
                        out.push(c);
                        i += 2;
                    }
                    b'\r' | b'\n' | 0 => return None,
                    c => {
                        out.push(*c);
                        i += 1;
                    }
                }
            }
            (out, i + 1)
        }
        b'{' => {
            let close = s.iter().position(|&b| b == b'}')?;
            let digits = s[1..close].strip_suffix(b"+").unwrap_or(&s[1..close]);
            let n: usize = std::str::from_utf8(digits).ok()?.parse().ok()?;
            let start = close + 1 + 2; // "}\r\n"
            if s.get(close + 1..start)? != b"\r\n" || n > MAX_ITEM {
                return None;
            }
            (s.get(start..start + n)?.to_vec(), start + n)
        }
        _ => {
            let end = s.iter().position(|&b| b == b' ').unwrap_or(s.len());
            let atom = &s[..end];
            if atom.is_empty()
                || !atom
                    .iter()
                    .all(|&b| b > 0x20 && b < 0x7f && !b"(){%*\"\\".contains(&b))
            {
                return None;
            }
            (atom.to_vec(), end)
        }
    };
    let mut after = &s[used..];
    if let Some(r) = after.strip_prefix(b" ") {
        after = r;
    }
    *rest = after;
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(line: &[u8]) -> Command {
        match parse(line) {
            Parsed::Command { command, .. } => command,
            other => panic!("{}: {other:?}", String::from_utf8_lossy(line)),
        }
    }

    #[test]
    fn table() {
        assert_eq!(cmd(b"a1 capability"), Command::Capability);
        assert_eq!(cmd(b"a NOOP"), Command::Noop);
        assert_eq!(cmd(b"a LOGOUT"), Command::Logout);
        assert_eq!(cmd(b"a STARTTLS"), Command::StartTls);
        assert_eq!(
            cmd(b"a LOGIN alice@example.com secret"),
            Command::Login {
                user: b"alice@example.com".to_vec(),
                password: b"secret".to_vec()
            }
        );
        assert_eq!(
            cmd(b"a LOGIN \"al ice\" \"p\\\"w\\\\\""),
            Command::Login {
                user: b"al ice".to_vec(),
                password: b"p\"w\\".to_vec()
            }
        );
        assert_eq!(
            cmd(b"a LOGIN {5}\r\nalice {3+}\r\np w"),
            Command::Login {
                user: b"alice".to_vec(),
                password: b"p w".to_vec()
            }
        );
        assert_eq!(
            cmd(b"a AUTHENTICATE plain AGEAYg=="),
            Command::Authenticate {
                mechanism: "PLAIN".into(),
                initial: Some(b"AGEAYg==".to_vec())
            }
        );
        assert_eq!(
            cmd(b"a AUTHENTICATE PLAIN"),
            Command::Authenticate {
                mechanism: "PLAIN".into(),
                initial: None
            }
        );
        assert_eq!(
            parse(b"a LOGIN {5}"),
            Parsed::NeedLiteral {
                tag: "a".into(),
                size: 5,
                sync: true
            }
        );
        assert_eq!(
            parse(b"a LOGIN alice {6+}"),
            Parsed::NeedLiteral {
                tag: "a".into(),
                size: 6,
                sync: false
            }
        );
        for line in [
            &b""[..],
            b"a",
            b"a SELECT INBOX",
            b"a LOGIN alice",
            b"a LOGIN alice pw junk",
            b"a LOGIN \"unterminated",
            b"a CAPABILITY now",
            b"(bad CAPABILITY",
            b"a LOGIN {99999999}",
            b"a AUTHENTICATE",
            b"a LOGIN \"a\0\" b",
        ] {
            assert!(
                matches!(parse(line), Parsed::Bad { .. }),
                "{}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn never_panics() {
        let words: &[&[u8]] = &[
            b"a ",
            b"LOGIN ",
            b"{",
            b"}",
            b"\"",
            b"\\",
            b"3",
            b"+",
            b"\r\n",
            b" ",
            b"x",
            b"AUTHENTICATE ",
        ];
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..50_000 {
            let mut line = Vec::new();
            for _ in 0..(x % 9) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                line.extend_from_slice(words[(x >> 20) as usize % words.len()]);
            }
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let _ = parse(&line);
        }
    }
}
