//! Dovecot's imaptest scripted compliance tests against Tandem's IMAP server.
//!
//! Opt-in: imaptest is not part of this repository. Build it outside the repo
//! (see README.md), then run
//!
//! ```text
//! IMAPTEST=/path/to/imaptest/src/imaptest IMAPTEST_TESTS=/path/to/imaptest/src/tests \
//!     cargo test -p tests --test imaptest -- --ignored --nocapture
//! ```
//!
//! It runs every script in `$IMAPTEST_TESTS` once and fails when fewer test
//! groups pass than [`PASSING_FLOOR`], so that a regression shows; raise the
//! floor when the IMAP server gets better.

use std::io::{Read, Seek};
use std::process::Command;
use std::time::Duration;

use tokio::time::Instant;

use tests::backend::Backend;

/// Test groups that passed when this test was written: 39 of 71, 10 failed,
/// 22 skipped for extensions Tandem does not announce (imaptest release-2.3,
/// 0de0dbf, with upstream's fix 9ea2bdd so that skipped groups are counted
/// as skipped; without it they count as passed).
const PASSING_FLOOR: u32 = 59;

const HOW_TO_BUILD: &str = "set IMAPTEST to the imaptest binary and IMAPTEST_TESTS to its \
     src/tests directory. Build it outside this repository as README.md describes: \
     apt-get install dovecot-dev autoconf automake libtool pkg-config; take \
     https://github.com/dovecot/imaptest branch release-2.3 (for Dovecot 2.3) with the two \
     small patches README.md lists; ./autogen.sh && ./configure \
     --with-dovecot=/usr/lib/dovecot && make";

/// "71 test groups: 10 failed, 22 skipped due to missing capabilities"
/// as (groups, failed, skipped).
fn summary(stdout: &str) -> Option<(u32, u32, u32)> {
    let line = stdout.lines().find(|l| l.contains(" test groups: "))?;
    let numbers: Vec<u32> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    match numbers[..] {
        [groups, failed, skipped] => Some((groups, failed, skipped)),
        _ => None,
    }
}

#[test]
#[ignore = "needs Dovecot's imaptest: set IMAPTEST and IMAPTEST_TESTS"]
fn imaptest_scripted_tests() {
    let (Some(imaptest), Some(scripts)) = (
        std::env::var_os("IMAPTEST"),
        std::env::var_os("IMAPTEST_TESTS"),
    ) else {
        panic!("{HOW_TO_BUILD}");
    };

    let b = Backend::start().expect("start the backend");
    b.add_account("imaptest@example.com", "imaptest-pass")
        .expect("account");
    let imap = b.imap_addr();

    let mut test_arg = std::ffi::OsString::from("test=");
    test_arg.push(&scripts);
    // Output to a file, not a pipe: a long report must not block imaptest.
    let mut output = tempfile::tempfile().expect("temporary file");
    let mut child = Command::new(&imaptest)
        .arg(format!("host={}", imap.ip()))
        .arg(format!("port={}", imap.port()))
        .args(["user=imaptest@example.com", "pass=imaptest-pass"])
        .arg(test_arg)
        .stdout(output.try_clone().expect("clone file"))
        .stderr(output.try_clone().expect("clone file"))
        .spawn()
        .unwrap_or_else(|e| panic!("run {imaptest:?}: {e}; {HOW_TO_BUILD}"));

    // imaptest waits on a server that stops answering; don't wait forever.
    let deadline = Instant::now() + Duration::from_secs(600);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for imaptest") {
            break status.to_string();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break "killed after 10 minutes".to_owned();
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut bytes = Vec::new();
    output.rewind().expect("rewind");
    output
        .read_to_end(&mut bytes)
        .expect("read imaptest output");
    let report = String::from_utf8_lossy(&bytes);
    println!("{report}");

    let (groups, failed, skipped) = summary(&report).unwrap_or_else(|| {
        panic!(
            "no \"N test groups: F failed, S skipped\" summary from imaptest ({status}); \
             backend log:\n{}",
            b.log_tail()
        )
    });
    let passed = groups - failed - skipped;
    println!(
        "imaptest: {passed} of {groups} test groups passed \
         ({failed} failed, {skipped} skipped for missing capabilities)"
    );
    assert!(
        passed >= PASSING_FLOOR,
        "imaptest: only {passed} of {groups} test groups passed, fewer than the \
         {PASSING_FLOOR} that passed before: a regression (see the failures above)"
    );
}
