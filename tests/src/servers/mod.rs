//! Real PostgreSQL, MariaDB and slapd servers for tests, each in its own
//! process and temporary directory, listening on an ephemeral loopback port.
//!
//! The API is synchronous (plain `std::process`, and the servers' own clients
//! `psql`, `mariadb`, `ldapadd`, `ldapsearch` for admin work) so that it works
//! the same from `#[test]` and `#[tokio::test]`.
//!
//! How servers are kept from outliving the test process:
//!
//! - Every server is spawned with `PR_SET_PDEATHSIG`, so the kernel signals it
//!   when its parent dies, even if the test process panics, aborts or is
//!   killed, and even for the `shared()` instances, which live in statics and
//!   are never dropped.
//! - The parent-death signal fires when the parent *thread* exits, not the
//!   parent process, and the test harness runs each test on a thread of its
//!   own. So all servers are spawned from one long-lived thread (the
//!   `spawner` module), which exits only with the process.
//! - A credential change (`setuid`) clears the parent-death signal, so it is
//!   set in `pre_exec`, which the standard library runs after switching user
//!   (PostgreSQL, which refuses to run as root, runs as `postgres` when the
//!   tests run as root).
//! - Each server leads its own process group, so that stopping it also stops
//!   anything it forked.
//!
//! Data lives in `$TMPDIR/tandem-servers-<pid>/<server>_<n>`. An instance
//! removes its directory when dropped; the directories of test processes that
//! are gone (and never ran destructors) are removed by the next test process
//! that starts a server, see [`remove_stale_dirs`].

pub mod dovecot;
pub mod etcd;
pub mod haproxy;
pub mod mariadb;
pub mod postfix;
pub mod postgres;
pub mod slapd;
pub mod smtp_sink;

pub use dovecot::Dovecot;
pub use etcd::EtcdCluster;
pub use haproxy::Haproxy;
pub use mariadb::MariaDb;
pub use postfix::Postfix;
pub use postgres::Postgres;
pub use slapd::Slapd;
pub use smtp_sink::SmtpSink;

use std::ffi::OsStr;
use std::fs::{self, DirBuilder, File};
use std::io::Write;
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

use tokio::time::Instant;

use anyhow::{Context, anyhow, bail};
use rustix::process::{Pid, Signal, kill_process, kill_process_group};

/// How long a server may take to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a server may take to exit after its stop signal before it and its
/// process group get `SIGKILL`.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(25);
const DIR_PREFIX: &str = "tandem-servers-";

/// A running server process whose stdout and stderr go to a log file.
pub(crate) struct Process {
    name: &'static str,
    child: Child,
    log: PathBuf,
    /// Sent by [`Process::stop`], on drop, and by the kernel when this test
    /// process exits.
    stop_signal: Signal,
}

impl Process {
    /// Spawns `cmd` in its own process group, appending its output to `log`.
    pub(crate) fn spawn(
        name: &'static str,
        mut cmd: Command,
        log: &Path,
        stop_signal: Signal,
    ) -> anyhow::Result<Process> {
        let out = File::options()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("open {}", log.display()))?;
        cmd.stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .process_group(0);
        let program = cmd.get_program().to_string_lossy().into_owned();
        let child = spawner::spawn(cmd, stop_signal).with_context(|| format!("spawn {program}"))?;
        Ok(Process {
            name,
            child,
            log: log.to_owned(),
            stop_signal,
        })
    }

    /// Polls `ready` until it returns true. Fails, with the end of the log,
    /// if the process exits first or [`READY_TIMEOUT`] passes.
    pub(crate) fn wait_ready(&mut self, mut ready: impl FnMut() -> bool) -> anyhow::Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{} exited ({status}) before accepting connections; end of {}:\n{}",
                    self.name,
                    self.log.display(),
                    log_tail(&self.log)
                );
            }
            if ready() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not accept connections within {} s; end of {}:\n{}",
                    self.name,
                    READY_TIMEOUT.as_secs(),
                    self.log.display(),
                    log_tail(&self.log)
                );
            }
            thread::sleep(POLL);
        }
    }

    /// Sends the stop signal and waits for the process to exit; if it has not
    /// after [`STOP_TIMEOUT`], kills its whole process group.
    pub(crate) fn stop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(None)) {
            return;
        }
        // Until it is reaped, the child's pid (and so its group id) cannot be
        // reused, so signalling the group here cannot hit a stranger.
        let pid = Pid::from_child(&self.child);
        if self.stop_signal != Signal::KILL {
            let _ = kill_process(pid, self.stop_signal);
            if self.exited_within(STOP_TIMEOUT) {
                return;
            }
        }
        let _ = kill_process_group(pid, Signal::KILL);
        let _ = self.child.wait();
    }

    /// `SIGKILL` to the process group, as a crash or the OOM killer would.
    pub(crate) fn kill(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = kill_process_group(Pid::from_child(&self.child), Signal::KILL);
            let _ = self.child.wait();
        }
    }

    /// The process id, e.g. to read its memory under `/proc`.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it has exited, and how.
    pub(crate) fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    fn exited_within(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return true;
            }
            thread::sleep(POLL);
        }
        false
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Spawns every server from one thread that lives as long as the process, so
/// that the parent-death signal fires only when the whole process goes.
mod spawner {
    // `pre_exec` is unsafe because its closure runs between fork and exec,
    // where only async-signal-safe calls are allowed. Ours makes two system
    // calls and does not allocate; there is no safe std API for this.
    #![allow(unsafe_code)]

