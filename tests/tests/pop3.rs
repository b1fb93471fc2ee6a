//! The POP3 server driven by real clients: Python's poplib and curl.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::Command;

use tests::backend::Backend;
use tests::clients::{lmtp_send, python, require};

const USER: &str = "alice@example.com";

fn backend_with_mail(messages: &[&str]) -> Backend {
    let b = Backend::start().expect("start the backend");
    b.add_account(USER, "secret").expect("account");
    for m in messages {
        assert_eq!(
            lmtp_send(b.lmtp_addr(), "bob@example.org", &[USER], m.as_bytes()),
            ""
        );
    }
    b
}

/// Runs poplib with `actions` (Python statements on `p`), printing JSON;
/// `args` follow the port in `sys.argv`.
fn poplib(b: &Backend, actions: &str, args: &[&str]) -> String {
    let script = format!(
        "import poplib, sys, json\np = poplib.POP3('127.0.0.1', int(sys.argv[1]))\n\
         p.user('{USER}')\np.pass_('secret')\n{actions}\n"
    );
    let port = b.pop3_addr().port().to_string();
    let mut all = vec![port.as_str()];
    all.extend_from_slice(args);
    python(&script, &all)
}

#[test]
fn poplib_reads_lists_and_deletes_only_at_quit() {
    let b = backend_with_mail(&[
        "Subject: one\r\n\r\nfirst\r\n.leading dot\r\n..two dots\r\n.\r\nlast",
        "Subject: two\r\n\r\nsecond\r\n",
        "Subject: three\r\n\r\nthird\r\nline 2\r\nline 3\r\n",
    ]);
    // Message one as LMTP stored it (LF line ends, trace headers on top):
    // what RETR must give back, byte for byte once poplib has undone the
    // CRLF and the dot-stuffing.
    let new = b.maildir(USER).join("new");
    let first = std::fs::read_dir(&new)
        .expect("new/")
        .map(|e| e.expect("entry").path())
        .find(|p| {
            String::from_utf8_lossy(&std::fs::read(p).expect("read")).contains("Subject: one")
        })
        .expect("message one");
    let out = poplib(
        &b,
        "count, octets = p.stat()\n\
         lines = p.retr(1)[1]\n\
         want = open(sys.argv[2], 'rb').read()\n\
         exact = b'\\n'.join(lines) + b'\\n' == want\n\
         top = [l.decode() for l in p.top(3, 1)[1]]\n\
         uidls = [l.decode() for l in p.uidl()[1]]\n\
         sizes = [l.decode() for l in p.list()[1]]\n\
         one = int(p.list(1).split()[2])\n\
         p.dele(2)\n\
         after_dele = p.stat()[0]\n\
         p.rset()\n\
         after_rset = p.stat()[0]\n\
         p.retr(1)\n\
         p.dele(2)\n\
         bye = p.quit().decode()\n\
         print(json.dumps([count, octets, exact, top, uidls, sizes, after_dele, after_rset, one, len(want) + want.count(b'\\n'), bye]))",
        &[&first.display().to_string()],
    );
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v[0], 3);
    assert_eq!(
        v[2], true,
        "RETR gives the stored message back, dots and all: {out}"
    );
    let top: Vec<&str> = v[3]
        .as_array()
        .expect("top")
        .iter()
        .filter_map(|l| l.as_str())
        .collect();
    assert_eq!(
        &top[top.len() - 2..],
        ["", "third"],
        "TOP 3 1 ends with the first body line: {top:?}"
    );
    assert_eq!(v[6], 2, "DELE hides the message within the session");
    assert_eq!(v[7], 3, "RSET brings it back");
    assert_eq!(v[8], v[9], "LIST counts CRLF line ends");
    assert_eq!(v[10], "+OK Logging out, messages deleted.");
    // The sizes LIST reports add up to STAT's.
    let sizes: Vec<u64> = v[5]
        .as_array()
        .expect("list")
        .iter()
        .map(|l| {
            l.as_str()
                .and_then(|l| l.split(' ').nth(1))
                .and_then(|s| s.parse().ok())
                .expect("size")
        })
        .collect();
    assert_eq!(sizes.iter().sum::<u64>(), v[1].as_u64().expect("octets"));

    // Deleted at QUIT; the others keep their UIDLs in a new session.
    let again = poplib(
        &b,
        "print(json.dumps([l.decode() for l in p.uidl()[1]]))\np.quit()",
        &[],
    );
    let again: Vec<String> = serde_json::from_str(&again).expect("json");
    let before: Vec<String> = serde_json::from_value(v[4].clone()).expect("uidls");
    let uid = |s: &String| s.split(' ').nth(1).unwrap_or_default().to_owned();
    assert_eq!(
        again.iter().map(uid).collect::<Vec<_>>(),
        [uid(&before[0]), uid(&before[2])]
    );
    // Dovecot's form: 8 hex digits of UID, 8 of UIDVALIDITY.
    assert!(
        before.iter().all(|l| {
            let u = uid(l);
            u.len() == 16
                && u.bytes()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        }),
        "{before:?}"
    );
    // RETR (again after RSET, which forgets it as Dovecot does) marked
    // message 1 \Seen, not message 3 that was only TOP'd; everything left
    // new/.
    let cur: Vec<String> = std::fs::read_dir(b.maildir(USER).join("cur"))
        .expect("cur/")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(cur.len(), 2, "{cur:?}");
    assert_eq!(
        cur.iter().filter(|n| n.ends_with(":2,S")).count(),
        1,
        "{cur:?}"
    );
    assert_eq!(std::fs::read_dir(&new).expect("new/").count(), 0);
    let m = b.metrics();
    assert!(m.contains("tandem_pop3_deleted_total 1"), "{m}");
}

