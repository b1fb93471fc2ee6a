//! The `Received:` header the frontend puts on top of each message
//! (RFC 5321 §4.4, with RFC 3848's `with` keywords), CRLF line ends.

use std::io::Write;
use std::net::IpAddr;

use shared::smtp::trace::{AddressLiteral, Printable};

/// What the header says about the transaction.
pub struct Trace<'a> {
    /// The name the client gave in EHLO/HELO.
    pub helo: &'a str,
    /// The real client (from the PROXY header when there was one).
    pub client: IpAddr,
    pub hostname: &'a str,
    /// EHLO (ESMTP) rather than HELO (SMTP).
    pub esmtp: bool,
    pub tls: bool,
    pub authenticated: bool,
    /// The session id, the same in the logs of both tiers.
    pub session: &'a str,
    /// RFC 5322 date.
    pub date: &'a str,
}

/// Appends the header to `out`.
pub fn write(out: &mut Vec<u8>, t: &Trace<'_>) {
    let client = AddressLiteral(t.client);
    // RFC 3848: SMTP, ESMTP, then S for TLS and A for AUTH.
    let protocol = match (t.esmtp, t.tls, t.authenticated) {
        (false, _, _) => "SMTP",
        (true, false, false) => "ESMTP",
        (true, true, false) => "ESMTPS",
        (true, false, true) => "ESMTPA",
        (true, true, true) => "ESMTPSA",
    };
    // Writing to a Vec cannot fail.
    let _ = write!(
        out,
        "Received: from {} ([{client}])\r\n\tby {} (Tandem) with {protocol} id {};\r\n\t{}\r\n",
        Printable(t.helo),
        Printable(t.hostname),
        Printable(t.session),
        t.date,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_client_protocol_and_session() {
        let mut out = b"x".to_vec();
        let t = Trace {
            helo: "client\x01.example",
            client: "::ffff:203.0.113.7".parse().unwrap(),
            hostname: "mx.test",
            esmtp: true,
            tls: true,
            authenticated: true,
            session: "abcdefghijkl",
            date: "Mon, 30 Nov 2026 07:00:00 +0000",
        };
        write(&mut out, &t);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "xReceived: from client?.example ([203.0.113.7])\r\n\tby mx.test (Tandem) with ESMTPSA id abcdefghijkl;\r\n\tMon, 30 Nov 2026 07:00:00 +0000\r\n"
        );
        let mut out = Vec::new();
        let t = Trace {
            esmtp: false,
            client: "2001:db8::1".parse().unwrap(),
            ..t
        };
        write(&mut out, &t);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("([IPv6:2001:db8::1])") && text.contains("with SMTP id"),
            "{text}"
        );
    }
}
