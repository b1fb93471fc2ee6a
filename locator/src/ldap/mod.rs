//! The LDAP directory: accounts, aliases and domains in an LDAP server
//! (RFC 4511), clusters and their nodes in a topology directory (the SQL
//! store Tandem manages itself).
//!
//! Layout under `base_dn` (what `tandem` creates; lookups accept any layout
//! the `account_filter` finds):
//!
//! ```text
//! ou=example.com,<base_dn>                 organizationalUnit + domainRelatedObject
//!   associatedDomain: example.com
//! mail=alice@example.com,ou=example.com,<base_dn>
//!   objectClass: inetOrgPerson, inetLocalMailRecipient, tandemAccount
//!   cn, sn: alice
//!   mail: alice@example.com                primary address
//!   mailLocalAddress: info@example.com     aliases (misc.schema)
//!   mailHost: c1                           home cluster id
//!   userPassword: {ARGON2ID}$argon2id$...  verbatim
//!   tandemAccountState: active             locator/ldap/tandem.schema
//!   tandemQuotaBytes: 0
//! ```
//!
//! LDAP has no transactions, so the one-namespace rule for addresses is
//! kept by checking before a change and checking again after it: a change
//! that raced another one onto the same address is undone and reported as a
//! conflict. Filters are built with RFC 4515 escaping and DNs with RFC 4514
//! escaping ([`filter`]), never by formatting raw values.

mod config;
mod entry;
pub mod filter;
mod find;
mod ops;
mod pool;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use ldap3::{LdapConnSettings, Mod, Scope};
use shared::config::{Problems, Validate};
use shared::{Address, Domain};

pub use config::{LdapAttributes, LdapConfig};
use entry::{account_attributes, new_entry, to_account};
use filter::{escape_dn_value, escape_value};
use find::{Owner, ambiguous, attr_name, no_account, no_domain, one, raced_error, taken};
use ops::Client;
use pool::{Connector, Manager, Pool};

use crate::directory::{Directory, Result};
use crate::error::DirectoryError;
use crate::model::{Account, AccountChange, Cluster, ClusterState, NewAccount, Node, check_id};

/// "No attributes" in a search request (RFC 4511 §4.5.1.8).
const NO_ATTRIBUTES: &str = "1.1";
const TANDEM_CLASS: &str = "tandemAccount";

/// Accounts in LDAP, topology elsewhere. See the module documentation.
pub struct LdapDirectory {
    cfg: LdapConfig,
    client: Client,
    /// Connections used only to bind as accounts (`auth_bind`), so a user's
    /// identity never leaks into the service connections.
    auth: Option<Pool>,
    topology: Arc<dyn Directory>,
    /// `account_filter` matching every account that has a primary address.
    every_account: String,
    attrs: Vec<String>,
}

impl LdapDirectory {
    /// Opens the directory and checks that the server answers, accepts the
    /// bind DN and has `base_dn`: what provisioning commands want.
    pub async fn connect(cfg: &LdapConfig, topology: Arc<dyn Directory>) -> Result<Self> {
        let dir = Self::connect_lazy(cfg, topology).await?;
        dir.check().await?;
        Ok(dir)
    }

