//! AUTHORIZATION: CAPA, logins of every kind and their limits.

use super::*;

#[tokio::test]
async fn capa_and_quit_before_login() {
    let f = fixture(quick()).await;
    let r = f.talk(TRUSTED, "capa\r\nQUIT\r\nNOOP\r\n").await;
    assert_eq!(
        r,
        [
            "+OK Capability list follows",
            "TOP",
            "UIDL",
            "RESP-CODES",
            "AUTH-RESP-CODE",
            "PIPELINING",
            "USER",
            "SASL PLAIN",
            "IMPLEMENTATION Tandem",
            ".",
            "+OK Logging out.",
        ]
    );
}

#[tokio::test]
async fn passwords_in_the_clear_only_from_trusted_networks() {
    let f = fixture(quick()).await;
    let plain = encode_plain("", ALICE, b"secret");
    let r = f
        .talk(
            OUTSIDE,
            &format!("CAPA\r\nUSER {ALICE}\r\nPASS secret\r\nAUTH PLAIN {plain}\r\nAUTH\r\nSTLS\r\nQUIT\r\n"),
        )
        .await;
    let capa_end = r.iter().position(|l| l == ".").unwrap();
    assert!(
        !r[..capa_end]
            .iter()
            .any(|l| l == "USER" || l.starts_with("SASL")),
        "{r:?}"
    );
    let refused = "-ERR [AUTH] Plaintext authentication disallowed on non-secure connections.";
    assert_eq!(
        &r[capa_end + 1..],
        [
            refused,
            refused,
            refused,
            "+OK",
            ".",
            "-ERR STLS is not available.",
            "+OK Logging out.",
        ]
    );
    assert_eq!(f.logins("ok"), 0);
}

#[tokio::test]
async fn auth_plain_with_initial_response_continuation_and_proxy() {
    let f = with_three().await;
    // Initial response.
    let mut c = f.open(TRUSTED).await;
    let tok = encode_plain("", ALICE, b"secret");
    assert_eq!(c.cmd(&format!("AUTH PLAIN {tok}")).await, "+OK Logged in.");
    assert_eq!(c.cmd("STAT").await, "+OK 3 88");
    assert_eq!(c.cmd("QUIT").await, "+OK Logging out.");
    // Continuation, after one cancelled attempt.
    let mut c = f.open(TRUSTED).await;
    assert_eq!(c.cmd("AUTH").await, "+OK");
    assert_eq!(c.multi().await, ["PLAIN"]);
    assert_eq!(c.cmd("AUTH PLAIN").await, "+ ");
    assert_eq!(c.cmd("*").await, "-ERR Authentication aborted by client.");
    assert_eq!(c.cmd("auth plain").await, "+ ");
    assert_eq!(c.cmd(&tok).await, "+OK Logged in.");
    assert_eq!(c.cmd("QUIT").await, "+OK Logging out.");
    // A frontend acting for the user.
    let mut c = f.open(TRUSTED).await;
    let tok = encode_plain(ALICE, "proxy", b"proxy-secret");
    assert_eq!(c.cmd(&format!("AUTH PLAIN {tok}")).await, "+OK Logged in.");
    assert_eq!(c.cmd("QUIT").await, "+OK Logging out.");
    // Not from outside, and not as someone else.
    let mut c = f.open(TRUSTED).await;
    let tok = encode_plain("bob@example.com", ALICE, b"secret");
    assert_eq!(
        c.cmd(&format!("AUTH PLAIN {tok}")).await,
        "-ERR [AUTH] Authentication failed."
    );
    assert_eq!(c.cmd("AUTH PLAIN !!!").await, "-ERR [AUTH] invalid base64.");
    assert_eq!(
        c.cmd("AUTH CRAM-MD5").await,
        "-ERR Unsupported authentication mechanism."
    );
    assert_eq!(f.logins("ok"), 3);
}

