//! IMAP keywords (`$Forwarded`, `$Junk`, anything a client makes up) in a
//! Maildir, the way Dovecot keeps them: a message's keywords are lowercase
//! letters in its info suffix (`:2,Sab`), and the mailbox's `dovecot-keywords`
//! file maps each letter to a name, one `<index> <name>` line each, index 0
//! being `a` and 25 being `z`. So a mailbox holds at most 26 distinct
//! keywords; past that IMAP answers NO (RFC 3501 §7.1: PERMANENTFLAGS then
//! lacks `\*`).
//!
//! The file is only ever added to, under a lock (`tandem-keywords.lock`,
//! an OS lock that dies with its process), after re-reading it, so two
//! sessions never give one letter two names. It is written atomically.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::maildir::{Flags, sync_dir};

pub const FILE_NAME: &str = "dovecot-keywords";
const LOCK_NAME: &str = "tandem-keywords.lock";
/// Letters `a`..=`z`.
pub const MAX_KEYWORDS: usize = 26;
/// Longest keyword accepted, in bytes.
pub const MAX_KEYWORD_LEN: usize = 128;

/// The keyword names of one mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keywords {
    dir: PathBuf,
    names: [Option<String>; MAX_KEYWORDS],
}

impl Keywords {
    /// Reads the mapping of the mailbox at `dir` (empty if there is no file;
    /// lines that do not parse are skipped, as Dovecot does).
    pub fn load(dir: &Path) -> io::Result<Keywords> {
        let mut k = Keywords {
            dir: dir.to_owned(),
            names: Default::default(),
        };
        k.reload()?;
        Ok(k)
    }

    fn reload(&mut self) -> io::Result<()> {
        self.names = Default::default();
        let text = match fs::read_to_string(self.dir.join(FILE_NAME)) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        for line in text.lines() {
            let Some((i, name)) = line.split_once(' ') else {
                continue;
            };
            let Ok(i) = i.parse::<usize>() else { continue };
            if i < MAX_KEYWORDS && is_valid(name) && self.index_of(name).is_none() {
                self.names[i] = Some(name.to_owned());
            }
        }
        Ok(())
    }

    fn index_of(&self, name: &str) -> Option<usize> {
        self.names
            .iter()
            .position(|n| n.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(name)))
    }

    /// The letter of keyword `name` (compared case-insensitively, RFC 9051
    /// §2.3.2). With `create`, a keyword the mailbox does not know yet gets
    /// the first free letter, durably, before this returns; `None` when all
    /// 26 are taken, without `create`, or for a name that is not an IMAP atom
    /// (or starts with `\`).
    pub fn letter_for(&mut self, name: &str, create: bool) -> io::Result<Option<char>> {
        if !is_valid(name) {
            return Ok(None);
        }
        if let Some(i) = self.index_of(name) {
            return Ok(Some(letter(i)));
        }
        if !create {
            return Ok(None);
        }
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.dir.join(LOCK_NAME))?;
        lock.lock()?;
        // Another session may have added keywords since we read the file.
        self.reload()?;
        if let Some(i) = self.index_of(name) {
            return Ok(Some(letter(i)));
        }
        let Some(free) = self.names.iter().position(Option::is_none) else {
            return Ok(None);
        };
        self.names[free] = Some(name.to_owned());
        if let Err(e) = self.write() {
            self.names[free] = None;
            return Err(e);
        }
        Ok(Some(letter(free)))
    }

    /// The keyword a letter stands for.
    pub fn name_of(&self, letter: char) -> Option<&str> {
        let i = index(letter)?;
        self.names[i].as_deref()
    }

    /// Every (letter, keyword), in letter order: FLAGS and PERMANENTFLAGS.
    pub fn all(&self) -> impl Iterator<Item = (char, &str)> {
        self.names
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.as_deref().map(|n| (letter(i), n)))
    }

    /// Whether another keyword could still be created.
    pub fn has_room(&self) -> bool {
        self.names.iter().any(Option::is_none)
    }

    fn write(&self) -> io::Result<()> {
        let mut text = String::new();
        for (i, n) in self.names.iter().enumerate() {
            if let Some(n) = n {
                text.push_str(&format!("{i} {n}\n"));
            }
        }
        let tmp = self
            .dir
            .join(format!("{FILE_NAME}.tmp.{}", std::process::id()));
        {
            let mut f = File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
        }
        fs::rename(&tmp, self.dir.join(FILE_NAME))?;
        sync_dir(&self.dir)
    }
}

/// Whether `name` can be a keyword: an IMAP atom (RFC 3501 §9
/// `flag-keyword`), so no space, control, `( ) { % * " \ ]`, and not
/// longer than [`MAX_KEYWORD_LEN`].
pub fn is_valid(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_KEYWORD_LEN
        && name
            .bytes()
            .all(|b| (0x21..0x7f).contains(&b) && !b"(){%*\"\\]".contains(&b))
}

fn letter(i: usize) -> char {
    char::from(b'a' + i as u8)
}

fn index(letter: char) -> Option<usize> {
    letter
        .is_ascii_lowercase()
        .then(|| (letter as u8 - b'a') as usize)
}

/// A message's info letters: system flags and keyword letters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Info {
    pub flags: Flags,
    /// Bit `i` set: keyword letter `'a' + i`.
    pub keywords: u32,
}

