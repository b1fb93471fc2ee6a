//! SMTP and LMTP command lines (RFC 5321 §4.1, RFC 2033 §4, RFC 4954 §4
//! AUTH, RFC 1870 SIZE, RFC 6152 BODY, RFC 3030 BDAT) to [`Command`]s: a
//! pure parser over one line without its CRLF, borrowing from it,
//! allocating nothing. The session decides what each command means in its
//! state and which of them it offers (LMTP refuses EHLO and AUTH; SMTP
//! refuses LHLO).
//!
//! Liberal where real MTAs are sloppy (verbs in any case, a space after
//! `FROM:`, paths without angle brackets, source routes, trailing blanks),
//! strict about what could smuggle anything into a header or a file name
//! (control characters, 8-bit bytes in paths: SMTPUTF8 is not offered).

/// A parsed command; strings borrow from the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command<'a> {
    /// `LHLO <name>` (RFC 2033 §4.1).
    Lhlo(&'a str),
    /// `EHLO <domain>` (RFC 5321 §4.1.1.1); an LMTP server refuses it.
    Ehlo(&'a str),
    /// `HELO <domain>`; an LMTP server refuses it.
    Helo(&'a str),
    /// `MAIL FROM:<path>`; `from` is empty for the null sender.
    Mail {
        from: &'a str,
        size: Option<u64>,
        body: Option<Body>,
        /// `AUTH=<xtext>` (RFC 4954 §5): only where AUTH is offered, and
        /// then ignored (the session knows who authenticated).
        auth: Option<&'a str>,
        /// `ENVID=<xtext>` (RFC 3461 §4.4), still xtext-encoded, at most
        /// 100 characters: Tandem's LMTP takes it from its own frontends
        /// (the queue id) to tag stored copies; SMTP refuses it.
        envid: Option<&'a str>,
        /// `X-TANDEM-RETRY`: the outcome of an earlier attempt of this
        /// transaction is unknown, so the server checks for copies already
        /// stored under the same ENVID (LMTP from trusted peers only).
        retry: bool,
    },
    /// `RCPT TO:<path>`, without source route.
    Rcpt {
        to: &'a str,
    },
    Data,
    /// `BDAT <size> [LAST]` (RFC 3030).
    Bdat {
        size: u64,
        last: bool,
    },
    Rset,
    Noop,
    Vrfy,
    Quit,
    StartTls,
    /// `AUTH <mechanism> [initial-response]` (RFC 4954 §4); the mechanism
    /// as sent (compare case-insensitively), the response still base64,
    /// `=` for an empty one.
    Auth {
        mechanism: &'a str,
        initial: Option<&'a str>,
    },
    /// Known SMTP commands this server does not implement (EXPN, HELP...).
    NotImplemented,
}

/// The `BODY=` parameter of MAIL (RFC 6152).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    SevenBit,
    EightBitMime,
}

/// Why a line is not a command; each maps to one reply in the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not a command verb at all (500 5.5.2).
    #[error("unknown command")]
    Unknown,
    /// A known verb with bad arguments (501 5.5.4).
    #[error("{0}")]
    Syntax(&'static str),
    /// A malformed path in MAIL (501 5.1.7) or RCPT (501 5.1.3).
    #[error("{0}")]
    Path(&'static str),
    /// A MAIL/RCPT parameter that was not advertised (555 5.5.4).
    #[error("{0}")]
    Param(&'static str),
    /// A BDAT whose size cannot be read: the chunk cannot be skipped, so
    /// the session is out of step with the client (501 5.5.4, then close).
    #[error("Syntax: BDAT size [LAST]")]
    Bdat,
}

impl ParseError {
    /// The reply to the line, for SMTP and LMTP alike; `in_transaction`
    /// (after MAIL) makes a bad path a recipient's (5.1.3) rather than the
    /// sender's (5.1.7). After [`ParseError::Bdat`] the session must close.
    pub fn reply(&self, in_transaction: bool) -> String {
        match self {
            ParseError::Unknown => "500 5.5.2 Unknown command".into(),
            ParseError::Syntax(why) => format!("501 5.5.4 {why}"),
            ParseError::Path(why) if in_transaction => format!("501 5.1.3 {why}"),
            ParseError::Path(why) => format!("501 5.1.7 {why}"),
            ParseError::Param(why) => format!("555 5.5.4 {why}"),
            ParseError::Bdat => format!("501 5.5.4 {self}"),
        }
    }
}

/// RFC 5321 §4.5.3.1.3: a path is at most 256 octets with its brackets.
const MAX_PATH: usize = 256;
/// RFC 3461 §4.4: an ENVID is at most 100 characters (as xtext).
pub const MAX_ENVID: usize = 100;

/// Parses one command line (CRLF already removed).
pub fn parse(line: &[u8]) -> Result<Command<'_>, ParseError> {
    let line = trim_end(line);
    let (verb, rest) = match line.iter().position(|&b| b == b' ') {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => (line, &b""[..]),
    };
    let cmd = match verb.len() {
        4 => [verb[0], verb[1], verb[2], verb[3]].map(|b| b.to_ascii_uppercase()),
        8 if verb.eq_ignore_ascii_case(b"STARTTLS") => return no_args(rest, Command::StartTls),
        _ => return Err(ParseError::Unknown),
    };
    // Arguments are printable ASCII from here on; the 8-bit and control
    // bytes a verb might carry already made it unknown.
    if rest.iter().any(|b| !(0x20..0x7f).contains(b)) {
        return Err(ParseError::Syntax("Invalid character in command"));
    }
    // Checked just above: ASCII is UTF-8.
    let rest = std::str::from_utf8(rest).map_err(|_| ParseError::Syntax("Invalid character"))?;
    match &cmd {
        b"LHLO" => lhlo(rest),
        b"EHLO" => hello(rest, "Syntax: EHLO domain").map(Command::Ehlo),
        b"HELO" => hello(rest, "Syntax: HELO domain").map(Command::Helo),
        b"AUTH" => auth(rest),
        b"MAIL" => mail(rest),
        b"RCPT" => rcpt(rest),
        b"DATA" => no_args(rest.as_bytes(), Command::Data),
        b"BDAT" => bdat(rest),
        b"RSET" => no_args(rest.as_bytes(), Command::Rset),
        b"NOOP" => Ok(Command::Noop),
        b"VRFY" if rest.trim().is_empty() => Err(ParseError::Syntax("Syntax: VRFY address")),
        b"VRFY" => Ok(Command::Vrfy),
        b"QUIT" => no_args(rest.as_bytes(), Command::Quit),
        b"EXPN" | b"HELP" | b"ETRN" | b"TURN" | b"SEND" | b"SOML" | b"SAML" => {
            Ok(Command::NotImplemented)
        }
        _ => Err(ParseError::Unknown),
    }
}

fn trim_end(mut s: &[u8]) -> &[u8] {
    while let [head @ .., b' ' | b'\t'] = s {
        s = head;
    }
    s
}

fn no_args<'a>(rest: &[u8], cmd: Command<'a>) -> Result<Command<'a>, ParseError> {
    if rest.iter().all(|&b| b == b' ') {
        Ok(cmd)
    } else {
        Err(ParseError::Syntax("No arguments allowed"))
    }
}

