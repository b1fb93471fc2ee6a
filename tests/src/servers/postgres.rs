//! PostgreSQL for tests, reached at `postgres://postgres@127.0.0.1:PORT/DB`
//! with trust authentication.
//!
//! - PostgreSQL refuses to run as root, so when the tests run as root,
//!   `initdb` and `postgres` run as the `postgres` system user that Debian's
//!   package creates, and its data directory belongs to that user.
//! - `initdb` runs once per test process into a template that each instance
//!   copies: copying takes a fraction of the time.
//! - [`Postgres::stop`] and the parent-death signal are an immediate shutdown
//!   (`SIGQUIT`): for the data it is a crash, recovered from the WAL on the
//!   next start, but unlike `SIGKILL` it also removes the server's System V
//!   shared memory segment, which would otherwise leak with every instance.
//! - Durability is traded for speed where only a machine crash could lose
//!   data: `fsync` and `full_page_writes` are off. `synchronous_commit` stays
//!   on, or a commit could still sit in shared memory when the server is
//!   stopped, and vanish.

use std::fs;
use std::os::unix::fs::chown;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{Context, anyhow};
use rustix::process::Signal;

use super::{
    InstanceDir, Process, copy_tree, find_binary, free_port, missing, process_dir, run,
    running_as_root, system_user, unique_name,
};

const SUPERUSER: &str = "postgres";
const INSTALL: &str = "the Debian package `postgresql` (apt-get install postgresql)";

/// A PostgreSQL server with its own data directory and port; killed, and its
/// directory removed, on drop.
pub struct Postgres {
    install: &'static Install,
    /// Declared before `dir`: fields drop in order, and the server must be
    /// gone before its directory is removed.
    process: Option<Process>,
    dir: InstanceDir,
    port: u16,
}

/// The shared server of this test process, started on first use. It is never
/// dropped: it stops when the test process exits.
///
/// # Panics
/// If the server cannot start; the message says why.
pub fn shared() -> &'static Postgres {
    static SHARED: OnceLock<Postgres> = OnceLock::new();
    SHARED.get_or_init(|| {
        Postgres::start().unwrap_or_else(|e| panic!("cannot start the shared PostgreSQL: {e:#}"))
    })
}

impl Postgres {
    /// Starts a server in a fresh data directory on a free loopback port.
    pub fn start() -> anyhow::Result<Postgres> {
        let install = install()?;
        let template = template(install)?;
        let dir = InstanceDir::create("postgres")?;
        copy_tree(template, &dir.path().join("data"))?;
        let mut server = Postgres {
            install,
            process: None,
            dir,
            port: free_port()?,
        };
        server.start_again()?;
        Ok(server)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of database `db`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{db}", self.port)
    }

    /// The instance's directory: `data/` (which also holds the socket) and
    /// `postgres.log`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Creates a database with a name unique in this process; returns its URL.
    pub fn new_database(&self) -> anyhow::Result<String> {
        let name = unique_name("db");
        self.query("postgres", &format!("CREATE DATABASE {name}"))?;
        Ok(self.url(&name))
    }

    /// Runs SQL in database `db` with `psql` as the superuser; returns the
    /// rows unaligned (`|` between columns), without headers.
    pub fn query(&self, db: &str, sql: &str) -> anyhow::Result<String> {
        let out = run(self.psql(db).arg("-c").arg(sql), None)?;
        Ok(out.trim_end().to_owned())
    }

