//! MariaDB for tests, reached at `mysql://tandem:<password>@127.0.0.1:PORT/DB`.
//!
//! - Authentication is real (no `--skip-grant-tables`): clients log in over
//!   TCP as [`MariaDb::USER`] with a password, checked by
//!   `mysql_native_password`, which sqlx and every MySQL client speak. Admin
//!   work goes through the Unix socket in the instance directory as `root`,
//!   which `--auth-root-authentication-method=normal` leaves without a password.
//! - `--skip-name-resolve`: users are matched by address (`127.0.0.1`) with
//!   no DNS lookups.
//! - `mariadb-install-db` runs once per test process into a template that each
//!   instance copies.
//! - [`MariaDb::stop`] is `SIGKILL`: InnoDB recovers on the next start.
//! - `--no-defaults` keeps the machine's my.cnf out, so the settings Debian
//!   puts there (utf8mb4) are given here; durability is traded for speed.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{Context, anyhow};
use rustix::process::Signal;

use super::{
    InstanceDir, Process, copy_tree, find_binary, free_port, missing, process_dir, run,
    running_as_root, unique_name,
};

const INSTALL: &str = "the Debian packages `mariadb-server` and `mariadb-client` \
                       (apt-get install mariadb-server mariadb-client)";

/// Settings shared by `mariadb-install-db` and the server: InnoDB refuses
/// some changes (or redoes work) when they differ between the two.
const INNODB: [&str; 5] = [
    "--innodb-buffer-pool-size=64M",
    "--innodb-log-file-size=16M",
    "--innodb-flush-log-at-trx-commit=2",
    "--innodb-doublewrite=0",
    "--innodb-temp-data-file-path=ibtmp1:1M:autoextend",
];

/// A MariaDB server with its own data directory and port; killed, and its
/// directory removed, on drop.
pub struct MariaDb {
    install: &'static Install,
    /// Declared before `dir`: fields drop in order, and the server must be
    /// gone before its directory is removed.
    process: Option<Process>,
    dir: InstanceDir,
    port: u16,
}

/// The shared server of this test process, started on first use. It is never
/// dropped: it is killed when the test process exits.
///
/// # Panics
/// If the server cannot start; the message says why.
pub fn shared() -> &'static MariaDb {
    static SHARED: OnceLock<MariaDb> = OnceLock::new();
    SHARED.get_or_init(|| {
        MariaDb::start().unwrap_or_else(|e| panic!("cannot start the shared MariaDB: {e:#}"))
    })
}

impl MariaDb {
    /// The user in [`MariaDb::url`], allowed everything from 127.0.0.1.
    pub const USER: &str = "tandem";
    pub const PASSWORD: &str = "tandem-test-password";

