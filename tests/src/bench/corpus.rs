//! Synthetic but realistic mail for the IMAP benchmark, written straight into
//! a Maildir's `cur/` the way a long-used mailbox looks: varied senders,
//! recipients, subjects, dates and Message-IDs, bodies of a few hundred bytes
//! to a few KiB, LF line ends on disk, most messages `\Seen`.
//!
//! The output depends only on the seed and the count, so two servers get
//! byte-identical copies (same file names too) without copying a tree.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;
use std::time::{Duration, SystemTime};

/// A word that no generated header or body contains except where
/// [`Spec::needle_every`] puts it.
pub const NEEDLE: &str = "quetzalcoatlus";

const FIRST: &[&str] = &[
    "Alice", "Bruno", "Chiara", "Dmitri", "Elena", "Farid", "Greta", "Hiro", "Ines", "Jonas",
    "Kasia", "Luis", "Maren", "Nadia", "Omar", "Priya", "Quentin", "Rosa", "Sven", "Tomoko",
];
const LAST: &[&str] = &[
    "Andersen", "Bauer", "Costa", "Dubois", "Eriksen", "Fischer", "Garcia", "Horvat", "Ivanova",
    "Jensen", "Kowalski", "Larsen", "Moreau", "Novak", "Okafor", "Petrov", "Rossi", "Schmidt",
];
const DOMAINS: &[&str] = &[
    "example.com",
    "example.org",
    "example.net",
    "mail.example",
    "corp.example",
];
const WORDS: &[&str] = &[
    "the", "report", "meeting", "budget", "quarter", "release", "draft", "review", "invoice",
    "schedule", "please", "find", "attached", "update", "project", "deadline", "server",
    "customer", "order", "shipping", "question", "answer", "thanks", "regards", "tomorrow",
    "monday", "friday", "office", "travel", "ticket", "support", "account", "password", "holiday",
    "lunch", "agenda", "minutes", "contract", "proposal", "numbers", "figures", "and", "of", "to",
    "in", "for", "with", "on", "we", "you", "it", "is", "this", "that",
];
const TOPICS: &[&str] = &[
    "Quarterly report",
    "Team meeting",
    "Budget review",
    "Release plan",
    "Invoice",
    "Travel booking",
    "Support ticket",
    "Contract draft",
    "Lunch on Friday",
    "Project update",
    "Server maintenance",
    "Customer feedback",
    "Shipping delay",
    "Holiday schedule",
];
const DAYS: &[&str] = &["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const MONTHS: &[&str] = &[
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// What to write.
#[derive(Clone, Copy, Debug)]
pub struct Spec {
    pub count: usize,
    pub seed: u64,
    /// Put [`NEEDLE`] in the body of every n-th message (0: never).
    pub needle_every: usize,
}

impl Spec {
    /// Messages that contain the needle.
    pub fn needles(&self) -> usize {
        if self.needle_every == 0 {
            0
        } else {
            (0..self.count)
                .filter(|i| i % self.needle_every == 7 % self.needle_every)
                .count()
        }
    }
}

/// xorshift64*: deterministic, no dependency, good enough for test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len())]
    }
}

fn person(rng: &mut Rng) -> String {
    let (f, l, d) = (rng.pick(FIRST), rng.pick(LAST), rng.pick(DOMAINS));
    format!("{f} {l} <{}.{}@{d}>", f.to_lowercase(), l.to_lowercase())
}

