//! New connections per client address: a token bucket each, so a sender
//! that opens connection after connection is told `421 4.7.0` before any
//! lookup is spent on it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use tokio::time::Instant;

/// Buckets kept at most; past it the full ones (clients quiet long enough
/// to have earned their burst back) are forgotten, and if that is not
/// enough, all of them: a flood of addresses must not grow memory.
const MAX_BUCKETS: usize = 100_000;

pub struct ConnectionRate {
    /// Tokens per second.
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl ConnectionRate {
    /// `per_minute` connections a minute after a burst of `burst`;
    /// `per_minute` 0 admits everything.
    pub fn new(per_minute: u32, burst: u32) -> Self {
        ConnectionRate {
            per_second: f64::from(per_minute) / 60.0,
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Whether a new connection from `ip` may go on.
    pub fn admit(&self, ip: IpAddr) -> bool {
        if self.per_second <= 0.0 {
            return true;
        }
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_BUCKETS && !buckets.contains_key(&ip) {
            let (rate, burst) = (self.per_second, self.burst);
            buckets.retain(|_, b| b.refilled(now, rate, burst) < burst);
            if buckets.len() >= MAX_BUCKETS {
                buckets.clear();
            }
        }
        let b = buckets.entry(ip).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        b.tokens = b.refilled(now, self.per_second, self.burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

impl Bucket {
    fn refilled(&self, now: Instant, per_second: f64, burst: f64) -> f64 {
        let secs = now.saturating_duration_since(self.at).as_secs_f64();
        (self.tokens + secs * per_second).min(burst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn burst_then_rate() {
        let r = ConnectionRate::new(60, 3);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert!((0..3).all(|_| r.admit(a)));
        assert!(!r.admit(a), "burst spent");
        assert!(r.admit(b), "another address has its own bucket");
        tokio::time::advance(std::time::Duration::from_millis(1100)).await;
        assert!(r.admit(a), "one a second comes back");
        assert!(!r.admit(a));
        let off = ConnectionRate::new(0, 0);
        assert!((0..1000).all(|_| off.admit(a)));
    }
}
