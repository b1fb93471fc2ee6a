//! Bulk import of accounts, idempotent: running the same file twice changes
//! nothing the second time, and every line that cannot be applied is reported
//! with its number while the others go in.
//!
//! Two formats:
//! - `passwd`: Dovecot passwd-file lines, `address:{SCHEME}hash[:...]`; fields
//!   after the hash (uid, gid, home, extra fields) are ignored. `#` comments and
//!   blank lines are skipped.
//! - `jsonl`: one JSON object per line:
//!   `{"address": "...", "password": "{SCHEME}...", "cluster": "c1",
//!     "quota": 1073741824, "state": "active", "aliases": ["..."]}`;
//!   only `address` is required.
//!
//! An existing account is brought in line with the file (password, quota,
//! state, missing aliases); its cluster is never changed by an import, since
//! that would strand its mail on the old cluster.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use shared::{Address, Domain};

use crate::directory::Directory;
use crate::error::DirectoryError;
use crate::model::{AccountChange, AccountState, Cluster, NewAccount};
use crate::placement;

/// Longest line accepted; a passwd line with an Argon2 hash is ~200 bytes.
pub const MAX_LINE: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Passwd,
    JsonLines,
}

/// One account as a line describes it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    pub address: String,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub cluster: Option<String>,
    #[serde(default)]
    pub quota: Option<u64>,
    #[serde(default)]
    pub state: Option<AccountState>,
    #[serde(default)]
    pub aliases: Vec<String>,
}

/// What happened to one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Added,
    Updated,
    Unchanged,
    Skipped,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub added: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub failed: u64,
    /// Every line that was not applied.
    pub errors: Vec<LineError>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LineError {
    pub line: usize,
    pub error: String,
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Create domains that do not exist yet instead of failing their lines.
    pub create_domains: bool,
    /// Cluster for new accounts without one; otherwise placement decides.
    pub cluster: Option<String>,
}

/// Parses one line; `Ok(None)` for blank lines and comments.
pub fn parse_line(line: &str, format: Format) -> Result<Option<Record>, String> {
    if line.len() > MAX_LINE {
        return Err(format!("line is longer than {MAX_LINE} bytes"));
    }
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    match format {
        Format::JsonLines => serde_json::from_str(line)
            .map(Some)
            .map_err(|e| format!("bad JSON: {e}")),
        Format::Passwd => {
            let mut fields = line.splitn(3, ':');
            let address = fields.next().unwrap_or_default().to_owned();
            let password = fields.next().filter(|p| !p.is_empty()).map(str::to_owned);
            Ok(Some(Record {
                address,
                password,
                cluster: None,
                quota: None,
                state: None,
                aliases: Vec::new(),
            }))
        }
    }
}

/// Applies records to a directory, keeping placement balanced as it goes.
pub struct Importer {
    dir: Arc<dyn Directory>,
    opts: Options,
    clusters: Vec<Cluster>,
    counts: BTreeMap<String, u64>,
    domains: std::collections::BTreeSet<String>,
    pub report: Report,
}

impl Importer {
    pub async fn new(dir: Arc<dyn Directory>, opts: Options) -> Result<Self, DirectoryError> {
        let clusters = dir.clusters().await?;
        let counts = dir.account_counts().await?;
        let domains = dir
            .domains()
            .await?
            .into_iter()
            .map(|d| d.as_str().to_owned())
            .collect();
        Ok(Importer {
            dir,
            opts,
            clusters,
            counts,
            domains,
            report: Report::default(),
        })
    }

    /// Parses and applies one line, recording the outcome in the report.
    pub async fn line(&mut self, number: usize, text: &str, format: Format) -> Outcome {
        let result = match parse_line(text, format) {
            Ok(None) => return Outcome::Skipped,
            Ok(Some(rec)) => self.apply(&rec).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(o) => {
                match o {
                    Outcome::Added => self.report.added += 1,
                    Outcome::Updated => self.report.updated += 1,
                    Outcome::Unchanged => self.report.unchanged += 1,
                    Outcome::Skipped => {}
                }
                o
            }
            Err(e) => {
                self.report.failed += 1;
                self.report.errors.push(LineError {
                    line: number,
                    error: e,
                });
                Outcome::Skipped
            }
        }
    }

