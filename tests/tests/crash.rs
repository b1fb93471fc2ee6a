//! Crash safety: the node is SIGKILLed again and again while one client
//! streams LMTP deliveries and another deletes over POP3. Afterwards every
//! message acknowledged with 250 (and not deleted by a POP3 session whose
//! QUIT was acknowledged) is there exactly once, no deleted one came back,
//! and no UIDL ever named two different messages.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use tests::backend::Backend;

const USER: &str = "alice@example.com";
const KILLS: usize = 6;

struct Conn {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

type Io<T> = std::io::Result<T>;

fn broken(what: &str) -> std::io::Error {
    std::io::Error::other(what.to_owned())
}

impl Conn {
    fn open(addr: SocketAddr) -> Io<Conn> {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        Ok(Conn {
            r: BufReader::new(s.try_clone()?),
            w: s,
        })
    }
    fn line(&mut self) -> Io<String> {
        let mut l = String::new();
        if self.r.read_line(&mut l)? == 0 {
            return Err(broken("connection closed"));
        }
        Ok(l.trim_end().to_owned())
    }
    fn send(&mut self, text: &str) -> Io<()> {
        self.w.write_all(text.as_bytes())
    }
    /// A (possibly multi-line) SMTP-style reply; its code.
    fn reply(&mut self) -> Io<u16> {
        loop {
            let l = self.line()?;
            if l.len() < 4 {
                return Err(broken("short reply"));
            }
            if l.as_bytes()[3] != b'-' {
                return l[..3].parse().map_err(|_| broken("bad code"));
            }
        }
    }
    fn ok(&mut self, cmd: &str) -> Io<String> {
        self.send(cmd)?;
        let l = self.line()?;
        if !l.starts_with("+OK") {
            return Err(broken(&l));
        }
        Ok(l)
    }
    /// The lines of a POP3 multi-line answer, dot-unstuffed.
    fn multi(&mut self) -> Io<Vec<String>> {
        let mut v = vec![];
        loop {
            let l = self.line()?;
            if l == "." {
                return Ok(v);
            }
            v.push(l.strip_prefix('.').map(str::to_owned).unwrap_or(l));
        }
    }
}

/// Delivers message `n`; Ok(true) only on a 250 after DATA.
fn deliver(addr: SocketAddr, n: u32) -> Io<bool> {
    let mut c = Conn::open(addr)?;
    c.reply()?;
    c.send("LHLO crash.test\r\n")?;
    c.reply()?;
    c.send(&format!(
        "MAIL FROM:<load@example.org>\r\nRCPT TO:<{USER}>\r\nDATA\r\n"
    ))?;
    if c.reply()? != 250 || c.reply()? != 250 || c.reply()? != 354 {
        return Ok(false);
    }
    c.send(&format!(
        "Message-ID: <{n}@crash.test>\r\nSubject: crash {n}\r\n\r\nbody of {n}\r\n{}\r\n.\r\n",
        "x".repeat(200 + (n as usize % 5000))
    ))?;
    Ok(c.reply()? == 250)
}

/// (UIDL, Message-ID) pairs.
type Listing = Vec<(String, String)>;

/// One POP3 session: lists (UIDL -> Message-ID), deletes up to `delete`
/// messages, QUITs. Returns the listing and the ids whose deletion the
/// server confirmed. The ids marked before QUIT go into `in_doubt` first:
/// a SIGKILL after the server applied the deletions but before its `+OK`
/// reached us leaves them gone without a confirmation, which is correct
/// behaviour, not a loss.
fn pop3_session(
    addr: SocketAddr,
    delete: usize,
    in_doubt: &Mutex<HashSet<String>>,
) -> Io<(Listing, Vec<String>)> {
    let mut c = Conn::open(addr)?;
    c.line()?;
    c.ok(&format!("USER {USER}\r\n"))?;
    c.ok("PASS secret\r\n")?;
    c.ok("UIDL\r\n")?;
    let uidls = c.multi()?;
    let mut listing = vec![];
    for l in &uidls {
        let (num, uidl) = l.split_once(' ').ok_or_else(|| broken("bad UIDL line"))?;
        c.ok(&format!("TOP {num} 0\r\n"))?;
        let id = c
            .multi()?
            .into_iter()
            .find_map(|h| h.strip_prefix("Message-ID: ").map(str::to_owned))
            .ok_or_else(|| broken("no Message-ID"))?;
        listing.push((uidl.to_owned(), id));
    }
    let mut deleted = vec![];
    for (i, (_, id)) in listing.iter().enumerate().take(delete) {
        c.ok(&format!("DELE {}\r\n", i + 1))?;
        deleted.push(id.clone());
    }
    lock(in_doubt).extend(deleted.iter().cloned());
    c.ok("QUIT\r\n")?;
    Ok((listing, deleted))
}

#[test]
fn acknowledged_mail_survives_repeated_sigkill() {
    let mut b = Backend::start().expect("start the backend");
    b.add_account(USER, "secret").expect("account");
    let (lmtp, pop3) = (b.lmtp_addr(), b.pop3_addr());
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(HashSet::<String>::new()));
    let deleted = Arc::new(Mutex::new(HashSet::<String>::new()));
    let in_doubt = Arc::new(Mutex::new(HashSet::<String>::new()));
    let uidls = Arc::new(Mutex::new(HashMap::<String, String>::new()));
    let next = Arc::new(AtomicU32::new(0));