fn lhlo(rest: &str) -> Result<Command<'_>, ParseError> {
    hello(rest, "Syntax: LHLO hostname").map(Command::Lhlo)
}

/// The one word after LHLO, EHLO or HELO: a domain or an address literal.
fn hello<'a>(rest: &'a str, syntax: &'static str) -> Result<&'a str, ParseError> {
    let name = rest.trim_matches(' ');
    if name.is_empty() || name.contains(' ') || name.len() > 255 {
        return Err(ParseError::Syntax(syntax));
    }
    Ok(name)
}

/// `AUTH mechanism [initial-response]` (RFC 4954 §4).
fn auth(rest: &str) -> Result<Command<'_>, ParseError> {
    const SYNTAX: ParseError = ParseError::Syntax("Syntax: AUTH mechanism [initial-response]");
    let mut words = rest.split(' ').filter(|w| !w.is_empty());
    let mechanism = words.next().ok_or(SYNTAX)?;
    // RFC 4422 §3.1: mechanism names are 1-20 of [A-Z0-9-_].
    let name_ok = mechanism.len() <= 20
        && mechanism
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !name_ok {
        return Err(SYNTAX);
    }
    let initial = words.next();
    if words.next().is_some() {
        return Err(SYNTAX);
    }
    Ok(Command::Auth { mechanism, initial })
}

