//! Load generation against any IMAP or POP3 endpoint on loopback, shared by
//! the `loadgen` and `proxy-bench` binaries.
//!
//! Three phases, each bounded in count and in time:
//! - [`phases::logins`]: concurrent clients loop connect, login, select,
//!   logout; sessions per second.
//! - [`phases::idle`]: opens K logged-in connections and reports how much
//!   the resident memory of some process trees grew, per connection.
//! - [`phases::fetch`]: `FETCH 1:* BODY.PEEK[]` of a whole mailbox; MB/s.
//!
//! Only loopback targets are accepted: this is a benchmark, not a tool to
//! point at someone else's server.

pub mod client;
pub mod mem;
pub mod peers;
pub mod phases;

use std::net::SocketAddr;

use anyhow::bail;
use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

pub use client::{Proto, Session};

/// Where to connect and as whom.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub proto: Proto,
    /// An address with `%d` for the user number, e.g. `user%d@example.com`.
    pub user_pattern: String,
    pub password: String,
    /// Users are numbered 1..=users.
    pub users: usize,
}

impl Target {
    /// Fails unless `addr` is a loopback address.
    pub fn new(
        addr: SocketAddr,
        proto: Proto,
        user_pattern: &str,
        password: &str,
        users: usize,
    ) -> anyhow::Result<Target> {
        if !addr.ip().is_loopback() {
            bail!("refusing {addr}: only loopback targets are allowed");
        }
        if !user_pattern.contains("%d") {
            bail!("the user pattern {user_pattern:?} has no %d");
        }
        if users == 0 {
            bail!("--users must be at least 1");
        }
        Ok(Target {
            addr,
            proto,
            user_pattern: user_pattern.to_owned(),
            password: password.to_owned(),
            users,
        })
    }

    /// The `n`th login, cycling through users 1..=users.
    pub fn user(&self, n: u64) -> String {
        let k = n % self.users as u64 + 1;
        self.user_pattern.replace("%d", &k.to_string())
    }
}

/// Raises the soft limit on open files to the hard limit; returns the limit
/// now in force (children started afterwards inherit it).
pub fn raise_nofile() -> u64 {
    let lim = getrlimit(Resource::Nofile);
    if let Some(hard) = lim.maximum
        && lim.current.is_some_and(|c| c < hard)
    {
        let _ = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(hard),
                maximum: Some(hard),
            },
        );
    }
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_targets_are_accepted() {
        let ok = Target::new(
            "127.0.0.1:143".parse().unwrap(),
            Proto::Imap,
            "u%d@x",
            "p",
            3,
        );
        assert!(ok.is_ok());
        let far = Target::new(
            "192.0.2.1:143".parse().unwrap(),
            Proto::Imap,
            "u%d@x",
            "p",
            3,
        );
        assert!(far.is_err());
    }

    #[test]
    fn users_cycle_from_one() {
        let t = Target::new(
            "127.0.0.1:143".parse().unwrap(),
            Proto::Imap,
            "u%d@x",
            "p",
            3,
        )
        .unwrap();
        let names: Vec<String> = (0..4).map(|n| t.user(n)).collect();
        assert_eq!(names, ["u1@x", "u2@x", "u3@x", "u1@x"]);
    }
}
