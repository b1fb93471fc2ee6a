//! A retried LMTP delivery is stored once: a real LMTP client (Python's
//! smtplib) repeats a transaction under the same `ENVID=` with
//! `X-TANDEM-RETRY`, as the frontend's queue does when it cannot know
//! whether its earlier attempt stored the copy; and the tag in the file
//! name is one Dovecot (Debian's `dovecot-imapd`) ignores and keeps.

use tests::backend::Backend;
use tests::clients::{dovecot_imap, python};

/// Sends one message to the recipients with the given MAIL parameters and
/// prints each recipient's reply after the dot.
const SEND: &str = r#"
import smtplib, sys
host, port, params = sys.argv[1], int(sys.argv[2]), sys.argv[3].split()
rcpts = sys.argv[4:]
c = smtplib.LMTP(host, port)
c.ehlo_or_helo_if_needed()
assert c.has_extn("x-tandem-dedup"), c.esmtp_features
code, _ = c.mail("s@example.org", params)
assert code == 250, code
for r in rcpts:
    assert c.rcpt(r)[0] == 250
c.putcmd("data")
assert c.getreply()[0] == 354
c.send(b"Subject: tagged\r\n\r\nonce\r\n.\r\n")
for r in rcpts:
    code, text = c.getreply()
    print(code, text.decode())
c.quit()
"#;

#[test]
fn a_retried_transaction_with_the_same_envid_is_stored_once_and_dovecot_keeps_the_tag() {
    let b = Backend::start().expect("start the backend");
    b.add_account("alice@example.com", "secret")
        .expect("account");
    b.add_account("bob@example.com", "secret").expect("account");
    let lmtp = b.lmtp_addr();
    let (host, port) = (lmtp.ip().to_string(), lmtp.port().to_string());
    let send = |params: &str| {
        python(
            SEND,
            &[&host, &port, params, "alice@example.com", "bob@example.com"],
        )
    };

    let first = send("ENVID=18F00000001");
    assert_eq!(first.matches("250 2.0.0").count(), 2, "{first}");
    let name = std::fs::read_dir(b.maildir("alice@example.com").join("new"))
        .expect("new/")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .next()
        .expect("alice's copy");
    assert!(name.contains(",E="), "the copy is tagged: {name}");

    // Dovecot reads the tagged copy, marks it seen (moving it to cur/).
    let seen = dovecot_imap(
        &b.maildir("alice@example.com"),
        "a SELECT INBOX\r\nb FETCH 1 (BODY[HEADER.FIELDS (SUBJECT)])\r\n",
    );
    assert!(
        seen.contains("* 1 EXISTS") && seen.contains("Subject: tagged"),
        "{seen}"
    );

    // The retry: both copies found (alice's in cur/, bob's in new/).
    let retry = send("ENVID=18F00000001 X-TANDEM-RETRY");
    assert_eq!(retry.matches("Already delivered").count(), 2, "{retry}");
    assert_eq!(b.inbox("alice@example.com").len(), 1);
    assert_eq!(b.inbox("bob@example.com").len(), 1);
    assert!(
        b.metrics()
            .contains("tandem_lmtp_deliveries_total{result=\"duplicate\"} 2"),
        "{}",
        b.metrics()
    );

    // Another message (another ENVID), or one without: stored.
    let other = send("ENVID=18F00000002 X-TANDEM-RETRY");
    assert_eq!(other.matches("Saved").count(), 2, "{other}");
    let plain = send("");
    assert_eq!(plain.matches("Saved").count(), 2, "{plain}");
    assert_eq!(b.inbox("alice@example.com").len(), 3);

    // Tandem's own IMAP (its UID list keyed by base names) serves the
    // tagged copies, the one Dovecot read as \Seen.
    let imap = b.imap_addr();
    let flags = python(IMAP, &[&imap.ip().to_string(), &imap.port().to_string()]);
    assert_eq!(flags.matches("FLAGS").count(), 3, "{flags}");
    assert_eq!(flags.matches("\\Seen").count(), 1, "{flags}");
}

const IMAP: &str = r#"
import imaplib, sys
m = imaplib.IMAP4(sys.argv[1], int(sys.argv[2]))
m.login("alice@example.com", "secret")
m.select("INBOX", readonly=True)
for line in m.uid("FETCH", "1:*", "(FLAGS)")[1]:
    print(line.decode())
m.logout()
"#;