impl Info {
    /// Parses the letters after `:2,`; letters Tandem does not know (other
    /// uppercase ones) are dropped.
    pub fn parse(info: &str) -> Info {
        let mut keywords = 0;
        for c in info.chars() {
            if let Some(i) = index(c) {
                keywords |= 1 << i;
            }
        }
        Info {
            flags: Flags::parse(info),
            keywords,
        }
    }

    /// The info letters, in ASCII order as Maildir requires: system flags
    /// (`DFPRST`) first, then keyword letters.
    pub fn letters(&self) -> String {
        let mut s = self.flags.letters();
        s.extend(self.keyword_letters());
        s
    }

    pub fn keyword_letters(&self) -> impl Iterator<Item = char> + use<> {
        let bits = self.keywords;
        (0..MAX_KEYWORDS)
            .filter(move |i| bits & (1 << i) != 0)
            .map(letter)
    }

    pub fn has_keyword(&self, letter: char) -> bool {
        index(letter).is_some_and(|i| self.keywords & (1 << i) != 0)
    }

    /// Sets or clears a keyword letter; other characters are ignored.
    pub fn set_keyword(&mut self, letter: char, on: bool) {
        if let Some(i) = index(letter) {
            if on {
                self.keywords |= 1 << i;
            } else {
                self.keywords &= !(1 << i);
            }
        }
    }
}

/// The info letters for `flags` plus `keywords` (letters `a`-`z`; anything
/// else ignored), sorted and without duplicates.
pub fn info_from(flags: &Flags, keywords: &[char]) -> String {
    let mut info = Info {
        flags: *flags,
        keywords: 0,
    };
    for k in keywords {
        info.set_keyword(*k, true);
    }
    info.letters()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Mailbox;
    use crate::store::maildir;

    #[test]
    fn info_letters_round_trip_sorted() {
        let flags = Flags {
            seen: true,
            draft: true,
            ..Flags::default()
        };
        assert_eq!(info_from(&flags, &['c', 'a', 'c', 'Z', '1']), "DSac");
        let i = Info::parse("zSDaP");
        assert!(i.flags.seen && i.flags.draft && i.flags.passed);
        assert_eq!(i.letters(), "DPSaz");
        assert_eq!(i.keyword_letters().collect::<String>(), "az");
        let mut j = i;
        j.set_keyword('a', false);
        j.set_keyword('m', true);
        assert!(!j.has_keyword('a') && j.has_keyword('m'));
        assert_eq!(j.letters(), "DPSmz");
        assert_eq!(Info::parse(&j.letters()), j);
    }

    #[test]
    fn mapping_is_shared_durable_and_bounded() {
        let t = tempfile::tempdir().unwrap();
        let mut k = Keywords::load(t.path()).unwrap();
        assert_eq!(k.letter_for("$Forwarded", false).unwrap(), None);
        assert_eq!(k.letter_for("$Forwarded", true).unwrap(), Some('a'));
        assert_eq!(k.letter_for("$forwarded", true).unwrap(), Some('a'));
        assert_eq!(k.letter_for("\\Seen", true).unwrap(), None);
        assert_eq!(k.letter_for("a b", true).unwrap(), None);
        // A second session adds one; the first sees it instead of clashing.
        let mut other = Keywords::load(t.path()).unwrap();
        assert_eq!(other.letter_for("$Junk", true).unwrap(), Some('b'));
        assert_eq!(k.letter_for("Work", true).unwrap(), Some('c'));
        assert_eq!(k.name_of('b'), Some("$Junk"));
        assert_eq!(
            fs::read_to_string(t.path().join(FILE_NAME)).unwrap(),
            "0 $Forwarded\n1 $Junk\n2 Work\n"
        );
        for i in 3..26 {
            assert!(k.letter_for(&format!("k{i}"), true).unwrap().is_some());
        }
        assert!(!k.has_room());
        assert_eq!(k.letter_for("one-too-many", true).unwrap(), None);
        assert_eq!(k.all().count(), 26);
        assert_eq!(k.name_of('z'), Some("k25"));
        assert_eq!(k.name_of('A'), None);
    }

    #[test]
    fn keywords_survive_in_file_names_and_reopen() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path();
        maildir::create(dir).unwrap();
        maildir::deliver(dir, b"x\n", None).unwrap();
        let mut mb = Mailbox::open(dir).unwrap();
        let mut k = Keywords::load(dir).unwrap();
        let fwd = k.letter_for("$Forwarded", true).unwrap().unwrap();
        let work = k.letter_for("Work", true).unwrap().unwrap();
        let mut info = mb.get(1).unwrap().parsed_info();
        info.flags.seen = true;
        info.set_keyword(work, true);
        info.set_keyword(fwd, true);
        mb.set_info(1, &info.letters()).unwrap();
        drop((mb, k));
        let mb = Mailbox::open(dir).unwrap();
        let k = Keywords::load(dir).unwrap();
        let m = mb.get(1).unwrap();
        assert!(m.file_name().ends_with(":2,Sab"), "{}", m.file_name());
        let names: Vec<&str> = m
            .parsed_info()
            .keyword_letters()
            .filter_map(|c| k.name_of(c))
            .collect();
        assert_eq!(names, ["$Forwarded", "Work"]);
        assert!(m.parsed_info().flags.seen);
    }
}