fn mail(rest: &str) -> Result<Command<'_>, ParseError> {
    let Some(arg) = strip_prefix_ci(rest, "FROM:") else {
        return Err(ParseError::Syntax("Syntax: MAIL FROM:<address>"));
    };
    let (from, params) = path(arg)?;
    let (mut size, mut body, mut auth, mut envid) = (None, None, None, None);
    let mut retry = false;
    for p in params.split(' ').filter(|p| !p.is_empty()) {
        let (key, value) = p.split_once('=').unwrap_or((p, ""));
        if key.eq_ignore_ascii_case("SIZE") {
            if size.is_some() {
                return Err(ParseError::Syntax("Duplicate SIZE parameter"));
            }
            if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ParseError::Syntax("Bad SIZE parameter"));
            }
            // Beyond u64 is beyond any limit: saturate rather than refuse.
            size = Some(value.parse().unwrap_or(u64::MAX));
        } else if key.eq_ignore_ascii_case("BODY") {
            if body.is_some() {
                return Err(ParseError::Syntax("Duplicate BODY parameter"));
            }
            body = Some(if value.eq_ignore_ascii_case("7BIT") {
                Body::SevenBit
            } else if value.eq_ignore_ascii_case("8BITMIME") {
                Body::EightBitMime
            } else {
                return Err(ParseError::Param("Unsupported BODY type"));
            });
        } else if key.eq_ignore_ascii_case("AUTH") && !value.is_empty() {
            if auth.is_some() {
                return Err(ParseError::Syntax("Duplicate AUTH parameter"));
            }
            auth = Some(value);
        } else if key.eq_ignore_ascii_case("ENVID") {
            if envid.is_some() {
                return Err(ParseError::Syntax("Duplicate ENVID parameter"));
            }
            if value.is_empty() || value.len() > MAX_ENVID || !is_xtext(value) {
                return Err(ParseError::Syntax("Bad ENVID parameter"));
            }
            envid = Some(value);
        } else if key.eq_ignore_ascii_case("X-TANDEM-RETRY") && p.len() == key.len() {
            retry = true;
        } else {
            return Err(ParseError::Param("Unsupported MAIL parameter"));
        }
    }
    Ok(Command::Mail {
        from,
        size,
        body,
        auth,
        envid,
        retry,
    })
}

/// RFC 3461 §4: xtext is printable ASCII but `+` and `=`, with `+XX`
/// (two upper-case hex digits) for anything else.
fn is_xtext(value: &str) -> bool {
    let b = value.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => {
                let hex =
                    |c: Option<&u8>| c.is_some_and(|c| matches!(c, b'0'..=b'9' | b'A'..=b'F'));
                if !hex(b.get(i + 1)) || !hex(b.get(i + 2)) {
                    return false;
                }
                i += 3;
            }
            b'!'..=b'~' if b[i] != b'=' => i += 1,
            _ => return false,
        }
    }
    true
}

fn rcpt(rest: &str) -> Result<Command<'_>, ParseError> {
    let Some(arg) = strip_prefix_ci(rest, "TO:") else {
        return Err(ParseError::Syntax("Syntax: RCPT TO:<address>"));
    };
    let (to, params) = path(arg)?;
    if to.is_empty() {
        return Err(ParseError::Path("Recipient address required"));
    }
    if params.split(' ').any(|p| !p.is_empty()) {
        return Err(ParseError::Param("Unsupported RCPT parameter"));
    }
    Ok(Command::Rcpt { to })
}

