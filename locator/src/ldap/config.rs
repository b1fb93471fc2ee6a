//! The `ldap:` settings of the locator: where the directory is, how Tandem
//! binds to it, where accounts live and which attributes hold what.
//!
//! ```yaml
//! ldap:
//!   url: ldaps://ldap.example.com
//!   bind_dn: cn=tandem,ou=services,dc=example,dc=com
//!   bind_password_file: /etc/tandem/ldap.secret
//!   base_dn: ou=mail,dc=example,dc=com
//! ```

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use shared::config::{Problems, Validate, join};

use super::filter::PLACEHOLDER;
use crate::error::DirectoryError;

/// How the locator reaches an LDAP directory and reads accounts from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LdapConfig {
    /// `ldap://host[:port]` (389 by default) or `ldaps://host[:port]` (TLS
    /// from the first byte, 636 by default).
    pub url: String,
    /// Upgrade an `ldap://` connection with StartTLS (RFC 4511 §4.14) before
    /// binding. Not allowed with `ldaps://`, which is TLS already.
    #[serde(default)]
    pub starttls: bool,
    /// PEM file with the CA certificate(s) that signed the server's
    /// certificate. Without it, the system's trusted roots are used.
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
    /// DN Tandem binds as for every lookup and provisioning change. Empty
    /// means anonymous, which only suits read-only test setups.
    #[serde(default)]
    pub bind_dn: String,
    /// Password of `bind_dn`. Prefer `bind_password_file`, which keeps the
    /// secret out of the config file.
    #[serde(default)]
    pub bind_password: Option<String>,
    /// File whose content (without the trailing newline) is the password of
    /// `bind_dn`. Read when the directory is opened.
    #[serde(default)]
    pub bind_password_file: Option<PathBuf>,
    /// Subtree where accounts and domains live. Lookups search the whole
    /// subtree; `tandem domain add example.com` creates
    /// `ou=example.com,<base_dn>` and new accounts are created under their
    /// domain's entry as `mail=<address>,ou=<domain>,<base_dn>`.
    pub base_dn: String,
    /// Filter that finds the account an address belongs to, as its primary
    /// address or an alias. `%s` stands for the address, escaped as RFC 4515
    /// requires. With `%s` replaced by `*` the same filter selects every
    /// account (for listings and per-cluster counts).
    #[serde(default = "default_account_filter")]
    pub account_filter: String,
    /// Object classes of the entries `tandem account add` creates. They must
    /// allow `cn` and `sn` and every attribute named in `attributes`;
    /// `tandemAccount` comes from Tandem's schema (`locator/ldap/tandem.schema`).
    #[serde(default = "default_object_classes")]
    pub account_object_classes: Vec<String>,
    /// Which attribute holds what.
    #[serde(default)]
    pub attributes: LdapAttributes,
    /// Verify passwords by binding as the account's entry (the server checks
    /// the password, whatever its hashing) instead of reading `userPassword`.
    /// Needed when `bind_dn` may not read password hashes.
    #[serde(default)]
    pub auth_bind: bool,
    /// Connections kept open to the server (and as many more for password
    /// checks when `auth_bind` is on).
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
    /// Bound on each step: waiting for a pooled connection, connecting and
    /// binding, and each request (or page of a listing). Past it the
    /// directory counts as unavailable and lookups fall back to the cache.
    #[serde(default = "default_timeout", with = "shared::config::duration")]
    pub timeout: Duration,
}

/// The attributes an account is made of. The defaults are the standard mail
/// schema (`inetLocalMailRecipient` from misc.schema) plus Tandem's schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LdapAttributes {
    /// The primary address; also the naming attribute of new entries.
    pub mail: String,
    /// Other addresses that deliver to the account (multi-valued).
    pub aliases: String,
    /// Id of the home cluster. An account without it cannot be served.
    pub cluster: String,
    /// The `{SCHEME}hash` password, stored and returned verbatim.
    pub password: String,
    /// `active`, `suspended` or `moving`; absent means `active`.
    pub state: String,
    /// Quota in bytes; absent or 0 means unlimited.
    pub quota: String,
}

impl Default for LdapAttributes {
    fn default() -> Self {
        LdapAttributes {
            mail: "mail".into(),
            aliases: "mailLocalAddress".into(),
            cluster: "mailHost".into(),
            password: "userPassword".into(),
            state: "tandemAccountState".into(),
            quota: "tandemQuotaBytes".into(),
        }
    }
}

