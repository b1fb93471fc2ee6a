//! Delivery status notifications (RFC 3464): a `multipart/report;
//! report-type=delivery-status` (RFC 6522) from `MAILER-DAEMON@<hostname>`
//! with a human-readable part, one per-recipient block per failed
//! recipient, and the original message's header as `text/rfc822-headers`.
//! Sent with the null sender, so a DSN never gets a DSN of its own.

use std::fmt::Write;

/// One recipient the DSN reports.
pub struct Failure<'a> {
    pub recipient: &'a str,
    /// The reply that settled it (`550 5.1.1 ...`) or why it was given up.
    pub diagnostic: &'a str,
    /// RFC 3463 status, `5.x.x` (or `4.4.7` for an expired lifetime).
    pub status: String,
}

/// What the DSN is about.
pub struct Report<'a> {
    pub hostname: &'a str,
    pub queue_id: &'a str,
    /// The original sender: the DSN's recipient.
    pub sender: &'a str,
    /// When the original message arrived (Unix seconds).
    pub arrived: i64,
    pub now: i64,
    pub failures: Vec<Failure<'a>>,
    /// The original message's header section (CRLF).
    pub headers: &'a [u8],
}

/// The DSN message, CRLF line ends, ready for the queue.
pub fn build(r: &Report<'_>) -> Vec<u8> {
    let boundary = format!("{}/{}", r.queue_id, r.hostname);
    let mut m = String::new();
    let date = shared::time::rfc5322(r.now);
    let _ = write!(
        m,
        "From: Mail Delivery System <MAILER-DAEMON@{host}>\r\n\
         To: <{to}>\r\n\
         Subject: Undelivered Mail Returned to Sender\r\n\
         Date: {date}\r\n\
         Message-ID: <{id}.dsn@{host}>\r\n\
         Auto-Submitted: auto-replied\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status;\r\n\
         \tboundary=\"{boundary}\"\r\n\
         \r\n\
         This is a MIME-encapsulated delivery status notification.\r\n\
         \r\n\
         --{boundary}\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         \r\n\
         This is the mail system at {host}.\r\n\
         \r\n\
         Your message could not be delivered to one or more recipients.\r\n\
         \r\n",
        host = r.hostname,
        to = r.sender,
        id = r.queue_id,
    );
    for f in &r.failures {
        let _ = write!(m, "<{}>: {}\r\n", f.recipient, f.diagnostic);
    }
    let _ = write!(
        m,
        "\r\n--{boundary}\r\n\
         Content-Type: message/delivery-status\r\n\
         \r\n\
         Reporting-MTA: dns; {host}\r\n\
         X-Tandem-Queue-ID: {id}\r\n\
         Arrival-Date: {arrived}\r\n",
        host = r.hostname,
        id = r.queue_id,
        arrived = shared::time::rfc5322(r.arrived),
    );
    for f in &r.failures {
        let _ = write!(
            m,
            "\r\nFinal-Recipient: {kind}; {rcpt}\r\n\
             Action: failed\r\n\
             Status: {status}\r\n\
             Diagnostic-Code: smtp; {diag}\r\n",
            // RFC 6533 §3: an internationalised address is of type utf-8.
            kind = if f.recipient.is_ascii() {
                "rfc822"
            } else {
                "utf-8"
            },
            rcpt = f.recipient,
            status = f.status,
            diag = one_line(f.diagnostic),
        );
    }
    let _ = write!(
        m,
        "\r\n--{boundary}\r\n\
         Content-Type: text/rfc822-headers\r\n\
         \r\n"
    );
    let mut out = m.into_bytes();
    out.extend_from_slice(r.headers);
    if !r.headers.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    out
}

/// A diagnostic as one header line: no CR/LF, bounded.
fn one_line(s: &str) -> String {
    let s: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(900)
        .collect();
    s
}

/// The RFC 3463 status a failure reports: the reply's own, or `5.0.0`.
pub fn status_of(diagnostic: &str) -> String {
    let enhanced = |w: &&str| {
        w.split('.').count() == 3
            && w.split('.')
                .all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
    };
    match diagnostic.split(' ').take(2).find(enhanced) {
        Some(w) => w.to_owned(),
        None if diagnostic.starts_with('4') => "4.0.0".to_owned(),
        None => "5.0.0".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_has_the_rfc3464_parts() {
        let dsn = build(&Report {
            hostname: "mx.test",
            queue_id: "ABC",
            sender: "a@x.test",
            arrived: 0,
            now: 60,
            failures: vec![Failure {
                recipient: "b@example.com",
                diagnostic: "550 5.1.1 <b@example.com> no\r\nsuch user",
                status: status_of("550 5.1.1 <b@example.com> no"),
            }],
            headers: b"Subject: hi\r\nFrom: a@x.test\r\n",
        });
        let text = String::from_utf8(dsn).unwrap();
        for want in [
            "From: Mail Delivery System <MAILER-DAEMON@mx.test>\r\n",
            "Content-Type: multipart/report; report-type=delivery-status;",
            "Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.test\r\n",
            "Final-Recipient: rfc822; b@example.com\r\nAction: failed\r\nStatus: 5.1.1\r\n",
            "Diagnostic-Code: smtp; 550 5.1.1 <b@example.com> no  such user\r\n",
            "Content-Type: text/rfc822-headers\r\n\r\nSubject: hi\r\n",
            "\r\n--ABC/mx.test--\r\n",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        assert!(!text.contains("\n\n"), "bare LF in\n{text}");
    }

    #[test]
    fn internationalised_recipients_are_utf8_addresses() {
        let dsn = build(&Report {
            hostname: "mx.test",
            queue_id: "ABC",
            sender: "a@x.test",
            arrived: 0,
            now: 0,
            failures: vec![Failure {
                recipient: "jörg@example.com",
                diagnostic: "550 5.1.1 no",
                status: "5.1.1".into(),
            }],
            headers: b"Subject: hi\r\n",
        });
        let text = String::from_utf8(dsn).unwrap();
        assert!(
            text.contains("Final-Recipient: utf-8; jörg@example.com\r\n"),
            "{text}"
        );
    }

    #[test]
    fn statuses() {
        assert_eq!(status_of("550 5.2.2 over quota"), "5.2.2");
        assert_eq!(status_of("554 failed"), "5.0.0");
        assert_eq!(status_of("451 try later"), "4.0.0");
        assert_eq!(status_of("4.4.7 Delivery time expired"), "4.4.7");
    }
}
