//! The LDAP operations the directory uses (RFC 4511 §4.5 Search, §4.6
//! Modify, §4.7 Add, §4.8 Delete), each on a pooled connection and bounded
//! by the configured timeout.
//!
//! Large searches are paged (RFC 2696) so that listings and counts work on
//! trees far larger than a server's per-search size limit. A connection that
//! fails at the transport level is dropped from the pool, and the operation
//! is repeated once on a fresh one when that is safe: always for searches,
//! for changes only if the request never left this process. This is what
//! makes the first lookup after a server restart succeed instead of failing
//! on a connection the server has closed.

use std::collections::HashSet;
use std::time::Duration;

use deadpool::managed::Object;
use ldap3::asn1::{PL, parse_tag};
use ldap3::controls::{PagedResults, RawControl};
use ldap3::{Ldap, LdapError, LdapResult, Mod, ResultEntry, Scope, SearchOptions, SearchResult};

use super::entry::RawEntry;
use super::pool::{self, Pool, from_result, is_connection_error, map_error, never_sent};
use crate::error::DirectoryError;

/// Entries per page: at most OpenLDAP's default size limit (500) and
/// Active Directory's MaxPageSize (1000).
const PAGE_SIZE: i32 = 500;
const PAGED_RESULTS_OID: &str = "1.2.840.113556.1.4.319";

/// Operations over the service pool.
pub(crate) struct Client {
    pub pool: Pool,
    pub timeout: Duration,
}

/// One request, described so that it can be sent again on a new connection.
enum Op<'a> {
    Search {
        base: &'a str,
        scope: Scope,
        filter: &'a str,
        attrs: &'a [String],
        limit: i32,
    },
    Paged {
        base: &'a str,
        scope: Scope,
        filter: &'a str,
        attrs: &'a [String],
    },
    Add {
        dn: &'a str,
        attrs: Vec<(String, HashSet<String>)>,
    },
    Modify {
        dn: &'a str,
        mods: Vec<Mod<String>>,
    },
    Delete {
        dn: &'a str,
    },
}

enum Reply {
    Search(SearchResult),
    /// Every page's entries, or the result that ended the listing early.
    Paged(Result<Vec<ResultEntry>, LdapResult>),
    Done(LdapResult),
}

impl Op<'_> {
    /// Whether `e` allows sending this request again on a new connection.
    fn may_retry(&self, e: &LdapError) -> bool {
        if matches!(e, LdapError::Timeout { .. }) {
            return false;
        }
        match self {
            Op::Search { .. } | Op::Paged { .. } => true,
            _ => never_sent(e),
        }
    }

    async fn send(&self, ldap: &mut Ldap, timeout: Duration) -> Result<Reply, LdapError> {
        match self {
            Op::Search {
                base,
                scope,
                filter,
                attrs,
                limit,
            } => ldap
                .with_timeout(timeout)
                .with_search_options(SearchOptions::new().sizelimit(*limit))
                .search(base, *scope, filter, *attrs)
                .await
                .map(Reply::Search),
            Op::Paged {
                base,
                scope,
                filter,
                attrs,
            } => {
                let mut out = Vec::new();
                let mut cookie = Vec::new();
                loop {
                    let control = RawControl::from(PagedResults {
                        size: PAGE_SIZE,
                        cookie: std::mem::take(&mut cookie),
                    });
                    let res = ldap
                        .with_timeout(timeout)
                        .with_controls(control)
                        .search(base, *scope, filter, *attrs)
                        .await?;
                    if res.1.rc != 0 {
                        return Ok(Reply::Paged(Err(res.1)));
                    }
                    out.extend(res.0);
                    cookie = next_cookie(&res.1.ctrls).unwrap_or_default();
                    if cookie.is_empty() {
                        return Ok(Reply::Paged(Ok(out)));
                    }
                }
            }
            Op::Add { dn, attrs } => ldap
                .with_timeout(timeout)
                .add(dn, attrs.clone())
                .await
                .map(Reply::Done),
            Op::Modify { dn, mods } => ldap
                .with_timeout(timeout)
                .modify(dn, mods.clone())
                .await
                .map(Reply::Done),
            Op::Delete { dn } => ldap.with_timeout(timeout).delete(dn).await.map(Reply::Done),
        }
    }
}

