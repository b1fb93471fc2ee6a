//! The real-server harness: each server starts, serves a client that is not
//! part of the harness (sqlx, ldap3), keeps its data across a kill and a
//! restart, refuses connections while stopped, and dies with the test process.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::thread;
use std::time::Duration;

use tokio::time::Instant;

use ldap3::{LdapConnAsync, Scope, SearchEntry};
use sqlx::{Connection, MySqlConnection, PgConnection};
use tests::servers::{self, MariaDb, Postgres, Slapd, mariadb, postgres, slapd};

/// Set in the environment of the child process of `servers_die_with_the_test_process`.
const CHILD: &str = "TANDEM_SERVERS_TEST_CHILD";

fn refuses_connections(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err()
}

fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        thread::sleep(Duration::from_millis(50));
    }
}

fn database_name(url: &str) -> &str {
    url.rsplit('/').next().expect("a URL has a path")
}

fn timed<T>(what: &str, start: impl FnOnce() -> anyhow::Result<T>) -> T {
    let began = Instant::now();
    let server = start().unwrap_or_else(|e| panic!("{what}: {e:#}"));
    eprintln!("{what}: {:?}", began.elapsed());
    server
}

#[tokio::test]
async fn postgres_keeps_its_data_across_a_kill_and_a_restart() {
    let mut pg = timed("start PostgreSQL", Postgres::start);
    let url = pg.new_database().expect("create a database");
    let db = database_name(&url);
    pg.query(
        db,
        "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('written before')",
    )
    .expect("psql");

    let mut conn = PgConnection::connect(&url).await.expect("sqlx connects");
    let v: String = sqlx::query_scalar("SELECT v FROM kept")
        .fetch_one(&mut conn)
        .await
        .expect("sqlx query");
    assert_eq!(v, "written before");
    sqlx::query("INSERT INTO kept VALUES ('written by sqlx')")
        .execute(&mut conn)
        .await
        .expect("sqlx insert");
    drop(conn);

    pg.stop();
    assert!(
        refuses_connections(pg.port()),
        "stopped but still listening"
    );
    assert!(pg.query(db, "SELECT 1").is_err());

    timed("restart PostgreSQL", || pg.start_again());
    let rows = pg.query(db, "SELECT v FROM kept ORDER BY v").expect("psql");
    assert_eq!(rows, "written before\nwritten by sqlx");
    PgConnection::connect(&url)
        .await
        .expect("sqlx reconnects after the restart");

    let (dir, port) = (pg.dir().to_owned(), pg.port());
    drop(pg);
    assert!(!dir.exists(), "{} left behind", dir.display());
    assert!(refuses_connections(port), "dropped but still listening");
}

#[tokio::test]
async fn mariadb_keeps_its_data_across_a_kill_and_a_restart() {
    let mut my = timed("start MariaDB", MariaDb::start);
    let url = my.new_database().expect("create a database");
    let db = database_name(&url);
    my.query(
        db,
        "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('written before')",
    )
    .expect("mariadb client");

    let mut conn = MySqlConnection::connect(&url)
        .await
        .expect("sqlx logs in over TCP with the password");
    let v: String = sqlx::query_scalar("SELECT v FROM kept")
        .fetch_one(&mut conn)
        .await
        .expect("sqlx query");
    assert_eq!(v, "written before");
    sqlx::query("INSERT INTO kept VALUES ('written by sqlx')")
        .execute(&mut conn)
        .await
        .expect("sqlx insert");
    drop(conn);
    let wrong = url.replace(MariaDb::PASSWORD, "wrong-password");
    assert!(
        MySqlConnection::connect(&wrong).await.is_err(),
        "a wrong password is accepted: authentication is off"
    );

    my.stop();
    assert!(
        refuses_connections(my.port()),
        "stopped but still listening"
    );
    assert!(my.query(db, "SELECT 1").is_err());

    timed("restart MariaDB", || my.start_again());
    let rows = my
        .query(db, "SELECT v FROM kept ORDER BY v")
        .expect("mariadb client");
    assert_eq!(rows, "written before\nwritten by sqlx");
    MySqlConnection::connect(&url)
        .await
        .expect("sqlx logs in after the restart");

    let (dir, port) = (my.dir().to_owned(), my.port());
    drop(my);
    assert!(!dir.exists(), "{} left behind", dir.display());
    assert!(refuses_connections(port), "dropped but still listening");
}

