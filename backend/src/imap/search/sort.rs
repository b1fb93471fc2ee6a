//! SORT ordering, RFC 5256 §3 (and DISPLAYFROM/DISPLAYTO of RFC 5957).
//!
//! The keys of each message are computed once through the [`Candidate`] and
//! stored already folded for comparison, so sorting only compares values.

use std::cmp::Ordering;

use imap_codec::imap_types::extensions::sort::{SortCriterion, SortKey};

use super::Candidate;
use super::subject::base_subject;

/// The values one message is sorted by, folded for comparison.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SortKeys {
    /// INTERNALDATE, unix seconds.
    pub arrival: i64,
    /// addr-mailbox of the first Cc address, ASCII-uppercased.
    pub cc: String,
    /// The Date: header, or INTERNALDATE when it is missing or unparsable.
    pub date: i64,
    /// addr-mailbox of the first From address, ASCII-uppercased.
    pub from: String,
    pub size: u64,
    /// Base subject (RFC 5256 §2.1), uppercased.
    pub subject: String,
    /// addr-mailbox of the first To address, ASCII-uppercased.
    pub to: String,
    /// Display name of the first From address, else its addr-spec; lowercased.
    pub display_from: String,
    /// Display name of the first To address, else its addr-spec; lowercased.
    pub display_to: String,
    /// The tie breaker: mailbox order.
    pub seq: u32,
}

/// Reads the sort keys of one message (header and Date: included).
pub fn sort_keys(c: &mut impl Candidate) -> SortKeys {
    let from = first_address(&c.header_values("From"));
    let to = first_address(&c.header_values("To"));
    let cc = first_address(&c.header_values("Cc"));
    let subject = c
        .header_values("Subject")
        .first()
        .map(|s| base_subject(s))
        .unwrap_or_default();
    let arrival = c.internal_date();
    SortKeys {
        arrival,
        cc: cc.mailbox.to_ascii_uppercase(),
        date: c.sent_date().unwrap_or(arrival),
        from: from.mailbox.to_ascii_uppercase(),
        size: c.size(),
        subject,
        to: to.mailbox.to_ascii_uppercase(),
        display_from: from.display().to_lowercase(),
        display_to: to.display().to_lowercase(),
        seq: c.seq(),
    }
}

/// Sorts by the criteria in order; messages equal on all of them stay in
/// mailbox order (by `seq`, never reversed).
pub fn sort(items: &mut [(u32, SortKeys)], criteria: &[SortCriterion]) {
    items.sort_by(|(_, a), (_, b)| {
        criteria
            .iter()
            .map(|c| {
                let o = compare(&c.key, a, b);
                if c.reverse { o.reverse() } else { o }
            })
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
            .then(a.seq.cmp(&b.seq))
    });
}

fn compare(key: &SortKey, a: &SortKeys, b: &SortKeys) -> Ordering {
    match key {
        SortKey::Arrival => a.arrival.cmp(&b.arrival),
        SortKey::Cc => a.cc.cmp(&b.cc),
        SortKey::Date => a.date.cmp(&b.date),
        SortKey::From => a.from.cmp(&b.from),
        SortKey::Size => a.size.cmp(&b.size),
        SortKey::Subject => a.subject.cmp(&b.subject),
        SortKey::To => a.to.cmp(&b.to),
        SortKey::DisplayFrom => a.display_from.cmp(&b.display_from),
        SortKey::DisplayTo => a.display_to.cmp(&b.display_to),
    }
}

/// The parts of one address that SORT looks at.
#[derive(Debug, Default, PartialEq, Eq)]
struct Address {
    name: String,
    /// Local part, unquoted.
    mailbox: String,
    /// `mailbox@host`, or just the mailbox without a host.
    spec: String,
}

impl Address {
    fn display(&self) -> &str {
        if self.name.is_empty() {
            &self.spec
        } else {
            &self.name
        }
    }
}