impl Client {
    /// Sends `op` on a pooled connection. A connection that broke is not
    /// returned to the pool, and the request is sent once more on a fresh
    /// connection when that is safe.
    async fn run(&self, what: &str, op: Op<'_>) -> Result<Reply, DirectoryError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut conn = pool::get(&self.pool).await?;
            match op.send(&mut conn, self.timeout).await {
                Ok(reply) => return Ok(reply),
                Err(e) if is_connection_error(&e) => {
                    drop(Object::take(conn));
                    if attempt == 1 && op.may_retry(&e) {
                        tracing::debug!(error = %e, "LDAP connection broke; retrying on a new one");
                        continue;
                    }
                    return Err(map_error(e, what));
                }
                Err(e) => return Err(map_error(e, what)),
            }
        }
    }

    async fn change(&self, what: &str, op: Op<'_>) -> Result<(), DirectoryError> {
        match self.run(what, op).await? {
            Reply::Done(r) if r.rc == 0 => Ok(()),
            Reply::Done(r) => Err(from_result(&r, what)),
            _ => Err(DirectoryError::Backend(format!("{what}: unexpected reply"))),
        }
    }

    /// A search that expects a few entries; at most `limit` are returned
    /// (the server's sizeLimitExceeded is then what was asked for).
    pub async fn search(
        &self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[String],
        limit: i32,
    ) -> Result<Vec<RawEntry>, DirectoryError> {
        let op = Op::Search {
            base,
            scope,
            filter,
            attrs,
            limit,
        };
        let Reply::Search(SearchResult(raw, result)) = self.run("search", op).await? else {
            return Err(DirectoryError::Backend("search: unexpected reply".into()));
        };
        if result.rc != 0 && result.rc != 4 {
            return Err(search_error(&result, base));
        }
        raw.into_iter().map(RawEntry::decode).collect()
    }

    /// Every entry matching `filter`, fetched page by page on one connection
    /// (paging cookies belong to the connection). The timeout bounds each
    /// page, not the whole listing.
    pub async fn search_all(
        &self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[String],
    ) -> Result<Vec<RawEntry>, DirectoryError> {
        let op = Op::Paged {
            base,
            scope,
            filter,
            attrs,
        };
        let Reply::Paged(paged) = self.run("paged search", op).await? else {
            return Err(DirectoryError::Backend("search: unexpected reply".into()));
        };
        paged
            .map_err(|r| search_error(&r, base))?
            .into_iter()
            .map(RawEntry::decode)
            .collect()
    }

    pub async fn add(
        &self,
        dn: &str,
        attrs: Vec<(String, HashSet<String>)>,
    ) -> Result<(), DirectoryError> {
        self.change(&format!("add {dn}"), Op::Add { dn, attrs })
            .await
    }

    pub async fn modify(&self, dn: &str, mods: Vec<Mod<String>>) -> Result<(), DirectoryError> {
        self.change(&format!("modify {dn}"), Op::Modify { dn, mods })
            .await
    }

    pub async fn delete(&self, dn: &str) -> Result<(), DirectoryError> {
        self.change(&format!("delete {dn}"), Op::Delete { dn })
            .await
    }
}

/// A failed search names the base when the base is what is missing: a
/// lookup must not read "no such object" as "no such account".
fn search_error(r: &ldap3::LdapResult, base: &str) -> DirectoryError {
    match r.rc {
        32 => DirectoryError::Backend(format!(
            "the search base {base} does not exist; check ldap.base_dn"
        )),
        4 => DirectoryError::Backend(format!(
            "the LDAP server's size limit cut a search under {base} short: allow the bind DN \
             more entries (OpenLDAP: limits dn.exact=\"<bind_dn>\" size.prtotal=unlimited)"
        )),
        _ => from_result(r, &format!("search under {base}")),
    }
}

/// The cookie of a Paged Results response control (RFC 2696 §2):
/// `SEQUENCE { size INTEGER, cookie OCTET STRING }`. `None` when absent or
/// unreadable, which ends the listing.
fn next_cookie(ctrls: &[ldap3::controls::Control]) -> Option<Vec<u8>> {
    let raw = ctrls
        .iter()
        .find(|c| c.1.ctype == PAGED_RESULTS_OID)?
        .1
        .val
        .as_deref()?;
    let (_, tag) = parse_tag(raw).ok()?;
    let PL::C(parts) = tag.payload else {
        return None;
    };
    parts.into_iter().nth(1)?.expect_primitive()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ldap3::controls::Control;

    #[test]
    fn cookies() {
        let ctrl = |cookie: &[u8]| {
            Control(
                None,
                RawControl::from(PagedResults {
                    size: 0,
                    cookie: cookie.to_vec(),
                }),
            )
        };
        assert_eq!(next_cookie(&[ctrl(b"abc")]), Some(b"abc".to_vec()));
        assert_eq!(next_cookie(&[ctrl(b"")]), Some(vec![]));
        assert_eq!(next_cookie(&[]), None);
        let garbage = Control(
            None,
            RawControl {
                ctype: PAGED_RESULTS_OID.into(),
                crit: false,
                val: Some(vec![0x30, 0x05, 0x02]),
            },
        );
        assert_eq!(next_cookie(&[garbage]), None);
    }
}