fn account_ldif(base: &str) -> String {
    format!(
        "dn: uid=alice,{base}\n\
         objectClass: inetOrgPerson\n\
         objectClass: inetLocalMailRecipient\n\
         objectClass: tandemAccount\n\
         uid: alice\ncn: Alice\nsn: Example\n\
         mail: alice@example.test\n\
         mailLocalAddress: postmaster@example.test\n\
         mailHost: backend-1.example.test\n\
         tandemAccountState: active\n\
         tandemQuotaBytes: 1048576\n"
    )
}

/// The `tandemAccountState` of the entries matching `filter`, searched with
/// ldap3 bound as the admin.
async fn account_states(ldap: &Slapd, base: &str, filter: &str) -> Vec<String> {
    let (conn, mut client) = LdapConnAsync::new(&ldap.url())
        .await
        .expect("ldap3 connects");
    ldap3::drive!(conn);
    client
        .simple_bind(ldap.admin_dn(), ldap.admin_password())
        .await
        .and_then(|r| r.success())
        .expect("admin bind");
    let (entries, _) = client
        .search(base, Scope::Subtree, filter, vec!["tandemAccountState"])
        .await
        .and_then(|r| r.success())
        .expect("ldap3 search");
    entries
        .into_iter()
        .flat_map(|e| SearchEntry::construct(e).attrs.remove("tandemAccountState"))
        .flatten()
        .collect()
}

#[tokio::test]
async fn slapd_keeps_its_data_across_a_kill_and_a_restart() {
    let mut ldap = timed("start slapd", Slapd::start);
    assert_eq!(ldap.suffix(), "dc=tandem,dc=test");
    let base = ldap.new_base().expect("create a base");
    assert!(base.ends_with(",dc=tandem,dc=test"), "{base}");
    assert_ne!(base, ldap.new_base().expect("another base"));
    ldap.add(&account_ldif(&base))
        .expect("ldapadd with Tandem's schema");

    let found = ldap
        .search(
            &base,
            "(mailLocalAddress=postmaster@example.test)",
            &["mail"],
        )
        .expect("ldapsearch");
    assert!(found.contains("mail: alice@example.test"), "{found}");
    let states = account_states(&ldap, &base, "(mail=alice@example.test)").await;
    assert_eq!(states, ["active"]);
    let (conn, mut client) = LdapConnAsync::new(&ldap.url()).await.expect("connect");
    ldap3::drive!(conn);
    let bad = client
        .simple_bind(ldap.admin_dn(), "wrong-password")
        .await
        .expect("bind round trip");
    assert_eq!(bad.rc, 49, "a wrong password is accepted");

    ldap.stop();
    assert!(
        refuses_connections(ldap.port()),
        "stopped but still listening"
    );
    assert!(ldap.search(&base, "(uid=alice)", &[]).is_err());

    timed("restart slapd", || ldap.start_again());
    let found = ldap
        .search(ldap.suffix(), "(mailHost=backend-1.example.test)", &["1.1"])
        .expect("ldapsearch");
    assert!(found.contains(&format!("dn: uid=alice,{base}")), "{found}");

    let (dir, port) = (ldap.dir().to_owned(), ldap.port());
    drop(ldap);
    assert!(!dir.exists(), "{} left behind", dir.display());
    assert!(refuses_connections(port), "dropped but still listening");
}

#[test]
fn shared_servers_start_once_per_process() {
    assert!(std::ptr::eq(slapd::shared(), slapd::shared()));
    let a = slapd::shared().new_base().expect("a base");
    let b = slapd::shared().new_base().expect("another base");
    assert_ne!(a, b);
    assert!(std::ptr::eq(postgres::shared(), postgres::shared()));
    let url = postgres::shared().new_database().expect("a database");
    assert!(url.starts_with("postgres://postgres@127.0.0.1:"), "{url}");
}