    /// Shuts the server down immediately (a crash for the data, see the
    /// module docs) and keeps its data directory.
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.stop();
        }
    }

    /// Starts the server again on the same port and data; returns once it
    /// answers queries. Does nothing if it is running.
    pub fn start_again(&mut self) -> anyhow::Result<()> {
        if self.process.is_some() {
            return Ok(());
        }
        let mut process = Process::spawn(
            "postgres",
            self.server_command(),
            &self.dir.path().join("postgres.log"),
            Signal::QUIT,
        )?;
        process.wait_ready(|| self.query("postgres", "SELECT 1").is_ok())?;
        self.process = Some(process);
        Ok(())
    }

    fn server_command(&self) -> Command {
        let data = self.dir.path().join("data");
        let mut cmd = self.install.command(&self.install.postgres);
        cmd.current_dir(self.dir.path())
            .arg("-D")
            .arg(&data)
            .arg("-k")
            .arg(&data)
            .arg("-p")
            .arg(self.port.to_string());
        for setting in [
            "listen_addresses=127.0.0.1",
            "fsync=off",
            "full_page_writes=off",
            "shared_buffers=16MB",
            // One shared server serves many tests, each with its own pool.
            "max_connections=200",
        ] {
            cmd.arg("-c").arg(setting);
        }
        cmd
    }

    fn psql(&self, db: &str) -> Command {
        let mut cmd = Command::new(&self.install.psql);
        cmd.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .args(["-h", "127.0.0.1", "-U", SUPERUSER, "-d", db])
            .arg("-p")
            .arg(self.port.to_string())
            .env("PGCONNECT_TIMEOUT", "5");
        cmd
    }
}

/// Where PostgreSQL is installed, and whom it must run as.
struct Install {
    postgres: PathBuf,
    initdb: PathBuf,
    psql: PathBuf,
    /// The `postgres` user's uid and gid when the tests run as root.
    run_as: Option<(u32, u32)>,
}

impl Install {
    fn find() -> anyhow::Result<Install> {
        let postgres = find_binary(&["postgres"], &version_dirs())
            .ok_or_else(|| missing("`postgres` (in PATH or /usr/lib/postgresql/*/bin)", INSTALL))?;
        let bin_dir = fs::canonicalize(&postgres)?
            .parent()
            .map(Path::to_owned)
            .unwrap_or_default();
        let sibling = |name: &str| {
            Some(bin_dir.join(name))
                .filter(|path| path.is_file())
                .or_else(|| find_binary(&[name], &[]))
                .ok_or_else(|| missing(&format!("`{name}`"), INSTALL))
        };
        Ok(Install {
            initdb: sibling("initdb")?,
            psql: sibling("psql")?,
            postgres,
            run_as: running_as_root()
                .then(|| postgres_user("postgres"))
                .transpose()?,
        })
    }

    /// A command for a server program, as the right user.
    fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid);
        }
        cmd
    }
}

fn install() -> anyhow::Result<&'static Install> {
    static INSTALL: OnceLock<Result<Install, String>> = OnceLock::new();
    INSTALL
        .get_or_init(|| Install::find().map_err(|e| format!("{e:#}")))
        .as_ref()
        .map_err(|e| anyhow!("{e}"))
}

/// `/usr/lib/postgresql/<version>/bin`, newest version first.
fn version_dirs() -> Vec<PathBuf> {
    let root = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<u32> = fs::read_dir(root)
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    versions.sort_unstable_by(|a, b| b.cmp(a));
    versions
        .into_iter()
        .map(|v| root.join(v.to_string()).join("bin"))
        .collect()
}

/// The uid and gid of a system user.
fn postgres_user(name: &str) -> anyhow::Result<(u32, u32)> {
    system_user(name).with_context(|| {
        format!(
            "PostgreSQL refuses to run as root, and there is no `{name}` user to run it as; \
             it comes with {INSTALL}"
        )
    })
}

/// A data directory made by `initdb` once per test process.
fn template(install: &Install) -> anyhow::Result<&'static Path> {
    static TEMPLATE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    TEMPLATE
        .get_or_init(|| initdb(install).map_err(|e| format!("{e:#}")))
        .as_deref()
        .map_err(|e| anyhow!("{e}"))
}

fn initdb(install: &Install) -> anyhow::Result<PathBuf> {
    let dir = process_dir()?.join("postgres-template");
    fs::create_dir(&dir).with_context(|| format!("create {}", dir.display()))?;
    if let Some((uid, gid)) = install.run_as {
        chown(&dir, Some(uid), Some(gid))?;
    }
    let data = dir.join("data");
    let mut cmd = install.command(&install.initdb);
    cmd.current_dir(&dir)
        .arg("-D")
        .arg(&data)
        .args(["-U", SUPERUSER, "-A", "trust", "-E", "UTF8", "--no-locale"])
        // 1 MiB WAL segments instead of 16: less to copy per instance.
        .args(["--wal-segsize=1", "--no-sync"]);
    run(&mut cmd, None).context("initdb")?;
    Ok(data)
}
