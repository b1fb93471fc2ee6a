//! Slowing down password guessing (like Dovecot's auth_penalty), kept per
//! key: the frontend keeps one [`Penalty`] per client address and one per
//! account name. Every failure doubles the wait the key's next attempt
//! gets, up to a cap; a success clears it, and it fades after a quiet
//! period. Waiting costs the frontend nothing but a timer, so one address
//! hammering logins cannot slow anybody else down, and a botnet spreading
//! its guesses for one account over many addresses still meets the
//! account's own, smaller, cap.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// After this long without a failure, an address starts clean again.
const FORGET_AFTER: Duration = Duration::from_secs(300);
/// Addresses remembered at most; beyond, the stalest half is dropped.
const MAX_ENTRIES: usize = 100_000;

pub struct Penalty<K> {
    base: Duration,
    cap: Duration,
    map: Mutex<HashMap<K, (u32, Instant)>>,
}

impl<K: Hash + Eq> Penalty<K> {
    pub fn new(base: Duration, cap: Duration) -> Self {
        Penalty {
            base,
            cap,
            map: Mutex::new(HashMap::new()),
        }
    }

    /// How long the next login attempt from `ip` waits before it is checked.
    pub fn delay(&self, ip: &K) -> Duration {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(ip) {
            Some((n, at)) if *n > 0 && at.elapsed() < FORGET_AFTER => {
                let factor = 1u32 << (n - 1).min(16);
                (self.base * factor).min(self.cap)
            }
            _ => Duration::ZERO,
        }
    }

    pub fn failed(&self, ip: K) {
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

    pub fn succeeded(&self, ip: &K) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(ip);
    }
}

/// At most a few password checks in flight per client address: hashing is
/// the expensive part of a login and runs on a pool sized to the cores, so
/// one address opening a hundred connections must not fill that pool's
/// queue ahead of everybody else.
pub struct Slots<K> {
    per_key: usize,
    map: Mutex<HashMap<K, std::sync::Arc<tokio::sync::Semaphore>>>,
}

impl<K: Hash + Eq + Clone> Slots<K> {
    pub fn new(per_key: usize) -> Self {
        Slots {
            per_key: per_key.max(1),
            map: Mutex::new(HashMap::new()),
        }
    }

    /// Waits for one of `key`'s slots; it is free again when the permit drops.
    pub async fn acquire(&self, key: &K) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let sem = {
            let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
            if map.len() >= MAX_ENTRIES {
                // Keys nobody holds a slot of are free to forget.
                map.retain(|_, s| std::sync::Arc::strong_count(s) > 1);
            }
            map.entry(key.clone())
                .or_insert_with(|| std::sync::Arc::new(tokio::sync::Semaphore::new(self.per_key)))
                .clone()
        };
        sem.acquire_owned().await.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    #[test]
    fn doubles_up_to_the_cap_and_clears_on_success() {
        let p = Penalty::new(Duration::from_millis(100), Duration::from_secs(1));
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        assert_eq!(p.delay(&ip), Duration::ZERO);
        let mut seen = vec![];
        for _ in 0..6 {
            p.failed(ip);
            seen.push(p.delay(&ip).as_millis());
        }
        assert_eq!(seen, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(
            p.delay(&other),
            Duration::ZERO,
            "other addresses are not slowed"
        );
        p.succeeded(&ip);
        assert_eq!(p.delay(&ip), Duration::ZERO);
    }

    #[tokio::test]
    async fn slots_bound_checks_per_key() {
        let s = Slots::new(2);
        let a = s.acquire(&1).await;
        let b = s.acquire(&1).await;
        assert!(a.is_some() && b.is_some());
        let third = tokio::time::timeout(Duration::from_millis(50), s.acquire(&1)).await;
        assert!(third.is_err(), "a third check of one key waits");
        assert!(s.acquire(&2).await.is_some(), "other keys do not");
        drop(a);
        assert!(s.acquire(&1).await.is_some());
    }
}
