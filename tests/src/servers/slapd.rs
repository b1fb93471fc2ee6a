//! slapd (OpenLDAP) for tests, at `ldap://127.0.0.1:PORT`, holding one mdb
//! database for `dc=tandem,dc=test`.
//!
//! - The configuration is an old-style `slapd.conf` passed with `-f`: one
//!   file, written in full at start, with nothing to bootstrap.
//! - Schemas: core, cosine, inetorgperson, nis and misc (`mailLocalAddress`,
//!   `mailHost`) from the system, and Tandem's own `locator/ldap/tandem.schema`
//!   from this repository, so tests see the schema we ship.
//! - `-d none` keeps slapd in the foreground, so it stays our child, and logs
//!   only what is always logged, such as configuration errors.
//! - The database may grow to 1 GiB (room for 100,000 accounts) and does not
//!   sync: a killed slapd loses nothing that way, only a machine crash would.
//! - [`Slapd::stop`] is `SIGKILL`; LMDB needs no recovery.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{Context, anyhow, bail};
use rustix::process::Signal;

use super::{InstanceDir, Process, find_binary, free_port, missing, run, unique_name};

const SUFFIX: &str = "dc=tandem,dc=test";
const ADMIN_DN: &str = "cn=admin,dc=tandem,dc=test";
const ADMIN_PASSWORD: &str = "tandem-admin-password";
const INSTALL: &str =
    "the Debian packages `slapd` and `ldap-utils` (apt-get install slapd ldap-utils)";
const SYSTEM_SCHEMAS: [&str; 5] = ["core", "cosine", "inetorgperson", "nis", "misc"];

/// A slapd with its own database directory and port; killed, and its
/// directory removed, on drop.
pub struct Slapd {
    install: &'static Install,
    /// Declared before `dir`: fields drop in order, and the server must be
    /// gone before its directory is removed.
    process: Option<Process>,
    dir: InstanceDir,
    port: u16,
}

/// The shared server of this test process, started on first use. It is never
/// dropped: it is killed when the test process exits. Give each test its own
/// subtree with [`Slapd::new_base`].
///
/// # Panics
/// If the server cannot start; the message says why.
pub fn shared() -> &'static Slapd {
    static SHARED: OnceLock<Slapd> = OnceLock::new();
    SHARED.get_or_init(|| {
        Slapd::start().unwrap_or_else(|e| panic!("cannot start the shared slapd: {e:#}"))
    })
}

impl Slapd {
    /// Starts a server with an empty database (just the suffix entry) on a
    /// free loopback port.
    pub fn start() -> anyhow::Result<Slapd> {
        let install = install()?;
        let dir = InstanceDir::create("slapd")?;
        fs::create_dir(dir.path().join("data"))?;
        let config = dir.path().join("slapd.conf");
        fs::write(&config, install.config(dir.path()))
            .with_context(|| format!("write {}", config.display()))?;
        let mut server = Slapd {
            install,
            process: None,
            dir,
            port: free_port()?,
        };
        server.start_again()?;
        server.add(&format!(
            "dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\n\
             dc: tandem\no: Tandem tests\n"
        ))?;
        Ok(server)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    /// The suffix of the database: `dc=tandem,dc=test`.
    pub fn suffix(&self) -> &str {
        SUFFIX
    }

    /// The database's rootdn, allowed everything.
    pub fn admin_dn(&self) -> &str {
        ADMIN_DN
    }

    pub fn admin_password(&self) -> &str {
        ADMIN_PASSWORD
    }

    /// The instance's directory: `slapd.conf`, `data/` and `slapd.log`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Creates an `organizationalUnit` with a name unique in this process
    /// under the suffix; returns its DN, a base for one test's entries.
    pub fn new_base(&self) -> anyhow::Result<String> {
        let ou = unique_name("test");
        let dn = format!("ou={ou},{SUFFIX}");
        self.add(&format!(
            "dn: {dn}\nobjectClass: organizationalUnit\nou: {ou}\n"
        ))?;
        Ok(dn)
    }

    /// Adds the entries of an LDIF text with `ldapadd`, bound as the admin.
    pub fn add(&self, ldif: &str) -> anyhow::Result<()> {
        let mut cmd = self.client(&self.install.ldapadd);
        run(&mut cmd, Some(ldif)).map(drop)
    }

    /// Searches the subtree at `base` with `ldapsearch`, bound as the admin;
    /// returns the entries found as LDIF.
    pub fn search(&self, base: &str, filter: &str, attrs: &[&str]) -> anyhow::Result<String> {
        let mut cmd = self.client(&self.install.ldapsearch);
        cmd.args(["-LLL", "-o", "ldif-wrap=no", "-b", base, filter])
            .args(attrs);
        run(&mut cmd, None)
    }

    /// Kills the server (`SIGKILL`) and keeps its database.
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.stop();
        }
    }

    /// Starts the server again on the same port and database; returns once
    /// it answers searches. Does nothing if it is running.
    pub fn start_again(&mut self) -> anyhow::Result<()> {
        if self.process.is_some() {
            return Ok(());
        }
        let mut cmd = Command::new(&self.install.slapd);
        cmd.current_dir(self.dir.path())
            .args(["-d", "none", "-f"])
            .arg(self.dir.path().join("slapd.conf"))
            .arg("-h")
            .arg(format!("{}/", self.url()));
        let log = self.dir.path().join("slapd.log");
        let mut process = Process::spawn("slapd", cmd, &log, Signal::KILL)?;
        process.wait_ready(|| self.answers())?;
        self.process = Some(process);
        Ok(())
    }

    /// Whether an anonymous search of the root DSE succeeds.
    fn answers(&self) -> bool {
        let mut cmd = Command::new(&self.install.ldapsearch);
        cmd.env("LDAPNOINIT", "1")
            .args(["-x", "-H", &self.url(), "-b", "", "-s", "base", "-LLL"])
            .args(["-o", "nettimeout=5", "1.1"]);
        run(&mut cmd, None).is_ok()
    }

    /// An `ldapadd` or `ldapsearch` bound as the admin. `LDAPNOINIT` keeps
    /// the machine's ldap.conf and the user's ldaprc (TLS, default base) out.
    fn client(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("LDAPNOINIT", "1")
            .args([
                "-x",
                "-H",
                &self.url(),
                "-D",
                ADMIN_DN,
                "-w",
                ADMIN_PASSWORD,
            ])
            .args(["-o", "nettimeout=5"]);
        cmd
    }
}

