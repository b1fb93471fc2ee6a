//! Tandem's Maildir is Dovecot's Maildir: mail delivered and changed through
//! Tandem is what Dovecot (Debian's `dovecot-imapd`) shows on the same
//! directory, and changes Dovecot makes are what Tandem serves next.

use tests::backend::Backend;
use tests::clients::{dovecot_imap, lmtp_send, python};

const POP3: &str = r#"
import poplib, sys, json
host, port, user, pw, action = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
p = poplib.POP3(host, port)
p.user(user)
p.pass_(pw)
uidls = [l.decode() for l in p.uidl()[1]]
if action == "retr1-dele2":
    p.retr(1)
    p.dele(2)
print(json.dumps(uidls))
p.quit()
"#;

fn message(subject: &str, body: &str) -> Vec<u8> {
    format!(
        "From: bob@example.org\r\nTo: alice@example.com\r\nSubject: {subject}\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}"
    )
    .into_bytes()
}

#[test]
fn dovecot_reads_what_tandem_wrote_and_tandem_reads_what_dovecot_changed() {
    let b = Backend::start().expect("start the backend");
    b.add_account("alice@example.com", "secret")
        .expect("account");
    let lmtp = b.lmtp_addr();
    for (subject, body) in [
        ("one", "first\r\n"),
        ("two", "second\r\n.leading dot\r\n"),
        ("three", "dritte Nachricht: Grüße\r\n"),
    ] {
        let refused = lmtp_send(
            lmtp,
            "bob@example.org",
            &["alice@example.com"],
            &message(subject, body),
        );
        assert_eq!(refused, "", "delivery of {subject} refused");
    }

    // POP3: read the first message, delete the second.
    let pop = b.pop3_addr();
    let (host, port) = (pop.ip().to_string(), pop.port().to_string());
    let before = python(
        POP3,
        &[&host, &port, "alice@example.com", "secret", "retr1-dele2"],
    );

    let maildir = b.maildir("alice@example.com");
    let seen = dovecot_imap(
        &maildir,
        "a LIST \"\" \"*\"\r\nb SELECT INBOX\r\n\
         c FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])\r\n\
         d FETCH 2 BODY.PEEK[TEXT]\r\n",
    );
    for folder in ["INBOX", "Drafts", "Sent", "Trash", "Junk"] {
        assert!(
            seen.contains(&format!("\"{folder}\"")) || seen.contains(&format!(" {folder}\r\n")),
            "Dovecot does not list {folder}:\n{seen}"
        );
    }
    assert!(
        seen.contains("* 2 EXISTS"),
        "the deleted message is gone:\n{seen}"
    );
    let fetch: Vec<&str> = seen
        .lines()
        .filter(|l| l.starts_with("* ") && l.contains("FETCH (FLAGS"))
        .collect();
    assert_eq!(fetch.len(), 2, "{seen}");
    assert!(
        fetch[0].contains("\\Seen"),
        "the message read over POP3 is \\Seen for Dovecot: {}",
        fetch[0]
    );
    assert!(
        !fetch[1].contains("\\Seen"),
        "the unread one is not: {}",
        fetch[1]
    );
    assert!(
        seen.contains("Subject: one") && seen.contains("Subject: three"),
        "{seen}"
    );
    assert!(!seen.contains("Subject: two"), "{seen}");
    assert!(
        seen.contains("dritte Nachricht: Grüße"),
        "8-bit text kept byte for byte:\n{seen}"
    );

    // Dovecot flags and expunges; Tandem's POP3 sees the result and keeps
    // the UIDL of the message that stayed.
    dovecot_imap(
        &maildir,
        "a SELECT INBOX\r\nb STORE 1 +FLAGS (\\Deleted)\r\nc STORE 2 +FLAGS (\\Flagged)\r\nd EXPUNGE\r\n",
    );
    let after = python(POP3, &[&host, &port, "alice@example.com", "secret", "list"]);
    let before: Vec<String> = serde_json::from_str(&before).expect("uidl json");
    let after: Vec<String> = serde_json::from_str(&after).expect("uidl json");
    assert_eq!(before.len(), 3);
    assert_eq!(after.len(), 1, "one message left: {after:?}");
    let uidl = |s: &str| {
        s.split_once(' ')
            .map(|(_, u)| u.to_owned())
            .unwrap_or_default()
    };
    assert_eq!(
        uidl(&after[0]),
        uidl(&before[2]),
        "the third message keeps its UIDL"
    );
}