    async fn apply(&mut self, rec: &Record) -> Result<Outcome, String> {
        let address = Address::parse(&rec.address).map_err(|e| e.to_string())?;
        if let Some(p) = &rec.password {
            shared::password::check_format(p).map_err(|e| format!("{address}: {e}"))?;
        }
        let aliases = rec
            .aliases
            .iter()
            .map(|a| Address::parse(a).map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        self.ensure_domain(address.domain()).await?;
        for a in &aliases {
            self.ensure_domain(a.domain()).await?;
        }
        let existing = self.dir.lookup(&address).await.map_err(|e| e.to_string())?;
        let mut outcome = match existing {
            Some(acc) if acc.address != address => {
                return Err(format!("{address} is an alias of {}", acc.address));
            }
            Some(acc) => {
                if let Some(c) = &rec.cluster
                    && *c != acc.cluster
                {
                    return Err(format!(
                        "{address} lives on cluster {}, not {c}; an import does not move accounts",
                        acc.cluster
                    ));
                }
                let change = AccountChange {
                    password: rec
                        .password
                        .clone()
                        .filter(|p| Some(p) != acc.password.as_ref())
                        .map(Some),
                    state: rec.state.filter(|s| *s != acc.state),
                    quota: rec.quota.filter(|q| *q != acc.quota),
                    cluster: None,
                };
                if change == AccountChange::default() {
                    Outcome::Unchanged
                } else {
                    self.dir
                        .update_account(&address, &change)
                        .await
                        .map_err(|e| e.to_string())?;
                    Outcome::Updated
                }
            }
            None => {
                let cluster = self.place(rec.cluster.as_deref())?;
                let new = NewAccount {
                    address: address.clone(),
                    password: rec.password.clone(),
                    cluster: cluster.clone(),
                    state: rec.state.unwrap_or(AccountState::Active),
                    quota: rec.quota.unwrap_or(0),
                };
                self.dir
                    .add_account(&new)
                    .await
                    .map_err(|e| e.to_string())?;
                *self.counts.entry(cluster).or_insert(0) += 1;
                Outcome::Added
            }
        };
        for alias in &aliases {
            match self.dir.add_alias(alias, &address).await {
                Ok(()) => {
                    if outcome == Outcome::Unchanged {
                        outcome = Outcome::Updated;
                    }
                }
                // Already pointing here: nothing to do. Pointing elsewhere: report.
                Err(DirectoryError::Conflict(msg)) => {
                    let owner = self.dir.lookup(alias).await.map_err(|e| e.to_string())?;
                    if owner.map(|o| o.address) != Some(address.clone()) {
                        return Err(msg);
                    }
                }
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(outcome)
    }

    async fn ensure_domain(&mut self, domain: &str) -> Result<(), String> {
        if self.domains.contains(domain) {
            return Ok(());
        }
        if !self.opts.create_domains {
            return Err(format!(
                "domain {domain} does not exist (add it, or import with --create-domains)"
            ));
        }
        let d = Domain::parse(domain).map_err(|e| e.to_string())?;
        match self.dir.add_domain(&d).await {
            Ok(()) | Err(DirectoryError::Conflict(_)) => {
                self.domains.insert(domain.to_owned());
                Ok(())
            }
            Err(e) => Err(e.to_string()),
        }
    }

    fn place(&self, wanted: Option<&str>) -> Result<String, String> {
        if let Some(c) = wanted.or(self.opts.cluster.as_deref()) {
            return Ok(c.to_owned());
        }
        placement::choose(&self.clusters, &self.counts)
            .map(|c| c.id.clone())
            .ok_or_else(|| {
                "no open cluster to place the account on (tandem cluster add ...)".to_owned()
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_passwd_lines() {
        let r = parse_line(
            "alice@example.com:{SHA512-CRYPT}$6$x$y:1000:1000::/home/a::",
            Format::Passwd,
        )
        .unwrap()
        .unwrap();
        assert_eq!(r.address, "alice@example.com");
        assert_eq!(r.password.as_deref(), Some("{SHA512-CRYPT}$6$x$y"));
        let r = parse_line("bob@example.com", Format::Passwd)
            .unwrap()
            .unwrap();
        assert_eq!(r.password, None);
        assert_eq!(parse_line("  # comment", Format::Passwd), Ok(None));
        assert_eq!(parse_line("", Format::Passwd), Ok(None));
    }

    #[test]
    fn parses_json_lines() {
        let r = parse_line(
            r#"{"address":"a@b.c","quota":5,"state":"suspended","aliases":["x@b.c"]}"#,
            Format::JsonLines,
        )
        .unwrap()
        .unwrap();
        assert_eq!(r.quota, Some(5));
        assert_eq!(r.state, Some(AccountState::Suspended));
        assert_eq!(r.aliases, vec!["x@b.c".to_string()]);
        for bad in [
            r#"{"address": 1}"#,
            r#"{"adress":"a@b.c"}"#,
            "{",
            r#"{"address":"a@b.c","state":"gone"}"#,
        ] {
            assert!(parse_line(bad, Format::JsonLines).is_err(), "{bad}");
        }
        assert!(parse_line(&"x".repeat(MAX_LINE + 1), Format::JsonLines).is_err());
    }
}
