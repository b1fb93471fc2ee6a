//! The `tandem` provisioning commands, run as an operator runs them: the real
//! binary, a config file, stdin, stdout, exit codes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

struct Env {
    _tmp: tempfile::TempDir,
    config: PathBuf,
}

impl Env {
    fn new() -> Env {
        let tmp = tempfile::tempdir().expect("tmp");
        let config = tmp.path().join("tandem.yaml");
        let db = tmp.path().join("data/locator.db");
        std::fs::write(
            &config,
            format!("locator:\n  sql:\n    url: sqlite://{}\n", db.display()),
        )
        .expect("config");
        Env { _tmp: tmp, config }
    }

    fn dir(&self) -> &Path {
        self.config.parent().expect("parent")
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_stdin(args, "")
    }

    fn run_stdin(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tandem"))
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tandem");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin.as_bytes())
            .expect("write stdin");
        child.wait_with_output().expect("wait")
    }

    /// Runs and insists on success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "tandem {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        serde_json::from_str(&self.ok(&all)).expect("json output")
    }
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn provisioning_round_trip() {
    let e = Env::new();
    e.ok(&["domain", "add", "Example.COM"]);
    e.ok(&["cluster", "add", "c1"]);
    e.ok(&["cluster", "add", "c2", "--weight", "3"]);
    e.ok(&[
        "cluster",
        "node",
        "add",
        "c1",
        "n1",
        "--imap",
        "127.0.0.1:1143",
        "--lmtp",
        "127.0.0.1:1024",
    ]);

    let out = e.run_stdin(
        &[
            "--json",
            "account",
            "add",
            "Alice@Example.com",
            "--password-stdin",
            "--quota",
            "2G",
        ],
        "s3cret\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let acc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(acc["address"], "alice@example.com");
    assert_eq!(acc["quota"], 2u64 << 30);
    assert_eq!(acc["password_scheme"], "ARGON2ID");
    assert!(acc.get("password").is_none(), "the hash is never printed");

    // Placement: c2 has weight 3, so it takes the next three accounts.
    for i in 0..4 {
        e.ok(&["account", "add", &format!("u{i}@example.com")]);
    }
    let clusters = e.json(&["cluster", "list"]);
    let accounts = |id: &str| {
        clusters
            .as_array()
            .expect("list")
            .iter()
            .find(|c| c["id"] == id)
            .expect("cluster")["accounts"]
            .clone()
    };
    assert_eq!(accounts("c1"), 2);
    assert_eq!(accounts("c2"), 3);

    e.ok(&[
        "alias",
        "add",
        "postmaster@example.com",
        "alice@example.com",
    ]);
    let shown = e.json(&["account", "show", "POSTMASTER@example.com"]);
    assert_eq!(shown["address"], "alice@example.com");
    assert_eq!(
        shown["aliases"],
        serde_json::json!(["postmaster@example.com"])
    );

    e.ok(&["account", "suspend", "alice@example.com"]);
    assert_eq!(
        e.json(&["account", "show", "alice@example.com"])["state"],
        "suspended"
    );
    e.ok(&["account", "resume", "alice@example.com"]);
    e.ok(&["account", "quota", "alice@example.com", "0"]);
    assert_eq!(
        e.json(&["account", "show", "alice@example.com"])["quota"],
        0
    );
    e.ok(&[
        "account",
        "passwd",
        "alice@example.com",
        "--password-hash",
        "{SSHA}3vn/9kWETgHqErQG5T4hn50Hu6mmatuT",
    ]);
    assert_eq!(
        e.json(&["account", "show", "alice@example.com"])["password_scheme"],
        "SSHA"
    );

    let list = e.ok(&["account", "list", "--cluster", "c1"]);
    assert!(list.starts_with("ADDRESS"), "{list}");
    assert_eq!(list.lines().count(), 3, "header and two accounts: {list}");

    e.ok(&["alias", "rm", "postmaster@example.com"]);
    e.ok(&["account", "rm", "alice@example.com"]);
    assert_eq!(code(&e.run(&["account", "show", "alice@example.com"])), 1);
}

#[test]
fn refusals_have_clear_messages_and_codes() {
    let e = Env::new();
    e.ok(&["domain", "add", "example.com"]);
    let cases: &[(&[&str], i32, &str)] = &[
        (&["account", "add", "../x@example.com"], 64, "not allowed"),
        (&["account", "add", "a/b@example.com"], 64, "'/'"),
        (&["account", "add", "a@exa_mple.com"], 64, "exa_mple.com"),
        (&["account", "add", "nobody"], 64, "no '@'"),
        (&["account", "add", "a@example.com"], 64, "no open cluster"),
        (
            &["account", "add", "a@example.com", "--cluster", "c9"],
            1,
            "cluster c9 does not exist",
        ),
        (
            &["account", "add", "a@other.org", "--cluster", "c9"],
            1,
            "tandem domain add other.org",
        ),
        (
            &[
                "account",
                "add",
                "a@example.com",
                "--password-hash",
                "{MD5}abc",
            ],
            64,
            "unknown password scheme",
        ),
        (
            &["account", "add", "a@example.com", "--quota", "12X"],
            2,
            "12X",
        ),
        (&["cluster", "add", "Bad/Id"], 1, "Bad/Id"),
        (
            &["cluster", "set-state", "c1", "gone"],
            64,
            "open, closed, draining",
        ),
        (&["domain", "add", "example.com"], 1, "already exists"),
        (&["domain", "rm", "nowhere.org"], 1, "nowhere.org"),
    ];
    for (args, want, needle) in cases {
        let out = e.run(args);
        assert_eq!(code(&out), *want, "tandem {args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(needle),
            "tandem {args:?}: {:?} lacks {needle:?}",
            stderr(&out)
        );
    }
    let out = e.run_stdin(
        &["account", "add", "a@example.com", "--password-stdin"],
        "\n",
    );
    assert_eq!(code(&out), 64, "empty password refused: {}", stderr(&out));
}

#[test]
fn bad_config_names_file_and_field() {
    let e = Env::new();
    std::fs::write(
        &e.config,
        "locator:\n  sql:\n    url: oracle://x\n    max_connections: 0\n",
    )
    .expect("write");
    let out = e.run(&["config", "check"]);
    assert_eq!(code(&out), 64);
    let err = stderr(&out);
    assert!(
        err.contains("tandem.yaml")
            && err.contains("locator.sql.url")
            && err.contains("locator.sql.max_connections"),
        "{err}"
    );
    std::fs::write(&e.config, "locator:\n  sqll: {}\n").expect("write");
    let err = stderr(&e.run(&["domain", "list"]));
    assert!(err.contains("tandem.yaml") && err.contains("sqll"), "{err}");
}

#[test]
fn import_is_idempotent_and_reports_lines() {
    let e = Env::new();
    e.ok(&["cluster", "add", "c1"]);
    let file = e.dir().join("users.jsonl");
    std::fs::write(
        &file,
        concat!(
            "{\"address\":\"a@example.com\",\"password\":\"{PLAIN}x\",\"aliases\":[\"info@example.com\"]}\n",
            "# a comment\n",
            "{\"address\":\"b@example.org\",\"quota\":1024,\"state\":\"suspended\"}\n",
            "{\"address\":\"../evil@example.com\"}\n",
            "{\"address\":\"c@example.com\",\"password\":\"{NOPE}x\"}\n",
            "not json\n",
        ),
    )
    .expect("write");
    let f = file.to_str().expect("path");
    let first = e.run(&[
        "--json",
        "account",
        "import",
        f,
        "--format",
        "jsonl",
        "--create-domains",
    ]);
    assert_eq!(code(&first), 65, "{}", stderr(&first));
    let r: serde_json::Value = serde_json::from_slice(&first.stdout).expect("json");
    assert_eq!(
        (r["added"].as_u64(), r["failed"].as_u64()),
        (Some(2), Some(3))
    );
    let lines: Vec<u64> = r["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|x| x["line"].as_u64().expect("line"))
        .collect();
    assert_eq!(lines, [4, 5, 6]);

    let second = e.run(&[
        "--json",
        "account",
        "import",
        f,
        "--format",
        "jsonl",
        "--create-domains",
    ]);
    let r: serde_json::Value = serde_json::from_slice(&second.stdout).expect("json");
    assert_eq!(
        (
            r["added"].as_u64(),
            r["updated"].as_u64(),
            r["unchanged"].as_u64()
        ),
        (Some(0), Some(0), Some(2))
    );
    assert_eq!(
        e.json(&["account", "show", "info@example.com"])["address"],
        "a@example.com"
    );
    assert_eq!(
        e.json(&["account", "show", "b@example.org"])["state"],
        "suspended"
    );
}
