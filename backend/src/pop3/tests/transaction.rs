//! TRANSACTION and how sessions end: what reaches the client, what
//! changes in the Maildir.

use super::*;

#[tokio::test]
async fn a_pipelined_session_reads_lists_and_deletes_at_quit() {
    let f = with_three().await;
    let input = [
        "USER alice@example.com",
        "PASS secret",
        "STAT",
        "LIST",
        "LIST 2",
        "UIDL",
        "RETR 1",
        "TOP 3 1",
        "TOP 3 0",
        "DELE 2",
        "DELE 2",
        "LIST 2",
        "RETR 2",
        "LIST 4",
        "LIST 0",
        "RSET",
        "DELE 1",
        "STAT",
        "NOOP",
        "USER x",
        "CAPA",
        "QUIT",
        "",
    ]
    .join("\r\n");
    let r = f.talk(TRUSTED, &input).await;
    let validity = {
        let uidl = r.iter().find(|l| l.starts_with("1 0000")).unwrap();
        uidl[10..].to_owned()
    };
    let want = vec![
        "+OK".to_owned(),
        "+OK Logged in.".into(),
        // Sizes with CRLF: one more byte a line than on disk.
        "+OK 3 88".into(),
        "+OK 3 messages:".into(),
        "1 37".into(),
        "2 24".into(),
        "3 27".into(),
        ".".into(),
        "+OK 2 24".into(),
        "+OK".into(),
        format!("1 00000001{validity}"),
        format!("2 00000002{validity}"),
        format!("3 00000003{validity}"),
        ".".into(),
        "+OK 37 octets".into(),
        "Subject: one".into(),
        "".into(),
        "first".into(),
        "..leading dot".into(),
        ".".into(),
        "+OK".into(),
        "Subject: three".into(),
        "".into(),
        "1".into(),
        ".".into(),
        "+OK".into(),
        "Subject: three".into(),
        "".into(),
        ".".into(),
        "+OK Marked to be deleted.".into(),
        "-ERR Message is deleted.".into(),
        "-ERR Message is deleted.".into(),
        "-ERR Message is deleted.".into(),
        "-ERR There's no message 4.".into(),
        "-ERR invalid message number".into(),
        "+OK 3 messages (88 octets).".into(),
        "+OK Marked to be deleted.".into(),
        "+OK 2 51".into(),
        "+OK".into(),
        "-ERR Already logged in.".into(),
        "+OK Capability list follows".into(),
        "TOP".into(),
        "UIDL".into(),
        "RESP-CODES".into(),
        "AUTH-RESP-CODE".into(),
        "PIPELINING".into(),
        "IMPLEMENTATION Tandem".into(),
        ".".into(),
        "+OK Logging out, messages deleted.".into(),
    ];
    assert_eq!(r, want);
    // Message 1 is gone; 2 and 3 left new/ for cur/, unseen (only TOP'd).
    assert_eq!(
        f.inbox(ALICE),
        [
            ("Subject: three".to_owned(), "cur", "".to_owned()),
            ("Subject: two".to_owned(), "cur", "".to_owned()),
        ]
    );
    let usage = quota::usage(&f.maildir(ALICE), 0).unwrap();
    assert_eq!(usage.messages, 2);
    assert_eq!(f.metrics.deleted.get(), 1);
    assert_eq!(f.logins("ok"), 1);
}

#[tokio::test]
async fn without_quit_nothing_is_deleted_but_what_was_read_is_seen() {
    let f = with_three().await;
    let r = f
        .talk(
            TRUSTED,
            "USER alice@example.com\r\nPASS secret\r\nDELE 1\r\nRETR 2\r\nDELE 3\r\n",
        )
        .await;
    assert_eq!(r.len(), 3 + 5 + 1, "{r:?}");
    assert_eq!(
        f.inbox(ALICE),
        [
            ("Subject: one".to_owned(), "cur", "".to_owned()),
            ("Subject: three".to_owned(), "cur", "".to_owned()),
            ("Subject: two".to_owned(), "cur", "S".to_owned()),
        ],
        "nothing deleted, the message read is \\Seen"
    );
    assert_eq!(f.metrics.deleted.get(), 0);

    // UIDLs do not change from one session to the next.
    let again = f
        .talk(
            TRUSTED,
            "USER alice@example.com\r\nPASS secret\r\nUIDL\r\nQUIT\r\n",
        )
        .await;
    assert!(again[3].starts_with("1 00000001"), "{again:?}");
    assert!(again[5].starts_with("3 00000003"), "{again:?}");
}

