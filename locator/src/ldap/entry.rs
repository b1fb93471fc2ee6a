//! Entries as the server sends them (RFC 4511 §4.5.2 SearchResultEntry) and
//! their mapping to and from [`Account`].
//!
//! Entries are decoded here rather than with `ldap3::SearchEntry::construct`,
//! which panics on anything unexpected: a server sending a non-UTF-8 DN must
//! cost one failed lookup, not a task. Attribute names are compared
//! case-insensitively (RFC 4512 §2.5), since servers return them in their
//! schema's spelling rather than the one asked for.

use std::collections::HashSet;

use ldap3::ResultEntry;
use ldap3::asn1::{PL, StructureTag};
use shared::Address;

use super::config::LdapConfig;
use crate::error::DirectoryError;
use crate::model::{Account, AccountState, NewAccount};

/// The operational attribute holding an entry's creation time (RFC 4512 §3.4).
pub(crate) const CREATE_TIMESTAMP: &str = "createTimestamp";

/// One entry: its DN and the attributes that were asked for and present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawEntry {
    pub dn: String,
    pub attrs: Vec<(String, Vec<Vec<u8>>)>,
}

impl RawEntry {
    /// Decodes a SearchResultEntry: `[APPLICATION 4] SEQUENCE { objectName,
    /// attributes SEQUENCE OF SEQUENCE { type, vals SET OF value } }`.
    pub fn decode(re: ResultEntry) -> Result<RawEntry, DirectoryError> {
        let bad = |what: &str| {
            DirectoryError::Backend(format!("the LDAP server sent a malformed entry ({what})"))
        };
        let mut parts =
            re.0.match_id(4)
                .and_then(StructureTag::expect_constructed)
                .ok_or_else(|| bad("not an entry"))?
                .into_iter();
        let dn = parts
            .next()
            .and_then(StructureTag::expect_primitive)
            .ok_or_else(|| bad("no DN"))?;
        let dn = String::from_utf8(dn).map_err(|_| bad("DN is not UTF-8"))?;
        let mut attrs = Vec::new();
        let list = match parts.next().map(|t| t.payload) {
            Some(PL::C(list)) => list,
            None => Vec::new(),
            Some(PL::P(_)) => return Err(bad("attribute list")),
        };
        for attr in list {
            let mut ab = attr
                .expect_constructed()
                .ok_or_else(|| bad("attribute"))?
                .into_iter();
            let name = ab
                .next()
                .and_then(StructureTag::expect_primitive)
                .and_then(|n| String::from_utf8(n).ok())
                .ok_or_else(|| bad("attribute name"))?;
            let values = ab
                .next()
                .and_then(StructureTag::expect_constructed)
                .ok_or_else(|| bad("attribute values"))?
                .into_iter()
                .map(|v| v.expect_primitive().ok_or_else(|| bad("attribute value")))
                .collect::<Result<Vec<_>, _>>()?;
            attrs.push((name, values));
        }
        Ok(RawEntry { dn, attrs })
    }

    /// The raw values of attribute `name` (none when absent).
    pub fn values(&self, name: &str) -> &[Vec<u8>] {
        self.attrs
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map_or(&[], |(_, v)| v.as_slice())
    }

    /// The values of `name` as text; a value that is not UTF-8 is an error
    /// naming the entry.
    pub fn strings(&self, name: &str) -> Result<Vec<&str>, DirectoryError> {
        self.values(name)
            .iter()
            .map(|v| {
                std::str::from_utf8(v).map_err(|_| {
                    DirectoryError::Backend(format!(
                        "entry {}: a value of {name} is not UTF-8 text",
                        self.dn
                    ))
                })
            })
            .collect()
    }

    /// The first value of `name` as text.
    pub fn first(&self, name: &str) -> Result<Option<&str>, DirectoryError> {
        Ok(self.strings(name)?.first().map(|s| s.trim()))
    }

    /// Whether the entry has `class` among its `objectClass` values.
    pub fn has_class(&self, class: &str) -> bool {
        self.values("objectClass")
            .iter()
            .any(|v| v.eq_ignore_ascii_case(class.as_bytes()))
    }
}

fn corrupt(entry: &RawEntry, detail: impl std::fmt::Display) -> DirectoryError {
    DirectoryError::Backend(format!("entry {}: {detail}", entry.dn))
}

