//! Tandem's IMAP server driven by real clients: Python's imaplib for the
//! whole command set, two sessions on one mailbox, IDLE woken by an LMTP
//! delivery, curl's `imap://`, and mbsync syncing both ways.

use std::process::Command;
use std::time::Duration;

use tokio::time::Instant;

use tests::backend::Backend;
use tests::clients::{Raw, lmtp_send, python, require};

const USER: &str = "alice@example.com";
const PASS: &str = "alice-pw";

fn backend_with_mail() -> Backend {
    let b = Backend::start().expect("backend");
    b.add_account(USER, PASS).expect("account");
    for (i, subject) in ["first", "second", "third"].iter().enumerate() {
        let msg = format!(
            "From: Bob <bob@example.org>\r\nTo: {USER}\r\nSubject: {subject}\r\n\
             Date: Mon, 2{i} Nov 2026 10:00:00 +0000\r\nMessage-ID: <{subject}@example.org>\r\n\r\n\
             This is the {subject} message.\r\n"
        );
        assert_eq!(
            lmtp_send(b.lmtp_addr(), "bob@example.org", &[USER], msg.as_bytes()),
            ""
        );
    }
    b
}

#[test]
fn imaplib_exercises_the_command_set() {
    let b = backend_with_mail();
    let port = b.imap_addr().port().to_string();
    let script = r#"
import imaplib, sys, time
m = imaplib.IMAP4('127.0.0.1', int(sys.argv[1]))
print('greeting caps:', ' '.join(m.capabilities))
try:
    m.login('alice@example.com', 'wrong')
except imaplib.IMAP4.error as e:
    print('wrong:', e)
typ, data = m.login('alice@example.com', 'alice-pw')
print('login:', typ, data[0].decode())
print('caps:', m.capability()[1][0].decode())
print('namespace:', m.namespace()[1][0].decode())
typ, data = m.list()
print('list:', ' | '.join(sorted(d.decode() for d in data)))
print('create:', m.create('Work')[0], m.create('Work.Projects')[0], m.create('Work')[0])
print('rename:', m.rename('Work', 'Jobs')[0])
typ, data = m.list('""', 'Jobs*')
print('renamed:', ' | '.join(sorted(d.decode() for d in data)))
print('subscribe:', m.subscribe('Jobs')[0], ' | '.join(sorted(d.decode() for d in m.lsub('""', 'J*')[1])))
print('status:', m.status('INBOX', '(MESSAGES RECENT UIDNEXT UNSEEN)')[1][0].decode())
typ, data = m.select('INBOX')
print('select:', typ, data[0].decode(), m.untagged_responses.get('UIDVALIDITY'))
typ, data = m.fetch('1:*', '(UID FLAGS RFC822.SIZE)')
print('fetch flags:', [d.decode() for d in data])
typ, data = m.fetch('2', '(ENVELOPE)')
print('envelope:', data[0].decode())
typ, data = m.fetch('2', '(BODYSTRUCTURE)')
print('bodystructure:', data[0].decode())
typ, data = m.fetch('3', '(BODY.PEEK[HEADER.FIELDS (SUBJECT)])')
print('header fields:', repr(data[0][1].decode()))
typ, data = m.fetch('3', '(BODY[TEXT])')
print('text:', repr(data[0][1].decode()))
typ, data = m.fetch('3', '(FLAGS)')
print('seen after BODY[]:', data[0].decode())
typ, data = m.fetch('1', '(BODY.PEEK[]<0.10>)')
print('partial:', repr(data[0][1].decode()))
print('search unseen:', m.search(None, 'UNSEEN')[1][0].decode())
print('search subject:', m.search(None, 'SUBJECT', 'second')[1][0].decode())
print('search text:', m.search(None, 'TEXT', '"THIRD MESSAGE"')[1][0].decode())
print('uid search:', m.uid('SEARCH', None, 'ALL')[1][0].decode())
print('sort:', m.sort('(REVERSE SUBJECT)', 'UTF-8', 'ALL')[1][0].decode())
print('store:', [d.decode() for d in m.store('1', '+FLAGS', '(\\Flagged $Label1)')[1]])
print('search keyword:', m.search(None, 'KEYWORD', '$Label1')[1][0].decode())
msg = b'From: me@example.com\r\nSubject: appended\r\n\r\nappended body\r\n'
typ, data = m.append('INBOX', '(\\Seen)', imaplib.Time2Internaldate(time.time()), msg)
print('append:', typ, data[0].decode())
typ, data = m.noop()
print('noop exists:', m.untagged_responses.get('EXISTS'))
typ, data = m.copy('1:2', 'Jobs')
print('copy:', typ, data[0].decode())
m.untagged_responses.clear()
typ, data = m.uid('MOVE', '3', 'Jobs')
print('move:', typ, m.untagged_responses.get('OK'), m.untagged_responses.get('EXPUNGE'))
print('status jobs:', m.status('Jobs', '(MESSAGES)')[1][0].decode())
m.store('1', '+FLAGS', '\\Deleted')
typ, data = m.expunge()
print('expunge:', typ, data)
typ, data = m.search(None, 'ALL')
print('left:', data[0].decode())
m.untagged_responses.clear()
m._simple_command('UID', 'SEARCH', 'RETURN', '(MIN MAX COUNT ALL)', 'ALL')
print('esearch:', m.untagged_responses.get('ESEARCH'))
m.untagged_responses.clear()
typ, data = m._simple_command('LIST', '(SUBSCRIBED)', '""', '*', 'RETURN', '(STATUS (MESSAGES))')
print('list-status:', typ, ' | '.join(d.decode() for d in m.untagged_responses.get('LIST')))
print('statuses:', ' | '.join(d.decode() for d in m.untagged_responses.get('STATUS')))
print('select missing:', m.select('Nope')[0])
print('delete:', m.delete('Jobs.Projects')[0], m.delete('Jobs')[0])
print('quota:', m.getquotaroot('INBOX')[1])
m.logout()
"#;
    let out = python(script, &[&port]);
    let has = |s: &str| assert!(out.contains(s), "missing {s:?} in:\n{out}");
    has("greeting caps: IMAP4REV1");
    // Loopback is a trusted network: passwords may travel in the clear.
    has("AUTH=PLAIN AUTH=LOGIN");
    has("wrong: b'[AUTHENTICATIONFAILED] Authentication failed.'");
    has("login: OK [CAPABILITY IMAP4rev1");
    for cap in [
        "IDLE",
        "UIDPLUS",
        "MOVE",
        "NAMESPACE",
        "SPECIAL-USE",
        "SORT",
        "THREAD=REFERENCES",
    ] {
        assert!(
            out.lines()
                .any(|l| l.starts_with("caps:") && l.contains(cap)),
            "{cap} not advertised:\n{out}"
        );
    }
    has("namespace: ((\"\" \".\")) NIL NIL");
    has("(\\HasNoChildren \\Sent) \".\" Sent");
    has("(\\HasNoChildren) \".\" INBOX");
    has("create: OK OK NO");
    has("rename: OK");
    has("subscribe: OK (\\HasChildren) \".\" Jobs | (\\HasNoChildren \\Junk) \".\" Junk");
    has("(\\HasChildren) \".\" Jobs");
    has("(\\HasNoChildren) \".\" Jobs.Projects");
    has("status: INBOX (MESSAGES 3 RECENT 3 UIDNEXT 4 UNSEEN 3)");
    has("select: OK 3");
    has("fetch flags: ['1 (UID 1 FLAGS (\\\\Recent) RFC822.SIZE");
    has("\"Mon, 21 Nov 2026 10:00:00 +0000\" \"second\" ((\"Bob\" NIL \"bob\" \"example.org\"))");
    has("<second@example.org>");
    has(
        "bodystructure: 2 (BODYSTRUCTURE (\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 29 1 NIL NIL NIL NIL))",
    );
    has("header fields: 'Subject: third\\r\\n\\r\\n'");
    has("text: 'This is the third message.\\r\\n'");
    has("seen after BODY[]: 3 (FLAGS (\\Seen \\Recent))");
    has("partial: 'Return-Pat'");
    has("search unseen: 1 2");
    has("search subject: 2");
    has("search text: 3");
    has("uid search: 1 2 3");
    has("sort: 3 2 1");
    has("store: ['1 (FLAGS (\\\\Flagged \\\\Recent $Label1))']");
    has("search keyword: 1");
    has("append: OK [APPENDUID");
    has("noop exists: [b'3', b'4']");
    has("copy: OK [COPYUID");
    has("move: OK [b'[COPYUID");
    has("] Moved UIDs.'] [b'3']");
    has("status jobs: Jobs (MESSAGES 3)");
    has("expunge: OK [b'3', b'1']");
    has("left: 1 2");
    has("UID MIN 2 MAX 4 COUNT 2 ALL 2,4']");
    has("list-status: OK (\\Subscribed) \".\" INBOX | (\\Drafts \\Subscribed) \".\" Drafts");
    has("(\\Subscribed) \".\" Jobs");
    has("statuses: INBOX (MESSAGES 2) | Drafts (MESSAGES 0) | Jobs (MESSAGES 3)");
    has("select missing: NO");
    has("delete: OK OK");
    has("quota: [[b'INBOX \"\"'], [b'\"\" ()']]");

    let metrics = b.metrics();
    assert!(
        metrics.contains("tandem_imap_commands_total{command=\"FETCH\",result=\"ok\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("tandem_imap_command_seconds_count{command=\"SELECT\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("tandem_imap_logins_total{result=\"failed\"} 1"));
}

/// Two sessions on one mailbox see each other's changes; IDLE wakes on an
/// LMTP delivery within a second.
#[test]
fn sessions_see_each_other_and_idle_wakes_on_delivery() {
    let b = backend_with_mail();
    let port = b.imap_addr().port().to_string();
    let script = r#"
import imaplib, sys
a = imaplib.IMAP4('127.0.0.1', int(sys.argv[1]))
a.login('alice@example.com', 'alice-pw')
b = imaplib.IMAP4('127.0.0.1', int(sys.argv[1]))
b.login('alice@example.com', 'alice-pw')
a.select('INBOX')
b.select('INBOX')
b.untagged_responses.clear()
a.store('2', '+FLAGS', '\\Seen')
b.noop()
print('b sees flags:', b.untagged_responses.pop('FETCH', None))
a.store('1', '+FLAGS', '\\Deleted')
a.expunge()
b.noop()
print('b sees expunge:', b.untagged_responses.pop('EXPUNGE', None), b.untagged_responses.pop('EXISTS', None))
print('b fetch:', b.fetch('1:*', '(UID)')[1])
"#;
    let out = python(script, &[&port]);
    assert!(out.contains("b sees flags: [b'2 (FLAGS (\\\\Seen"), "{out}");
    assert!(out.contains("b sees expunge: [b'1'] [b'2']"), "{out}");
    assert!(
        out.contains("b fetch: [b'1 (UID 2)', b'2 (UID 3)']"),
        "{out}"
    );

    // IDLE over a raw socket: the EXISTS must arrive within a second of
    // the delivery.
    let mut c = Raw::connect(b.imap_addr());
    c.until("* OK");
    c.send(&format!(
        "a LOGIN {USER} {PASS}\r\nb SELECT INBOX\r\nc IDLE\r\n"
    ));
    c.until("b OK");
    c.until("+ ");
    let sent = Instant::now();
    assert_eq!(
        lmtp_send(
            b.lmtp_addr(),
            "bob@example.org",
            &[USER],
            b"Subject: wake\r\n\r\nup\r\n"
        ),
        ""
    );
    let exists = c.until("* 3 EXISTS");
    let waited = sent.elapsed();
    assert!(exists.starts_with("* 3 EXISTS"), "{exists}");
    assert!(
        waited < Duration::from_secs(1),
        "IDLE woke after {waited:?}"
    );
    c.send("DONE\r\nd LOGOUT\r\n");
    assert!(c.until("c ").starts_with("c OK"));
}

/// Bad input gets BAD (or NO [TOOBIG]) and the session goes on.
#[test]
fn bad_commands_get_bad_and_the_session_goes_on() {
    let b = backend_with_mail();
    let mut c = Raw::connect(b.imap_addr());
    c.line();
    let deep = format!("{}ALL{}", "(".repeat(200), ")".repeat(200));
    c.send(&format!(
        "a LOGIN {USER} {PASS}\r\nb SELECT INBOX\r\nc FETCH 1:* (BODY[1.2.3.4.5.6.7.8.9])\r\n\
         d FETCH 99 FLAGS\r\ne FROB\r\nf SEARCH ((((ALL))))\r\nF SEARCH {deep}\r\n\
         g APPEND INBOX {{999999999999}}\r\nh UID FETCH 1:* (FLAGS)\r\ni LOGOUT\r\n"
    ));
    let tagged = c.tagged_until_eof();
    // Nesting past imap-codec's limit is a syntax error, not a stack overflow.
    let starts = [
        "a OK",
        "b OK",
        "c OK",
        "d BAD",
        "e BAD",
        "f OK",
        "F BAD",
        "g NO [TOOBIG]",
        "h OK",
        "i OK",
    ];
    assert_eq!(tagged.len(), starts.len(), "{tagged:#?}");
    for (t, want) in tagged.iter().zip(starts) {
        assert!(t.starts_with(want), "{t} is not {want}: {tagged:#?}");
    }
}

#[test]
fn curl_lists_and_fetches_over_imap() {
    let b = backend_with_mail();
    let curl = require("curl", "curl");
    let url = format!("imap://127.0.0.1:{}", b.imap_addr().port());
    let run = |path: &str| {
        let out = Command::new(&curl)
            .args(["-sS", "--max-time", "10", "-u", &format!("{USER}:{PASS}")])
            .arg(format!("{url}{path}"))
            .output()
            .expect("curl");
        assert!(
            out.status.success(),
            "curl {path}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let list = run("/");
    assert!(list.contains("INBOX") && list.contains("Sent"), "{list}");
    let msg = run("/INBOX;UID=2");
    assert!(
        msg.contains("Subject: second") && msg.contains("This is the second message."),
        "{msg}"
    );
    let search = run("/INBOX?SUBJECT%20third");
    assert!(search.contains("SEARCH 3"), "{search}");
}

#[test]
fn mbsync_syncs_both_ways_and_then_has_nothing_to_do() {
    let b = backend_with_mail();
    let mbsync = require("mbsync", "isync");
    let dir = tempfile::tempdir().expect("tempdir");
    let local = dir.path().join("mail");
    std::fs::create_dir(&local).expect("mkdir");
    let rc = dir.path().join("mbsyncrc");
    std::fs::write(
        &rc,
        format!(
            "IMAPAccount tandem\nHost 127.0.0.1\nPort {port}\nUser {USER}\nPass {PASS}\nSSLType None\nAuthMechs LOGIN\n\n\
             IMAPStore remote\nAccount tandem\n\n\
             MaildirStore local\nPath {local}/\nInbox {local}/INBOX\nSubFolders Verbatim\n\n\
             Channel sync\nFar :remote:\nNear :local:\nPatterns *\nCreate Both\nExpunge Both\nSyncState *\n",
            port = b.imap_addr().port(),
            local = local.display()
        ),
    )
    .expect("rc");
    let sync = || {
        let out = Command::new(&mbsync)
            .args(["-c"])
            .arg(&rc)
            .args(["-V", "-a"])
            .output()
            .expect("mbsync");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "mbsync failed:\n{text}");
        text
    };
    sync();
    let inbox_new = std::fs::read_dir(local.join("INBOX/new"))
        .map(|d| d.count())
        .unwrap_or(0);
    let inbox_cur = std::fs::read_dir(local.join("INBOX/cur"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(inbox_new + inbox_cur, 3, "three messages pulled");
    assert!(local.join("Sent").is_dir(), "folders created locally");

    // A message written locally goes up.
    let up = local.join("INBOX/new/1700000000.local.host");
    std::fs::write(&up, "From: me@example.com\nSubject: from mbsync\n\nup\n").expect("write");
    sync();
    let port = b.imap_addr().port().to_string();
    let out = python(
        r#"
import imaplib, sys
m = imaplib.IMAP4('127.0.0.1', int(sys.argv[1]))
m.login('alice@example.com', 'alice-pw')
m.select('INBOX')
print(m.search(None, 'SUBJECT', '"from mbsync"')[1][0].decode())
"#,
        &[&port],
    );
    assert_eq!(out.trim(), "4", "the local message reached the server");

    // Nothing changed on either side: nothing to do. The local Maildir
    // (file names carry the flags) and the server's INBOX stay exactly as
    // they were.
    let status = || {
        python(
            r#"
import imaplib, sys
m = imaplib.IMAP4('127.0.0.1', int(sys.argv[1]))
m.login('alice@example.com', 'alice-pw')
print(m.status('INBOX', '(MESSAGES UIDNEXT UNSEEN)')[1][0].decode())
"#,
            &[&port],
        )
    };
    let before = (local_files(&local), status());
    let third = sync();
    assert!(third.contains("far side: 4 messages"), "{third}");
    assert_eq!((local_files(&local), status()), before, "{third}");
}

/// Every file under `dir` except mbsync's own state, sorted.
fn local_files(dir: &std::path::Path) -> Vec<String> {
    let mut out = vec![];
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if !p.to_string_lossy().contains(".mbsync") {
                out.push(p.strip_prefix(dir).expect("under").display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// STARTTLS on the backend's IMAP port; the capabilities change with it,
/// and a backend node's SIGTERM tells a selected session `* BYE`.
#[test]
fn starttls_then_login_and_bye_on_sigterm() {
    let (_certs, cert, key) = tests::clients::self_signed_cert();
    let mut b = Backend::start_with(&format!(
        "  tls:\n    cert: {}\n    key: {}\n",
        cert.display(),
        key.display()
    ))
    .expect("start with TLS");
    b.add_account(USER, PASS).expect("account");
    let out = python(
        "import imaplib, ssl, sys\n\
         m = imaplib.IMAP4('127.0.0.1', int(sys.argv[1]))\n\
         print('STARTTLS' in m.capabilities)\n\
         ctx = ssl.create_default_context()\nctx.check_hostname = False\nctx.verify_mode = ssl.CERT_NONE\n\
         print(m.starttls(ctx)[0])\n\
         print('STARTTLS' in m.capability()[1][0].decode())\n\
         print(m.login(sys.argv[2], sys.argv[3])[0])\n\
         m.logout()\n",
        &[&b.imap_addr().port().to_string(), USER, PASS],
    );
    assert_eq!(out, "True\nOK\nFalse\nOK\n");

    let mut c = Raw::connect(b.imap_addr());
    c.send(&format!("a LOGIN {USER} {PASS}\r\nb SELECT INBOX\r\n"));
    let line = c.until("b ");
    assert!(line.starts_with("b OK"), "{line}");
    b.stop();
    assert_eq!(c.line(), "* BYE Server shutting down.\r\n");
}

/// A session whose selected mailbox another session deletes is told so and
/// disconnected, as Dovecot does, instead of answering from a dead view.
#[test]
fn deleting_a_selected_mailbox_disconnects_its_sessions() {
    let b = backend_with_mail();
    let port = b.imap_addr().port().to_string();
    let out = python(
        r#"
import imaplib, sys
a = imaplib.IMAP4('127.0.0.1', int(sys.argv[1]))
a.login('alice@example.com', 'alice-pw')
a.create('Work')
a.select('Work')
b = imaplib.IMAP4('127.0.0.1', int(sys.argv[1]))
b.login('alice@example.com', 'alice-pw')
print('delete:', b.delete('Work')[0])
try:
    a.noop()
    print('noop:', a.untagged_responses.get('BYE'))
except imaplib.IMAP4.abort as e:
    print('abort:', e)
print('b still fine:', b.select('INBOX')[0])
"#,
        &[&port],
    );
    assert!(out.contains("delete: OK"), "{out}");
    assert!(out.contains("Selected mailbox was deleted"), "{out}");
    assert!(out.contains("b still fine: OK"), "{out}");
}
