//! `XCLIENT` (Postfix's XCLIENT_README syntax: `XCLIENT attr=xtext ...`):
//! a frontend's queue names the SMTP session a delivery belongs to
//! (`SESSION=`, our attribute) and the original client (`ADDR=`), so that
//! this node's log lines for the delivery carry the frontend's session id.
//! Only trusted networks reach LMTP at all (see `Lmtp::serve`), so every
//! LMTP client may use it. As in Postfix, the reply is a new greeting and
//! the client says LHLO again.

use std::net::IpAddr;

use super::{Next, Session};

/// Longest attribute value taken (session ids are ~20 characters).
const MAX_VALUE: usize = 128;

/// The attributes of an `XCLIENT` line, xtext-decoded; `None` when the line
/// is another command.
pub(super) fn parse(line: &[u8]) -> Option<Result<Vec<(String, String)>, &'static str>> {
    let verb = line.get(..8)?;
    if !verb.eq_ignore_ascii_case(b"XCLIENT ") {
        return None;
    }
    let Ok(rest) = std::str::from_utf8(&line[8..]) else {
        return Some(Err("XCLIENT attributes must be ASCII"));
    };
    let mut attrs = Vec::new();
    for word in rest.split(' ').filter(|w| !w.is_empty()) {
        let Some((name, value)) = word.split_once('=') else {
            return Some(Err("XCLIENT attributes are name=value"));
        };
        let Some(value) = xtext_decode(value) else {
            return Some(Err("bad xtext in XCLIENT value"));
        };
        if value.len() > MAX_VALUE {
            return Some(Err("XCLIENT value too long"));
        }
        attrs.push((name.to_ascii_uppercase(), value));
    }
    if attrs.is_empty() {
        return Some(Err("XCLIENT needs attributes"));
    }
    Some(Ok(attrs))
}

/// RFC 3461 §4 xtext; only printable ASCII results are taken.
fn xtext_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = String::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let c = if b[i] == b'+' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            i += 3;
            u8::from_str_radix(hex, 16).ok()?
        } else {
            i += 1;
            b[i - 1]
        };
        if !(32..=126).contains(&c) {
            return None;
        }
        out.push(char::from(c));
    }
    Some(out)
}

impl Session<'_> {
    pub(super) fn xclient(&mut self, attrs: Result<Vec<(String, String)>, &'static str>) -> Next {
        let attrs = match attrs {
            Ok(a) => a,
            Err(why) => return self.error(&format!("501 5.5.4 {why}")),
        };
        if self.tx.is_some() {
            return self.error("503 5.5.1 Mail transaction in progress");
        }
        for (name, value) in &attrs {
            match name.as_str() {
                "SESSION" => {
                    tracing::Span::current().record("origin", value.as_str());
                    tracing::info!(origin = %value, "XCLIENT: delivery for a frontend session");
                }
                "ADDR" => match value.parse::<IpAddr>() {
                    Ok(ip) => self.conn.client = ip,
                    Err(_) if value == "[UNAVAILABLE]" => {}
                    Err(_) => return self.error("501 5.5.4 Bad XCLIENT ADDR"),
                },
                // Postfix's other attributes mean nothing to LMTP.
                "NAME" | "PORT" | "PROTO" | "HELO" | "LOGIN" | "DESTADDR" | "DESTPORT" => {}
                _ => return self.error("501 5.5.4 Unknown XCLIENT attribute"),
            }
        }
        self.lhlo = None;
        let hostname = self.host();
        self.reply(format_args!("220 {hostname} Tandem LMTP ready"));
        Next::Go
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_attributes() {
        assert_eq!(parse(b"MAIL FROM:<>"), None);
        assert_eq!(
            parse(b"xclient SESSION=ab+2Bc ADDR=10.0.0.1"),
            Some(Ok(vec![
                ("SESSION".into(), "ab+c".into()),
                ("ADDR".into(), "10.0.0.1".into())
            ]))
        );
        assert!(matches!(parse(b"XCLIENT "), Some(Err(_))));
        assert!(matches!(parse(b"XCLIENT SESSION"), Some(Err(_))));
        assert!(matches!(parse(b"XCLIENT SESSION=+0A"), Some(Err(_))));
        assert!(matches!(parse(b"XCLIENT SESSION=+4"), Some(Err(_))));
        let long = format!("XCLIENT SESSION={}", "x".repeat(200));
        assert!(matches!(parse(long.as_bytes()), Some(Err(_))));
    }
}