/// The first address of an address-list header (first occurrence only).
///
/// The values arrive decoded, so a display name may now hold a comma
/// (`=?utf-8?q?Doe=2C_John?=` became `Doe, John`): pieces before the first
/// one that looks like an address (has `<` or `@`) are taken as its name.
fn first_address(values: &[String]) -> Address {
    let Some(value) = values.first() else {
        return Address::default();
    };
    // A group comes first: its ENVELOPE address is the group's start,
    // whose mailbox is the group name (RFC 3501 §7.4.2), and that is what
    // RFC 5256's "first address" sorts by.
    if let Some(group) = group_name(value) {
        return Address {
            name: String::new(),
            mailbox: group.clone(),
            spec: group,
        };
    }
    let pieces = split_top_level(value);
    let found = pieces
        .iter()
        .position(|p| p.contains('<') || p.contains('@'));
    let (prefix, piece) = match found {
        Some(i) => (pieces[..i].join(", "), pieces[i].as_str()),
        None => (String::new(), pieces.first().map_or("", String::as_str)),
    };
    let (name, spec) = match (piece.find('<'), piece.rfind('>')) {
        (Some(open), Some(close)) if open < close => {
            let name = if prefix.is_empty() {
                piece[..open].to_string()
            } else {
                format!("{prefix}, {}", &piece[..open])
            };
            (name, piece[open + 1..close].to_string())
        }
        _ => (String::new(), piece.to_string()),
    };
    // A source route "@a,@b:user@host" keeps only what follows its colon.
    let spec = spec.rsplit(':').next().unwrap_or("").trim().to_string();
    let name = name.trim().trim_matches('"').trim().to_string();
    let mailbox = match spec.rfind('@') {
        Some(at) => &spec[..at],
        None => spec.as_str(),
    };
    let mailbox = mailbox.trim().trim_matches('"').to_string();
    Address {
        name,
        mailbox,
        spec,
    }
}

/// The display name of a group that opens `value` (`name: a@b, c@d;`), if
/// one does: a `:` outside quotes, comments and angle brackets, before any
/// `@` or `,` there.
fn group_name(value: &str) -> Option<String> {
    let (mut quoted, mut angle, mut comment) = (false, 0u32, 0u32);
    for (i, ch) in value.char_indices() {
        match ch {
            '"' if comment == 0 => quoted = !quoted,
            '(' if !quoted => comment += 1,
            ')' if !quoted && comment > 0 => comment -= 1,
            '<' if !quoted && comment == 0 => angle += 1,
            '>' if !quoted && comment == 0 && angle > 0 => angle -= 1,
            '@' | ',' if !quoted && comment == 0 && angle == 0 => return None,
            ':' if !quoted && comment == 0 && angle == 0 => {
                let name = value[..i].trim().trim_matches('"').trim();
                return (!name.is_empty()).then(|| name.to_owned());
            }
            _ => {}
        }
    }
    None
}

/// Splits on commas outside quotes, comments and angle brackets; drops
/// comments and a group's `name:` and `;`.
fn split_top_level(value: &str) -> Vec<String> {
    let mut pieces = vec![String::new()];
    let (mut quoted, mut escaped, mut comment, mut angle) = (false, false, 0u32, false);
    for ch in value.chars() {
        let Some(cur) = pieces.last_mut() else { break };
        if escaped {
            cur.push(ch);
            escaped = false;
            continue;
        }
        match ch {
            '\\' if quoted || comment > 0 => escaped = true,
            '"' if comment == 0 => {
                quoted = !quoted;
                cur.push(ch);
            }
            '(' if !quoted => comment += 1,
            ')' if !quoted && comment > 0 => comment -= 1,
            _ if comment > 0 => {}
            '<' if !quoted => {
                angle = true;
                cur.push(ch);
            }
            '>' if !quoted => {
                angle = false;
                cur.push(ch);
            }
            ',' if !quoted && !angle => pieces.push(String::new()),
            // Group syntax: "name: a@b, c@d;" - the group name is no address.
            ':' if !quoted && !angle && !cur.contains('@') => cur.clear(),
            ';' if !quoted && !angle => {}
            _ => cur.push(ch),
        }
    }
    pieces
        .into_iter()
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_addresses() {
        let cases: &[(&str, &str, &str, &str)] = &[
            // header value, name, mailbox, spec
            ("", "", "", ""),
            ("a@example.org", "", "a", "a@example.org"),
            ("A <b@example.org>, c@d", "A", "b", "b@example.org"),
            ("\"Doe, John\" <jd@x.org>", "Doe, John", "jd", "jd@x.org"),
            ("Doe, John <jd@x.org>", "Doe, John", "jd", "jd@x.org"),
            ("jd@x.org (John Doe)", "", "jd", "jd@x.org"),
            (
                "\"odd@local\"@x.org",
                "",
                "odd@local",
                "\"odd@local\"@x.org",
            ),
            // A group sorts by its name, as its ENVELOPE group start.
            ("friends: a@x.org, b@y.org;", "", "friends", "friends"),
            (
                "undisclosed-recipients:;",
                "",
                "undisclosed-recipients",
                "undisclosed-recipients",
            ),
            ("<@r1,@r2:u@h>", "", "u", "u@h"),
            ("root", "", "root", "root"),
        ];
        for (value, name, mailbox, spec) in cases {
            let got = first_address(&[value.to_string()]);
            assert_eq!(
                (got.name.as_str(), got.mailbox.as_str(), got.spec.as_str()),
                (*name, *mailbox, *spec),
                "{value:?}"
            );
        }
    }
}