/// One message (LF line ends) and its date in seconds since the epoch.
fn message(rng: &mut Rng, i: usize, needle: bool) -> (Vec<u8>, u64) {
    // Two years back from 2026-01-01, in order with some jitter.
    let date = 1_704_067_200 + i as u64 * 600 + rng.below(600) as u64;
    let (days, secs) = (date / 86_400, date % 86_400);
    let (y, m, d) = civil(days as i64);
    let mut text = String::with_capacity(2048);
    let from = person(rng);
    let mut to = person(rng);
    if rng.below(4) == 0 {
        to.push_str(", ");
        to.push_str(&person(rng));
    }
    let reply = rng.below(3) == 0;
    text.push_str(&format!(
        "Return-Path: <{addr}>\nFrom: {from}\nTo: {to}\n",
        addr = from
            .split_once('<')
            .map_or("", |(_, a)| a.trim_end_matches('>'))
    ));
    if rng.below(5) == 0 {
        text.push_str(&format!("Cc: {}\n", person(rng)));
    }
    text.push_str(&format!(
        "Subject: {}{} #{}\nDate: {}, {d} {} {y} {:02}:{:02}:{:02} +0000\n\
         Message-ID: <{i}.{:x}@{}>\n",
        if reply { "Re: " } else { "" },
        rng.pick(TOPICS),
        rng.below(1000),
        DAYS[((days + 3) % 7) as usize],
        MONTHS[m as usize - 1],
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        rng.next() & 0xffff_ffff,
        rng.pick(DOMAINS),
    ));
    if reply && i > 0 {
        text.push_str(&format!(
            "In-Reply-To: <{}.0@{}>\n",
            rng.below(i),
            rng.pick(DOMAINS)
        ));
    }
    text.push_str("MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n\n");
    // 3 to 60 lines of about 60 characters: ~200 B to ~4 KiB of body.
    let lines = 3 + rng.below(58);
    let needle_at = needle.then(|| rng.below(lines));
    for l in 0..lines {
        let mut line = String::new();
        while line.len() < 60 {
            if needle_at == Some(l) && line.len() > 20 && !line.contains(NEEDLE) {
                line.push_str(NEEDLE);
            } else {
                line.push_str(rng.pick(WORDS));
            }
            line.push(' ');
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    (text.into_bytes(), date)
}

/// Days since 1970-01-01 to (year, month, day) (Howard Hinnant's algorithm).
fn civil(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Writes the messages of `spec` into `dir/cur` (creating `cur new tmp`),
/// named `<date>.M<i>P1Q<i>.bench,S=<size>,W=<crlf size>:2,<flags>`, with
/// the message date as mtime (INTERNALDATE). Returns the bytes written.
pub fn fill(dir: &Path, spec: Spec) -> io::Result<u64> {
    for sub in ["cur", "new", "tmp"] {
        fs::create_dir_all(dir.join(sub))?;
    }
    let cur = dir.join("cur");
    let mut rng = Rng(spec.seed | 1);
    let mut total = 0;
    for i in 0..spec.count {
        let needle = spec.needle_every != 0 && i % spec.needle_every == 7 % spec.needle_every;
        let (body, date) = message(&mut rng, i, needle);
        let size = body.len() as u64;
        let vsize = size + body.iter().filter(|&&b| b == b'\n').count() as u64;
        let flags = match rng.below(20) {
            0 => "",
            1 => "RS",
            2 => "FS",
            _ => "S",
        };
        let name = format!("{date}.M{i}P1Q{i}.bench,S={size},W={vsize}:2,{flags}");
        let mut f = File::create(cur.join(name))?;
        f.write_all(&body)?;
        f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(date))?;
        total += size;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(civil(19_723), (2024, 1, 1));
        assert_eq!(civil(19_782), (2024, 2, 29));
    }

    #[test]
    fn same_seed_same_mail_and_needles_only_where_asked() {
        let spec = Spec {
            count: 300,
            seed: 7,
            needle_every: 100,
        };
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        assert_eq!(fill(a.path(), spec).unwrap(), fill(b.path(), spec).unwrap());
        let mut hits = 0;
        for e in fs::read_dir(a.path().join("cur")).unwrap() {
            let e = e.unwrap();
            let text = fs::read_to_string(e.path()).unwrap();
            assert_eq!(
                text,
                fs::read_to_string(b.path().join("cur").join(e.file_name())).unwrap()
            );
            let (head, body) = text.split_once("\n\n").unwrap();
            assert!(!head.contains(NEEDLE));
            hits += usize::from(body.contains(NEEDLE));
            assert!(text.len() > 200 && text.len() < 6000, "{}", text.len());
        }
        assert_eq!(hits, spec.needles());
        assert_eq!(hits, 3);
    }
}