    use std::io;
    use std::os::unix::process::CommandExt;
    use std::process::{Child, Command};
    use std::sync::OnceLock;
    use std::sync::mpsc::{self, Sender};
    use std::thread;

    use rustix::io::Errno;
    use rustix::process::{Pid, Signal, getpid, getppid, set_parent_process_death_signal};

    struct Request {
        cmd: Command,
        on_parent_death: Signal,
        reply: Sender<io::Result<Child>>,
    }

    static QUEUE: OnceLock<Sender<Request>> = OnceLock::new();

    /// Spawns `cmd` on the spawner thread; the child gets `on_parent_death`
    /// when this process exits.
    pub(super) fn spawn(cmd: Command, on_parent_death: Signal) -> io::Result<Child> {
        let gone = || io::Error::other("the server spawner thread is gone");
        let (reply, answer) = mpsc::channel();
        QUEUE
            .get_or_init(start)
            .send(Request {
                cmd,
                on_parent_death,
                reply,
            })
            .map_err(|_| gone())?;
        answer.recv().map_err(|_| gone())?
    }

    fn start() -> Sender<Request> {
        let (queue, requests) = mpsc::channel::<Request>();
        // If the thread cannot start, `requests` is dropped and every `spawn`
        // reports that the spawner is gone.
        let _ = thread::Builder::new()
            .name("server-spawner".into())
            .spawn(move || {
                for Request {
                    mut cmd,
                    on_parent_death,
                    reply,
                } in requests
                {
                    let _ = reply.send(spawn_here(&mut cmd, on_parent_death));
                }
            });
        queue
    }

    fn spawn_here(cmd: &mut Command, on_parent_death: Signal) -> io::Result<Child> {
        let parent = getpid();
        // SAFETY: `die_with_parent` only makes the prctl and getppid system
        // calls, which are async-signal-safe, and does not allocate.
        unsafe {
            cmd.pre_exec(move || die_with_parent(parent, on_parent_death));
        }
        cmd.spawn()
    }

    fn die_with_parent(parent: Pid, signal: Signal) -> io::Result<()> {
        set_parent_process_death_signal(Some(signal))?;
        // The parent may have died between fork and prctl, in which case
        // nothing would ever send the signal.
        if getppid() != Some(parent) {
            return Err(Errno::SRCH.into());
        }
        Ok(())
    }
}

/// The directory of one server instance, removed with its contents on drop.
pub(crate) struct InstanceDir(PathBuf);

impl InstanceDir {
    /// Creates `$TMPDIR/tandem-servers-<pid>/<kind>_<n>`.
    pub(crate) fn create(kind: &str) -> anyhow::Result<InstanceDir> {
        let path = process_dir()?.join(unique_name(kind));
        make_dir(&path)?;
        Ok(InstanceDir(path))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for InstanceDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// This process's directory for server data, created on first use after
/// removing those of exited test processes.
pub(crate) fn process_dir() -> anyhow::Result<&'static Path> {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    DIR.get_or_init(|| {
        remove_stale_dirs();
        let dir = std::env::temp_dir().join(format!("{DIR_PREFIX}{}", std::process::id()));
        make_dir(&dir).map(|()| dir).map_err(|e| format!("{e:#}"))
    })
    .as_deref()
    .map_err(|e| anyhow!("{e}"))
}

/// Removes the `$TMPDIR/tandem-servers-<pid>` directories whose process no
/// longer exists, and returns them. Runs automatically before the first
/// server of a process starts.
pub fn remove_stale_dirs() -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            let pid: u32 = path
                .file_name()?
                .to_str()?
                .strip_prefix(DIR_PREFIX)?
                .parse()
                .ok()?;
            let gone = !Path::new(&format!("/proc/{pid}")).exists();
            (gone && fs::remove_dir_all(&path).is_ok()).then_some(path)
        })
        .collect()
}

/// Creates a directory readable and searchable by everyone: PostgreSQL runs
/// as another user when the tests run as root and must reach its data below.
fn make_dir(path: &Path) -> anyhow::Result<()> {
    DirBuilder::new()
        .mode(0o755)
        .create(path)
        .with_context(|| format!("create {}", path.display()))
}

