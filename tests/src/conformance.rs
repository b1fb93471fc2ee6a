//! The one conformance suite every [`Directory`] implementation must pass.
//!
//! Each case gets a fresh, empty directory from the implementation's
//! [`Fixture`] factory and checks one part of the contract written at the top
//! of `locator/src/directory.rs`. [`conformance_suite!`] turns the list of
//! cases into one `#[tokio::test]` per case for a given factory, so a failure
//! names both the implementation and the case.

use std::any::Any;
use std::sync::Arc;

use locator::model::{AccountChange, AccountState, ClusterState, NewAccount, Node};
use locator::{Directory, DirectoryError};
use shared::{Address, Domain};

/// A fresh directory, and whatever must live as long as it (temp dirs).
pub struct Fixture {
    pub dir: Arc<dyn Directory>,
    pub keep: Vec<Box<dyn Any + Send>>,
}

/// Generates one test per conformance case, each calling `$factory().await`
/// for its own fresh [`Fixture`].
#[macro_export]
macro_rules! conformance_suite {
    ($factory:path) => {
        $crate::conformance_suite!(@cases $factory;
            domains, accounts_round_trip, accounts_need_domain_and_cluster,
            addresses_are_unique, aliases, update_account, remove_account,
            listing, clusters_and_nodes, account_counts, hashes_stored_verbatim,
            metacharacters_are_literal, many_accounts);
    };
    (@cases $factory:path; $($case:ident),+) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let fixture: $crate::conformance::Fixture = $factory().await;
                $crate::conformance::$case(fixture.dir.clone()).await;
            }
        )+
    };
}

