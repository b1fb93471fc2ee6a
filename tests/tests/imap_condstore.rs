//! CONDSTORE and QRESYNC (RFC 7162) over real IMAP traffic: modseqs that
//! rise with every flag change, CHANGEDSINCE and UNCHANGEDSINCE, VANISHED
//! after another session's expunge, and a HIGHESTMODSEQ that survives a
//! restart and a crash of the node.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use tests::backend::Backend;
use tests::clients::lmtp_send;

const USER: &str = "alice@example.com";
const PASS: &str = "alice-pw";

fn backend_with_mail(n: usize) -> Backend {
    let b = Backend::start().expect("backend");
    b.add_account(USER, PASS).expect("account");
    for i in 0..n {
        let msg = format!(
            "From: bob@example.org\r\nTo: {USER}\r\nSubject: m{i}\r\n\
             Message-ID: <m{i}@example.org>\r\n\r\nBody {i}.\r\n"
        );
        assert_eq!(
            lmtp_send(b.lmtp_addr(), "bob@example.org", &[USER], msg.as_bytes()),
            ""
        );
    }
    b
}

/// A raw IMAP client: one command at a time, every response line kept.
struct Client {
    r: BufReader<TcpStream>,
    w: TcpStream,
    n: u32,
}

impl Client {
    fn login(b: &Backend) -> Client {
        let s = TcpStream::connect(b.imap_addr()).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        let mut c = Client {
            r: BufReader::new(s.try_clone().expect("clone")),
            w: s,
            n: 0,
        };
        let mut greeting = String::new();
        c.r.read_line(&mut greeting).expect("greeting");
        assert!(greeting.starts_with("* OK"), "{greeting}");
        c.ok(&format!("LOGIN {USER} {PASS}"));
        c
    }

    /// Sends a command; returns the untagged lines and the tagged one.
    fn cmd(&mut self, command: &str) -> (Vec<String>, String) {
        self.n += 1;
        let tag = format!("c{}", self.n);
        write!(self.w, "{tag} {command}\r\n").expect("send");
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            assert!(
                self.r.read_line(&mut line).expect("read") > 0,
                "EOF after {command}"
            );
            let line = line.trim_end().to_owned();
            if let Some(rest) = line.strip_prefix(&format!("{tag} ")) {
                return (lines, rest.to_owned());
            }
            lines.push(line);
        }
    }

    /// Like `cmd`, asserting OK.
    fn ok(&mut self, command: &str) -> Vec<String> {
        let (lines, tagged) = self.cmd(command);
        assert!(tagged.starts_with("OK"), "{command}: {tagged}\n{lines:#?}");
        lines
    }
}

