//! POP3 through the frontend: one frontend, two clusters, real clients.

use std::time::Duration;

use tokio::time::Instant;

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
        "tandem_frontend_backend_connects_total{node=\"n1\",result=\"ok\"}",
        "tandem_frontend_backend_connects_total{node=\"n2\",result=\"refused\"} 1",
        "tandem_frontend_backend_connect_seconds_count{node=\"n1\"}",
    ] {
        assert!(m.contains(want), "missing {want} in\n{m}");
    }
}

/// An address hammering wrong passwords is slowed down more and more; a
/// user at another address logs in at once meanwhile.
#[test]
fn a_password_guesser_does_not_slow_down_other_users() {
    let b = Backend::start().expect("backend");
    b.add_account("alice@example.com", "alice-pw")
        .expect("alice");
    // The guesser comes through a "load balancer" at 127.0.0.3 that says
    // the client is 203.0.113.66; alice connects directly.
    // Plaintext logins are allowed from its network so that the guesses
    // reach the password check.
    let fe = Frontend::start(
        &b,
        "  proxy_protocol_from: [127.0.0.3/32]\n  trusted_networks: [203.0.113.0/24]\n",
    )
    .expect("frontend");
    let port = fe.pop3_addr().port().to_string();
    let script = r#"
import socket, sys, threading, time, poplib
port = int(sys.argv[1])
stop = time.time() + 6
fails = [0]
def guess():
    while time.time() < stop:
        try:
            s = socket.create_connection(('127.0.0.1', port), timeout=30, source_address=('127.0.0.3', 0))
            s.sendall(b'PROXY TCP4 203.0.113.66 127.0.0.1 4000 110\r\n')
            f = s.makefile('rb')
            f.readline()
            while time.time() < stop:
                s.sendall(b"USER bob@example.com\r\nPASS guess\r\n")
                f.readline()
                reply = f.readline()
                if reply == b'':
                    break  # closed after too many failures: reconnect
                if not reply.startswith(b'-ERR'):
                    print('guess accepted', reply); return
                fails[0] += 1
            s.close()
        except OSError:
            pass
threads = [threading.Thread(target=guess) for _ in range(50)]
for t in threads: t.start()
time.sleep(2)
t0 = time.time()
p = poplib.POP3('127.0.0.1', port, timeout=10)
p.user('alice@example.com')
p.pass_('alice-pw')
p.quit()
print('alice', round(time.time() - t0, 2))
for t in threads: t.join(timeout=40)
print('fails', fails[0])
"#;
    let out = python(script, &[&port]);
    let alice: f64 = out
        .lines()
        .find_map(|l| l.strip_prefix("alice "))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        alice < 2.0,
        "alice waited {alice} s behind the guesser: {out}"
    );
    assert!(!out.contains("guess accepted"), "{out}");
    let fails: u64 = out
        .lines()
        .find_map(|l| l.strip_prefix("fails "))
        .and_then(|s| s.parse().ok())
        .unwrap_or_default();
    // 50 connections for 6 s with 100 ms base delay doubling per failure:
    // without the penalty that would be thousands.
    assert!(
        fails > 0 && fails < 600,
        "{fails} guesses went through: {out}"
    );
    let log = fe.log();
    assert!(
        log.contains("203.0.113.66"),
        "failures are logged with the real address"
    );
}

/// haproxy with send-proxy-v2 in front of two frontends: the backend sees
/// the real client, and stopping one frontend loses no new logins.
#[test]
fn haproxy_in_front_of_two_frontends() {
    let b = Backend::start().expect("backend");
    b.add_account("alice@example.com", "alice-pw")
        .expect("alice");
    b.add_account("carol@example.com", "carol-pw")
        .expect("carol");
    let lb = "  proxy_protocol_from: [127.0.0.1/32]\n";
    let mut fe1 = Frontend::start(&b, lb).expect("frontend 1");
    let fe2 = Frontend::start(&b, lb).expect("frontend 2");
    let haproxy =
        tests::servers::Haproxy::start(&[fe1.pop3_addr(), fe2.pop3_addr()]).expect("haproxy");
    let port = haproxy.addr().port().to_string();
    // Clients come from 127.0.0.5, which only the PROXY headers can tell.
    let script = "import poplib, socket, sys\n\
        ok = 0\n\
        for i in range(int(sys.argv[2])):\n\
        \x20   p = poplib.POP3.__new__(poplib.POP3)\n\
        \x20   p.host, p.port, p._tls_established = '127.0.0.1', int(sys.argv[1]), False\n\
        \x20   p.sock = socket.create_connection(('127.0.0.1', int(sys.argv[1])), 10, source_address=('127.0.0.5', 0))\n\
        \x20   p.file = p.sock.makefile('rb')\n\
        \x20   p._debugging = 0\n\
        \x20   p.welcome = p._getresp()\n\
        \x20   p.user(sys.argv[3])\n\
        \x20   p.pass_(sys.argv[4])\n\
        \x20   p.quit()\n\
        \x20   ok += 1\n\
        print(ok)\n";
    let logins = |n: &str, u: &str, pw: &str| python(script, &[&port, n, u, pw]).trim().to_owned();
    assert_eq!(logins("4", "alice@example.com", "alice-pw"), "4");
    let log = b.log();
    let line = log
        .lines()
        .find(|l| l.contains("logged in"))
        .unwrap_or_default();
    assert!(
        line.contains("client=127.0.0.5:"),
        "the backend names the real client: {line}"
    );
    let m1 = fe1.metrics();
    assert!(
        m1.contains("tandem_frontend_logins_total{result=\"ok\"} 2"),
        "round robin: {m1}"
    );

    fe1.stop();
    assert_eq!(
        logins("6", "carol@example.com", "carol-pw"),
        "6",
        "no login lost with one frontend down"
    );
    assert!(
        fe2.metrics()
            .contains("tandem_frontend_logins_total{result=\"ok\"}")
    );
}

/// A proxied session silent in both directions for the idle timeout is
/// closed by the frontend.
#[test]
fn idle_sessions_are_closed() {
    let b = Backend::start().expect("backend");
    b.add_account("alice@example.com", "alice-pw")
        .expect("alice");
    let fe = Frontend::start(&b, "    idle_timeout: 2s\n").expect("frontend");
    let script = "import poplib, sys, time\n\
        p = poplib.POP3('127.0.0.1', int(sys.argv[1]), timeout=20)\n\
        p.user('alice@example.com')\np.pass_('alice-pw')\n\
        print(p.stat()[0])\n\
        time.sleep(1)\nprint(p.noop().decode().split(' ')[0])\n\
        t = time.time()\n\
        try:\n    p.file.readline() or print('closed after', round(time.time() - t))\n\
        except Exception as e:\n    print('closed after', round(time.time() - t))\n";
    let out = python(script, &[&fe.pop3_addr().port().to_string()]);
    assert_eq!(
        out, "0\n+OK\nclosed after 2\n",
        "activity resets the timer, silence closes"
    );
}