/// Where OpenLDAP is installed.
struct Install {
    slapd: PathBuf,
    ldapadd: PathBuf,
    ldapsearch: PathBuf,
    schema_dir: PathBuf,
    tandem_schema: PathBuf,
    /// Where back_mdb is, when slapd loads it as a module (as Debian's does).
    module_dir: Option<PathBuf>,
}

impl Install {
    fn find() -> anyhow::Result<Install> {
        let find = |name: &str| {
            find_binary(&[name], &[]).ok_or_else(|| missing(&format!("`{name}`"), INSTALL))
        };
        let schema_dir = ["/etc/ldap/schema", "/etc/openldap/schema"]
            .map(PathBuf::from)
            .into_iter()
            .find(|dir| dir.join("core.schema").is_file())
            .ok_or_else(|| missing("the OpenLDAP schemas (/etc/ldap/schema)", INSTALL))?;
        let tandem_schema =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../locator/ldap/tandem.schema");
        if !tandem_schema.is_file() {
            bail!("Tandem's LDAP schema is not at {}", tandem_schema.display());
        }
        Ok(Install {
            slapd: find("slapd")?,
            ldapadd: find("ldapadd")?,
            ldapsearch: find("ldapsearch")?,
            schema_dir,
            tandem_schema,
            module_dir: ["/usr/lib/ldap", "/usr/lib64/openldap", "/usr/lib/openldap"]
                .map(PathBuf::from)
                .into_iter()
                .find(|dir| dir.join("back_mdb.la").is_file() || dir.join("back_mdb.so").is_file()),
        })
    }

    /// The slapd.conf of an instance in `dir`.
    fn config(&self, dir: &Path) -> String {
        let mut conf = String::new();
        for schema in SYSTEM_SCHEMAS {
            let path = self.schema_dir.join(format!("{schema}.schema"));
            conf += &format!("include \"{}\"\n", path.display());
        }
        conf += &format!("include \"{}\"\n", self.tandem_schema.display());
        if let Some(modules) = &self.module_dir {
            conf += &format!(
                "modulepath \"{}\"\nmoduleload back_mdb\n",
                modules.display()
            );
        }
        conf += &format!(
            "pidfile \"{dir}/slapd.pid\"\n\
             argsfile \"{dir}/slapd.args\"\n\
             \n\
             database mdb\n\
             maxsize 1073741824\n\
             dbnosync\n\
             suffix \"{SUFFIX}\"\n\
             rootdn \"{ADMIN_DN}\"\n\
             rootpw \"{ADMIN_PASSWORD}\"\n\
             directory \"{dir}/data\"\n\
             index objectClass eq\n\
             index mail,mailLocalAddress,mailHost,associatedDomain eq\n",
            dir = dir.display()
        );
        conf
    }
}

fn install() -> anyhow::Result<&'static Install> {
    static INSTALL: OnceLock<Result<Install, String>> = OnceLock::new();
    INSTALL
        .get_or_init(|| Install::find().map_err(|e| format!("{e:#}")))
        .as_ref()
        .map_err(|e| anyhow!("{e}"))
}
