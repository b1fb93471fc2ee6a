//! Slowing down password guessing, per client address (like Dovecot's
//! auth_penalty): every failed login from an address doubles the wait its
//! next attempt gets, up to a cap; a success clears it, and it fades after a
//! quiet period. Waiting costs the frontend nothing but a timer, so one
//! address hammering logins cannot slow anybody else down.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// After this long without a failure, an address starts clean again.
const FORGET_AFTER: Duration = Duration::from_secs(300);
/// Addresses remembered at most; beyond, the stalest half is dropped.
const MAX_ENTRIES: usize = 100_000;

pub struct Penalty {
    base: Duration,
    cap: Duration,
    map: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl Penalty {
    pub fn new(base: Duration, cap: Duration) -> Self {
        Penalty {
            base,
            cap,
            map: Mutex::new(HashMap::new()),
        }
    }

    /// How long the next login attempt from `ip` waits before it is checked.
    pub fn delay(&self, ip: IpAddr) -> Duration {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(&ip) {
            Some((n, at)) if *n > 0 && at.elapsed() < FORGET_AFTER => {
                let factor = 1u32 << (n - 1).min(16);
                (self.base * factor).min(self.cap)
            }
            _ => Duration::ZERO,
        }
    }

    pub fn failed(&self, ip: IpAddr) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_ENTRIES {
            let mut ages: Vec<Instant> = map.values().map(|(_, at)| *at).collect();
            ages.sort_unstable();
            let cutoff = ages[ages.len() / 2];
            map.retain(|_, (_, at)| *at > cutoff);
        }
        let e = map.entry(ip).or_insert((0, Instant::now()));
        if e.1.elapsed() >= FORGET_AFTER {
            e.0 = 0;
        }
        e.0 = e.0.saturating_add(1);
        e.1 = Instant::now();
    }

    pub fn succeeded(&self, ip: IpAddr) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_clears_on_success() {
        let p = Penalty::new(Duration::from_millis(100), Duration::from_secs(1));
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        assert_eq!(p.delay(ip), Duration::ZERO);
        let mut seen = vec![];
        for _ in 0..6 {
            p.failed(ip);
            seen.push(p.delay(ip).as_millis());
        }
        assert_eq!(seen, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(
            p.delay(other),
            Duration::ZERO,
            "other addresses are not slowed"
        );
        p.succeeded(ip);
        assert_eq!(p.delay(ip), Duration::ZERO);
    }
}