/// The attributes a lookup asks for.
pub(crate) fn account_attributes(cfg: &LdapConfig) -> Vec<String> {
    let a = &cfg.attributes;
    [
        &a.mail,
        &a.aliases,
        &a.cluster,
        &a.password,
        &a.state,
        &a.quota,
    ]
    .into_iter()
    .cloned()
    .chain([CREATE_TIMESTAMP.to_owned()])
    .collect()
}

/// Reads an account from an entry. Entries provisioned by other tools may
/// lack Tandem's attributes: no state means active, no quota means none. An
/// entry without a primary address or home cluster cannot be served.
pub(crate) fn to_account(entry: &RawEntry, cfg: &LdapConfig) -> Result<Account, DirectoryError> {
    let a = &cfg.attributes;
    let mut mails = entry.strings(&a.mail)?.into_iter();
    let primary = mails
        .next()
        .ok_or_else(|| corrupt(entry, format!("no {} (primary address)", a.mail)))?;
    let address = Address::parse(primary).map_err(|e| corrupt(entry, e))?;
    // Further values of the primary-address attribute deliver to the same
    // account, so they count as aliases.
    let mut aliases: Vec<Address> = Vec::new();
    for value in mails.chain(entry.strings(&a.aliases)?) {
        match Address::parse(value) {
            Ok(al) if al != address => aliases.push(al),
            Ok(_) => {}
            Err(e) => tracing::warn!(dn = entry.dn, error = %e, "ignoring an unusable alias"),
        }
    }
    aliases.sort();
    aliases.dedup();
    let cluster = entry
        .first(&a.cluster)?
        .filter(|c| !c.is_empty())
        .ok_or_else(|| {
            corrupt(
                entry,
                format!(
                    "no {} (home cluster); set it to the id of a Tandem cluster",
                    a.cluster
                ),
            )
        })?
        .to_owned();
    let state = match entry.first(&a.state)? {
        None => AccountState::Active,
        Some(s) => s
            .parse()
            .map_err(|e| corrupt(entry, format_args!("{}: {e}", a.state)))?,
    };
    let quota = match entry.first(&a.quota)? {
        None => 0,
        Some(q) => q.parse::<u64>().map_err(|_| {
            corrupt(
                entry,
                format_args!("{} {q:?} is not a number of bytes", a.quota),
            )
        })?,
    };
    let password = entry.strings(&a.password)?.first().map(|p| (*p).to_owned());
    let created = entry
        .first(CREATE_TIMESTAMP)?
        .and_then(parse_generalized_time)
        .unwrap_or(0);
    Ok(Account {
        address,
        aliases,
        password,
        cluster,
        state,
        quota,
        created,
        dn: Some(entry.dn.clone()),
    })
}

/// The attributes of a new account's entry.
pub(crate) fn new_entry(acct: &NewAccount, cfg: &LdapConfig) -> Vec<(String, HashSet<String>)> {
    let a = &cfg.attributes;
    let local = acct.address.local_part().to_owned();
    let one = |v: String| HashSet::from([v]);
    let mut attrs = vec![
        (
            "objectClass".to_owned(),
            cfg.account_object_classes.iter().cloned().collect(),
        ),
        ("cn".to_owned(), one(local.clone())),
        ("sn".to_owned(), one(local)),
        (a.mail.clone(), one(acct.address.as_str().to_owned())),
        (a.cluster.clone(), one(acct.cluster.clone())),
        (a.state.clone(), one(acct.state.as_str().to_owned())),
        (a.quota.clone(), one(acct.quota.to_string())),
    ];
    if let Some(p) = &acct.password {
        attrs.push((a.password.clone(), one(p.clone())));
    }
    attrs
}