    /// Starts a server in a fresh data directory on a free loopback port.
    pub fn start() -> anyhow::Result<MariaDb> {
        let install = install()?;
        let template = template(install)?;
        let dir = InstanceDir::create("mariadb")?;
        copy_tree(template, &dir.path().join("data"))?;
        let mut server = MariaDb {
            install,
            process: None,
            dir,
            port: free_port()?,
        };
        server.start_again()?;
        server.create_user()?;
        Ok(server)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of database `db`, with [`MariaDb::USER`]'s password.
    pub fn url(&self, db: &str) -> String {
        format!(
            "mysql://{}:{}@127.0.0.1:{}/{db}",
            Self::USER,
            Self::PASSWORD,
            self.port
        )
    }

    /// The instance's directory: `data/`, `mariadbd.sock` and `mariadbd.log`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Creates a database with a name unique in this process; returns its URL.
    pub fn new_database(&self) -> anyhow::Result<String> {
        let name = unique_name("db");
        self.query("mysql", &format!("CREATE DATABASE {name}"))?;
        Ok(self.url(&name))
    }

    /// Runs SQL in database `db` with the `mariadb` client as root; returns
    /// the rows tab-separated, without headers.
    pub fn query(&self, db: &str, sql: &str) -> anyhow::Result<String> {
        let mut cmd = Command::new(&self.install.client);
        cmd.arg("--no-defaults")
            .arg(format!("--socket={}", self.socket().display()))
            .args(["--user=root", "--batch", "--skip-column-names"])
            .args(["--connect-timeout=5", "--database", db, "--execute", sql]);
        Ok(run(&mut cmd, None)?.trim_end().to_owned())
    }

    /// Kills the server (`SIGKILL`) and keeps its data directory.
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
            "mariadbd",
            self.server_command(),
            &self.dir.path().join("mariadbd.log"),
            Signal::KILL,
        )?;
        process.wait_ready(|| self.query("mysql", "SELECT 1").is_ok())?;
        self.process = Some(process);
        Ok(())
    }

    fn create_user(&self) -> anyhow::Result<()> {
        let user = format!("'{}'@'127.0.0.1'", Self::USER);
        self.query(
            "mysql",
            &format!(
                "CREATE USER {user} IDENTIFIED VIA mysql_native_password \
                 USING PASSWORD('{}'); \
                 GRANT ALL PRIVILEGES ON *.* TO {user} WITH GRANT OPTION",
                Self::PASSWORD
            ),
        )
        .map(drop)
        .context("create the MariaDB test user")
    }

    fn server_command(&self) -> Command {
        let dir = self.dir.path();
        let mut cmd = Command::new(&self.install.server);
        cmd.current_dir(dir)
            .arg("--no-defaults")
            .arg(format!("--datadir={}", dir.join("data").display()))
            .arg(format!("--socket={}", self.socket().display()))
            .arg(format!("--pid-file={}", dir.join("mariadbd.pid").display()))
            .arg(format!("--tmpdir={}", dir.display()))
            .arg(format!("--port={}", self.port))
            .args(["--bind-address=127.0.0.1", "--skip-name-resolve"])
            .args([
                "--character-set-server=utf8mb4",
                "--collation-server=utf8mb4_general_ci",
            ])
            .args(INNODB)
            .args(as_root());
        cmd
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("mariadbd.sock")
    }
}

/// mariadbd refuses to run as root unless told to.
fn as_root() -> Option<&'static str> {
    running_as_root().then_some("--user=root")
}

/// Where MariaDB is installed (older packages name the programs `mysql*`).
struct Install {
    server: PathBuf,
    install_db: PathBuf,
    client: PathBuf,
}

impl Install {
    fn find() -> anyhow::Result<Install> {
        let find = |names: &[&str]| {
            find_binary(names, &[]).ok_or_else(|| missing(&format!("`{}`", names[0]), INSTALL))
        };
        Ok(Install {
            server: find(&["mariadbd", "mysqld"])?,
            install_db: find(&["mariadb-install-db", "mysql_install_db"])?,
            client: find(&["mariadb", "mysql"])?,
        })
    }
}

fn install() -> anyhow::Result<&'static Install> {
    static INSTALL: OnceLock<Result<Install, String>> = OnceLock::new();
    INSTALL
        .get_or_init(|| Install::find().map_err(|e| format!("{e:#}")))
        .as_ref()
        .map_err(|e| anyhow!("{e}"))
}

/// A data directory made by `mariadb-install-db` once per test process.
fn template(install: &Install) -> anyhow::Result<&'static Path> {
    static TEMPLATE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    TEMPLATE
        .get_or_init(|| install_db(install).map_err(|e| format!("{e:#}")))
        .as_deref()
        .map_err(|e| anyhow!("{e}"))
}

fn install_db(install: &Install) -> anyhow::Result<PathBuf> {
    let dir = process_dir()?.join("mariadb-template");
    fs::create_dir(&dir).with_context(|| format!("create {}", dir.display()))?;
    let data = dir.join("data");
    let mut cmd = Command::new(&install.install_db);
    cmd.current_dir(&dir)
        .arg("--no-defaults")
        .arg(format!("--datadir={}", data.display()))
        .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
        .arg("--skip-name-resolve")
        .args(INNODB)
        .args(as_root());
    run(&mut cmd, None).context("mariadb-install-db")?;
    Ok(data)
}
