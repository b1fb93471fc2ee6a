//! Mail addresses, normalised once at the edge (RFC 5321 §4.1.2, §4.5.3.1).
//!
//! Every tier compares accounts by their normalised form, so the rules live here
//! and nowhere else:
//! - the domain is case-insensitive and folded to lower case (RFC 5321 §2.4);
//! - the local part is folded to lower case as well. RFC 5321 lets a host treat
//!   local parts case-sensitively, but a provider where `Alice@` and `alice@` are
//!   two mailboxes only produces misdelivered mail; Dovecot deployments do the
//!   same with `auth_username_format = %Lu`;
//! - only the dot-atom form is accepted: no quoted local parts, no `/` or `\`
//!   (the backend derives directory names from addresses), no empty or
//!   consecutive dots, so `../x` can never be an address;
//! - internationalised domains must arrive in their A-label (`xn--`) form.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// RFC 5321 §4.5.3.1.1.
pub const MAX_LOCAL_PART: usize = 64;
/// RFC 5321 §4.5.3.1.2.
pub const MAX_DOMAIN: usize = 253;
/// RFC 5321 §4.5.3.1.3 limits a path to 256 octets including the angle brackets.
pub const MAX_ADDRESS: usize = 254;

/// A normalised mail address (`local@domain`, lower case, validated).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address {
    text: String,
    at: usize,
}

/// A normalised domain name.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Domain(String);

/// Why an address or domain was refused; the message names the offending part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("address is empty")]
    Empty,
    #[error("address {0:?} has no '@'")]
    NoAt(String),
    #[error("address {0:?} is longer than {MAX_ADDRESS} characters")]
    TooLong(String),
    #[error("local part of {0:?} is empty")]
    EmptyLocal(String),
    #[error("local part of {0:?} is longer than {MAX_LOCAL_PART} characters")]
    LocalTooLong(String),
    #[error("local part of {addr:?} contains {ch:?}, which is not allowed")]
    LocalChar { addr: String, ch: char },
    #[error("local part of {0:?} starts or ends with '.' or contains '..'")]
    LocalDots(String),
    #[error("domain {0:?} is empty")]
    EmptyDomain(String),
    #[error("domain {0:?} is longer than {MAX_DOMAIN} characters")]
    DomainTooLong(String),
    #[error("domain {0:?} has an empty label or a label longer than 63 characters")]
    DomainLabel(String),
    #[error(
        "domain {domain:?} contains {ch:?}; use letters, digits and '-' (internationalised names in their xn-- form)"
    )]
    DomainChar { domain: String, ch: char },
    #[error("domain {0:?} has a label that starts or ends with '-'")]
    DomainHyphen(String),
}