#[test]
fn a_dropped_connection_deletes_nothing_and_uidls_survive_a_restart() {
    let mut b = backend_with_mail(&["Subject: a\r\n\r\na\r\n", "Subject: b\r\n\r\nb\r\n"]);
    // DELE, then drop the connection without QUIT.
    poplib(&b, "p.dele(1)\np.dele(2)\np.sock.close()", &[]);
    let uidls = poplib(
        &b,
        "print(json.dumps([l.decode() for l in p.uidl()[1]]))\np.quit()",
        &[],
    );
    let uidls: Vec<String> = serde_json::from_str(&uidls).expect("json");
    assert_eq!(uidls.len(), 2, "nothing deleted without QUIT");
    b.stop();
    b.restart().expect("restart");
    let after = poplib(
        &b,
        "print(json.dumps([l.decode() for l in p.uidl()[1]]))\np.quit()",
        &[],
    );
    let after: Vec<String> = serde_json::from_str(&after).expect("json");
    assert_eq!(after, uidls, "UIDLs are stable across a restart");
}

#[test]
fn second_session_is_in_use_and_bad_logins_fail_after_the_delay() {
    let b = backend_with_mail(&["Subject: x\r\n\r\nx\r\n"]);
    let port = b.pop3_addr().port().to_string();
    let script = "import poplib, sys\n\
         a = poplib.POP3('127.0.0.1', int(sys.argv[1]))\na.user(sys.argv[2])\na.pass_('secret')\n\
         b = poplib.POP3('127.0.0.1', int(sys.argv[1]))\nb.user(sys.argv[2])\n\
         try:\n    b.pass_('secret')\n    print('second login accepted')\n\
         except poplib.error_proto as e:\n    print(e.args[0].decode())\n\
         import time\n\
         c = poplib.POP3('127.0.0.1', int(sys.argv[1]))\nc.user(sys.argv[2])\n\
         t = time.monotonic()\n\
         try:\n    c.pass_('wrong')\n    print('wrong password accepted')\n\
         except poplib.error_proto as e:\n    print(e.args[0].decode(), round((time.monotonic() - t) * 1000))\n\
         print(c.capa())\n\
         a.quit()\n";
    let out = python(script, &[&port, USER]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("-ERR [IN-USE]"), "{out}");
    assert!(
        lines[1].starts_with("-ERR [AUTH] Authentication failed."),
        "{out}"
    );
    let waited: u64 = lines[1]
        .rsplit(' ')
        .next()
        .and_then(|ms| ms.parse().ok())
        .expect("milliseconds");
    assert!(
        waited >= 100,
        "the answer waits auth_failure_delay (100ms in tests): {waited}ms"
    );
    for cap in [
        "'TOP'",
        "'UIDL'",
        "'RESP-CODES'",
        "'AUTH-RESP-CODE'",
        "'PIPELINING'",
        "'USER'",
        "'SASL': ['PLAIN']",
    ] {
        assert!(lines[2].contains(cap), "CAPA lacks {cap}: {}", lines[2]);
    }
    let m = b.metrics();
    for want in [
        "tandem_pop3_logins_total{result=\"ok\"} 1",
        "tandem_pop3_logins_total{result=\"in_use\"} 1",
        "tandem_pop3_logins_total{result=\"failed\"} 1",
        "tandem_pop3_sessions_total 3",
    ] {
        assert!(m.contains(want), "missing {want} in\n{m}");
    }
}

