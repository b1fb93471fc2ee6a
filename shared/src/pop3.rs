//! POP3 command lines to commands (RFC 1939, 2449, 2595, 5034); pure. Shared
//! by the backend's server and the frontend's proxy, which speaks POP3 itself
//! until the user has logged in.

/// Message numbers are 1-based and at most this (RFC 1939 allows any, but a
/// maildrop with more messages than this is not served by POP3 anyway).
pub const MAX_MSG: u32 = 10_000_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    User(String),
    Pass(Vec<u8>),
    /// `AUTH` alone lists the mechanisms; else mechanism and initial response.
    Auth(Option<(String, Option<Vec<u8>>)>),
    Stls,
    Capa,
    Quit,
    Stat,
    List(Option<u32>),
    Retr(u32),
    Dele(u32),
    Noop,
    Rset,
    Top(u32, u32),
    Uidl(Option<u32>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    Unknown,
    /// Missing, extra or malformed arguments; the text says which.
    Syntax(&'static str),
}

/// Parses one line (without CRLF).
pub fn parse(line: &[u8]) -> Result<Command, ParseError> {
    let (verb, rest) = match line.iter().position(|&b| b == b' ') {
        Some(i) => (&line[..i], Some(&line[i + 1..])),
        None => (line, None),
    };
    if verb.len() > 4 || verb.is_empty() {
        return Err(ParseError::Unknown);
    }
    let mut v = [0u8; 4];
    for (d, s) in v.iter_mut().zip(verb) {
        *d = s.to_ascii_uppercase();
    }
    let verb = &v[..verb.len()];
    let args = || -> Vec<&[u8]> {
        rest.map(|r| r.split(|&b| b == b' ').filter(|a| !a.is_empty()).collect())
            .unwrap_or_default()
    };
    let none = |c: Command| {
        if args().is_empty() {
            Ok(c)
        } else {
            Err(ParseError::Syntax("takes no arguments"))
        }
    };
    match verb {
        b"USER" => match rest {
            Some(r)
                if !r.is_empty()
                    && r.len() <= 255
                    && r.iter().all(|b| (0x21..0x7f).contains(b) || *b >= 0x80) =>
            {
                Ok(Command::User(String::from_utf8(r.to_vec()).map_err(
                    |_| ParseError::Syntax("the name is not UTF-8"),
                )?))
            }
            _ => Err(ParseError::Syntax("USER <name>")),
        },
        // The password is the rest of the line, spaces included (RFC 1939 §7).
        b"PASS" => match rest {
            Some(r) if !r.is_empty() && !r.contains(&0) => Ok(Command::Pass(r.to_vec())),
            _ => Err(ParseError::Syntax("PASS <password>")),
        },
        b"AUTH" => match args().as_slice() {
            [] => Ok(Command::Auth(None)),
            [mech] => Ok(Command::Auth(Some((mechanism(mech)?, None)))),
            [mech, initial] => Ok(Command::Auth(Some((
                mechanism(mech)?,
                Some(initial.to_vec()),
            )))),
            _ => Err(ParseError::Syntax("AUTH <mechanism> [initial-response]")),
        },
        b"STLS" => none(Command::Stls),
        b"CAPA" => none(Command::Capa),
        b"QUIT" => none(Command::Quit),
        b"STAT" => none(Command::Stat),
        b"NOOP" => none(Command::Noop),
        b"RSET" => none(Command::Rset),
        b"LIST" => optional_number(&args()).map(Command::List),
        b"UIDL" => optional_number(&args()).map(Command::Uidl),
        b"RETR" => one_number(&args()).map(Command::Retr),
        b"DELE" => one_number(&args()).map(Command::Dele),
        b"TOP" => match args().as_slice() {
            [n, lines] => Ok(Command::Top(msg_number(n)?, count(lines)?)),
            _ => Err(ParseError::Syntax("TOP <message> <lines>")),
        },
        _ => Err(ParseError::Unknown),
    }
}

fn mechanism(m: &[u8]) -> Result<String, ParseError> {
    if m.len() > 20
        || !m
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
    {
        return Err(ParseError::Syntax("bad mechanism name"));
    }
    Ok(String::from_utf8_lossy(m).to_ascii_uppercase())
}

fn number(s: &[u8]) -> Option<u32> {
    if s.is_empty() || s.len() > 10 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(s).ok()?.parse().ok()
}

fn msg_number(s: &[u8]) -> Result<u32, ParseError> {
    match number(s) {
        Some(n) if (1..=MAX_MSG).contains(&n) => Ok(n),
        _ => Err(ParseError::Syntax("invalid message number")),
    }
}

fn count(s: &[u8]) -> Result<u32, ParseError> {
    number(s).ok_or(ParseError::Syntax("invalid number of lines"))
}

fn one_number(args: &[&[u8]]) -> Result<u32, ParseError> {
    match args {
        [n] => msg_number(n),
        _ => Err(ParseError::Syntax("needs one message number")),
    }
}

fn optional_number(args: &[&[u8]]) -> Result<Option<u32>, ParseError> {
    match args {
        [] => Ok(None),
        [n] => msg_number(n).map(Some),
        _ => Err(ParseError::Syntax("takes at most one message number")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Command::*;

    #[test]
    fn table() {
        let ok: &[(&[u8], Command)] = &[
            (b"USER alice@example.com", User("alice@example.com".into())),
            (b"user Bob", User("Bob".into())),
            (
                b"PASS secret with spaces",
                Pass(b"secret with spaces".to_vec()),
            ),
            (b"AUTH", Auth(None)),
            (b"auth plain", Auth(Some(("PLAIN".into(), None)))),
            (
                b"AUTH PLAIN AGEAYg==",
                Auth(Some(("PLAIN".into(), Some(b"AGEAYg==".to_vec())))),
            ),
            (b"STLS", Stls),
            (b"capa", Capa),
            (b"QUIT", Quit),
            (b"STAT", Stat),
            (b"LIST", List(None)),
            (b"LIST 3", List(Some(3))),
            (b"UIDL 1", Uidl(Some(1))),
            (b"UIDL", Uidl(None)),
            (b"RETR 1", Retr(1)),
            (b"DELE 10", Dele(10)),
            (b"TOP 1 0", Top(1, 0)),
            (b"top 2  5", Top(2, 5)),
            (b"NOOP", Noop),
            (b"RSET", Rset),
        ];
        for (line, want) in ok {
            assert_eq!(
                parse(line).as_ref(),
                Ok(want),
                "{}",
                String::from_utf8_lossy(line)
            );
        }
        let unknown: &[&[u8]] = &[
            b"",
            b"XYZZY",
            b"RETRIEVE 1",
            b"\0\0\0\0",
            b"\xff\xfe",
            b" RETR 1",
            b"APOP a b",
        ];
        for line in unknown {
            assert_eq!(parse(line), Err(ParseError::Unknown), "{line:?}");
        }
        let syntax: &[&[u8]] = &[
            b"LIST 0",
            b"RETR -1",
            b"RETR 99999999999999999999",
            b"RETR",
            b"RETR 1 2",
            b"TOP 1",
            b"TOP 1 x",
            b"DELE abc",
            b"USER",
            b"USER a\0b",
            b"PASS",
            b"PASS a\0b",
            b"STAT 1",
            b"QUIT now",
            b"AUTH PLAIN a b",
            b"AUTH PL@IN",
        ];
        for line in syntax {
            assert!(
                matches!(parse(line), Err(ParseError::Syntax(_))),
                "{}",
                String::from_utf8_lossy(line)
            );
        }
    }

    /// Random lines, biased towards command words and digits: parse must
    /// answer every one without panicking.
    #[test]
    fn never_panics() {
        let words: &[&[u8]] = &[
            b"RETR",
            b"TOP",
            b"LIST",
            b"AUTH",
            b"USER",
            b"PASS",
            b" ",
            b"1",
            b"99999999999",
            b"\0",
            b"\xff",
            b"-",
            b"=",
        ];
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        for _ in 0..50_000 {
            let mut line = Vec::new();
            for _ in 0..(x % 7) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                if x.is_multiple_of(3) {
                    line.push((x >> 8) as u8);
                } else {
                    line.extend_from_slice(words[(x >> 16) as usize % words.len()]);
                }
            }
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let _ = parse(&line);
        }
    }
}
