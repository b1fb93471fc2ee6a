//! Finding things in the tree: the account an address belongs to, an
//! account's entry by its primary address, a domain's entry, and the
//! messages for what is not there.

use std::collections::HashSet;

use ldap3::Scope;
use shared::Address;

use super::LdapDirectory;
use super::config::LdapAttributes;
use super::entry::{RawEntry, to_account};
use super::filter::{self, escape_value, fill};
use crate::directory::Result;
use crate::error::DirectoryError;
use crate::model::{Account, check_id};

/// What an address is used for, if anything.
pub(super) enum Owner {
    Free,
    Account,
    AliasOf(String),
}

impl LdapDirectory {
    pub(super) fn attr(&self) -> &LdapAttributes {
        &self.cfg.attributes
    }

    /// The entries the account filter finds for `address` (at most `limit`).
    pub(super) async fn matching(&self, address: &Address, limit: i32) -> Result<Vec<RawEntry>> {
        let f = fill(&self.cfg.account_filter, address.as_str());
        let found = self
            .client
            .search(&self.cfg.base_dn, Scope::Subtree, &f, &self.attrs, limit)
            .await?;
        Ok(found)
    }

    pub(super) async fn owner_of(&self, address: &Address) -> Result<Owner> {
        let found = self.matching(address, 1).await?;
        let Some(e) = found.first() else {
            return Ok(Owner::Free);
        };
        let mails = e.strings(&self.attr().mail)?;
        if mails
            .iter()
            .any(|m| m.eq_ignore_ascii_case(address.as_str()))
        {
            return Ok(Owner::Account);
        }
        Ok(Owner::AliasOf(
            mails
                .first()
                .map_or_else(|| e.dn.clone(), |m| m.to_ascii_lowercase()),
        ))
    }

    /// The entry whose primary address is `address`, with its object classes.
    pub(super) async fn primary(&self, address: &Address) -> Result<Option<RawEntry>> {
        let f = format!(
            "(&{}({}={}))",
            self.every_account,
            attr_name(&self.attr().mail),
            escape_value(address.as_str())
        );
        let mut attrs = self.attrs.clone();
        attrs.push("objectClass".into());
        let mut found = self
            .client
            .search(&self.cfg.base_dn, Scope::Subtree, &f, &attrs, 2)
            .await?;
        if found.len() > 1 {
            return Err(ambiguous(address, &found));
        }
        Ok(found.pop())
    }

    /// [`Self::primary`], or the error saying why there is none; `hint`
    /// ends the message when the address turns out to be an alias.
    pub(super) async fn account_entry(&self, address: &Address, hint: &str) -> Result<RawEntry> {
        if let Some(e) = self.primary(address).await? {
            return Ok(e);
        }
        Err(match self.owner_of(address).await? {
            Owner::AliasOf(owner) => DirectoryError::NotFound(format!(
                "{address} is an alias of {owner}, not an account{hint}"
            )),
            _ => no_account(address),
        })
    }

    pub(super) async fn reread(&self, dn: &str) -> Result<Account> {
        let found = self
            .client
            .search(dn, Scope::Base, "(objectClass=*)", &self.attrs, 1)
            .await?;
        let e = found
            .first()
            .ok_or_else(|| DirectoryError::Backend(format!("entry {dn} vanished")))?;
        to_account(e, &self.cfg)
    }

    /// The entry of `domain`, found by `associatedDomain` wherever it is.
    pub(super) async fn domain_entry(&self, domain: &str) -> Result<Option<RawEntry>> {
        let f = format!(
            "(&(objectClass=domainRelatedObject)(associatedDomain={}))",
            escape_value(domain)
        );
        let found = self
            .client
            .search(
                &self.cfg.base_dn,
                Scope::Subtree,
                &f,
                &["associatedDomain".into()],
                1,
            )
            .await?;
        Ok(found.into_iter().next())
    }

    pub(super) async fn require_cluster(&self, id: &str) -> Result<()> {
        check_id("cluster", id)?;
        match self.topology.cluster(id).await? {
            Some(_) => Ok(()),
            None => Err(no_cluster(id)),
        }
    }

    /// Whether `address` now matches more than one entry: another change
    /// raced this one, and this one must be undone.
    pub(super) async fn raced(&self, address: &Address) -> Result<bool> {
        Ok(self.matching(address, 2).await?.len() > 1)
    }

    pub(super) async fn count_aliases_in(&self, domain: &str) -> Result<usize> {
        // Alias attributes usually have no substring matching rule
        // (mailLocalAddress has none), so match the domain here.
        let aliases = self.attr().aliases.clone();
        let f = format!(
            "(&{}({}=*))",
            filter::any(&self.cfg.account_filter),
            attr_name(&aliases)
        );
        let entries = self
            .client
            .search_all(
                &self.cfg.base_dn,
                Scope::Subtree,
                &f,
                std::slice::from_ref(&aliases),
            )
            .await?;
        let suffix = format!("@{domain}");
        let mut n = 0;
        for e in &entries {
            n += e
                .strings(&aliases)?
                .iter()
                .filter(|a| a.to_ascii_lowercase().ends_with(&suffix))
                .count();
        }
        Ok(n)
    }
}

/// Attribute names are validated by the config ([`LdapConfig`]); this keeps
/// a filter well-formed even if one is not.
pub(super) fn attr_name(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '.')
        .collect()
}

pub(super) fn ambiguous(address: &Address, entries: &[RawEntry]) -> DirectoryError {
    let dns: Vec<&str> = entries.iter().map(|e| e.dn.as_str()).collect();
    DirectoryError::Backend(format!(
        "{address} matches more than one LDAP entry ({}); an address must belong to one account",
        dns.join("; ")
    ))
}

pub(super) fn no_domain(domain: &str) -> DirectoryError {
    DirectoryError::NotFound(format!(
        "domain {domain} does not exist: add it with `tandem domain add {domain}`"
    ))
}

pub(super) fn no_cluster(id: &str) -> DirectoryError {
    DirectoryError::NotFound(format!(
        "cluster {id} does not exist: add it with `tandem cluster add {id}`"
    ))
}

pub(super) fn no_account(address: &Address) -> DirectoryError {
    DirectoryError::NotFound(format!("no account {address}"))
}

pub(super) fn taken(address: &Address, owner: Owner) -> Result<()> {
    match owner {
        Owner::Free => Ok(()),
        Owner::Account => Err(DirectoryError::Conflict(format!(
            "{address} is already an account"
        ))),
        Owner::AliasOf(a) => Err(DirectoryError::Conflict(format!(
            "{address} is already an alias of {a}"
        ))),
    }
}

pub(super) fn raced_error(address: &Address) -> DirectoryError {
    DirectoryError::Conflict(format!(
        "{address} was taken by another change at the same time; nothing was changed"
    ))
}

pub(super) fn one(value: impl Into<String>) -> HashSet<String> {
    HashSet::from([value.into()])
}
