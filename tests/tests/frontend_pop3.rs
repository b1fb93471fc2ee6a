//! POP3 through the frontend: one frontend, two clusters, real clients.

use std::time::{Duration, Instant};

use tests::backend::Backend;
use tests::clients::{lmtp_send, python, require};
use tests::frontend::Frontend;

const LOGIN: &str = "import poplib, sys\n\
    p = poplib.POP3('127.0.0.1', int(sys.argv[1]), timeout=20)\n\
    try:\n    p.user(sys.argv[2])\n    p.pass_(sys.argv[3])\n\
    except poplib.error_proto as e:\n    print(e.args[0].decode())\n    sys.exit(0)\n\
    n = p.stat()[0]\n\
    subject = [l.decode() for l in p.top(1, 0)[1] if l.startswith(b'Subject:')][0]\n\
    p.quit()\n\
    print(n, subject)\n";

#[test]
fn one_frontend_reaches_accounts_on_two_clusters() {
    let b1 = Backend::start().expect("cluster c1");
    let mut b2 = Backend::start_beside(&b1, "c2", "n2").expect("cluster c2");
    b1.add_account_on("alice@example.com", "alice-pw", "c1")
        .expect("alice");
    b1.add_account_on("bob@example.com", "bob-pw", "c2")
        .expect("bob");
    let msg = |s: &str| format!("Subject: {s}\r\n\r\nhello\r\n").into_bytes();
    assert_eq!(
        lmtp_send(
            b1.lmtp_addr(),
            "x@example.org",
            &["alice@example.com"],
            &msg("for alice")
        ),
        ""
    );
    assert_eq!(
        lmtp_send(
            b2.lmtp_addr(),
            "x@example.org",
            &["bob@example.com"],
            &msg("for bob")
        ),
        ""
    );

    let fe = Frontend::start(&b1, "").expect("frontend");
    let port = fe.pop3_addr().port().to_string();
    let login = |u: &str, pw: &str| python(LOGIN, &[&port, u, pw]).trim().to_owned();
    assert_eq!(
        login("alice@example.com", "alice-pw"),
        "1 Subject: for alice",
        "frontend log:\n{}\nbackend log:\n{}",
        fe.log(),
        b1.log()
    );
    assert_eq!(login("BOB@Example.COM", "bob-pw"), "1 Subject: for bob");
    assert!(login("alice@example.com", "wrong").starts_with("-ERR [AUTH]"));
    assert!(login("nobody@example.com", "x").starts_with("-ERR [AUTH]"));

    // The backend saw the real client (127.0.0.1), not the frontend
    // (127.0.0.2): the PROXY v2 header.
    let log = b2.log();
    let line = log
        .lines()
        .find(|l| l.contains("logged in"))
        .unwrap_or_default();
    assert!(line.contains("client=127.0.0.1:"), "{log}");

    // curl through the frontend.
    let curl = require("curl", "curl");
    let out = std::process::Command::new(curl)
        .args(["-s", "--user", "alice@example.com:alice-pw"])
        .arg(format!("pop3://127.0.0.1:{port}/1"))
        .output()
        .expect("curl");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Subject: for alice"),
        "{out:?}"
    );

    // Cluster c2 loses its only node: bob is told to come back later, fast.
    b2.kill();
    let t = Instant::now();
    let r = login("bob@example.com", "bob-pw");
    assert!(r.starts_with("-ERR [SYS/TEMP]"), "{r}");
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "took {:?}",
        t.elapsed()
    );
    assert_eq!(
        login("alice@example.com", "alice-pw"),
        "1 Subject: for alice",
        "c1 unaffected"
    );

    let m = fe.metrics();
    for want in [
        "tandem_frontend_logins_total{result=\"ok\"} 4",
        "tandem_frontend_logins_total{result=\"failed\"} 2",
        "tandem_frontend_logins_total{result=\"unavailable\"} 1",
    ] {
        assert!(m.contains(want), "missing {want} in\n{m}");
    }
}