    /// Opens the directory without contacting the server, so a daemon can
    /// start (and serve from its cache) while the server is down. Fails only
    /// on a bad config or an unreadable password or CA file.
    pub async fn connect_lazy(cfg: &LdapConfig, topology: Arc<dyn Directory>) -> Result<Self> {
        let mut problems = Problems::default();
        cfg.validate("ldap", &mut problems);
        if !problems.is_empty() {
            let list: Vec<String> = problems.into_vec().iter().map(|p| p.to_string()).collect();
            return Err(DirectoryError::Invalid(list.join("; ")));
        }
        let mut settings = LdapConnSettings::new().set_starttls(cfg.starttls);
        if let Some(path) = &cfg.tls_ca_file {
            settings = settings.set_config(pool::tls_config(path).await?);
        }
        let connector = Arc::new(Connector {
            url: cfg.url.clone(),
            settings,
            timeout: cfg.timeout,
        });
        let bind = (!cfg.bind_dn.is_empty())
            .then_some((cfg.bind_dn.clone(), cfg.read_bind_password().await?));
        let service = Manager {
            connector: connector.clone(),
            bind,
        };
        let auth = if cfg.auth_bind {
            let manager = Manager {
                connector,
                bind: None,
            };
            Some(pool::build(manager, cfg.pool_size, cfg.timeout)?)
        } else {
            None
        };
        let mail = attr_name(&cfg.attributes.mail);
        Ok(LdapDirectory {
            client: Client {
                pool: pool::build(service, cfg.pool_size, cfg.timeout)?,
                timeout: cfg.timeout,
            },
            auth,
            topology,
            every_account: format!("(&{}({mail}=*))", filter::any(&cfg.account_filter)),
            attrs: account_attributes(cfg),
            cfg: cfg.clone(),
        })
    }

    /// Checks that the server answers and that `base_dn` exists.
    pub async fn check(&self) -> Result<()> {
        let base = &self.cfg.base_dn;
        let found = self
            .client
            .search(
                base,
                Scope::Base,
                "(objectClass=*)",
                &[NO_ATTRIBUTES.into()],
                1,
            )
            .await?;
        if found.is_empty() {
            return Err(DirectoryError::Backend(format!(
                "ldap.base_dn {base} is not visible to the bind DN"
            )));
        }
        Ok(())
    }
}