fn bdat(rest: &str) -> Result<Command<'static>, ParseError> {
    let mut words = rest.split(' ').filter(|w| !w.is_empty());
    let size = match words.next() {
        Some(n) if !n.is_empty() && n.len() <= 19 && n.bytes().all(|b| b.is_ascii_digit()) => {
            n.parse().map_err(|_| ParseError::Bdat)?
        }
        _ => return Err(ParseError::Bdat),
    };
    let last = match words.next() {
        None => false,
        Some(w) if w.eq_ignore_ascii_case("LAST") => true,
        Some(_) => return Err(ParseError::Bdat),
    };
    if words.next().is_some() {
        return Err(ParseError::Bdat);
    }
    Ok(Command::Bdat { size, last })
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// Splits `<path> params` (or a bare `path params`) after `FROM:`/`TO:`.
/// Returns the address without brackets and source route, and the rest.
fn path(arg: &str) -> Result<(&str, &str), ParseError> {
    let arg = arg.trim_start_matches(' ');
    let (inner, rest) = if let Some(body) = arg.strip_prefix('<') {
        let end = closing_bracket(body).ok_or(ParseError::Path("Missing '>' in address"))?;
        (&body[..end], &body[end + 1..])
    } else {
        // RFC 821 clients without brackets; a bare path cannot contain spaces.
        let end = arg.find(' ').unwrap_or(arg.len());
        (&arg[..end], &arg[end..])
    };
    if !rest.is_empty() && !rest.starts_with(' ') {
        return Err(ParseError::Path("Garbage after address"));
    }
    if inner.len() + 2 > MAX_PATH {
        return Err(ParseError::Path("Address too long"));
    }
    // A source route `@a,@b:user@c` is accepted and ignored (RFC 5321 §4.1.1.3 / C).
    let addr = match inner.strip_prefix('@') {
        Some(route) => match route.find(':') {
            Some(i) => &route[i + 1..],
            None => return Err(ParseError::Path("Bad source route")),
        },
        None => inner,
    };
    if addr.contains(['<', '>']) || (addr.contains(' ') && !addr.starts_with('"')) {
        return Err(ParseError::Path("Bad address syntax"));
    }
    if !addr.is_empty() && !addr.contains('@') {
        return Err(ParseError::Path("Address needs a domain"));
    }
    Ok((addr, rest))
}