#[test]
fn auth_plain_and_the_proxy_login() {
    let b = backend_with_mail(&["Subject: x\r\n\r\nx\r\n"]);
    let port = b.pop3_addr().port().to_string();
    let script = "import poplib, sys, base64\n\
         def auth(authz, authc, pw):\n\
         \x20   p = poplib.POP3('127.0.0.1', int(sys.argv[1]))\n\
         \x20   tok = base64.b64encode(b'\\0'.join([authz.encode(), authc.encode(), pw.encode()])).decode()\n\
         \x20   try:\n\
         \x20       r = p._shortcmd('AUTH PLAIN ' + tok).decode()\n\
         \x20       n = p.stat()[0]\n\
         \x20       p.quit()\n\
         \x20       return r.split(' ')[0] + ' ' + str(n)\n\
         \x20   except poplib.error_proto as e:\n\
         \x20       return e.args[0].decode()\n\
         print(auth('', sys.argv[2], 'secret'))\n\
         print(auth(sys.argv[2], 'tandem-proxy', 'proxy-secret-for-tests-only'))\n\
         print(auth(sys.argv[2], 'tandem-proxy', 'wrong'))\n\
         print(auth('bob@example.com', sys.argv[2], 'secret'))\n";
    let out = python(script, &[&port, USER]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "+OK 1", "{out}");
    assert_eq!(
        lines[1], "+OK 1",
        "the frontend's proxy login works from loopback: {out}"
    );
    assert!(lines[2].starts_with("-ERR [AUTH]"), "{out}");
    assert!(
        lines[3].starts_with("-ERR [AUTH]"),
        "a user cannot act as another: {out}"
    );
}

#[test]
fn curl_lists_and_retrieves() {
    let b = backend_with_mail(&["Subject: curl me\r\n\r\nhello curl\r\n"]);
    let curl = require("curl", "curl");
    let url = format!("pop3://127.0.0.1:{}/", b.pop3_addr().port());
    let list = Command::new(&curl)
        .args(["-s", "--user", &format!("{USER}:secret"), &url])
        .output()
        .expect("curl");
    assert!(list.status.success(), "{list:?}");
    assert!(
        String::from_utf8_lossy(&list.stdout).starts_with("1 "),
        "{list:?}"
    );
    let one = Command::new(&curl)
        .args([
            "-s",
            "--user",
            &format!("{USER}:secret"),
            &format!("{url}1"),
        ])
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&one.stdout);
    assert!(
        one.status.success() && text.contains("Subject: curl me") && text.contains("hello curl"),
        "{text}"
    );
}

#[test]
fn garbage_and_pipelining_get_answers_in_order() {
    let b = backend_with_mail(&["Subject: p\r\n\r\np\r\n"]);
    let s = TcpStream::connect(b.pop3_addr()).expect("connect");
    let mut r = BufReader::new(s.try_clone().expect("clone"));
    let mut w = s;
    let mut line = String::new();
    r.read_line(&mut line).expect("greeting");
    let long = "X".repeat(10_000);
    write!(w, "FOO\r\n\0\0\r\n{long}\r\nRETR 1\r\nUSER {USER}\r\nPASS secret\r\nSTAT\r\nLIST 9\r\nTOP 1\r\nNOOP\r\nQUIT\r\n").expect("write");
    let mut answers = vec![];
    for _ in 0..10 {
        line.clear();
        r.read_line(&mut line).expect("answer");
        answers.push(line.trim_end().to_owned());
    }
    let want = [
        "-ERR", "-ERR", "-ERR", "-ERR", "+OK", "+OK", "+OK 1 ", "-ERR", "-ERR", "+OK",
    ];
    for (a, w) in answers.iter().zip(want) {
        assert!(a.starts_with(w), "{answers:?}");
    }
}

