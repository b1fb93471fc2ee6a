//! Base subject extraction, RFC 5256 §2.1, used by SORT SUBJECT and both
//! THREAD algorithms.
//!
//! The caller hands in the Subject already decoded from encoded words (step 1
//! of the RFC is theirs); everything else is done here on the uppercased text,
//! so "Re", "RE" and "re" are one prefix and the result compares as the
//! RFC's i;unicode-casemap-like collation wants.

/// The base subject, uppercased for comparison.
pub fn base_subject(subject: &str) -> String {
    extract(subject).0
}

/// The base subject and whether extraction removed a reply or forward marker
/// (`Re:`, `Fwd:`, `(fwd)`, `[fwd: ...]`); THREAD=REFERENCES step 5 prefers the
/// original message over replies when grouping by subject.
pub(crate) fn extract(subject: &str) -> (String, bool) {
    let mut s = normalize_space(&subject.to_uppercase());
    let mut is_reply = false;
    loop {
        // (2) trailers
        loop {
            let trimmed = s.trim_end_matches(' ');
            if let Some(rest) = trimmed.strip_suffix("(FWD)") {
                s = rest.to_string();
                is_reply = true;
            } else {
                s.truncate(trimmed.len());
                break;
            }
        }
        // (3)-(5) leaders and blobs until nothing changes
        loop {
            let before = s.len();
            loop {
                if let Some(rest) = s.strip_prefix(' ') {
                    s = rest.to_string();
                } else if let Some(len) = leader_len(&s) {
                    s = s[len..].to_string();
                    is_reply = true;
                } else {
                    break;
                }
            }
            if let Some(len) = blob_len(&s) {
                // Only when something is left: "[announce]" alone stays.
                if !s[len..].trim_start_matches(' ').is_empty() {
                    s = s[len..].to_string();
                }
            }
            if s.len() == before {
                break;
            }
        }
        // (6) "[fwd: ...]" wrapping the whole subject
        match s.strip_prefix("[FWD:").and_then(|r| r.strip_suffix(']')) {
            Some(inner) => {
                s = inner.to_string();
                is_reply = true;
            }
            None => return (s, is_reply),
        }
    }
}

/// Tabs and line breaks become spaces, runs of spaces one space.
fn normalize_space(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        let ch = if matches!(ch, '\t' | '\r' | '\n') {
            ' '
        } else {
            ch
        };
        if ch == ' ' && out.ends_with(' ') {
            continue;
        }
        out.push(ch);
    }
    out
}

/// Length of `subj-blob = "[" *BLOBCHAR "]" *WSP` at the start of `s`.
fn blob_len(s: &str) -> Option<usize> {
    let rest = s.strip_prefix('[')?;
    let close = rest.find(['[', ']'])?;
    if rest.as_bytes()[close] != b']' {
        return None;
    }
    let after = &rest[close + 1..];
    Some(s.len() - after.trim_start_matches(' ').len())
}

/// Length of `*subj-blob subj-refwd` at the start of `s`, where
/// `subj-refwd = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":"`.
fn leader_len(s: &str) -> Option<usize> {
    let mut pos = 0;
    while let Some(len) = blob_len(&s[pos..]) {
        pos += len;
    }
    let rest = &s[pos..];
    let rest = ["RE", "FWD", "FW"]
        .iter()
        .find_map(|p| rest.strip_prefix(p))?
        .trim_start_matches(' ');
    let rest = match blob_len(rest) {
        Some(len) => &rest[len..],
        None => rest,
    };
    let rest = rest.strip_prefix(':')?;
    Some(s.len() - rest.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_subjects() {
        let cases: &[(&str, &str, bool)] = &[
            ("", "", false),
            ("hello", "HELLO", false),
            ("Re: hello", "HELLO", true),
            ("RE:hello", "HELLO", true),
            ("re : hello", "HELLO", true),
            ("Fwd: hello", "HELLO", true),
            ("Fw: hello", "HELLO", true),
            ("Re: Re: RE: hello", "HELLO", true),
            ("Re[2]: hello", "HELLO", true),
            ("Re: [list] Fwd: hello (fwd)", "HELLO", true),
            ("[list] hello", "HELLO", false),
            ("[list]", "[LIST]", false),
            ("[a][b] Re: hello", "HELLO", true),
            ("hello (fwd) (FWD)  ", "HELLO", true),
            ("[fwd: hello]", "HELLO", true),
            ("[Fwd: Re: [list] hello (fwd)]", "HELLO", true),
            ("  hello\t \r\n world  ", "HELLO WORLD", false),
            ("Reply to all", "REPLY TO ALL", false),
            ("Re: ", "", true),
            ("[unclosed hello", "[UNCLOSED HELLO", false),
            ("Ré: café", "RÉ: CAFÉ", false),
            ("Re: café", "CAFÉ", true),
        ];
        for (input, want, reply) in cases {
            assert_eq!(extract(input), (want.to_string(), *reply), "{input:?}");
            assert_eq!(base_subject(want), *want, "idempotent on {want:?}");
        }
    }
}