#[tokio::test]
async fn failed_logins_are_slow_and_close_the_connection_at_the_limit() {
    let f = fixture(Pop3Config {
        auth_failure_delay: Duration::from_millis(200),
        max_auth_failures: 3,
        ..Pop3Config::default()
    })
    .await;
    let start = tokio::time::Instant::now();
    let r = f
        .talk(
            TRUSTED,
            "USER alice@example.com\r\nPASS wrong\r\nUSER bob@example.com\r\nPASS x\r\nPASS y\r\nUSER alice@example.com\r\nPASS wrong\r\nUSER alice@example.com\r\nPASS secret\r\n",
        )
        .await;
    assert!(
        start.elapsed() >= Duration::from_millis(600),
        "three delays"
    );
    assert_eq!(
        r,
        [
            "+OK",
            "-ERR [AUTH] Authentication failed.",
            "+OK",
            "-ERR [AUTH] Authentication failed.",
            "-ERR No username given.",
            "+OK",
            "-ERR [AUTH] Authentication failed.",
        ],
        "closed after the third failure"
    );
    assert_eq!(f.logins("failed"), 3);
}

#[tokio::test]
async fn a_suspended_account_is_told_only_with_the_right_password() {
    let f = fixture(quick()).await;
    let r = f
        .talk(
            TRUSTED,
            "USER gone@example.com\r\nPASS wrong\r\nUSER gone@example.com\r\nPASS secret\r\nQUIT\r\n",
        )
        .await;
    assert_eq!(
        r,
        [
            "+OK",
            "-ERR [AUTH] Authentication failed.",
            "+OK",
            "-ERR [AUTH] Account is suspended.",
            "+OK Logging out.",
        ]
    );
    assert_eq!(f.logins("suspended"), 1);
}

#[tokio::test]
async fn a_second_session_is_in_use_until_the_first_ends() {
    let f = with_three().await;
    let mut a = f.open(TRUSTED).await;
    a.login().await;
    let mut b = f.open(TRUSTED).await;
    assert_eq!(b.cmd(&format!("USER {ALICE}")).await, "+OK");
    assert_eq!(
        b.cmd("PASS secret").await,
        "-ERR [IN-USE] Mailbox is locked by another POP3 session."
    );
    assert_eq!(a.cmd("QUIT").await, "+OK Logging out.");
    assert!(a.rest().await.is_empty());
    b.login().await;
    assert_eq!(f.logins("in_use"), 1);
}

#[tokio::test]
async fn limits_on_commands_before_login_and_bad_commands() {
    let f = fixture(Pop3Config {
        max_commands_before_auth: 3,
        ..quick()
    })
    .await;
    let r = f.talk(TRUSTED, "CAPA\r\nNOOP\r\nFOO\r\nSTAT\r\n").await;
    assert_eq!(
        &r[r.len() - 3..],
        [
            "-ERR Not logged in yet.",
            "-ERR Unknown command.",
            "-ERR Too many commands before login.",
        ]
    );

    let f = with_three().await;
    let mut input = format!("USER {ALICE}\r\nPASS secret\r\n");
    for _ in 0..19 {
        input.push_str("RETR 9\r\n");
    }
    input.push_str("NOOP\r\n"); // a good command resets the count
    for _ in 0..25 {
        input.push_str("XYZ\r\n");
    }
    let r = f.talk(TRUSTED, &input).await;
    assert_eq!(r[21], "+OK");
    assert_eq!(r.len(), 2 + 19 + 1 + 20 + 1, "{r:?}");
    assert_eq!(r.last().unwrap(), "-ERR Too many bad commands.");
}

#[tokio::test]
async fn long_lines_and_binary_junk_get_errors_and_the_session_goes_on() {
    let f = with_three().await;
    let long = "X".repeat(10_000);
    let r = f
        .talk(
            TRUSTED,
            &format!(
                "{long}\r\n\0\0\0\r\nRETRé 1\r\nUSER {ALICE}\r\nPASS secret\r\nSTAT\r\nQUIT\r\n"
            ),
        )
        .await;
    assert_eq!(
        r,
        [
            "-ERR Line too long.",
            "-ERR Unknown command.",
            "-ERR Unknown command.",
            "+OK",
            "+OK Logged in.",
            "+OK 3 88",
            "+OK Logging out.",
        ]
    );
}
