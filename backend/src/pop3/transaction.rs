//! The TRANSACTION state (RFC 1939 §5, §7): STAT, LIST, UIDL, RETR, TOP,
//! DELE, RSET, NOOP on the snapshot taken at login. QUIT's UPDATE is in
//! `session` (it also runs, without deletions, when a session just ends).

use std::io::{ErrorKind, Write};

use super::command::Command;
use super::maildrop::Missing;
use super::session::{FLUSH_AT, Io, Next, Session, Transaction, Transport};
use super::wire::Encoder;

impl Session<'_> {
    pub(super) async fn transaction<S: Transport>(
        &mut self,
        cmd: Command,
        t: &mut Transaction,
        io: &mut Io<S>,
    ) -> Next {
        let d = &mut t.drop;
        match cmd {
            Command::Stat => {
                let (n, octets) = d.stat();
                self.ok(&format!("{n} {octets}"))
            }
            Command::List(None) => {
                let (n, _) = d.stat();
                let _ = write!(self.out, "+OK {n} messages:\r\n");
                for (i, e) in d.live() {
                    let _ = write!(self.out, "{i} {}\r\n", e.octets);
                }
                self.out.extend_from_slice(b".\r\n");
                Next::Go
            }
            Command::Uidl(None) => {
                self.out.extend_from_slice(b"+OK\r\n");
                for (i, e) in d.live() {
                    let _ = write!(self.out, "{i} {}\r\n", d.uidl(e));
                }
                self.out.extend_from_slice(b".\r\n");
                Next::Go
            }
            Command::List(Some(n)) => match d.get(n) {
                Ok(e) => {
                    let octets = e.octets;
                    self.ok(&format!("{n} {octets}"))
                }
                Err(why) => self.missing(n, why),
            },
            Command::Uidl(Some(n)) => match d.get(n) {
                Ok(e) => {
                    let uidl = d.uidl(e);
                    self.ok(&format!("{n} {uidl}"))
                }
                Err(why) => self.missing(n, why),
            },
            Command::Retr(n) => self.send(t, n, None, io).await,
            Command::Top(n, lines) => self.send(t, n, Some(lines), io).await,
            Command::Dele(n) => match d.delete(n) {
                Ok(()) => self.ok("Marked to be deleted."),
                Err(why) => self.missing(n, why),
            },
            Command::Rset => {
                d.reset();
                let (n, octets) = d.stat();
                self.ok(&format!("{n} messages ({octets} octets)."))
            }
            Command::Noop => self.ok(""),
            Command::User(_) | Command::Pass(_) | Command::Auth(_) | Command::Stls => {
                self.err("Already logged in.")
            }
            // Handled for every state by the session.
            Command::Capa | Command::Quit => self.err("Unknown command."),
        }
    }

    fn missing(&mut self, n: u32, why: Missing) -> Next {
        match why {
            Missing::NoSuch => self.err(&format!("There's no message {n}.")),
            Missing::Deleted => self.err("Message is deleted."),
        }
    }

    /// RETR (`top` None) or TOP: the message converted as it is read, in
    /// writes of about [`FLUSH_AT`] bytes.
    async fn send<S: Transport>(
        &mut self,
        t: &mut Transaction,
        n: u32,
        top: Option<u32>,
        io: &mut Io<S>,
    ) -> Next {
        let octets = match t.drop.get(n) {
            Ok(e) => e.octets,
            Err(why) => return self.missing(n, why),
        };
        let body = match t.drop.read(&t.opened, n).await {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return self.err(&format!("Message {n} expunged."));
            }
            Err(e) => {
                self.p.metrics.store_errors.inc();
                tracing::warn!(message = n, error = %e, "cannot read a message");
                return self.err("[SYS/TEMP] Cannot read the message, try again later.");
            }
        };
        let mut sent = self.out.len();
        match top {
            None => {
                let _ = write!(self.out, "+OK {octets} octets\r\n");
            }
            Some(_) => self.out.extend_from_slice(b"+OK\r\n"),
        }
        let mut wire = 0u64;
        let mut enc = Encoder::new(top);
        for chunk in body.chunks(FLUSH_AT) {
            let more = enc.feed(chunk, &mut self.out);
            if self.out.len() >= FLUSH_AT {
                wire += (self.out.len() - sent) as u64;
                sent = 0;
                if self.flush(io).await.is_err() {
                    return Next::Close;
                }
            }
            if !more {
                break;
            }
        }
        enc.finish(&mut self.out);
        wire += (self.out.len() - sent) as u64;
        self.p.metrics.retrieved_bytes.inc_by(wire);
        if top.is_none() {
            self.stats.retr += 1;
            self.stats.retr_bytes += wire;
            t.drop.mark_retrieved(n);
        } else {
            self.stats.top += 1;
            self.stats.top_bytes += wire;
        }
        Next::Go
    }
}