/// `<prefix>_<n>`, unique within this process.
pub(crate) fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("{prefix}_{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A loopback port that was free a moment ago. Another process could take it
/// before the server binds it; the server then fails to start, with a log
/// that says so.
pub fn free_port() -> anyhow::Result<u16> {
    // Below Linux's ephemeral range (32768 up): a port the kernel picked
    // for us could, between our check and the server's bind, be taken by
    // the local end of any test's outgoing connection (a test makes
    // thousands). Spread by process and a counter so that parallel tests
    // and test binaries do not try the same ports.
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let base = 20_000 + (std::process::id() % 97) * 120;
    for _ in 0..200 {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = u16::try_from(base + n % (32_000 - base)).unwrap_or(20_000);
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return Ok(port);
        }
    }
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("bind 127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// Copies a directory tree with `cp -a`, which keeps owners and modes.
pub(crate) fn copy_tree(from: &Path, to: &Path) -> anyhow::Result<()> {
    run(Command::new("cp").arg("-a").arg(from).arg(to), None).map(drop)
}

/// The first of `names` found in `$PATH` or in `extra_dirs`.
pub(crate) fn find_binary(names: &[&str], extra_dirs: &[PathBuf]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<PathBuf> = std::env::split_paths(&path)
        .chain(extra_dirs.iter().cloned())
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .collect();
    names.iter().find_map(|name| {
        dirs.iter()
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}

/// Runs a client command to completion, feeding it `stdin`; returns its
/// stdout, or an error with the command line and its stderr.
pub(crate) fn run(cmd: &mut Command, stdin: Option<&str>) -> anyhow::Result<String> {
    let line = command_line(cmd);
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().with_context(|| format!("spawn `{line}`"))?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes())
            .with_context(|| format!("write to `{line}`"))?;
    }
    let out = child.wait_with_output()?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        // Some tools (mariadb-install-db) report errors on stdout.
        let stderr = String::from_utf8_lossy(&out.stderr);
        bail!(
            "`{line}` failed ({}):\n{}\n{}",
            out.status,
            stderr.trim(),
            stdout.trim()
        );
    }
    Ok(stdout)
}

fn command_line(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(OsStr::to_string_lossy)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The last lines of a server log, for error messages.
pub(crate) fn log_tail(log: &Path) -> String {
    const LINES: usize = 30;
    match fs::read(log) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(LINES)..].join("\n")
        }
        Err(e) => format!("(cannot read the log: {e})"),
    }
}

/// Whether this process runs as root, in which case some servers need to be
/// told which user to run as.
pub(crate) fn running_as_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// A system user's uid and gid, from /etc/passwd.
pub(crate) fn system_user(name: &str) -> anyhow::Result<(u32, u32)> {
    let passwd = fs::read_to_string("/etc/passwd").context("/etc/passwd")?;
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.first() == Some(&name))
        .and_then(|f| Some((f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?)))
        .ok_or_else(|| anyhow!("no user `{name}` in /etc/passwd"))
}

/// The error for a missing program, naming the packages that provide it.
pub(crate) fn missing(what: &str, install: &str) -> anyhow::Error {
    anyhow!("{what} not found: install {install}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_dirs_of_exited_processes_are_stale() {
        // pid 1 always exists; no pid is ever u32::MAX.
        let live = std::env::temp_dir().join(format!("{DIR_PREFIX}1"));
        let dead = std::env::temp_dir().join(format!("{DIR_PREFIX}{}", u32::MAX));
        let created_live = fs::create_dir(&live).is_ok();
        fs::create_dir_all(dead.join("data")).expect("create");
        remove_stale_dirs();
        let kept = live.exists();
        if created_live {
            fs::remove_dir(&live).expect("remove");
        }
        assert!(kept, "removed the directory of a live process");
        assert!(!dead.exists(), "kept the directory of an exited process");
    }

    #[test]
    fn binaries_are_found_in_path_in_order_of_preference() {
        let sh = find_binary(&["no-such-program-here", "sh"], &[]).expect("sh");
        assert_eq!(sh.file_name(), Some("sh".as_ref()));
        assert_eq!(find_binary(&["no-such-program-here"], &[]), None);
    }

    #[test]
    fn failed_commands_report_their_command_line_and_output() {
        let err = run(
            Command::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]),
            None,
        )
        .expect_err("exit 3")
        .to_string();
        assert!(
            err.contains("`sh -c echo out; echo err >&2; exit 3` failed"),
            "{err}"
        );
        assert!(err.contains("err") && err.contains("out"), "{err}");
        assert_eq!(
            run(&mut Command::new("cat"), Some("in")).expect("cat"),
            "in"
        );
    }

    #[test]
    fn log_tails_keep_the_last_lines() {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("log");
        let text: String = (1..=100).map(|n| format!("line {n}\n")).collect();
        fs::write(&log, text).expect("write");
        let tail = log_tail(&log);
        assert_eq!(tail.lines().count(), 30);
        assert!(
            tail.starts_with("line 71\n") && tail.ends_with("line 100"),
            "{tail}"
        );
    }
}
