//! A TCP forwarder a test can cut, to partition one process from a server
//! (a node from etcd) without touching the server: while cut, connections
//! are accepted and then ignored, as by a network that drops packets, and
//! those open are broken.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

pub struct Forwarder {
    addr: SocketAddr,
    cut: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Forwarder {
    /// Listens on a free loopback port and forwards each connection to
    /// `target`.
    pub fn start(target: SocketAddr) -> anyhow::Result<Forwarder> {
        let listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))?;
        let addr = listener.local_addr()?;
        let cut = Arc::new(AtomicBool::new(false));
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (c, o) = (cut.clone(), open.clone());
        thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(client) = conn else { continue };
                if c.load(Ordering::SeqCst) {
                    // Swallowed: held open, never answered.
                    o.lock().unwrap_or_else(|p| p.into_inner()).push(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect_timeout(&target, Duration::from_secs(1)) else {
                    continue;
                };
                if let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) {
                    let mut open = o.lock().unwrap_or_else(|p| p.into_inner());
                    open.push(c2);
                    open.push(s2);
                }
                pipe(client, server);
            }
        });
        Ok(Forwarder { addr, cut, open })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Breaks every forwarded connection and ignores new ones.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        self.break_open();
    }

    /// Forwards again (connections swallowed while cut are closed).
    pub fn heal(&self) {
        self.cut.store(false, Ordering::SeqCst);
        self.break_open();
    }

    fn break_open(&self) {
        for s in self
            .open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

fn pipe(a: TcpStream, b: TcpStream) {
    let (Ok(a2), Ok(b2)) = (a.try_clone(), b.try_clone()) else {
        return;
    };
    thread::spawn(move || copy(a, b2));
    thread::spawn(move || copy(b, a2));
}

fn copy(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}