#[tokio::test]
async fn idle_sessions_are_closed_without_update() {
    let f = fixture(Pop3Config {
        idle_timeout: Duration::from_millis(300),
        ..quick()
    })
    .await;
    f.deliver(ALICE, ONE);
    let mut c = f.open(TRUSTED).await;
    c.login().await;
    assert_eq!(c.cmd("DELE 1").await, "+OK Marked to be deleted.");
    assert_eq!(c.rest().await, ["-ERR Disconnected for inactivity."]);
    assert_eq!(f.files(ALICE, "cur").len(), 1, "not deleted");
}

#[tokio::test]
async fn shutdown_says_so_and_deletes_nothing() {
    let f = fixture(quick()).await;
    f.deliver(ALICE, ONE);
    let mut c = f.open(TRUSTED).await;
    c.login().await;
    assert_eq!(c.cmd("DELE 1").await, "+OK Marked to be deleted.");
    c.shutdown.cancel();
    assert_eq!(c.rest().await, ["-ERR [SYS/TEMP] Server shutting down."]);
    assert_eq!(f.files(ALICE, "cur").len(), 1, "not deleted");
}

#[tokio::test]
async fn big_messages_stream_byte_exact_and_pipelined() {
    let f = fixture(quick()).await;
    // 1.5 MB with dots at line starts, CRLF and LF lines, no final newline.
    let mut body = String::from("Subject: big\n\n");
    let mut i = 0;
    while body.len() < 1_500_000 {
        body.push_str(match i % 4 {
            0 => ".dot line\n",
            1 => "crlf line\r\n",
            2 => "..\n",
            _ => "plain line with some more text in it\n",
        });
        i += 1;
    }
    body.push_str("end");
    f.deliver(ALICE, &body);
    let mut want = Vec::new();
    wire::put_message(body.as_bytes(), None, &mut want);
    let octets = body.len() + body.matches('\n').count() - body.matches("\r\n").count();

    let mut c = f.open(TRUSTED).await;
    c.login().await;
    // Three RETRs at once, answered in order through a 64 KiB pipe.
    c.send("RETR 1\r\nRETR 1\r\nRETR 1").await;
    for _ in 0..3 {
        assert_eq!(c.line().await, format!("+OK {octets} octets"));
        let mut got = Vec::new();
        loop {
            let n = got.len();
            c.rd.read_until(b'\n', &mut got).await.unwrap();
            if &got[n..] == b".\r\n" {
                break;
            }
        }
        assert!(got == want, "RETR is the message, CRLF and dot-stuffed");
    }
    assert_eq!(c.cmd("QUIT").await, "+OK Logging out.");
    let wire = (want.len() + format!("+OK {octets} octets\r\n").len()) as u64;
    assert_eq!(f.metrics.retrieved_bytes.get(), 3 * wire);
}

#[tokio::test]
async fn messages_renamed_or_expunged_elsewhere_during_the_session() {
    let f = with_three().await;
    let mut c = f.open(TRUSTED).await;
    c.login().await;
    // Another client flags message 1 (a rename) and expunges message 2.
    let one = f.file_of(ALICE, "Subject: one");
    let name = one.file_name().unwrap().to_str().unwrap();
    let flagged = f.maildir(ALICE).join("cur").join(format!("{name}:2,F"));
    std::fs::rename(&one, flagged).unwrap();
    std::fs::remove_file(f.file_of(ALICE, "Subject: two")).unwrap();
    assert_eq!(c.cmd("RETR 1").await, "+OK 37 octets");
    assert_eq!(c.multi().await[0], "Subject: one");
    assert_eq!(c.cmd("RETR 2").await, "-ERR Message 2 expunged.");
    assert_eq!(c.cmd("DELE 2").await, "+OK Marked to be deleted.");
    assert_eq!(c.cmd("QUIT").await, "+OK Logging out, messages deleted.");
    // 1 kept its flag and got \Seen; 3 moved to cur/.
    assert_eq!(
        f.inbox(ALICE),
        [
            ("Subject: one".to_owned(), "cur", "FS".to_owned()),
            ("Subject: three".to_owned(), "cur", "".to_owned()),
        ]
    );
}