impl LdapAttributes {
    fn all(&self) -> [(&'static str, &str); 6] {
        [
            ("mail", &self.mail),
            ("aliases", &self.aliases),
            ("cluster", &self.cluster),
            ("password", &self.password),
            ("state", &self.state),
            ("quota", &self.quota),
        ]
    }
}

fn default_account_filter() -> String {
    "(&(objectClass=inetLocalMailRecipient)(|(mail=%s)(mailLocalAddress=%s)))".into()
}

fn default_object_classes() -> Vec<String> {
    ["inetOrgPerson", "inetLocalMailRecipient", "tandemAccount"]
        .map(String::from)
        .to_vec()
}

fn default_pool_size() -> usize {
    8
}

fn default_timeout() -> Duration {
    Duration::from_secs(3)
}

impl LdapConfig {
    /// A config with every default, for `url` and `base_dn`.
    pub fn new(url: &str, base_dn: &str) -> Self {
        LdapConfig {
            url: url.into(),
            starttls: false,
            tls_ca_file: None,
            bind_dn: String::new(),
            bind_password: None,
            bind_password_file: None,
            base_dn: base_dn.into(),
            account_filter: default_account_filter(),
            account_object_classes: default_object_classes(),
            attributes: LdapAttributes::default(),
            auth_bind: false,
            pool_size: default_pool_size(),
            timeout: default_timeout(),
        }
    }

    /// The password of `bind_dn`, from the config or its file.
    pub(crate) async fn read_bind_password(&self) -> Result<String, DirectoryError> {
        if let Some(path) = &self.bind_password_file {
            let text = tokio::fs::read_to_string(path).await.map_err(|e| {
                DirectoryError::Invalid(format!(
                    "ldap.bind_password_file {}: cannot read: {e}",
                    path.display()
                ))
            })?;
            return Ok(text.trim_end_matches(['\r', '\n']).to_owned());
        }
        Ok(self.bind_password.clone().unwrap_or_default())
    }
}

fn valid_attribute_name(name: &str) -> bool {
    // RFC 4512 §1.4 descr, or a numeric OID.
    let mut bytes = name.bytes();
    match bytes.next() {
        Some(b) if b.is_ascii_alphabetic() => bytes.all(|b| b.is_ascii_alphanumeric() || b == b'-'),
        Some(b) if b.is_ascii_digit() => name
            .split('.')
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit())),
        _ => false,
    }
}

impl Validate for LdapConfig {
    fn validate(&self, at: &str, p: &mut Problems) {
        let scheme = self
            .url
            .split_once("://")
            .map(|(s, _)| s.to_ascii_lowercase());
        match scheme.as_deref() {
            Some("ldap") => {}
            Some("ldaps") if self.starttls => p.push(
                at,
                "starttls",
                "cannot be used with an ldaps:// url, which is TLS already",
            ),
            Some("ldaps") => {}
            _ => p.push(
                at,
                "url",
                format!("{:?} is not an ldap:// or ldaps:// url", self.url),
            ),
        }
        if scheme.is_some() && url_host_missing(&self.url) {
            p.push(at, "url", format!("{:?} names no host", self.url));
        }
        if self.base_dn.trim().is_empty() {
            p.push(at, "base_dn", "must name the subtree where accounts live");
        } else if !self.base_dn.contains('=') {
            p.push(
                at,
                "base_dn",
                format!(
                    "{:?} is not a DN (like ou=mail,dc=example,dc=com)",
                    self.base_dn
                ),
            );
        }
        if self.bind_password.is_some() && self.bind_password_file.is_some() {
            p.push(
                at,
                "bind_password",
                "set either bind_password or bind_password_file, not both",
            );
        }
        if self.bind_dn.is_empty()
            && (self.bind_password.is_some() || self.bind_password_file.is_some())
        {
            p.push(at, "bind_dn", "a bind password is set but no bind_dn");
        }
        if !self.account_filter.contains(PLACEHOLDER) {
            p.push(
                at,
                "account_filter",
                format!("must contain {PLACEHOLDER}, which stands for the address looked up"),
            );
        } else if ldap3::parse_filter(super::filter::fill(&self.account_filter, "a@b")).is_err() {
            p.push(
                at,
                "account_filter",
                format!(
                    "{:?} is not a valid LDAP filter (RFC 4515)",
                    self.account_filter
                ),
            );
        }
        if self.account_object_classes.is_empty() {
            p.push(at, "account_object_classes", "must name at least one class");
        }
        for class in &self.account_object_classes {
            if !valid_attribute_name(class) {
                p.push(
                    at,
                    "account_object_classes",
                    format!("{class:?} is not an object class name"),
                );
            }
        }
        let attrs = join(at, "attributes");
        for (field, name) in self.attributes.all() {
            if !valid_attribute_name(name) {
                p.push(&attrs, field, format!("{name:?} is not an attribute name"));
            }
        }
        if self.pool_size == 0 {
            p.push(at, "pool_size", "must be at least 1");
        }
        if self.timeout.is_zero() {
            p.push(at, "timeout", "must be more than 0");
        }
    }
}