    let mut workers = vec![];
    for _ in 0..2 {
        let (stop, acked, next) = (stop.clone(), acked.clone(), next.clone());
        workers.push(thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let n = next.fetch_add(1, Ordering::Relaxed);
                match deliver(lmtp, n) {
                    Ok(true) => {
                        acked.lock().unwrap().insert(format!("<{n}@crash.test>"));
                    }
                    _ => thread::sleep(Duration::from_millis(20)),
                }
            }
        }));
    }
    {
        let (stop, deleted, uidls) = (stop.clone(), deleted.clone(), uidls.clone());
        let in_doubt = in_doubt.clone();
        workers.push(thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match pop3_session(pop3, 3, &in_doubt) {
                    Ok((listing, gone)) => {
                        record_uidls(&uidls, &listing);
                        deleted.lock().unwrap().extend(gone);
                    }
                    Err(_) => thread::sleep(Duration::from_millis(20)),
                }
                thread::sleep(Duration::from_millis(50));
            }
        }));
    }

    for round in 0..KILLS {
        thread::sleep(Duration::from_millis(700 + 150 * round as u64));
        b.kill();
        b.restart()
            .unwrap_or_else(|e| panic!("restart {round} failed: {e}\n{}", b.log_tail()));
    }
    thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().expect("worker");
    }

    let (listing, _) = pop3_session(pop3, 0, &in_doubt).expect("final listing");
    record_uidls(&uidls, &listing);
    let acked = acked.lock().unwrap();
    let deleted = deleted.lock().unwrap();
    let in_doubt = lock(&in_doubt);
    assert!(
        acked.len() > 50,
        "too few deliveries to prove anything: {}",
        acked.len()
    );
    assert!(
        deleted.len() > 5,
        "too few deletions to prove anything: {}",
        deleted.len()
    );
    let mut present: HashMap<&str, usize> = HashMap::new();
    for (_, id) in &listing {
        *present.entry(id).or_default() += 1;
    }
    for (id, n) in &present {
        assert_eq!(*n, 1, "{id} is in the mailbox {n} times");
        assert!(
            !deleted.contains(*id),
            "{id} came back after a confirmed deletion"
        );
    }
    for id in acked.iter() {
        assert!(
            present.contains_key(id.as_str()) || deleted.contains(id) || in_doubt.contains(id),
            "{id} was acknowledged with 250 and is lost"
        );
    }
    eprintln!(
        "{} acknowledged, {} deleted, {} left, {} UIDLs seen, across {KILLS} SIGKILLs",
        acked.len(),
        deleted.len(),
        listing.len(),
        uidls.lock().unwrap().len()
    );
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Remembers which message each UIDL named, failing if one ever names two.
fn record_uidls(seen: &Mutex<HashMap<String, String>>, listing: &[(String, String)]) {
    let mut seen = lock(seen);
    for (uidl, id) in listing {
        let before = seen.entry(uidl.clone()).or_insert_with(|| id.clone());
        assert_eq!(before, id, "UIDL {uidl} was reused for another message");
    }
}