/// The index of the `>` closing a path, skipping quoted strings.
fn closing_bracket(s: &str) -> Option<usize> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, b) in s.bytes().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            b'>' if !quoted => return Some(i),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::Body::*;
    use super::Command::*;
    use super::ParseError::*;
    use super::*;

    fn mail(from: &str, size: Option<u64>, body: Option<Body>) -> Command<'_> {
        Mail {
            from,
            size,
            body,
            auth: None,
            envid: None,
            retry: false,
        }
    }

    fn tagged(size: Option<u64>, envid: &str, retry: bool) -> Command<'_> {
        Mail {
            from: "a@b",
            size,
            body: None,
            auth: None,
            envid: Some(envid),
            retry,
        }
    }

    #[test]
    fn table() {
        let cases: &[(&[u8], Result<Command<'_>, ParseError>)] = &[
            (b"LHLO mx.example.com", Ok(Lhlo("mx.example.com"))),
            (b"lhlo mx", Ok(Lhlo("mx"))),
            (b"LhLo [127.0.0.1]  ", Ok(Lhlo("[127.0.0.1]"))),
            (b"LHLO", Err(Syntax("Syntax: LHLO hostname"))),
            (b"LHLO a b", Err(Syntax("Syntax: LHLO hostname"))),
            (b"HELO mx", Ok(Helo("mx"))),
            (b"ehlo mx", Ok(Ehlo("mx"))),
            (b"EHLO [192.0.2.1] ", Ok(Ehlo("[192.0.2.1]"))),
            (b"EHLO", Err(Syntax("Syntax: EHLO domain"))),
            (b"HELO", Err(Syntax("Syntax: HELO domain"))),
            (b"EHLO a b", Err(Syntax("Syntax: EHLO domain"))),
            (b"MAIL FROM:<a@b.c>", Ok(mail("a@b.c", None, None))),
            (b"mail from:<a@b.c>", Ok(mail("a@b.c", None, None))),
            (b"MAIL FROM: <a@b.c>", Ok(mail("a@b.c", None, None))),
            (b"MAIL FROM:a@b.c", Ok(mail("a@b.c", None, None))),
            (b"MAIL FROM:<>", Ok(mail("", None, None))),
            (b"MAIL FROM:<> SIZE=0", Ok(mail("", Some(0), None))),
            (
                b"MAIL FROM:<a@b> SIZE=1000 BODY=8BITMIME",
                Ok(mail("a@b", Some(1000), Some(EightBitMime))),
            ),
            (
                b"MAIL FROM:<a@b>  body=7bit   size=12",
                Ok(mail("a@b", Some(12), Some(SevenBit))),
            ),
            (
                b"MAIL FROM:<a@b> SIZE=99999999999999999999999",
                Ok(mail("a@b", Some(u64::MAX), None)),
            ),
            (b"MAIL FROM:<@r1,@r2:a@b>", Ok(mail("a@b", None, None))),
            (b"MAIL FROM:<\"x y\"@b>", Ok(mail("\"x y\"@b", None, None))),
            // Brackets even when quoted: the path goes into Return-Path.
            (b"MAIL FROM:<\"x>y\"@b>", Err(Path("Bad address syntax"))),
            (b"MAIL FROM:<a@b> SIZE=", Err(Syntax("Bad SIZE parameter"))),
            (
                b"MAIL FROM:<a@b> SIZE=-1",
                Err(Syntax("Bad SIZE parameter")),
            ),
            (
                b"MAIL FROM:<a@b> SIZE=1 SIZE=2",
                Err(Syntax("Duplicate SIZE parameter")),
            ),
            (
                b"MAIL FROM:<a@b> BODY=BINARYMIME",
                Err(Param("Unsupported BODY type")),
            ),
            (
                b"MAIL FROM:<a@b> SMTPUTF8",
                Err(Param("Unsupported MAIL parameter")),
            ),
            (
                b"MAIL FROM:<a@b> AUTH=<>",
                Ok(Mail {
                    from: "a@b",
                    size: None,
                    body: None,
                    auth: Some("<>"),
                    envid: None,
                    retry: false,
                }),
            ),
            (
                b"MAIL FROM:<a@b> AUTH=a+2Bb@c SIZE=5",
                Ok(Mail {
                    from: "a@b",
                    size: Some(5),
                    body: None,
                    auth: Some("a+2Bb@c"),
                    envid: None,
                    retry: false,
                }),
            ),
            (
                b"MAIL FROM:<a@b> AUTH=<> AUTH=<>",
                Err(Syntax("Duplicate AUTH parameter")),
            ),
            (
                b"MAIL FROM:<a@b> AUTH",
                Err(Param("Unsupported MAIL parameter")),
            ),
            (
                b"MAIL FROM:<a@b> RET=HDRS",
                Err(Param("Unsupported MAIL parameter")),
            ),
            (
                b"MAIL FROM:<a@b> ENVID=1A2B+2B3 X-TANDEM-RETRY",
                Ok(tagged(None, "1A2B+2B3", true)),
            ),
            (
                b"MAIL FROM:<a@b> envid=q1 x-tandem-retry SIZE=3",
                Ok(tagged(Some(3), "q1", true)),
            ),
            (b"MAIL FROM:<a@b> ENVID=q1", Ok(tagged(None, "q1", false))),
            (
                b"MAIL FROM:<a@b> ENVID=",
                Err(Syntax("Bad ENVID parameter")),
            ),
            (b"MAIL FROM:<a@b> ENVID", Err(Syntax("Bad ENVID parameter"))),
            (
                b"MAIL FROM:<a@b> ENVID=a=b",
                Err(Syntax("Bad ENVID parameter")),
            ),
            (
                b"MAIL FROM:<a@b> ENVID=a+2",
                Err(Syntax("Bad ENVID parameter")),
            ),
            (
                b"MAIL FROM:<a@b> ENVID=a+zz",
                Err(Syntax("Bad ENVID parameter")),
            ),
            (
                b"MAIL FROM:<a@b> ENVID=a+2b",
                Err(Syntax("Bad ENVID parameter")),
            ),
            (
                b"MAIL FROM:<a@b> ENVID=a ENVID=b",
                Err(Syntax("Duplicate ENVID parameter")),
            ),
            (
                b"MAIL FROM:<a@b> X-TANDEM-RETRY=1",
                Err(Param("Unsupported MAIL parameter")),
            ),
            (b"MAIL FROM:<a@b", Err(Path("Missing '>' in address"))),
            (b"MAIL FROM:<a@b>x", Err(Path("Garbage after address"))),
            (b"MAIL FROM:<a b@c>", Err(Path("Bad address syntax"))),
            (b"MAIL FROM:<ab>", Err(Path("Address needs a domain"))),
            (b"MAIL FROM:<@r1>", Err(Path("Bad source route"))),
            (b"MAIL <a@b>", Err(Syntax("Syntax: MAIL FROM:<address>"))),
            (b"MAIL", Err(Syntax("Syntax: MAIL FROM:<address>"))),
            (b"MAIL TO:<a@b>", Err(Syntax("Syntax: MAIL FROM:<address>"))),
            (
                b"RCPT TO:<Alice@Example.COM>",
                Ok(Rcpt {
                    to: "Alice@Example.COM",
                }),
            ),
            (b"rcpt to: <a@b>", Ok(Rcpt { to: "a@b" })),
            (b"RCPT TO:a@b", Ok(Rcpt { to: "a@b" })),
            (b"RCPT TO:<>", Err(Path("Recipient address required"))),
            (
                b"RCPT TO:<a@b> NOTIFY=NEVER",
                Err(Param("Unsupported RCPT parameter")),
            ),
            (b"RCPT FROM:<a@b>", Err(Syntax("Syntax: RCPT TO:<address>"))),
            (b"DATA", Ok(Data)),
            (b"data ", Ok(Data)),
            (b"DATA x", Err(Syntax("No arguments allowed"))),
            (
                b"BDAT 0 LAST",
                Ok(Command::Bdat {
                    size: 0,
                    last: true,
                }),
            ),
            (
                b"bdat 4096",
                Ok(Command::Bdat {
                    size: 4096,
                    last: false,
                }),
            ),
            (
                b"BDAT 10 last",
                Ok(Command::Bdat {
                    size: 10,
                    last: true,
                }),
            ),
            (b"BDAT", Err(Bdat)),
            (b"BDAT x", Err(Bdat)),
            (b"BDAT -1", Err(Bdat)),
            (b"BDAT 1 FIRST", Err(Bdat)),
            (b"BDAT 1 LAST x", Err(Bdat)),
            (b"BDAT 99999999999999999999", Err(Bdat)),
            (b"RSET", Ok(Rset)),
            (b"RSET x", Err(Syntax("No arguments allowed"))),
            (b"NOOP", Ok(Noop)),
            (b"NOOP anything at all", Ok(Noop)),
            (b"VRFY alice", Ok(Vrfy)),
            (b"VRFY", Err(Syntax("Syntax: VRFY address"))),
            (b"QUIT", Ok(Quit)),
            (b"quit", Ok(Quit)),
            (b"STARTTLS", Ok(StartTls)),
            (b"starttls x", Err(Syntax("No arguments allowed"))),
            (b"EXPN list", Ok(NotImplemented)),
            (b"HELP", Ok(NotImplemented)),
            (
                b"AUTH PLAIN",
                Ok(Auth {
                    mechanism: "PLAIN",
                    initial: None,
                }),
            ),
            (
                b"auth plain AGFAYgBj",
                Ok(Auth {
                    mechanism: "plain",
                    initial: Some("AGFAYgBj"),
                }),
            ),
            (
                b"AUTH LOGIN =",
                Ok(Auth {
                    mechanism: "LOGIN",
                    initial: Some("="),
                }),
            ),
            (
                b"AUTH",
                Err(Syntax("Syntax: AUTH mechanism [initial-response]")),
            ),
            (
                b"AUTH PLAIN a b",
                Err(Syntax("Syntax: AUTH mechanism [initial-response]")),
            ),
            (
                b"AUTH PL@IN",
                Err(Syntax("Syntax: AUTH mechanism [initial-response]")),
            ),
            (b"", Err(Unknown)),
            (b"   ", Err(Unknown)),
            (b"FOO", Err(Unknown)),
            (b"QUITX", Err(Unknown)),
            (b" QUIT", Err(Unknown)),
            (b"QU\0T", Err(Unknown)),
            (b"\xff\xfe\xfd\xfc", Err(Unknown)),
            (b"\xc3\xa9\xc3\xa9", Err(Unknown)),
            (b"GET / HTTP/1.1", Err(Unknown)),
            (b"NOOP \0", Err(Syntax("Invalid character in command"))),
            (
                b"RCPT TO:<a\0@b>",
                Err(Syntax("Invalid character in command")),
            ),
            (
                b"RCPT TO:<\xc3\xa9@b>",
                Err(Syntax("Invalid character in command")),
            ),
            (
                b"MAIL FROM:<a@b>\rRCPT",
                Err(Syntax("Invalid character in command")),
            ),
        ];
        for (line, want) in cases {
            assert_eq!(&parse(line), want, "{:?}", String::from_utf8_lossy(line));
        }
    }

    #[test]
    fn envid_length_is_bounded() {
        let ok = format!("MAIL FROM:<a@b> ENVID={}", "e".repeat(MAX_ENVID));
        assert!(matches!(parse(ok.as_bytes()), Ok(Mail { envid: Some(e), .. }) if e.len() == 100));
        let long = format!("MAIL FROM:<a@b> ENVID={}", "e".repeat(MAX_ENVID + 1));
        assert_eq!(parse(long.as_bytes()), Err(Syntax("Bad ENVID parameter")));
    }

    #[test]
    fn path_length_is_bounded() {
        let long = format!("RCPT TO:<{}@b.c>", "a".repeat(300));
        assert_eq!(parse(long.as_bytes()), Err(Path("Address too long")));
        let ok = format!("RCPT TO:<{}@b.c>", "a".repeat(64));
        assert!(parse(ok.as_bytes()).is_ok());
    }

    #[test]
    fn never_panics_on_any_prefix_of_any_line() {
        let lines: &[&[u8]] = &[
            b"MAIL FROM:<@a,@b:\"q\\\"x\"@c> SIZE=12 BODY=8BITMIME",
            b"RCPT TO:<\"a>\\\"b\"@c>",
            b"BDAT 18446744073709551615 LAST",
            b"LHLO \xff\x00\r\n",
        ];
        for line in lines {
            for end in 0..=line.len() {
                let _ = parse(&line[..end]);
                let _ = parse(&line[end..]);
            }
        }
        // Every two-byte combination after each verb.
        for verb in ["MAIL FROM:", "RCPT TO:", "BDAT ", "LHLO ", "EHLO ", "AUTH "] {
            for a in 0..=255u8 {
                for b in [0u8, b' ', b'<', b'>', b'"', b'\\', b'@', b':', 0x80, 0xff] {
                    let mut l = verb.as_bytes().to_vec();
                    l.extend([a, b, a]);
                    let _ = parse(&l);
                }
            }
        }
    }
}