fn addr(s: &str) -> Address {
    Address::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn dom(s: &str) -> Domain {
    Domain::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn new_account(address: &str, cluster: &str) -> NewAccount {
    NewAccount {
        address: addr(address),
        password: Some("{PLAIN}pw".into()),
        cluster: cluster.into(),
        state: AccountState::Active,
        quota: 0,
    }
}

/// Domain example.com and example.org, clusters c1 and c2.
async fn basic(d: &dyn Directory) {
    d.add_domain(&dom("example.com")).await.expect("add domain");
    d.add_domain(&dom("example.org")).await.expect("add domain");
    d.add_cluster("c1", ClusterState::Open, 1)
        .await
        .expect("add c1");
    d.add_cluster("c2", ClusterState::Open, 2)
        .await
        .expect("add c2");
}

fn assert_err<T: std::fmt::Debug>(r: Result<T, DirectoryError>, kind: &str, needle: &str) {
    match r {
        Err(e) => {
            assert_eq!(e.kind(), kind, "wrong error kind: {e}");
            assert!(
                e.to_string().contains(needle),
                "error {e:?} does not mention {needle:?}"
            );
        }
        Ok(v) => panic!("expected a {kind} error mentioning {needle:?}, got Ok({v:?})"),
    }
}

pub async fn domains(d: Arc<dyn Directory>) {
    assert!(
        d.domains().await.expect("list").is_empty(),
        "a fresh directory has no domains"
    );
    for name in ["example.org", "example.com", "b.example.net"] {
        d.add_domain(&dom(name)).await.expect("add");
    }
    let names: Vec<String> = d
        .domains()
        .await
        .expect("list")
        .iter()
        .map(|x| x.to_string())
        .collect();
    assert_eq!(names, ["b.example.net", "example.com", "example.org"]);
    assert_err(
        d.add_domain(&dom("EXAMPLE.com")).await,
        "conflict",
        "example.com",
    );
    d.remove_domain(&dom("b.example.net"))
        .await
        .expect("remove");
    assert_err(
        d.remove_domain(&dom("b.example.net")).await,
        "not_found",
        "b.example.net",
    );

    d.add_cluster("c1", ClusterState::Open, 1)
        .await
        .expect("cluster");
    d.add_account(&new_account("a@example.com", "c1"))
        .await
        .expect("account");
    assert_err(
        d.remove_domain(&dom("example.com")).await,
        "invalid",
        "example.com",
    );
    d.add_alias(&addr("x@example.org"), &addr("a@example.com"))
        .await
        .expect("alias");
    assert_err(
        d.remove_domain(&dom("example.org")).await,
        "invalid",
        "example.org",
    );
    let names: Vec<String> = d
        .domains()
        .await
        .expect("list")
        .iter()
        .map(|x| x.to_string())
        .collect();
    assert_eq!(
        names,
        ["example.com", "example.org"],
        "refused removals removed nothing"
    );
}

pub async fn accounts_round_trip(d: Arc<dyn Directory>) {
    basic(&*d).await;
    let before = shared::time::now();
    let want = NewAccount {
        address: addr("Alice.Smith@Example.COM"),
        password: Some("{SSHA512}mFaSG3NmwleavsHLeiVGQGuxa8MherNeRnBJYxvs/+roVicX1hkBFNAqPf50vtTkYq/zCtD1cR8b49cksTQpE47DfBY=".into()),
        cluster: "c2".into(),
        state: AccountState::Suspended,
        quota: 5 << 30,
    };
    let added = d.add_account(&want).await.expect("add");
    let got = d
        .lookup(&addr("alice.smith@example.com"))
        .await
        .expect("lookup")
        .expect("found");
    assert_eq!(got.address.as_str(), "alice.smith@example.com");
    assert_eq!(got.password, want.password);
    assert_eq!(got.cluster, "c2");
    assert_eq!(got.state, AccountState::Suspended);
    assert_eq!(got.quota, 5 << 30);
    assert!(got.aliases.is_empty());
    assert!(
        (before - 5..=shared::time::now() + 5).contains(&got.created),
        "created {} is not about now ({before})",
        got.created
    );
    assert_eq!(added.address, got.address);
    assert_eq!(
        d.lookup(&addr("ALICE.SMITH@example.com"))
            .await
            .expect("lookup")
            .map(|a| a.cluster),
        Some("c2".into())
    );
    assert!(
        d.lookup(&addr("alice@example.com"))
            .await
            .expect("lookup")
            .is_none()
    );
    assert!(
        d.lookup(&addr("alice.smith@example.org"))
            .await
            .expect("lookup")
            .is_none()
    );

    let mut nopw = new_account("nopw@example.com", "c1");
    nopw.password = None;
    d.add_account(&nopw).await.expect("add without password");
    let got = d
        .lookup(&addr("nopw@example.com"))
        .await
        .expect("lookup")
        .expect("found");
    assert_eq!(got.password, None);
    assert_eq!(got.state, AccountState::Active);
    assert_eq!(got.quota, 0);
}

pub async fn accounts_need_domain_and_cluster(d: Arc<dyn Directory>) {
    basic(&*d).await;
    assert_err(
        d.add_account(&new_account("a@nowhere.net", "c1")).await,
        "not_found",
        "nowhere.net",
    );
    assert_err(
        d.add_account(&new_account("a@example.com", "c9")).await,
        "not_found",
        "c9",
    );
    assert_err(
        d.add_account(&new_account("a@example.com", "Bad/Id")).await,
        "invalid",
        "Bad/Id",
    );
    assert!(
        d.lookup(&addr("a@example.com"))
            .await
            .expect("lookup")
            .is_none(),
        "nothing was half-added"
    );
    assert!(d.accounts(None).await.expect("list").is_empty());
}

pub async fn addresses_are_unique(d: Arc<dyn Directory>) {
    basic(&*d).await;
    d.add_account(&new_account("a@example.com", "c1"))
        .await
        .expect("add");
    assert_err(
        d.add_account(&new_account("A@example.com", "c2")).await,
        "conflict",
        "a@example.com",
    );
    d.add_account(&new_account("b@example.com", "c1"))
        .await
        .expect("add");
    d.add_alias(&addr("info@example.com"), &addr("a@example.com"))
        .await
        .expect("alias");
    assert_err(
        d.add_account(&new_account("info@example.com", "c1")).await,
        "conflict",
        "info@example.com",
    );
    assert_err(
        d.add_alias(&addr("b@example.com"), &addr("a@example.com"))
            .await,
        "conflict",
        "b@example.com",
    );
    assert_err(
        d.add_alias(&addr("info@example.com"), &addr("b@example.com"))
            .await,
        "conflict",
        "info@example.com",
    );
    assert_err(
        d.add_alias(&addr("a@example.com"), &addr("a@example.com"))
            .await,
        "conflict",
        "a@example.com",
    );
    let a = d
        .lookup(&addr("info@example.com"))
        .await
        .expect("lookup")
        .expect("found");
    assert_eq!(
        a.address.as_str(),
        "a@example.com",
        "the alias still points where it did"
    );
}

pub async fn aliases(d: Arc<dyn Directory>) {
    basic(&*d).await;
    d.add_account(&new_account("a@example.com", "c1"))
        .await
        .expect("add");
    for al in ["zed@example.com", "Info@Example.org", "abuse@example.com"] {
        d.add_alias(&addr(al), &addr("a@example.com"))
            .await
            .expect("alias");
    }
    let by_alias = d
        .lookup(&addr("info@example.org"))
        .await
        .expect("lookup")
        .expect("found via alias");
    assert_eq!(by_alias.address.as_str(), "a@example.com");
    let names: Vec<&str> = by_alias.aliases.iter().map(|a| a.as_str()).collect();
    assert_eq!(
        names,
        ["abuse@example.com", "info@example.org", "zed@example.com"]
    );
    let by_primary = d
        .lookup(&addr("a@example.com"))
        .await
        .expect("lookup")
        .expect("found");
    assert_eq!(by_primary, by_alias, "the same account either way");

    assert_err(
        d.add_alias(&addr("x@example.com"), &addr("ghost@example.com"))
            .await,
        "not_found",
        "ghost@example.com",
    );
    assert_err(
        d.add_alias(&addr("x@nowhere.net"), &addr("a@example.com"))
            .await,
        "not_found",
        "nowhere.net",
    );
    let r = d
        .add_alias(&addr("x@example.com"), &addr("zed@example.com"))
        .await;
    assert!(
        matches!(
            &r,
            Err(DirectoryError::Invalid(_)) | Err(DirectoryError::NotFound(_))
        ),
        "an alias of an alias must be refused: {r:?}"
    );

    d.remove_alias(&addr("zed@example.com"))
        .await
        .expect("remove alias");
    assert!(
        d.lookup(&addr("zed@example.com"))
            .await
            .expect("lookup")
            .is_none()
    );
    assert_err(
        d.remove_alias(&addr("zed@example.com")).await,
        "not_found",
        "zed@example.com",
    );
    assert_err(
        d.remove_alias(&addr("a@example.com")).await,
        "invalid",
        "a@example.com",
    );
    assert!(
        d.lookup(&addr("a@example.com"))
            .await
            .expect("lookup")
            .is_some(),
        "refusing rm of an account as alias kept it"
    );
}

pub async fn update_account(d: Arc<dyn Directory>) {
    basic(&*d).await;
    d.add_account(&new_account("a@example.com", "c1"))
        .await
        .expect("add");
    let a = addr("a@example.com");
    let got = d
        .update_account(
            &a,
            &AccountChange {
                password: Some(Some(
                    "{SHA256-CRYPT}$5$TUXudF3KUSW3UnbM$qsPy82s8sxWuWu6bd06f7SxSmhflWzbZvOLV7ZKyvb3"
                        .into(),
                )),
                quota: Some(1 << 20),
                ..Default::default()
            },
        )
        .await
        .expect("update");
    assert_eq!(got.quota, 1 << 20);
    assert_eq!(got.state, AccountState::Active, "unchanged fields stay");
    assert_eq!(got.cluster, "c1");
    assert!(
        got.password
            .as_deref()
            .is_some_and(|p| p.starts_with("{SHA256-CRYPT}$5$"))
    );

    let got = d
        .update_account(
            &a,
            &AccountChange {
                state: Some(AccountState::Suspended),
                cluster: Some("c2".into()),
                ..Default::default()
            },
        )
        .await
        .expect("update");
    assert_eq!(
        (got.state, got.cluster.as_str(), got.quota),
        (AccountState::Suspended, "c2", 1 << 20)
    );
    let got = d
        .update_account(
            &a,
            &AccountChange {
                password: Some(None),
                ..Default::default()
            },
        )
        .await
        .expect("remove password");
    assert_eq!(got.password, None);
    let stored = d.lookup(&a).await.expect("lookup").expect("found");
    assert_eq!(stored, got, "update returns what is stored");

    assert_err(
        d.update_account(
            &a,
            &AccountChange {
                cluster: Some("c9".into()),
                ..Default::default()
            },
        )
        .await,
        "not_found",
        "c9",
    );
    assert_err(
        d.update_account(
            &addr("ghost@example.com"),
            &AccountChange {
                quota: Some(1),
                ..Default::default()
            },
        )
        .await,
        "not_found",
        "ghost@example.com",
    );
    d.add_alias(&addr("al@example.com"), &a)
        .await
        .expect("alias");
    let r = d
        .update_account(
            &addr("al@example.com"),
            &AccountChange {
                quota: Some(1),
                ..Default::default()
            },
        )
        .await;
    assert_err(r, "not_found", "al@example.com");
}

pub async fn remove_account(d: Arc<dyn Directory>) {
    basic(&*d).await;
    d.add_account(&new_account("a@example.com", "c1"))
        .await
        .expect("add");
    d.add_account(&new_account("b@example.com", "c1"))
        .await
        .expect("add");
    d.add_alias(&addr("al@example.com"), &addr("a@example.com"))
        .await
        .expect("alias");
    assert_err(
        d.remove_account(&addr("al@example.com")).await,
        "not_found",
        "al@example.com",
    );
    d.remove_account(&addr("a@example.com"))
        .await
        .expect("remove");
    assert!(
        d.lookup(&addr("a@example.com"))
            .await
            .expect("lookup")
            .is_none()
    );
    assert!(
        d.lookup(&addr("al@example.com"))
            .await
            .expect("lookup")
            .is_none(),
        "aliases go with the account"
    );
    assert_err(
        d.remove_account(&addr("a@example.com")).await,
        "not_found",
        "a@example.com",
    );
    d.add_account(&new_account("al@example.com", "c2"))
        .await
        .expect("a freed alias can become an account");
    assert!(
        d.lookup(&addr("b@example.com"))
            .await
            .expect("lookup")
            .is_some(),
        "others untouched"
    );
}

pub async fn listing(d: Arc<dyn Directory>) {
    basic(&*d).await;
    for a in [
        "zz@example.com",
        "aa@example.org",
        "mm@example.com",
        "bb@example.com",
    ] {
        d.add_account(&new_account(a, "c1")).await.expect("add");
    }
    d.add_alias(&addr("y@example.com"), &addr("mm@example.com"))
        .await
        .expect("alias");
    d.add_alias(&addr("x@example.com"), &addr("mm@example.com"))
        .await
        .expect("alias");
    let all: Vec<String> = d
        .accounts(None)
        .await
        .expect("list")
        .iter()
        .map(|a| a.address.to_string())
        .collect();
    assert_eq!(
        all,
        [
            "aa@example.org",
            "bb@example.com",
            "mm@example.com",
            "zz@example.com"
        ]
    );
    let com = d.accounts(Some(&dom("example.com"))).await.expect("list");
    let names: Vec<&str> = com.iter().map(|a| a.address.as_str()).collect();
    assert_eq!(
        names,
        ["bb@example.com", "mm@example.com", "zz@example.com"]
    );
    let mm = com
        .iter()
        .find(|a| a.address.as_str() == "mm@example.com")
        .expect("mm");
    let aliases: Vec<&str> = mm.aliases.iter().map(|a| a.as_str()).collect();
    assert_eq!(
        aliases,
        ["x@example.com", "y@example.com"],
        "listed accounts carry their aliases"
    );
    assert!(
        d.accounts(Some(&dom("example.net")))
            .await
            .expect("list")
            .is_empty()
    );
}

fn node(id: &str, port: u16) -> Node {
    Node {
        id: id.into(),
        imap: Some(format!("127.0.0.1:{port}")),
        pop3: None,
        lmtp: Some(format!("[::1]:{}", port + 1)),
        http: None,
        internal: Some(format!("node-{id}.internal:{}", port + 2)),
    }
}

pub async fn clusters_and_nodes(d: Arc<dyn Directory>) {
    assert!(d.clusters().await.expect("list").is_empty());
    d.add_cluster("c2", ClusterState::Closed, 3)
        .await
        .expect("add");
    d.add_cluster("c1", ClusterState::Open, 1)
        .await
        .expect("add");
    assert_err(
        d.add_cluster("c1", ClusterState::Open, 1).await,
        "conflict",
        "c1",
    );
    assert_err(
        d.add_cluster("../etc", ClusterState::Open, 1).await,
        "invalid",
        "../etc",
    );
    d.add_node("c1", &node("n2", 2000)).await.expect("node");
    d.add_node("c1", &node("n1", 1000)).await.expect("node");
    assert_err(d.add_node("c1", &node("n1", 3000)).await, "conflict", "n1");
    assert_err(d.add_node("c9", &node("n1", 3000)).await, "not_found", "c9");
    let mut bad = node("n3", 4000);
    bad.imap = Some("no-port".into());
    assert_err(d.add_node("c1", &bad).await, "invalid", "no-port");

    let cs = d.clusters().await.expect("list");
    let ids: Vec<&str> = cs.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["c1", "c2"]);
    assert_eq!(cs[1].state, ClusterState::Closed);
    assert_eq!(cs[1].weight, 3);
    assert_eq!(
        cs[0].nodes,
        vec![node("n1", 1000), node("n2", 2000)],
        "nodes sorted, fields intact"
    );
    assert!(cs[1].nodes.is_empty());
    assert_eq!(d.cluster("c1").await.expect("get").expect("c1"), cs[0]);
    assert!(d.cluster("c9").await.expect("get").is_none());

    d.update_cluster("c2", Some(ClusterState::Draining), None)
        .await
        .expect("state");
    d.update_cluster("c2", None, Some(7)).await.expect("weight");
    let c2 = d.cluster("c2").await.expect("get").expect("c2");
    assert_eq!((c2.state, c2.weight), (ClusterState::Draining, 7));
    assert_err(
        d.update_cluster("c9", Some(ClusterState::Open), None).await,
        "not_found",
        "c9",
    );

    assert_err(d.remove_cluster("c1").await, "invalid", "c1");
    d.remove_node("c1", "n1").await.expect("rm node");
    assert_err(d.remove_node("c1", "n1").await, "not_found", "n1");
    d.remove_node("c1", "n2").await.expect("rm node");
    d.remove_cluster("c1").await.expect("rm cluster");
    assert_err(d.remove_cluster("c1").await, "not_found", "c1");

    d.add_domain(&dom("example.com")).await.expect("domain");
    d.add_account(&new_account("a@example.com", "c2"))
        .await
        .expect("account");
    assert_err(d.remove_cluster("c2").await, "invalid", "c2");
}

pub async fn account_counts(d: Arc<dyn Directory>) {
    basic(&*d).await;
    d.add_cluster("c3", ClusterState::Open, 1)
        .await
        .expect("c3");
    for i in 0..5 {
        d.add_account(&new_account(&format!("u{i}@example.com"), "c1"))
            .await
            .expect("add");
    }
    for i in 0..2 {
        d.add_account(&new_account(&format!("v{i}@example.org"), "c2"))
            .await
            .expect("add");
    }
    d.add_alias(&addr("al@example.com"), &addr("u0@example.com"))
        .await
        .expect("alias");
    let counts = d.account_counts().await.expect("counts");
    assert_eq!(counts.get("c1"), Some(&5));
    assert_eq!(counts.get("c2"), Some(&2), "aliases are not accounts");
    assert_eq!(counts.get("c3").copied().unwrap_or(0), 0);
}

pub async fn hashes_stored_verbatim(d: Arc<dyn Directory>) {
    basic(&*d).await;
    let hashes = [
        "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$A9eSqgprLaIlNeXjgtEDaA$jxyArAVwcb2kCCjgJXeqDbdHDFcDkjLrLai2+M48eSE",
        "{SHA512-CRYPT}$6$akqTtQFzRdl2iele$LAd/FKX9gfHWe31KfsDSePAVirhzn2pkCXtFZR2iTxwI1QoudOjyPXaQhk501p0t6tpf1CiqhAh/2S/x8.vQV.",
        "{BLF-CRYPT}$2y$05$XWzLMMOcHI7M5FHKmHSM1uf9ribU7RGRm5qbBqi865LPfbUYFcLpC",
        "{SSHA}3vn/9kWETgHqErQG5T4hn50Hu6mmatuT",
        "{PLAIN}p'a\"s s;--%_*()\\",
    ];
    for (i, h) in hashes.iter().enumerate() {
        let mut a = new_account(&format!("h{i}@example.com"), "c1");
        a.password = Some((*h).into());
        d.add_account(&a).await.expect("add");
        let got = d.lookup(&a.address).await.expect("lookup").expect("found");
        assert_eq!(got.password.as_deref(), Some(*h));
        assert!(
            shared::password::verify(b"secret", h).is_ok(),
            "{h} still parses"
        );
    }
}

pub async fn metacharacters_are_literal(d: Arc<dyn Directory>) {
    basic(&*d).await;
    // Characters with a meaning in SQL (' % _ ;) or LDAP filters (* ( ) \)
    // that are legal in a local part must match only themselves.
    for a in [
        "ab@example.com",
        "o'hara@example.com",
        "100%@example.com",
        "a_b@example.com",
        "x*y@example.com",
        "{t}@example.com",
    ] {
        d.add_account(&new_account(a, "c1")).await.expect(a);
    }
    for (query, want) in [
        ("o'hara@example.com", Some("o'hara@example.com")),
        ("100%@example.com", Some("100%@example.com")),
        ("a_b@example.com", Some("a_b@example.com")),
        ("x*y@example.com", Some("x*y@example.com")),
        ("{t}@example.com", Some("{t}@example.com")),
        ("a*@example.com", None),
        ("*@example.com", None),
        ("a%@example.com", None),
        ("a_@example.com", None),
        ("o'h%@example.com", None),
        ("x*@example.com", None),
    ] {
        let got = d
            .lookup(&addr(query))
            .await
            .expect(query)
            .map(|a| a.address.to_string());
        assert_eq!(got.as_deref(), want, "lookup {query}");
    }
    d.remove_account(&addr("100%@example.com"))
        .await
        .expect("rm");
    assert!(
        d.lookup(&addr("a_b@example.com"))
            .await
            .expect("lookup")
            .is_some(),
        "rm of 100% removed only itself"
    );
    assert_eq!(d.accounts(None).await.expect("list").len(), 5);
}

pub async fn many_accounts(d: Arc<dyn Directory>) {
    basic(&*d).await;
    // More than slapd's default size limit (500) and sqlx's statement batches.
    let n = 620;
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..4 {
        let d = d.clone();
        tasks.spawn(async move {
            for i in (w..n).step_by(4) {
                let c = if i % 3 == 0 { "c2" } else { "c1" };
                d.add_account(&new_account(&format!("user{i:04}@example.com"), c))
                    .await
                    .expect("add");
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("worker");
    }
    let all = d.accounts(None).await.expect("list");
    assert_eq!(all.len(), n);
    assert!(
        all.windows(2).all(|w| w[0].address < w[1].address),
        "sorted"
    );
    let counts = d.account_counts().await.expect("counts");
    assert_eq!(
        counts.get("c2").copied(),
        Some((0..n).filter(|i| i % 3 == 0).count() as u64)
    );
    assert_eq!(counts.values().sum::<u64>(), n as u64);
}
