//! LDAP-specific tests of `locator::ldap::LdapDirectory` against a real
//! slapd: filter escaping, authentication by bind, entries provisioned by
//! other tools, races on one address, and riding out a server restart. The
//! contract shared with the SQL directory is checked by the conformance suite.

use std::sync::Arc;
use std::time::Duration;

use locator::ldap::{LdapConfig, LdapDirectory};
use locator::model::{AccountChange, AccountState, ClusterState, NewAccount};
use locator::sql::SqlDirectory;
use locator::{Directory, DirectoryError};
use shared::password::{Scheme, hash_with};
use shared::{Address, Domain};
use tests::servers::slapd::{self, Slapd};

fn addr(s: &str) -> Address {
    Address::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// Runs the harness's synchronous server calls off the runtime's threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("blocking task")
}

/// A directory on a fresh subtree of `server`, with domain example.com and
/// cluster c1; the topology is SQLite in a temp dir.
struct Env {
    dir: LdapDirectory,
    cfg: LdapConfig,
    base: String,
    _tmp: tempfile::TempDir,
}

/// Where and as whom to connect, and the subtree to use.
struct Target {
    url: String,
    admin_dn: String,
    admin_password: String,
    base: String,
}

impl Target {
    fn of(server: &Slapd, base: String) -> Target {
        Target {
            url: server.url(),
            admin_dn: server.admin_dn().to_owned(),
            admin_password: server.admin_password().to_owned(),
            base,
        }
    }
}

/// A fresh subtree on the shared server.
async fn shared_target() -> Target {
    let server = blocking(slapd::shared).await;
    let base = blocking(|| server.new_base()).await.expect("new base");
    Target::of(server, base)
}

async fn env_on(target: Target, auth_bind: bool) -> Env {
    let tmp = tempfile::tempdir().expect("temp dir");
    let sqlite = format!("sqlite://{}/locator.db", tmp.path().display());
    let topology = SqlDirectory::connect(&sqlite, 2).await.expect("sqlite");
    let base = target.base;
    let mut cfg = LdapConfig::new(&target.url, &base);
    cfg.bind_dn = target.admin_dn;
    cfg.bind_password = Some(target.admin_password);
    cfg.auth_bind = auth_bind;
    cfg.pool_size = 2;
    cfg.timeout = Duration::from_secs(2);
    let dir = LdapDirectory::connect(&cfg, Arc::new(topology))
        .await
        .expect("connect");
    dir.add_domain(&Domain::parse("example.com").expect("domain"))
        .await
        .expect("add domain");
    dir.add_cluster("c1", ClusterState::Open, 1)
        .await
        .expect("add cluster");
    Env {
        dir,
        cfg,
        base,
        _tmp: tmp,
    }
}

async fn env(auth_bind: bool) -> Env {
    env_on(shared_target().await, auth_bind).await
}

fn account(address: &str, password: Option<String>) -> NewAccount {
    NewAccount {
        address: addr(address),
        password,
        cluster: "c1".into(),
        state: AccountState::Active,
        quota: 0,
    }
}