/// The parent-death signal is tied to the thread that spawned a server, and
/// the test harness ends a test's thread when the test ends.
#[test]
fn servers_outlive_the_thread_that_started_them() {
    let ldap = thread::spawn(Slapd::start)
        .join()
        .expect("thread")
        .expect("start slapd");
    thread::sleep(Duration::from_millis(500));
    ldap.search(ldap.suffix(), "(objectClass=*)", &["1.1"])
        .expect("slapd died with the thread that started it");
}

/// Runs [`child_leaves_servers_running`] in a process of its own, which exits
/// without dropping anything, and checks that its servers go with it.
#[test]
fn servers_die_with_the_test_process() {
    let exe = std::env::current_exe().expect("test binary");
    let out = Command::new(exe)
        .args(["child_leaves_servers_running", "--exact", "--ignored"])
        .args(["--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .output()
        .expect("run the child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let values = |key: &str| -> Vec<String> {
        stdout
            .lines()
            // The first line starts with libtest's "test ... ".
            .filter_map(|line| Some(line.split_once(key)?.1))
            .map(str::to_owned)
            .collect()
    };
    let ports: Vec<u16> = values("server-port=")
        .iter()
        .map(|p| p.parse().expect("port"))
        .collect();
    let dir = PathBuf::from(values("server-dir=").pop().expect("the child's directory"));
    assert_eq!(ports.len(), 3, "{stdout}");
    assert!(dir.exists(), "{} should be left behind", dir.display());

    for port in ports {
        eventually(&format!("port {port} to close"), || {
            refuses_connections(port)
        });
    }
    eventually("the child's directory to be removed", || {
        servers::remove_stale_dirs();
        !dir.exists()
    });
}

#[test]
#[ignore = "run by servers_die_with_the_test_process"]
fn child_leaves_servers_running() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let ports = [
        postgres::shared().port(),
        mariadb::shared().port(),
        slapd::shared().port(),
    ];
    for port in ports {
        println!("server-port={port}");
    }
    let dir = slapd::shared().dir().parent().expect("process directory");
    println!("server-dir={}", dir.display());
    std::process::exit(0);
}

#[test]
fn dovecot_peer_delivers_and_serves_pop3() {
    let d = timed("start Dovecot", || {
        tests::servers::Dovecot::start(&[("bob@example.com", "pw")])
    });
    let refused = tests::clients::lmtp_send(
        d.lmtp_addr(),
        "a@example.org",
        &["bob@example.com", "nobody@example.com"],
        b"Subject: peer\r\n\r\nhello\r\n",
    );
    assert!(refused.starts_with("nobody@example.com 550"), "{refused}");
    let out = tests::clients::python(
        "import poplib,sys\np=poplib.POP3('127.0.0.1',int(sys.argv[1]))\np.user('bob@example.com')\np.pass_('pw')\nprint(p.stat()[0])\np.quit()",
        &[&d.pop3_addr().port().to_string()],
    );
    assert_eq!(out.trim(), "1");
}

#[test]
fn postfix_peer_relays_to_a_tandem_backend_over_lmtp() {
    let backend = tests::backend::Backend::start().expect("backend");
    backend
        .add_account("carol@example.com", "pw")
        .expect("account");
    let postfix = timed("start Postfix", || {
        tests::servers::Postfix::start_relay(&["example.com"], backend.lmtp_addr())
    });
    tests::clients::python(
        "import smtplib,sys\nc=smtplib.SMTP('127.0.0.1',int(sys.argv[1]))\n\
         c.sendmail('a@example.org',['carol@example.com'],b'Subject: via postfix\\r\\n\\r\\nhello\\r\\n')\nc.quit()",
        &[&postfix.addr().port().to_string()],
    );
    let new = backend.maildir("carol@example.com").join("new");
    eventually("Postfix delivers to the backend", || {
        std::fs::read_dir(&new).is_ok_and(|d| d.count() == 1)
    });
    // Postfix removes its queue file after the LMTP reply is logged.
    eventually("Postfix empties its queue", || postfix.queued() == 0);
    assert!(postfix.log().contains("status=sent"), "{}", postfix.log());
}