/// The number after `word` in `line`, skipping a `(`.
fn number_after(line: &str, word: &str) -> Option<u64> {
    let at = line.find(word)? + word.len();
    let digits: String = line[at..]
        .trim_start_matches([' ', '('])
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

fn highest(lines: &[String]) -> u64 {
    lines
        .iter()
        .find_map(|l| number_after(l, "[HIGHESTMODSEQ"))
        .unwrap_or_else(|| panic!("no HIGHESTMODSEQ in {lines:#?}"))
}

/// (UID, MODSEQ) of each FETCH line.
fn modseqs(lines: &[String]) -> Vec<(u64, u64)> {
    lines
        .iter()
        .filter(|l| l.contains(" FETCH "))
        .map(|l| {
            (
                number_after(l, "UID ").unwrap_or_else(|| panic!("no UID in {l}")),
                number_after(l, "MODSEQ ").unwrap_or_else(|| panic!("no MODSEQ in {l}")),
            )
        })
        .collect()
}

#[test]
fn flag_changes_raise_modseqs_and_conditional_commands_use_them() {
    let b = backend_with_mail(3);
    let mut a = Client::login(&b);
    let caps = a.ok("CAPABILITY").join("\n");
    assert!(
        caps.contains(" CONDSTORE") && caps.contains(" QRESYNC"),
        "{caps}"
    );
    // SELECT (CONDSTORE) enables it and tells HIGHESTMODSEQ.
    let h0 = highest(&a.ok("SELECT INBOX (CONDSTORE)"));
    let start = modseqs(&a.ok("FETCH 1:* (UID MODSEQ)"));
    assert_eq!(start.len(), 3);
    assert!(
        start.iter().all(|(_, m)| *m >= 1 && *m <= h0),
        "{start:?} {h0}"
    );

    // A flag change raises the message's MODSEQ and HIGHESTMODSEQ.
    let stored = a.ok("STORE 2 +FLAGS (\\Flagged)");
    let m2 = number_after(&stored.join("\n"), "MODSEQ ").expect("STORE tells MODSEQ");
    assert!(m2 > h0, "{stored:?}");
    let status = a.ok("STATUS INBOX (HIGHESTMODSEQ MESSAGES)").join("\n");
    assert_eq!(
        number_after(&status, "HIGHESTMODSEQ "),
        Some(m2),
        "{status}"
    );

    // CHANGEDSINCE: only the changed message, with its MODSEQ.
    let changed = a.ok(&format!("FETCH 1:* (UID FLAGS) (CHANGEDSINCE {h0})"));
    assert_eq!(modseqs(&changed), vec![(2, m2)], "{changed:?}");
    assert!(changed[0].contains("\\Flagged"), "{changed:?}");
    assert!(
        a.ok(&format!("FETCH 1:* (UID FLAGS) (CHANGEDSINCE {m2})"))
            .is_empty()
    );

    // SEARCH MODSEQ.
    let found = a.ok(&format!("SEARCH MODSEQ {}", h0 + 1)).join("\n");
    assert!(found.starts_with("* SEARCH 2"), "{found}");

    // UNCHANGEDSINCE: message 2 changed after h0 and is left alone.
    let (lines, tagged) = a.cmd(&format!(
        "STORE 1:3 (UNCHANGEDSINCE {h0}) +FLAGS.SILENT (\\Seen)"
    ));
    assert!(tagged.starts_with("OK [MODIFIED 2]"), "{tagged}");
    let after = modseqs(
        &lines
            .iter()
            .map(|l| l.replace("FETCH (", "FETCH (UID 0 "))
            .collect::<Vec<_>>(),
    );
    assert_eq!(after.len(), 2, ".SILENT still tells MODSEQ: {lines:?}");
    let m13 = after[0].1;
    assert!(m13 > m2 && after[1].1 == m13, "{lines:?}");
    let flags = a.ok("FETCH 2 (FLAGS)").join("\n");
    assert!(!flags.contains("\\Seen"), "{flags}");
    let (_, tagged) = a.cmd(&format!(
        "UID STORE 1:3 (UNCHANGEDSINCE {m13}) -FLAGS (\\Seen)"
    ));
    assert!(
        tagged.starts_with("OK STORE"),
        "all unchanged since: {tagged}"
    );

    // Another session's change reaches this one with its MODSEQ.
    let mut other = Client::login(&b);
    other.ok("SELECT INBOX");
    let theirs = other.ok("STORE 3 +FLAGS (\\Answered)");
    assert!(
        !theirs.join("").contains("MODSEQ"),
        "not enabled there: {theirs:?}"
    );
    let news = a.ok("NOOP");
    let told = modseqs(&news);
    assert_eq!(told.len(), 1, "{news:?}");
    assert_eq!(told[0].0, 3);
    assert!(told[0].1 > m13, "{news:?}");

    // VANISHED needs QRESYNC.
    let (_, tagged) = a.cmd(&format!(
        "UID FETCH 1:* (FLAGS) (CHANGEDSINCE {h0} VANISHED)"
    ));
    assert!(tagged.starts_with("BAD"), "{tagged}");
    a.ok("LOGOUT");
}

#[test]
fn qresync_tells_what_vanished_and_changed() {
    let b = backend_with_mail(5);
    let mut a = Client::login(&b);
    let enabled = a.ok("ENABLE QRESYNC").join("\n");
    assert!(enabled.contains("QRESYNC"), "{enabled}");
    let sel = a.ok("SELECT INBOX");
    let h = highest(&sel);
    let validity = sel
        .iter()
        .find_map(|l| number_after(l, "[UIDVALIDITY"))
        .expect("UIDVALIDITY");

    // Another session expunges 2 and 4 and flags 5.
    let mut other = Client::login(&b);
    other.ok("SELECT INBOX");
    other.ok("STORE 2,4 +FLAGS.SILENT (\\Deleted)");
    other.ok("EXPUNGE");
    other.ok("UID STORE 5 +FLAGS.SILENT (\\Flagged)");
    other.ok("LOGOUT");

    // The selected session hears VANISHED, not EXPUNGE.
    let news = a.ok("NOOP");
    assert!(news.iter().any(|l| l == "* VANISHED 2,4"), "{news:?}");
    assert!(!news.iter().any(|l| l.ends_with("EXPUNGE")), "{news:?}");

    // Reselecting with QRESYNC: CLOSED, then the expunges and the changes
    // since `h`, nothing about the untouched messages.
    let sel = a.ok(&format!("SELECT INBOX (QRESYNC ({validity} {h}))"));
    assert_eq!(sel[0], "* OK [CLOSED] Previous mailbox closed.", "{sel:?}");
    let vanished: Vec<&String> = sel.iter().filter(|l| l.contains("VANISHED")).collect();
    assert_eq!(vanished, vec!["* VANISHED (EARLIER) 2,4"], "{sel:?}");
    let changed = modseqs(&sel);
    assert_eq!(changed.len(), 1, "{sel:?}");
    assert_eq!(changed[0].0, 5);
    assert!(changed[0].1 > h);
    assert!(
        sel.iter()
            .any(|l| l.starts_with("* 3 FETCH (UID 5 FLAGS (\\Flagged")),
        "{sel:?}"
    );
    let now = highest(&sel);
    assert!(now >= changed[0].1);

    // Known UIDs narrow the answer.
    let sel = a.ok(&format!("EXAMINE INBOX (QRESYNC ({validity} {h} 1:3))"));
    assert!(sel.iter().any(|l| l == "* VANISHED (EARLIER) 2"), "{sel:?}");
    assert!(modseqs(&sel).is_empty(), "{sel:?}");

    // A stale UIDVALIDITY gets a plain SELECT.
    let sel = a.ok(&format!("SELECT INBOX (QRESYNC ({} {h}))", validity + 1));
    assert!(!sel.iter().any(|l| l.contains("VANISHED")), "{sel:?}");

    // UID FETCH (CHANGEDSINCE VANISHED).
    let fetched = a.ok(&format!(
        "UID FETCH 1:* (FLAGS) (CHANGEDSINCE {h} VANISHED)"
    ));
    assert_eq!(fetched[0], "* VANISHED (EARLIER) 2,4", "{fetched:?}");
    assert_eq!(modseqs(&fetched).len(), 1, "{fetched:?}");
    let fetched = a.ok(&format!(
        "UID FETCH 3:4 (FLAGS) (CHANGEDSINCE {h} VANISHED)"
    ));
    assert_eq!(fetched, vec!["* VANISHED (EARLIER) 4"]);
    a.ok("LOGOUT");
}

#[test]
fn highestmodseq_survives_restart_and_crash() {
    let mut b = backend_with_mail(3);
    let mut a = Client::login(&b);
    a.ok("ENABLE CONDSTORE QRESYNC");
    let sel = a.ok("SELECT INBOX");
    let validity = sel
        .iter()
        .find_map(|l| number_after(l, "[UIDVALIDITY"))
        .expect("UIDVALIDITY");
    let h0 = highest(&sel);
    a.ok("STORE 1 +FLAGS (\\Seen)");
    a.ok("STORE 3 +FLAGS (\\Deleted)");
    a.ok("EXPUNGE");
    let before = modseqs(&a.ok("FETCH 1:* (UID MODSEQ)"));
    let status = a.ok("STATUS INBOX (HIGHESTMODSEQ)").join("\n");
    let h1 = number_after(&status, "HIGHESTMODSEQ ").expect("HIGHESTMODSEQ");
    assert!(h1 > h0, "{status}");
    drop(a);

    for crash in [false, true] {
        if crash {
            b.kill();
        } else {
            b.stop();
        }
        b.restart().expect("restart");
        let mut a = Client::login(&b);
        a.ok("ENABLE QRESYNC");
        let sel = a.ok(&format!("SELECT INBOX (QRESYNC ({validity} {h0}))"));
        assert_eq!(highest(&sel), h1, "crash {crash}: {sel:?}");
        assert!(sel.iter().any(|l| l == "* VANISHED (EARLIER) 3"), "{sel:?}");
        assert_eq!(modseqs(&a.ok("FETCH 1:* (UID MODSEQ)")), before);
        drop(a);
    }

    // And it goes on rising from there.
    let mut a = Client::login(&b);
    a.ok("ENABLE CONDSTORE");
    a.ok("SELECT INBOX");
    let stored = a.ok("STORE 2 +FLAGS (\\Flagged)").join("\n");
    assert!(
        number_after(&stored, "MODSEQ ").expect("MODSEQ") > h1,
        "{stored}"
    );
    a.ok("LOGOUT");
}
