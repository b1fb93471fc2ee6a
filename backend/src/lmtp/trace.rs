//! The header block prepended to each recipient's copy (RFC 5321 §4.4):
//! `Return-Path`, `Delivered-To` and `Received`, LF line ends like the
//! Maildir.

use std::io::Write;
use std::net::IpAddr;

use shared::smtp::trace::{AddressLiteral, Printable};

/// What a recipient's header block says about the transaction.
#[derive(Debug, Clone, Copy)]
pub struct Trace<'a> {
    /// The reverse path, empty for the null sender.
    pub sender: &'a str,
    /// The name the client gave in LHLO.
    pub lhlo: &'a str,
    pub client: IpAddr,
    /// This node's host name.
    pub hostname: &'a str,
    /// The session id, to find the transaction in the logs.
    pub session: &'a str,
    /// Whether the message came over TLS (`with LMTPS`, RFC 3848).
    pub tls: bool,
    /// RFC 5322 date of receipt.
    pub date: &'a str,
}

/// Writes `Return-Path`, `Delivered-To` and `Received` for one recipient
/// (LF line ends, folded), into `out` after clearing it.
pub fn header_block(out: &mut Vec<u8>, t: &Trace<'_>, recipient: &str) {
    out.clear();
    let client = AddressLiteral(t.client);
    // Writing to a Vec cannot fail.
    let _ = write!(
        out,
        "Return-Path: <{}>\nDelivered-To: {}\nReceived: from {} ([{client}])\n\tby {} (Tandem) with {} id {};\n\t{}\n",
        t.sender,
        recipient,
        Printable(t.lhlo),
        Printable(t.hostname),
        if t.tls { "LMTPS" } else { "LMTP" },
        Printable(t.session),
        t.date,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_block_is_folded_and_safe() {
        let mut out = b"stale".to_vec();
        let t = Trace {
            sender: "a@b.c",
            lhlo: "mx\x01.example",
            client: "::ffff:10.0.0.1".parse().unwrap(),
            hostname: "backend.test",
            session: "abcdefghijkl",
            tls: false,
            date: "Sun, 22 Nov 2026 18:02:01 +0000",
        };
        header_block(&mut out, &t, "alice@example.com");
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            "Return-Path: <a@b.c>\nDelivered-To: alice@example.com\n\
             Received: from mx?.example ([10.0.0.1])\n\tby backend.test (Tandem) with LMTP id abcdefghijkl;\n\
             \tSun, 22 Nov 2026 18:02:01 +0000\n"
        );
        let t = Trace {
            sender: "",
            tls: true,
            client: "2001:db8::1".parse().unwrap(),
            ..t
        };
        header_block(&mut out, &t, "x@y");
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("Return-Path: <>\n"), "{text}");
        assert!(text.contains("([IPv6:2001:db8::1])"), "{text}");
        assert!(text.contains("(Tandem) with LMTPS id"), "{text}");
    }
}