impl Address {
    /// Parses and normalises `input`. Surrounding whitespace and one pair of
    /// angle brackets are tolerated; everything else must be a valid address.
    pub fn parse(input: &str) -> Result<Self, AddressError> {
        let trimmed = input.trim();
        let trimmed = trimmed
            .strip_prefix('<')
            .and_then(|s| s.strip_suffix('>'))
            .unwrap_or(trimmed);
        if trimmed.is_empty() {
            return Err(AddressError::Empty);
        }
        if trimmed.len() > MAX_ADDRESS {
            return Err(AddressError::TooLong(shorten(trimmed)));
        }
        let Some(at) = trimmed.rfind('@') else {
            return Err(AddressError::NoAt(trimmed.to_owned()));
        };
        let (local, domain) = (&trimmed[..at], &trimmed[at + 1..]);
        check_local(local, trimmed)?;
        let domain = Domain::parse(domain).map_err(|e| match e {
            AddressError::Empty => AddressError::EmptyDomain(trimmed.to_owned()),
            other => other,
        })?;
        let mut text = String::with_capacity(trimmed.len());
        text.push_str(&local.to_ascii_lowercase());
        text.push('@');
        text.push_str(domain.as_str());
        Ok(Address { text, at })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn local_part(&self) -> &str {
        &self.text[..self.at]
    }

    pub fn domain(&self) -> &str {
        &self.text[self.at + 1..]
    }

    pub fn into_string(self) -> String {
        self.text
    }
}

impl Domain {
    pub fn parse(input: &str) -> Result<Self, AddressError> {
        let d = input.trim().trim_end_matches('.');
        if d.is_empty() {
            return Err(AddressError::Empty);
        }
        if d.len() > MAX_DOMAIN {
            return Err(AddressError::DomainTooLong(shorten(d)));
        }
        for label in d.split('.') {
            if label.is_empty() || label.len() > 63 {
                return Err(AddressError::DomainLabel(d.to_owned()));
            }
            if let Some(ch) = label
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
            {
                return Err(AddressError::DomainChar {
                    domain: d.to_owned(),
                    ch,
                });
            }
            if label.starts_with('-') || label.ends_with('-') {
                return Err(AddressError::DomainHyphen(d.to_owned()));
            }
        }
        Ok(Domain(d.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// RFC 5322 `atext`, less `/` which would let a local part look like a path.
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-=?^_`{|}~".contains(c)
}

fn check_local(local: &str, whole: &str) -> Result<(), AddressError> {
    if local.is_empty() {
        return Err(AddressError::EmptyLocal(whole.to_owned()));
    }
    if local.len() > MAX_LOCAL_PART {
        return Err(AddressError::LocalTooLong(whole.to_owned()));
    }
    if let Some(ch) = local.chars().find(|c| !(is_atext(*c) || *c == '.')) {
        return Err(AddressError::LocalChar {
            addr: whole.to_owned(),
            ch,
        });
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err(AddressError::LocalDots(whole.to_owned()));
    }
    Ok(())
}

/// Error messages quote input; keep a hostile megabyte out of the logs.
fn shorten(s: &str) -> String {
    let end = s.char_indices().nth(64).map(|(i, _)| i).unwrap_or(s.len());
    format!("{}...", &s[..end])
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.text)
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl std::str::FromStr for Address {
    type Err = AddressError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Address::parse(s)
    }
}

impl std::str::FromStr for Domain {
    type Err = AddressError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Domain::parse(s)
    }
}

impl Serialize for Address {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Address {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Address::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Domain {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Domain {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Domain::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises() {
        let cases = [
            ("alice@example.com", "alice@example.com"),
            ("Alice@Example.COM", "alice@example.com"),
            (
                "  <bob.smith@mail.example.org>  ",
                "bob.smith@mail.example.org",
            ),
            ("x+tag@example.com.", "x+tag@example.com"),
            (
                "o'hara@xn--bcher-kva.example",
                "o'hara@xn--bcher-kva.example",
            ),
            ("root@localhost", "root@localhost"),
        ];
        for (input, want) in cases {
            let a = Address::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(a.as_str(), want, "{input}");
        }
        let a = Address::parse("Carol@Example.com").unwrap();
        assert_eq!(a.local_part(), "carol");
        assert_eq!(a.domain(), "example.com");
    }

    #[test]
    fn refuses() {
        let long_local = format!("{}@example.com", "a".repeat(65));
        let long_label = format!("a@{}.com", "b".repeat(64));
        let long_all = format!("a@{}.com", vec!["c".repeat(60); 5].join("."));
        let cases: Vec<&str> = vec![
            "",
            "   ",
            "alice",
            "@example.com",
            "alice@",
            "../x@example.com",
            "..@example.com",
            "a..b@example.com",
            ".a@example.com",
            "a.@example.com",
            "a/b@example.com",
            "a\\b@example.com",
            "a\0b@example.com",
            "a b@example.com",
            "\"quoted\"@example.com",
            "a(b@example.com",
            "a*)(uid=*@example.com",
            "a@exa mple.com",
            "a@example..com",
            "a@-example.com",
            "a@example-.com",
            "a@exa_mple.com",
            "a@b@example.com",
            "a@ex/ample.com",
            "a@../etc",
            "ä@example.com",
            "a@bücher.example",
            "a@[127.0.0.1]",
            &long_local,
            &long_label,
            &long_all,
        ];
        for input in cases {
            assert!(Address::parse(input).is_err(), "accepted {input:?}");
        }
    }

    #[test]
    fn errors_name_the_input() {
        let e = Address::parse("a/b@example.com").unwrap_err().to_string();
        assert!(e.contains("a/b@example.com") && e.contains("'/'"), "{e}");
        let e = Address::parse("x@exa_mple.com").unwrap_err().to_string();
        assert!(e.contains("exa_mple.com"), "{e}");
        let huge = "a".repeat(100_000);
        let e = Address::parse(&huge).unwrap_err().to_string();
        assert!(e.len() < 200, "error message echoes the whole input");
    }
}
