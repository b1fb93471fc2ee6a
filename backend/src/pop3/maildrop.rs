//! The maildrop of one POP3 session: INBOX as it was at login, numbered
//! 1..n, with the session's deletions; and messages put on the wire.

use std::io;
use std::sync::{Arc, Mutex};

use crate::accounts::Opened;
use crate::store::{Mailbox, quota};

/// One message of the snapshot.
#[derive(Debug, Clone)]
pub struct Entry {
    pub uid: u32,
    /// Size with CRLF line ends, as POP3 counts it.
    pub octets: u64,
    /// Size on disk, for the quota bookkeeping when it is deleted.
    pub size: u64,
    pub deleted: bool,
    pub retrieved: bool,
}

pub struct Maildrop {
    pub entries: Vec<Entry>,
    pub uid_validity: u32,
    mailbox: Arc<Mutex<Mailbox>>,
}

fn lock(m: &Mutex<Mailbox>) -> std::sync::MutexGuard<'_, Mailbox> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Maildrop {
    /// Opens and syncs INBOX (under the account's index lock).
    pub async fn open(opened: &Opened) -> io::Result<Maildrop> {
        let _index = opened.index_lock().await;
        opened
            .run(|store| -> io::Result<Maildrop> {
                let mut mb = store.open_mailbox("INBOX").map_err(io::Error::other)?;
                let uids: Vec<(u32, u64)> = mb.messages().iter().map(|m| (m.uid, m.size)).collect();
                let mut entries = Vec::with_capacity(uids.len());
                for (uid, size) in uids {
                    // A message that vanished since the sync is left out.
                    let Ok(octets) = mb.vsize(uid) else { continue };
                    entries.push(Entry {
                        uid,
                        octets,
                        size,
                        deleted: false,
                        retrieved: false,
                    });
                }
                Ok(Maildrop {
                    entries,
                    uid_validity: mb.uid_validity(),
                    mailbox: Arc::new(Mutex::new(mb)),
                })
            })
            .await
            .map_err(io::Error::other)?
    }

    /// The live (not deleted) message `n` (1-based).
    pub fn get(&self, n: u32) -> Result<&Entry, &'static str> {
        match self.entries.get((n as usize).wrapping_sub(1)) {
            None => Err("There's no such message."),
            Some(e) if e.deleted => Err("Message is deleted."),
            Some(e) => Ok(e),
        }
    }

    pub fn uidl(&self, e: &Entry) -> String {
        // Dovecot's default form (%08Xu%08Xv): stable while the UID list is.
        format!("{:08x}{:08x}", e.uid, self.uid_validity)
    }

    /// Messages and octets not deleted.
    pub fn stat(&self) -> (usize, u64) {
        self.entries
            .iter()
            .filter(|e| !e.deleted)
            .fold((0, 0), |(n, o), e| (n + 1, o + e.octets))
    }

    /// Reads message `uid` as stored (LF line ends).
    pub async fn read(&self, opened: &Opened, uid: u32) -> io::Result<Vec<u8>> {
        let mb = self.mailbox.clone();
        opened
            .run(move |_| lock(&mb).read(uid))
            .await
            .map_err(io::Error::other)?
    }

    /// The UPDATE state: expunges the deleted messages, marks the retrieved
    /// ones \Seen and moves everything out of `new/`, as Dovecot does.
    /// Returns how many were deleted.
    pub async fn commit(&self, opened: &Opened) -> io::Result<usize> {
        let deleted: Vec<u32> = self
            .entries
            .iter()
            .filter(|e| e.deleted)
            .map(|e| e.uid)
            .collect();
        let freed: u64 = self
            .entries
            .iter()
            .filter(|e| e.deleted)
            .map(|e| e.size)
            .sum();
        let seen: Vec<u32> = self
            .entries
            .iter()
            .filter(|e| e.retrieved && !e.deleted)
            .map(|e| e.uid)
            .collect();
        let mb = self.mailbox.clone();
        let _index = opened.index_lock().await;
        opened
            .run(move |store| -> io::Result<usize> {
                let mut mb = lock(&mb);
                let gone = mb.expunge(&deleted)?;
                if !gone.is_empty() {
                    let _ = quota::add(store.dir(), -(freed as i64), -(gone.len() as i64));
                }
                for uid in seen {
                    let Some(m) = mb.get(uid) else { continue };
                    let mut info = m.info.clone();
                    if !info.contains('S') {
                        info.push('S');
                        let mut letters: Vec<char> = info.chars().collect();
                        letters.sort_unstable();
                        info = letters.into_iter().collect();
                    }
                    mb.set_info(uid, &info)?;
                }
                mb.mark_old()?;
                Ok(gone.len())
            })
            .await
            .map_err(io::Error::other)?
    }
}

/// Appends `body` (LF or CRLF line ends) to `out` as a POP3 multi-line
/// answer: CRLF line ends, dot-stuffed, ending with `.CRLF`. With `top`,
/// only the header, the blank line and the first `top` body lines.
pub fn put_message(body: &[u8], top: Option<u32>, out: &mut Vec<u8>) {
    out.reserve(body.len() + body.len() / 32 + 8);
    let mut in_body = false;
    let mut body_lines = 0u32;
    let mut rest = body;
    while !rest.is_empty() {
        if in_body && top.is_some_and(|t| body_lines >= t) {
            break;
        }
        let (line, next) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.first() == Some(&b'.') {
            out.push(b'.');
        }
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
        if in_body {
            body_lines += 1;
        } else if line.is_empty() {
            in_body = true;
        }
        rest = next;
    }
    out.extend_from_slice(b".\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(body: &str, top: Option<u32>) -> String {
        let mut out = Vec::new();
        put_message(body.as_bytes(), top, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn table() {
        let cases: &[(&str, Option<u32>, &str)] = &[
            ("S: x\n\nbody\n", None, "S: x\r\n\r\nbody\r\n.\r\n"),
            ("S: x\r\n\r\nbody\r\n", None, "S: x\r\n\r\nbody\r\n.\r\n"),
            (
                "S: x\n\n.dot\n..two\n.\n",
                None,
                "S: x\r\n\r\n..dot\r\n...two\r\n..\r\n.\r\n",
            ),
            (
                "S: x\n\nno newline at end",
                None,
                "S: x\r\n\r\nno newline at end\r\n.\r\n",
            ),
            ("S: x\n\n1\n2\n3\n", Some(0), "S: x\r\n\r\n.\r\n"),
            ("S: x\n\n1\n2\n3\n", Some(2), "S: x\r\n\r\n1\r\n2\r\n.\r\n"),
            ("S: x\n\n1\n", Some(10), "S: x\r\n\r\n1\r\n.\r\n"),
            ("S: only headers\n", Some(3), "S: only headers\r\n.\r\n"),
            ("", None, ".\r\n"),
            ("a\rb\n", None, "a\rb\r\n.\r\n"),
        ];
        for (body, top, want) in cases {
            assert_eq!(wire(body, *top), *want, "{body:?} top {top:?}");
        }
    }
}