fn url_host_missing(url: &str) -> bool {
    let rest = url.split_once("://").map_or("", |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    host.is_empty() || host.starts_with(':')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn parse(text: &str) -> Result<LdapConfig, String> {
        shared::config::parse::<LdapConfig>(Path::new("t.yaml"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults() {
        let c = parse("url: ldap://127.0.0.1:389\nbase_dn: ou=mail,dc=example,dc=com\n")
            .expect("test value");
        assert_eq!(
            c,
            LdapConfig::new("ldap://127.0.0.1:389", "ou=mail,dc=example,dc=com")
        );
        assert_eq!(c.attributes.cluster, "mailHost");
        assert_eq!(c.attributes.quota, "tandemQuotaBytes");
        assert_eq!(c.timeout, Duration::from_secs(3));
        assert!(!c.auth_bind && !c.starttls);
        let back: LdapConfig =
            serde_json::from_str(&serde_json::to_string(&c).expect("test value"))
                .expect("test value");
        assert_eq!(back, c, "serialises to what it reads");
    }

    #[test]
    fn overrides() {
        let c = parse(
            "url: ldaps://ldap.example.com\nbase_dn: dc=example,dc=com\nbind_dn: cn=tandem,dc=example,dc=com\n\
             bind_password: s3cret\nauth_bind: true\npool_size: 2\ntimeout: 500ms\n\
             attributes:\n  cluster: mailRoutingHost\n  state: employeeType\n",
        )
        .expect("test value");
        assert_eq!(c.attributes.cluster, "mailRoutingHost");
        assert_eq!(c.attributes.mail, "mail", "unset attributes keep defaults");
        assert_eq!(c.timeout, Duration::from_millis(500));
        assert!(c.auth_bind);
    }

    #[test]
    fn problems_named() {
        let e = parse(
            "url: http://x\nbase_dn: ''\naccount_filter: (mail=alice)\npool_size: 0\n\
             attributes:\n  mail: 'ma il'\n",
        )
        .expect_err("must fail");
        for needle in [
            "url: \"http://x\" is not an ldap",
            "base_dn: must name",
            "account_filter: must contain %s",
            "pool_size: must be at least 1",
            "attributes.mail: \"ma il\" is not an attribute name",
        ] {
            assert!(e.contains(needle), "{e} lacks {needle}");
        }
        let e =
            parse("url: ldaps://x\nstarttls: true\nbase_dn: dc=x\naccount_filter: '(mail=%s'\n")
                .expect_err("must fail");
        assert!(e.contains("starttls: cannot be used"), "{e}");
        assert!(e.contains("not a valid LDAP filter"), "{e}");
        let e = parse("url: ldap://x\nbase_dn: dc=x\nbind_password: a\n").expect_err("must fail");
        assert!(e.contains("bind_dn: a bind password is set"), "{e}");
        let e = parse("url: ldap://\nbase_dn: dc=x\n").expect_err("must fail");
        assert!(e.contains("names no host"), "{e}");
        let e = parse("url: ldap://x\nbase_dn: dc=x\nbase: dc=y\n").expect_err("must fail");
        assert!(e.contains("base"), "unknown fields are refused: {e}");
    }

    #[test]
    fn attribute_names() {
        for ok in ["mail", "mailLocalAddress", "x-foo", "2.5.4.3"] {
            assert!(valid_attribute_name(ok), "{ok}");
        }
        for bad in ["", "ma il", "-x", "a,b", "2..5", "mail;binary", "a=b"] {
            assert!(!valid_attribute_name(bad), "{bad}");
        }
    }
}