/// Parses a GeneralizedTime (RFC 4517 §3.3.13): `YYYYMMDDHH[MM[SS]][(.|,)frac]`
/// then `Z` or a `+hh[mm]`/`-hh[mm]` offset, to Unix seconds. The fraction is
/// dropped; so is a value without a time zone, which names no instant.
pub(crate) fn parse_generalized_time(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = b.get(from..from + len)?;
        part.iter()
            .all(u8::is_ascii_digit)
            .then(|| part.iter().fold(0, |n, d| n * 10 + i64::from(d - b'0')))
    };
    let (year, month, day, hour) = (num(0, 4)?, num(4, 2)?, num(6, 2)?, num(8, 2)?);
    let mut i = 10;
    let minute = num(i, 2).inspect(|_| i += 2).unwrap_or(0);
    let second = if i == 12 {
        num(i, 2).inspect(|_| i += 2).unwrap_or(0)
    } else {
        0
    };
    if matches!(b.get(i), Some(b'.' | b',')) {
        i += 1;
        let digits = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        i += digits;
    }
    let offset = match b.get(i)? {
        b'Z' if i + 1 == b.len() => 0,
        sign @ (b'+' | b'-') => {
            let hh = num(i + 1, 2)?;
            let mm = match b.len() - (i + 1) {
                2 => 0,
                4 => num(i + 3, 2)?,
                _ => return None,
            };
            let off = hh * 3600 + mm * 60;
            if *sign == b'+' { off } else { -off }
        }
        _ => return None,
    };
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(days * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// algorithm; the inverse of `shared::time::civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use ldap3::asn1::TagClass;

    fn prim(id: u64, bytes: &[u8]) -> StructureTag {
        StructureTag {
            class: TagClass::Universal,
            id,
            payload: PL::P(bytes.to_vec()),
        }
    }

    fn cons(class: TagClass, id: u64, inner: Vec<StructureTag>) -> StructureTag {
        StructureTag {
            class,
            id,
            payload: PL::C(inner),
        }
    }

    fn wire(dn: &[u8], attrs: &[(&str, &[&[u8]])]) -> ResultEntry {
        let attrs = attrs
            .iter()
            .map(|(name, vals)| {
                cons(
                    TagClass::Universal,
                    16,
                    vec![
                        prim(4, name.as_bytes()),
                        cons(
                            TagClass::Universal,
                            17,
                            vals.iter().map(|v| prim(4, v)).collect(),
                        ),
                    ],
                )
            })
            .collect();
        ResultEntry::new(cons(
            TagClass::Application,
            4,
            vec![prim(4, dn), cons(TagClass::Universal, 16, attrs)],
        ))
    }

    fn cfg() -> LdapConfig {
        LdapConfig::new("ldap://127.0.0.1", "dc=example,dc=com")
    }

    #[test]
    fn decodes_and_maps_a_full_entry() {
        let e = RawEntry::decode(wire(
            b"mail=alice@example.com,ou=example.com,dc=example,dc=com",
            &[
                ("mail", &[b"Alice@Example.com"]),
                (
                    "mailLocalAddress",
                    &[b"zed@example.com", b"abuse@example.com"],
                ),
                ("MAILHOST", &[b"c2"]),
                ("userPassword", &[b"{SSHA}3vn/9kWETgHqErQG5T4hn50Hu6mmatuT"]),
                ("tandemAccountState", &[b"Suspended"]),
                ("tandemQuotaBytes", &[b"5368709120"]),
                ("createTimestamp", &[b"20240229120000Z"]),
            ],
        ))
        .expect("test value");
        let a = to_account(&e, &cfg()).expect("test value");
        assert_eq!(a.address.as_str(), "alice@example.com");
        let aliases: Vec<&str> = a.aliases.iter().map(|x| x.as_str()).collect();
        assert_eq!(aliases, ["abuse@example.com", "zed@example.com"]);
        assert_eq!(a.cluster, "c2", "attribute names are case-insensitive");
        assert_eq!(
            a.password.as_deref(),
            Some("{SSHA}3vn/9kWETgHqErQG5T4hn50Hu6mmatuT")
        );
        assert_eq!(a.state, AccountState::Suspended);
        assert_eq!(a.quota, 5 << 30);
        assert_eq!(a.created, 1_709_208_000);
        assert_eq!(
            a.dn.as_deref(),
            Some("mail=alice@example.com,ou=example.com,dc=example,dc=com")
        );
    }

    #[test]
    fn entries_from_other_tools() {
        let e = RawEntry::decode(wire(
            b"uid=bob,ou=people,dc=example,dc=com",
            &[
                ("mail", &[b"bob@example.com", b"robert@example.com"]),
                (
                    "mailLocalAddress",
                    &[b"a)(mail=*@example.com", b"bob@example.com"],
                ),
                ("mailHost", &[b"c1"]),
            ],
        ))
        .expect("test value");
        let a = to_account(&e, &cfg()).expect("test value");
        assert_eq!(a.address.as_str(), "bob@example.com");
        let aliases: Vec<&str> = a.aliases.iter().map(|x| x.as_str()).collect();
        assert_eq!(
            aliases,
            ["robert@example.com"],
            "extra mail values are aliases; unusable ones are skipped"
        );
        assert_eq!((a.state, a.quota, a.created), (AccountState::Active, 0, 0));
        assert_eq!(a.password, None);

        let no_host = RawEntry::decode(wire(b"uid=c,dc=x", &[("mail", &[b"c@example.com"])]))
            .expect("test value");
        let err = to_account(&no_host, &cfg()).expect_err("must fail");
        assert_eq!(err.kind(), "backend");
        assert!(
            err.to_string().contains("uid=c,dc=x") && err.to_string().contains("mailHost"),
            "{err}"
        );

        for (attr, value, needle) in [
            ("tandemAccountState", &b"gone"[..], "tandemAccountState"),
            ("tandemQuotaBytes", b"-1", "tandemQuotaBytes"),
            ("mail", b"not an address", "uid=d"),
            ("userPassword", b"\xff\xfe", "userPassword"),
        ] {
            let mut attrs: Vec<(&str, &[&[u8]])> = vec![("mailHost", &[b"c1"])];
            let v = [value];
            if attr != "mail" {
                attrs.push(("mail", &[b"d@example.com"]));
            }
            attrs.push((attr, &v));
            let e = RawEntry::decode(wire(b"uid=d,dc=x", &attrs)).expect("test value");
            let err = to_account(&e, &cfg()).expect_err("must fail");
            assert!(err.to_string().contains(needle), "{err}");
        }
    }

    #[test]
    fn malformed_entries_are_errors_not_panics() {
        assert!(RawEntry::decode(wire(b"\xff", &[])).is_err());
        assert!(RawEntry::decode(ResultEntry::new(prim(4, b"x"))).is_err());
        let no_attrs = ResultEntry::new(cons(TagClass::Application, 4, vec![prim(4, b"dc=x")]));
        assert_eq!(
            RawEntry::decode(no_attrs).expect("test value").attrs,
            vec![]
        );
        let bad_attr = ResultEntry::new(cons(
            TagClass::Application,
            4,
            vec![
                prim(4, b"dc=x"),
                cons(TagClass::Universal, 16, vec![prim(4, b"x")]),
            ],
        ));
        assert!(RawEntry::decode(bad_attr).is_err());
    }

    #[test]
    fn new_entries() {
        let acct = NewAccount {
            address: Address::parse("x*y@example.com").expect("test value"),
            password: Some("{PLAIN}p".into()),
            cluster: "c1".into(),
            state: AccountState::Moving,
            quota: 7,
        };
        let attrs = new_entry(&acct, &cfg());
        let get = |n: &str| {
            attrs
                .iter()
                .find(|(a, _)| a == n)
                .map(|(_, v)| v.clone())
                .expect("test value")
        };
        assert_eq!(get("sn"), HashSet::from(["x*y".to_owned()]));
        assert_eq!(get("mailHost"), HashSet::from(["c1".to_owned()]));
        assert_eq!(
            get("tandemAccountState"),
            HashSet::from(["moving".to_owned()])
        );
        assert_eq!(get("userPassword"), HashSet::from(["{PLAIN}p".to_owned()]));
        assert!(get("objectClass").contains("tandemAccount"));
    }

    #[test]
    fn generalized_times() {
        for (s, want) in [
            ("19700101000000Z", Some(0)),
            ("20240229120000Z", Some(1_709_208_000)),
            ("20240229120000.123Z", Some(1_709_208_000)),
            ("20240229120000,5Z", Some(1_709_208_000)),
            ("202402291200Z", Some(1_709_208_000)),
            ("2024022912Z", Some(1_709_208_000)),
            ("20240229140000+0200", Some(1_709_208_000)),
            ("20240229100000-02", Some(1_709_208_000)),
            ("20000101000000Z", Some(946_684_800)),
            ("19691231235959Z", Some(-1)),
            ("20240229120000", None),
            ("20241329120000Z", None),
            ("20240229250000Z", None),
            ("20240229120000.Z", None),
            ("20240229120000Zjunk", None),
            ("20240229120000+2", None),
            ("2024", None),
            ("", None),
            ("2024022912000xZ", None),
        ] {
            assert_eq!(parse_generalized_time(s), want, "{s}");
        }
        for t in [0, 1_709_208_000, 4_102_444_800, -86_400 * 365] {
            let (y, m, d, ..) = shared::time::civil(t);
            assert_eq!(
                days_from_civil(y, i64::from(m), i64::from(d)) * 86_400,
                t - t.rem_euclid(86_400)
            );
        }
    }
}
