//! Escaping of values put into search filters (RFC 4515 §3) and into
//! distinguished names (RFC 4514 §2.4).
//!
//! Addresses reach this module already normalised, but an address may still
//! contain `*` or `{`, and values provisioned by other tools may contain
//! anything; no filter or DN is ever built by formatting an unescaped value.

use std::fmt::Write;

/// The placeholder in `account_filter` that stands for the escaped address.
pub const PLACEHOLDER: &str = "%s";

/// Escapes `value` for use as an assertion value in a search filter.
///
/// RFC 4515 §3 requires `*`, `(`, `)`, `\` and NUL to be written as `\XX`.
/// Every other byte outside printable ASCII is escaped as well: UTF-8 would be
/// legal, but hex keeps the filter unambiguous in logs and across servers.
pub fn escape_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for &b in value.as_bytes() {
        if matches!(b, b'*' | b'(' | b')' | b'\\') || !(0x20..0x7f).contains(&b) {
            let _ = write!(out, "\\{b:02x}");
        } else {
            out.push(char::from(b));
        }
    }
    out
}

/// Puts the escaped `value` wherever the template has [`PLACEHOLDER`].
pub fn fill(template: &str, value: &str) -> String {
    template.replace(PLACEHOLDER, &escape_value(value))
}

/// The template with every placeholder replaced by `*`: a presence (or
/// substring) assertion, so the filter selects every account rather than one.
pub fn any(template: &str) -> String {
    template.replace(PLACEHOLDER, "*")
}

/// Escapes `value` for use as an attribute value in a DN (RFC 4514 §2.4):
/// `"`, `+`, `,`, `;`, `<`, `>`, `=` and `\` get a backslash, as do a leading
/// space or `#` and a trailing space; NUL and other control bytes become `\XX`.
pub fn escape_dn_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 4);
    let last = value.len().saturating_sub(1);
    for (i, ch) in value.char_indices() {
        match ch {
            '"' | '+' | ',' | ';' | '<' | '>' | '=' | '\\' => {
                out.push('\\');
                out.push(ch);
            }
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            '#' if i == 0 => out.push_str("\\#"),
            c if c.is_ascii_control() => {
                let _ = write!(out, "\\{:02x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_values() {
        for (input, want) in [
            ("alice@example.com", "alice@example.com"),
            ("*", "\\2a"),
            ("*@example.com", "\\2a@example.com"),
            ("a)(mail=*", "a\\29\\28mail=\\2a"),
            ("x*y@example.com", "x\\2ay@example.com"),
            ("back\\slash", "back\\5cslash"),
            ("nul\0", "nul\\00"),
            ("tab\t", "tab\\09"),
            ("del\x7f", "del\\7f"),
            ("é", "\\c3\\a9"),
            ("{t}@example.com", "{t}@example.com"),
            ("o'hara%_@x", "o'hara%_@x"),
            ("", ""),
        ] {
            assert_eq!(escape_value(input), want, "{input:?}");
        }
    }

    #[test]
    fn escaped_filters_parse_and_stay_one_assertion() {
        let template = "(&(objectClass=inetLocalMailRecipient)(|(mail=%s)(mailLocalAddress=%s)))";
        for input in ["a)(mail=*", "*", "\\", "\0", "((((", "é*)"] {
            let f = fill(template, input);
            assert!(ldap3::parse_filter(&f).is_ok(), "{f}");
            assert_eq!(f.matches('(').count(), template.matches('(').count(), "{f}");
            assert_eq!(f.matches(')').count(), template.matches(')').count(), "{f}");
            assert_eq!(f.matches('*').count(), 0, "{f}");
        }
        assert_eq!(
            fill(template, "a@b"),
            "(&(objectClass=inetLocalMailRecipient)(|(mail=a@b)(mailLocalAddress=a@b)))"
        );
        assert_eq!(
            any(template),
            "(&(objectClass=inetLocalMailRecipient)(|(mail=*)(mailLocalAddress=*)))"
        );
    }

    #[test]
    fn dn_values() {
        for (input, want) in [
            ("alice@example.com", "alice@example.com"),
            ("example.com", "example.com"),
            ("a,b", "a\\,b"),
            ("a+b", "a\\+b"),
            ("\"q\"", "\\\"q\\\""),
            ("back\\slash", "back\\\\slash"),
            ("<x>;y", "\\<x\\>\\;y"),
            ("k=v", "k\\=v"),
            (" lead", "\\ lead"),
            ("trail ", "trail\\ "),
            (" ", "\\ "),
            ("mid dle", "mid dle"),
            ("#hash", "\\#hash"),
            ("a#b", "a#b"),
            ("nul\0", "nul\\00"),
            ("x*y@example.com", "x*y@example.com"),
            ("é", "é"),
            ("", ""),
        ] {
            assert_eq!(escape_dn_value(input), want, "{input:?}");
        }
    }
}