#[async_trait]
impl Directory for LdapDirectory {
    fn kind(&self) -> &'static str {
        "ldap"
    }

    async fn lookup(&self, address: &Address) -> Result<Option<Account>> {
        let found = self.matching(address, 2).await?;
        match found.as_slice() {
            [] => Ok(None),
            [e] => to_account(e, &self.cfg).map(Some),
            many => Err(ambiguous(address, many)),
        }
    }

    async fn verify_by_bind(&self, account: &Account, password: &[u8]) -> Result<Option<bool>> {
        let Some(auth) = &self.auth else {
            return Ok(None);
        };
        // An empty simple-bind password is an unauthenticated bind (RFC 4513
        // §5.1.2), which servers may answer with success.
        if password.is_empty() {
            return Ok(Some(false));
        }
        let Ok(password) = std::str::from_utf8(password) else {
            return Ok(Some(false));
        };
        let dn = account.dn.as_deref().ok_or_else(|| {
            DirectoryError::Backend(format!("account {} has no DN to bind as", account.address))
        })?;
        let what = format!("bind as {dn}");
        for attempt in 1..=2 {
            let mut conn = pool::get(auth).await?;
            match conn
                .with_timeout(self.cfg.timeout)
                .simple_bind(dn, password)
                .await
            {
                Ok(res) => {
                    return match res.rc {
                        0 => Ok(Some(true)),
                        // invalidCredentials; inappropriateAuthentication (no
                        // password on the entry); unwillingToPerform (locked).
                        49 | 48 | 53 => Ok(Some(false)),
                        _ => Err(pool::from_result(&res, &what)),
                    };
                }
                Err(e) => {
                    if pool::is_connection_error(&e) {
                        drop(deadpool::managed::Object::take(conn));
                        if attempt == 1 && pool::never_sent(&e) {
                            continue;
                        }
                    }
                    return Err(pool::map_error(e, &what));
                }
            }
        }
        Err(DirectoryError::Unavailable(format!(
            "{what}: no usable connection"
        )))
    }

    async fn add_domain(&self, domain: &Domain) -> Result<()> {
        let d = domain.as_str();
        if self.domain_entry(d).await?.is_some() {
            return Err(DirectoryError::Conflict(format!(
                "domain {d} already exists"
            )));
        }
        let dn = format!("ou={},{}", escape_dn_value(d), self.cfg.base_dn);
        let attrs = vec![
            (
                "objectClass".to_owned(),
                ["top", "organizationalUnit", "domainRelatedObject"]
                    .map(String::from)
                    .into(),
            ),
            ("ou".to_owned(), one(d)),
            ("associatedDomain".to_owned(), one(d)),
        ];
        match self.client.add(&dn, attrs).await {
            Err(DirectoryError::Conflict(_)) => Err(DirectoryError::Conflict(format!(
                "domain {d} already exists (entry {dn})"
            ))),
            other => other,
        }
    }

    async fn remove_domain(&self, domain: &Domain) -> Result<()> {
        let d = domain.as_str();
        let entry = self
            .domain_entry(d)
            .await?
            .ok_or_else(|| DirectoryError::NotFound(format!("domain {d} does not exist")))?;
        let f = format!(
            "(&{}({}=*@{}))",
            self.every_account,
            attr_name(&self.attr().mail),
            escape_value(d)
        );
        let accounts = self
            .client
            .search_all(
                &self.cfg.base_dn,
                Scope::Subtree,
                &f,
                &[NO_ATTRIBUTES.into()],
            )
            .await?
            .len();
        let aliases = self.count_aliases_in(d).await?;
        if accounts > 0 || aliases > 0 {
            return Err(DirectoryError::Invalid(format!(
                "domain {d} still has {accounts} accounts and {aliases} aliases; remove them first"
            )));
        }
        // An entry may carry several domains; then only this one goes.
        if entry.values("associatedDomain").len() > 1 {
            let stored = entry
                .strings("associatedDomain")?
                .into_iter()
                .find(|v| v.eq_ignore_ascii_case(d))
                .unwrap_or(d)
                .to_owned();
            return self
                .client
                .modify(
                    &entry.dn,
                    vec![Mod::Delete("associatedDomain".into(), one(stored))],
                )
                .await;
        }
        match self.client.delete(&entry.dn).await {
            Err(DirectoryError::Invalid(_)) => Err(DirectoryError::Invalid(format!(
                "domain {d}: its entry {} still has other entries below it; remove them first",
                entry.dn
            ))),
            Err(DirectoryError::NotFound(_)) => Err(DirectoryError::NotFound(format!(
                "domain {d} does not exist"
            ))),
            other => other,
        }
    }

    async fn domains(&self) -> Result<Vec<Domain>> {
        let entries = self
            .client
            .search_all(
                &self.cfg.base_dn,
                Scope::Subtree,
                "(objectClass=domainRelatedObject)",
                &["associatedDomain".into()],
            )
            .await?;
        let mut out = Vec::new();
        for e in &entries {
            for v in e.strings("associatedDomain")? {
                match Domain::parse(v) {
                    Ok(d) => out.push(d),
                    Err(err) => tracing::warn!(dn = e.dn, error = %err, "ignoring a domain"),
                }
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    async fn add_account(&self, account: &NewAccount) -> Result<Account> {
        check_id("cluster", &account.cluster)?;
        let address = &account.address;
        let domain = self
            .domain_entry(address.domain())
            .await?
            .ok_or_else(|| no_domain(address.domain()))?;
        self.require_cluster(&account.cluster).await?;
        taken(address, self.owner_of(address).await?)?;
        let dn = format!(
            "{}={},{}",
            attr_name(&self.attr().mail),
            escape_dn_value(address.as_str()),
            domain.dn
        );
        match self.client.add(&dn, new_entry(account, &self.cfg)).await {
            Err(DirectoryError::Conflict(_)) => {
                return Err(DirectoryError::Conflict(format!(
                    "{address} is already an account (entry {dn} exists)"
                )));
            }
            other => other?,
        }
        let found = self.matching(address, 2).await?;
        let ours = match found.as_slice() {
            [e] => to_account(e, &self.cfg)
                .ok()
                .filter(|a| a.address == *address),
            _ => None,
        };
        match ours {
            Some(a) => Ok(a),
            None => {
                self.client.delete(&dn).await?;
                if found.is_empty() {
                    Err(DirectoryError::Backend(format!(
                        "the new entry {dn} is not found by ldap.account_filter; check \
                         ldap.account_object_classes and ldap.attributes (the entry was removed again)"
                    )))
                } else {
                    Err(raced_error(address))
                }
            }
        }
    }

    async fn update_account(&self, address: &Address, change: &AccountChange) -> Result<Account> {
        if let Some(c) = &change.cluster {
            check_id("cluster", c)?;
        }
        let entry = self.account_entry(address, "").await?;
        let a = self.attr();
        let mut mods: Vec<Mod<String>> = Vec::new();
        if let Some(c) = &change.cluster {
            self.require_cluster(c).await?;
            mods.push(Mod::Replace(a.cluster.clone(), one(c.clone())));
        }
        match &change.password {
            Some(Some(p)) => mods.push(Mod::Replace(a.password.clone(), one(p.clone()))),
            // Replace with no values deletes, and is no error when absent.
            Some(None) => mods.push(Mod::Replace(a.password.clone(), HashSet::new())),
            None => {}
        }
        if let Some(s) = change.state {
            mods.push(Mod::Replace(a.state.clone(), one(s.as_str())));
        }
        if let Some(q) = change.quota {
            mods.push(Mod::Replace(a.quota.clone(), one(q.to_string())));
        }
        // Entries made by other tools lack Tandem's auxiliary class, without
        // which the server refuses its attributes.
        let wants_class = self
            .cfg
            .account_object_classes
            .iter()
            .any(|c| c.eq_ignore_ascii_case(TANDEM_CLASS));
        if (change.state.is_some() || change.quota.is_some())
            && wants_class
            && !entry.has_class(TANDEM_CLASS)
        {
            mods.push(Mod::Add("objectClass".into(), one(TANDEM_CLASS)));
        }
        if !mods.is_empty() {
            match self.client.modify(&entry.dn, mods).await {
                Err(DirectoryError::NotFound(_)) => return Err(no_account(address)),
                other => other?,
            }
        }
        self.reread(&entry.dn).await
    }

    async fn remove_account(&self, address: &Address) -> Result<()> {
        let hint = format!(": remove it with `tandem alias rm {address}`");
        let entry = self.account_entry(address, &hint).await?;
        match self.client.delete(&entry.dn).await {
            Err(DirectoryError::NotFound(_)) => Err(no_account(address)),
            Err(DirectoryError::Invalid(_)) => Err(DirectoryError::Invalid(format!(
                "account {address}: its entry {} has entries below it; remove them first",
                entry.dn
            ))),
            other => other,
        }
    }

    async fn accounts(&self, domain: Option<&Domain>) -> Result<Vec<Account>> {
        let f = match domain {
            Some(d) => format!(
                "(&{}({}=*@{}))",
                self.every_account,
                attr_name(&self.attr().mail),
                escape_value(d.as_str())
            ),
            None => self.every_account.clone(),
        };
        let entries = self
            .client
            .search_all(&self.cfg.base_dn, Scope::Subtree, &f, &self.attrs)
            .await?;
        let mut out = entries
            .iter()
            .map(|e| to_account(e, &self.cfg))
            .collect::<Result<Vec<_>>>()?;
        if let Some(d) = domain {
            out.retain(|a| a.address.domain() == d.as_str());
        }
        out.sort_by(|a, b| a.address.cmp(&b.address));
        Ok(out)
    }

    async fn add_alias(&self, alias: &Address, account: &Address) -> Result<()> {
        if self.domain_entry(alias.domain()).await?.is_none() {
            return Err(no_domain(alias.domain()));
        }
        let Some(target) = self.primary(account).await? else {
            return Err(match self.owner_of(account).await? {
                Owner::AliasOf(owner) => DirectoryError::Invalid(format!(
                    "{account} is itself an alias of {owner}; point {alias} at {owner}"
                )),
                _ => no_account(account),
            });
        };
        taken(alias, self.owner_of(alias).await?)?;
        let attr = self.attr().aliases.clone();
        match self
            .client
            .modify(
                &target.dn,
                vec![Mod::Add(attr.clone(), one(alias.as_str()))],
            )
            .await
        {
            Err(DirectoryError::NotFound(_)) => return Err(no_account(account)),
            other => other?,
        }
        if self.raced(alias).await? {
            self.client
                .modify(&target.dn, vec![Mod::Delete(attr, one(alias.as_str()))])
                .await?;
            return Err(raced_error(alias));
        }
        Ok(())
    }

    async fn remove_alias(&self, alias: &Address) -> Result<()> {
        let attr = self.attr().aliases.clone();
        let f = format!(
            "(&{}({}={}))",
            filter::any(&self.cfg.account_filter),
            attr_name(&attr),
            escape_value(alias.as_str())
        );
        let found = self
            .client
            .search(
                &self.cfg.base_dn,
                Scope::Subtree,
                &f,
                std::slice::from_ref(&attr),
                2,
            )
            .await?;
        let Some(entry) = found.first() else {
            return Err(match self.owner_of(alias).await? {
                Owner::Account => DirectoryError::Invalid(format!(
                    "{alias} is an account, not an alias: remove it with `tandem account rm {alias}`"
                )),
                _ => DirectoryError::NotFound(format!("no alias {alias}")),
            });
        };
        // Delete the value as stored, whatever its case.
        let stored = entry
            .strings(&attr)?
            .into_iter()
            .find(|v| v.eq_ignore_ascii_case(alias.as_str()))
            .unwrap_or(alias.as_str())
            .to_owned();
        self.client
            .modify(&entry.dn, vec![Mod::Delete(attr, one(stored))])
            .await
    }

    async fn add_cluster(&self, id: &str, state: ClusterState, weight: u32) -> Result<()> {
        self.topology.add_cluster(id, state, weight).await
    }

    async fn update_cluster(
        &self,
        id: &str,
        state: Option<ClusterState>,
        weight: Option<u32>,
    ) -> Result<()> {
        self.topology.update_cluster(id, state, weight).await
    }

    async fn remove_cluster(&self, id: &str) -> Result<()> {
        // The topology store knows the nodes; the accounts are here.
        let f = format!(
            "(&{}({}={}))",
            self.every_account,
            attr_name(&self.attr().cluster),
            escape_value(id)
        );
        let found = self
            .client
            .search(
                &self.cfg.base_dn,
                Scope::Subtree,
                &f,
                &[self.attr().mail.clone()],
                1,
            )
            .await?;
        if let Some(e) = found.first() {
            let example = e.first(&self.attr().mail)?.unwrap_or(&e.dn).to_owned();
            return Err(DirectoryError::Invalid(format!(
                "cluster {id} still has accounts in LDAP ({example} among them); move or remove them first"
            )));
        }
        self.topology.remove_cluster(id).await
    }

    async fn clusters(&self) -> Result<Vec<Cluster>> {
        self.topology.clusters().await
    }

    async fn cluster(&self, id: &str) -> Result<Option<Cluster>> {
        self.topology.cluster(id).await
    }

    async fn add_node(&self, cluster: &str, node: &Node) -> Result<()> {
        self.topology.add_node(cluster, node).await
    }

    async fn remove_node(&self, cluster: &str, node: &str) -> Result<()> {
        self.topology.remove_node(cluster, node).await
    }

    async fn account_counts(&self) -> Result<BTreeMap<String, u64>> {
        let attr = self.attr().cluster.clone();
        let entries = self
            .client
            .search_all(
                &self.cfg.base_dn,
                Scope::Subtree,
                &self.every_account,
                std::slice::from_ref(&attr),
            )
            .await?;
        let mut counts = BTreeMap::new();
        let mut homeless = 0;
        for e in &entries {
            match e.first(&attr)? {
                Some(c) if !c.is_empty() => *counts.entry(c.to_owned()).or_insert(0) += 1,
                _ => homeless += 1,
            }
        }
        if homeless > 0 {
            tracing::warn!(
                homeless,
                attribute = attr,
                "accounts without a home cluster"
            );
        }
        Ok(counts)
    }
}