#[test]
fn the_client_address_comes_from_the_proxy_header_of_a_trusted_frontend() {
    let b = Backend::start_with("  proxy_protocol_from: [127.0.0.1/32]\n").expect("start");
    b.add_account(USER, "secret").expect("account");
    let s = TcpStream::connect(b.pop3_addr()).expect("connect");
    let mut r = BufReader::new(s.try_clone().expect("clone"));
    let mut w = s;
    let port = b.pop3_addr().port();
    write!(w, "PROXY TCP4 203.0.113.7 127.0.0.1 40000 {port}\r\n").expect("header");
    let mut line = String::new();
    r.read_line(&mut line).expect("greeting");
    assert!(line.starts_with("+OK"), "{line}");
    write!(w, "USER {USER}\r\nPASS wrong\r\nQUIT\r\n").expect("login");
    for _ in 0..3 {
        line.clear();
        r.read_line(&mut line).expect("answer");
    }
    let log = b.log();
    assert!(
        log.lines()
            .any(|l| l.contains("login failed") && l.contains("203.0.113.7:40000")),
        "the log names the real client:\n{log}"
    );
}

#[test]
fn stls_then_login_over_tls() {
    let (_certs, cert, key) = tests::clients::self_signed_cert();
    let b = Backend::start_with(&format!(
        "  tls:\n    cert: {}\n    key: {}\n",
        cert.display(),
        key.display()
    ))
    .expect("start with TLS");
    b.add_account(USER, "secret").expect("account");
    let out = python(
        "import poplib, ssl, sys\n\
         p = poplib.POP3('127.0.0.1', int(sys.argv[1]))\n\
         print('STLS' in p.capa())\n\
         ctx = ssl.create_default_context()\nctx.check_hostname = False\nctx.verify_mode = ssl.CERT_NONE\n\
         print(p.stls(ctx).decode().split(' ')[0])\n\
         print('STLS' in p.capa())\n\
         p.user(sys.argv[2])\nprint(p.pass_('secret').decode().split(' ')[0])\n\
         p.quit()\n",
        &[&b.pop3_addr().port().to_string(), USER],
    );
    assert_eq!(out, "True\n+OK\nFalse\n+OK\n");
}

#[test]
fn sigterm_tells_the_client_and_deletes_nothing() {
    let mut b = backend_with_mail(&["Subject: keep me\r\n\r\nkeep\r\n"]);
    let s = TcpStream::connect(b.pop3_addr()).expect("connect");
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .expect("timeout");
    let mut r = BufReader::new(s.try_clone().expect("clone"));
    let mut w = s;
    write!(w, "USER {USER}\r\nPASS secret\r\nDELE 1\r\n").expect("write");
    let mut lines = Vec::new();
    for _ in 0..4 {
        let mut line = String::new();
        r.read_line(&mut line).expect("answer");
        lines.push(line.trim_end().to_owned());
    }
    assert_eq!(
        lines,
        [
            "+OK Tandem POP3 ready.",
            "+OK",
            "+OK Logged in.",
            "+OK Marked to be deleted."
        ]
    );
    b.stop();
    let mut line = String::new();
    r.read_line(&mut line).expect("goodbye");
    assert_eq!(line, "-ERR [SYS/TEMP] Server shutting down.\r\n");
    b.restart().expect("restart");
    let n = poplib(&b, "print(p.stat()[0])\np.quit()", &[]);
    assert_eq!(n.trim(), "1", "no UPDATE without QUIT");
}

#[test]
fn a_suspended_account_is_refused_and_told_only_with_its_password() {
    let b = backend_with_mail(&[]);
    b.add_account("gone@example.com", "secret")
        .expect("account");
    b.tandem_ok(&["account", "suspend", "gone@example.com"])
        .expect("suspend");
    let out = python(
        "import poplib, sys\n\
         for pw in ['wrong', 'secret']:\n\
         \x20   p = poplib.POP3('127.0.0.1', int(sys.argv[1]))\n\
         \x20   p.user('gone@example.com')\n\
         \x20   try:\n\
         \x20       p.pass_(pw)\n\
         \x20       print('accepted')\n\
         \x20   except poplib.error_proto as e:\n\
         \x20       print(e.args[0].decode())\n",
        &[&b.pop3_addr().port().to_string()],
    );
    assert_eq!(
        out,
        "-ERR [AUTH] Authentication failed.\n-ERR [AUTH] Account is suspended.\n"
    );
    let m = b.metrics();
    assert!(
        m.contains("tandem_pop3_logins_total{result=\"suspended\"} 1"),
        "{m}"
    );
}
