//! Pieces of the `Received:` trace header (RFC 5321 §4.4) that the
//! backend's LMTP and the frontend's SMTP both write.

use std::fmt;
use std::net::IpAddr;

/// Text that came from a client, made safe for a header: printable ASCII
/// only (the parser already refuses the rest; this is the second fence).
pub struct Printable<'a>(pub &'a str);

impl fmt::Display for Printable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write as _;
        for c in self.0.chars() {
            f.write_char(if c.is_ascii_graphic() { c } else { '?' })?;
        }
        Ok(())
    }
}

/// The client's address as RFC 5321 §4.1.3 writes it inside brackets:
/// `192.0.2.1`, `IPv6:2001:db8::1` (IPv4-mapped IPv6 as IPv4).
pub struct AddressLiteral(pub IpAddr);

impl fmt::Display for AddressLiteral {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V4(ip) => write!(f, "{ip}"),
            IpAddr::V6(ip) => match ip.to_ipv4_mapped() {
                Some(v4) => write!(f, "{v4}"),
                None => write!(f, "IPv6:{ip}"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_and_printable_text() {
        let lit = |s: &str| AddressLiteral(s.parse().unwrap()).to_string();
        assert_eq!(lit("192.0.2.1"), "192.0.2.1");
        assert_eq!(lit("::ffff:10.0.0.1"), "10.0.0.1");
        assert_eq!(lit("2001:db8::1"), "IPv6:2001:db8::1");
        assert_eq!(Printable("a b\x01\u{e9}c").to_string(), "a?b??c");
    }
}