async fn ldapadd(ldif: String) {
    let server = blocking(slapd::shared).await;
    blocking(move || server.add(&ldif)).await.expect("ldapadd");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filter_metacharacters_match_only_literally() {
    let e = env(false).await;
    for a in ["ab@example.com", "abc@example.com"] {
        e.dir.add_account(&account(a, None)).await.expect(a);
    }
    // Values no Tandem command would write, put there by another tool: a
    // wildcard alias, and one that is an injection attempt, not an address.
    assert!(Address::parse("a)(mail=*@example.com").is_err());
    ldapadd(format!(
        "dn: uid=meta,{base}\nobjectClass: inetOrgPerson\nobjectClass: inetLocalMailRecipient\n\
         uid: meta\ncn: meta\nsn: meta\nmail: meta@example.com\nmailHost: c1\n\
         mailLocalAddress: *@example.com\nmailLocalAddress: a)(mail=*@example.com\n",
        base = e.base
    ))
    .await;

    for (query, want) in [
        ("*@example.com", Some("meta@example.com")),
        ("a*@example.com", None),
        ("*b@example.com", None),
        ("ab*@example.com", None),
        ("ab@example.com", Some("ab@example.com")),
    ] {
        let got = e
            .dir
            .lookup(&addr(query))
            .await
            .unwrap_or_else(|err| panic!("lookup {query}: {err}"))
            .map(|a| a.address.to_string());
        assert_eq!(got.as_deref(), want, "lookup {query}");
    }
    let meta = e
        .dir
        .lookup(&addr("meta@example.com"))
        .await
        .expect("lookup")
        .expect("meta");
    let aliases: Vec<&str> = meta.aliases.iter().map(|a| a.as_str()).collect();
    assert_eq!(
        aliases,
        ["*@example.com"],
        "the unusable alias is skipped, not fatal"
    );

    e.dir
        .remove_alias(&addr("*@example.com"))
        .await
        .expect("remove the literal alias");
    assert!(
        e.dir
            .lookup(&addr("*@example.com"))
            .await
            .expect("lookup")
            .is_none()
    );
    let left: Vec<String> = e
        .dir
        .accounts(None)
        .await
        .expect("list")
        .into_iter()
        .map(|a| a.address.to_string())
        .collect();
    assert_eq!(
        left,
        ["ab@example.com", "abc@example.com", "meta@example.com"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_bind_checks_passwords_with_the_server() {
    let e = env(true).await;
    // slapd checks a {SSHA} hash made by our own password module.
    let hash = hash_with(Scheme::Ssha, b"correct horse").expect("hash");
    e.dir
        .add_account(&account("alice@example.com", Some(hash)))
        .await
        .expect("add");
    e.dir
        .add_account(&account("nopw@example.com", None))
        .await
        .expect("add");
    let alice = e
        .dir
        .lookup(&addr("alice@example.com"))
        .await
        .expect("lookup")
        .expect("alice");
    assert!(alice.dn.as_deref().is_some_and(|dn| dn.ends_with(&e.base)));

    let check = |pw: &'static [u8]| e.dir.verify_by_bind(&alice, pw);
    assert_eq!(check(b"correct horse").await, Ok(Some(true)));
    assert_eq!(check(b"correct horsE").await, Ok(Some(false)));
    assert_eq!(
        check(b"").await,
        Ok(Some(false)),
        "an empty password is an anonymous bind, never a login"
    );
    assert_eq!(check(b"\xffnot utf-8").await, Ok(Some(false)));
    // Binds as users leave the service connections alone.
    assert!(
        e.dir
            .lookup(&addr("alice@example.com"))
            .await
            .expect("lookup after binds")
            .is_some()
    );
    let nopw = e
        .dir
        .lookup(&addr("nopw@example.com"))
        .await
        .expect("lookup")
        .expect("nopw");
    assert_eq!(
        e.dir.verify_by_bind(&nopw, b"anything").await,
        Ok(Some(false))
    );

    let mut plain = e.cfg.clone();
    plain.auth_bind = false;
    let tmp = tempfile::tempdir().expect("temp dir");
    let topology = SqlDirectory::connect(&format!("sqlite://{}/t.db", tmp.path().display()), 1)
        .await
        .expect("sqlite");
    let without = LdapDirectory::connect(&plain, Arc::new(topology))
        .await
        .expect("connect");
    assert_eq!(
        without.verify_by_bind(&alice, b"correct horse").await,
        Ok(None),
        "without auth_bind the caller checks the hash"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_provisioned_by_other_tools() {
    let e = env(false).await;
    let before = shared::time::now();
    ldapadd(format!(
        "dn: ou=people,{base}\nobjectClass: organizationalUnit\nou: people\n\n\
         dn: uid=carol,ou=people,{base}\nobjectClass: inetOrgPerson\n\
         objectClass: inetLocalMailRecipient\nuid: carol\ncn: Carol\nsn: Smith\n\
         mail: Carol.Smith@Example.com\nmailLocalAddress: carol@example.com\n\
         mailLocalAddress: CS@example.com\nmailHost: c1\n\
         userPassword: {{SSHA}}qn9fVPF60QLnGM0CT+8ZDoOyPR62/D6D\n\n\
         dn: uid=dave,ou=people,{base}\nobjectClass: inetOrgPerson\n\
         objectClass: inetLocalMailRecipient\nuid: dave\ncn: Dave\nsn: Jones\n\
         mail: dave@example.com\n",
        base = e.base
    ))
    .await;

    let carol = e
        .dir
        .lookup(&addr("cs@example.com"))
        .await
        .expect("lookup by alias")
        .expect("carol");
    assert_eq!(carol.address.as_str(), "carol.smith@example.com");
    let aliases: Vec<&str> = carol.aliases.iter().map(|a| a.as_str()).collect();
    assert_eq!(aliases, ["carol@example.com", "cs@example.com"]);
    assert_eq!(carol.cluster, "c1");
    assert_eq!(carol.state, AccountState::Active, "no state means active");
    assert_eq!(carol.quota, 0, "no quota means none");
    assert_eq!(
        carol.password.as_deref(),
        Some("{SSHA}qn9fVPF60QLnGM0CT+8ZDoOyPR62/D6D")
    );
    assert!(
        (before - 5..=shared::time::now() + 5).contains(&carol.created),
        "created from createTimestamp: {}",
        carol.created
    );
    assert_eq!(
        carol.dn.as_deref(),
        Some(format!("uid=carol,ou=people,{}", e.base).as_str())
    );

    // Tandem's attributes need Tandem's class, which the entry lacks.
    let changed = e
        .dir
        .update_account(
            &addr("carol.smith@example.com"),
            &AccountChange {
                state: Some(AccountState::Suspended),
                quota: Some(1 << 30),
                ..Default::default()
            },
        )
        .await
        .expect("update");
    assert_eq!(
        (changed.state, changed.quota),
        (AccountState::Suspended, 1 << 30)
    );

    match e.dir.lookup(&addr("dave@example.com")).await {
        Err(DirectoryError::Backend(m)) => {
            assert!(
                m.contains("uid=dave,ou=people") && m.contains("mailHost"),
                "{m}"
            )
        }
        other => panic!("an account without a home cluster: {other:?}"),
    }
    e.dir
        .add_account(&account("erin@example.com", None))
        .await
        .expect("add");
    let counts = e.dir.account_counts().await.expect("counts");
    assert_eq!(
        counts.get("c1"),
        Some(&2),
        "carol and erin; dave has no cluster"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_claims_on_one_address_never_both_win() {
    let e = Arc::new(env(false).await);
    for a in ["a@example.com", "b@example.com"] {
        e.dir.add_account(&account(a, None)).await.expect(a);
    }
    for round in 0..15 {
        let alias = addr(&format!("shared{round}@example.com"));
        let claim = |target: &'static str| {
            let (e, alias) = (e.clone(), alias.clone());
            tokio::spawn(async move { e.dir.add_alias(&alias, &addr(target)).await })
        };
        let (x, y) = (claim("a@example.com"), claim("b@example.com"));
        let (x, y) = (x.await.expect("task"), y.await.expect("task"));
        assert!(!(x.is_ok() && y.is_ok()), "round {round}: both claims won");
        for r in [&x, &y] {
            if let Err(err) = r {
                assert_eq!(err.kind(), "conflict", "round {round}: {err}");
            }
        }
        let holders = e
            .dir
            .accounts(None)
            .await
            .expect("list")
            .into_iter()
            .filter(|a| a.aliases.contains(&alias))
            .count();
        assert_eq!(
            holders,
            usize::from(x.is_ok() || y.is_ok()),
            "round {round}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unavailable_while_down_and_back_after_restart() {
    // A server of its own, since this test stops it.
    let server = blocking(Slapd::start).await.expect("start slapd");
    let (server, base) = blocking(move || {
        let base = server.new_base().expect("new base");
        (server, base)
    })
    .await;
    let e = env_on(Target::of(&server, base), true).await;
    let hash = hash_with(Scheme::Ssha, b"pw").expect("hash");
    e.dir
        .add_account(&account("alice@example.com", Some(hash)))
        .await
        .expect("add");
    let a = addr("alice@example.com");
    let alice = e.dir.lookup(&a).await.expect("lookup").expect("alice");
    assert_eq!(e.dir.verify_by_bind(&alice, b"pw").await, Ok(Some(true)));

    let mut server = blocking(move || {
        let mut server = server;
        server.stop();
        server
    })
    .await;
    let started = tokio::time::Instant::now();
    let down = e.dir.lookup(&a).await;
    assert!(
        matches!(&down, Err(err) if err.is_transient()),
        "lookup while down: {down:?}"
    );
    let bind = e.dir.verify_by_bind(&alice, b"pw").await;
    assert!(
        matches!(&bind, Err(err) if err.is_transient()),
        "bind while down: {bind:?}"
    );
    assert!(
        started.elapsed() < 2 * e.cfg.timeout + Duration::from_secs(1),
        "failing took {:?}",
        started.elapsed()
    );

    let server = blocking(move || {
        server.start_again().expect("restart slapd");
        server
    })
    .await;
    assert_eq!(
        e.dir
            .lookup(&a)
            .await
            .expect("lookup after restart")
            .map(|x| x.address),
        Some(a.clone()),
        "the first lookup after a restart succeeds"
    );
    assert_eq!(e.dir.verify_by_bind(&alice, b"pw").await, Ok(Some(true)));
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dn_special_characters_in_addresses() {
    let e = env(false).await;
    // Legal in a local part, special in a DN (RFC 4514 §2.4).
    let tricky = [
        "a+b@example.com",
        "a=b@example.com",
        "#x@example.com",
        "x&y@example.com",
    ];
    for a in tricky {
        let added = e.dir.add_account(&account(a, None)).await.expect(a);
        assert!(
            added.dn.as_deref().is_some_and(|dn| dn.ends_with(&e.base)),
            "{a}: {:?}",
            added.dn
        );
    }
    for a in tricky {
        let got = e.dir.lookup(&addr(a)).await.expect(a).expect(a);
        assert_eq!(got.address.as_str(), a);
        let changed = e
            .dir
            .update_account(
                &addr(a),
                &AccountChange {
                    quota: Some(42),
                    ..Default::default()
                },
            )
            .await
            .expect(a);
        assert_eq!(changed.quota, 42);
    }
    for a in tricky {
        e.dir.remove_account(&addr(a)).await.expect(a);
        assert!(e.dir.lookup(&addr(a)).await.expect(a).is_none(), "{a}");
    }
}
