//! The `frontend.queue` section.
//!
//! ```yaml
//! frontend:
//!   queue:
//!     dir: /var/spool/tandem        # local disk of this frontend node
//!     deliver_wait: 30s             # longest an SMTP client waits for delivery
//!     lifetime: 5d                  # then the sender gets a DSN
//!     retry_min: 1m                 # first retry; doubles up to retry_max
//!     retry_max: 1h
//!     max_messages: 100000          # past either limit new mail gets 451
//!     max_bytes: 10G
//!     smarthost:                    # for Route::Relay (submission)
//!       address: relay.example.net:587
//!       tls: starttls               # none | starttls | implicit
//!       ca_file: /etc/tandem/relay-ca.pem
//!       auth: { username: tandem, password_file: /etc/tandem/relay.secret }
//! ```

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use shared::config::{Problems, Validate, join};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    /// The spool directory (created if missing). One per frontend node, on
    /// local disk: only this node's daemon may deliver from it.
    pub dir: PathBuf,
    /// How long `accept` waits for the immediate delivery before it spools
    /// the message and answers; the delivery goes on in the background.
    #[serde(default = "default_deliver_wait", with = "shared::config::duration")]
    pub deliver_wait: Duration,
    /// After this long in the queue, recipients still pending are given up
    /// and reported to the sender in a DSN.
    #[serde(default = "default_lifetime", with = "shared::config::duration")]
    pub lifetime: Duration,
    /// Delay before the first retry; each further one doubles it.
    #[serde(default = "default_retry_min", with = "shared::config::duration")]
    pub retry_min: Duration,
    /// The longest delay between two attempts.
    #[serde(default = "default_retry_max", with = "shared::config::duration")]
    pub retry_max: Duration,
    /// Wait for each server reply (LMTP and smarthost).
    #[serde(default = "default_reply_timeout", with = "shared::config::duration")]
    pub reply_timeout: Duration,
    /// Entries in the spool; a message that would exceed it is refused
    /// with 451 (the client retries later).
    #[serde(default = "default_max_messages")]
    pub max_messages: usize,
    /// Message bytes in the spool (`10G`); same as `max_messages`.
    #[serde(default = "default_max_bytes", with = "shared::config::size")]
    pub max_bytes: u64,
    /// Attempts (and retries) running at once.
    #[serde(default = "default_max_parallel")]
    pub max_parallel: usize,
    /// Where `Route::Relay` recipients (submission to other domains) go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smarthost: Option<Smarthost>,
}

fn default_deliver_wait() -> Duration {
    Duration::from_secs(30)
}
fn default_lifetime() -> Duration {
    Duration::from_secs(5 * 86_400)
}
fn default_retry_min() -> Duration {
    Duration::from_secs(60)
}
fn default_retry_max() -> Duration {
    Duration::from_secs(3600)
}
fn default_reply_timeout() -> Duration {
    Duration::from_secs(300)
}
fn default_max_messages() -> usize {
    100_000
}
fn default_max_bytes() -> u64 {
    10 << 30
}
fn default_max_parallel() -> usize {
    64
}

impl QueueConfig {
    /// A queue in `dir` with every default (tests, `tandem queue`).
    pub fn new(dir: PathBuf) -> Self {
        QueueConfig {
            dir,
            deliver_wait: default_deliver_wait(),
            lifetime: default_lifetime(),
            retry_min: default_retry_min(),
            retry_max: default_retry_max(),
            reply_timeout: default_reply_timeout(),
            max_messages: default_max_messages(),
            max_bytes: default_max_bytes(),
            max_parallel: default_max_parallel(),
            smarthost: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Smarthost {
    /// `host:port`; the host is also the name its certificate must carry.
    pub address: String,
    #[serde(default)]
    pub tls: SmarthostTls,
    /// PEM roots to verify the smarthost's certificate with (there is no
    /// built-in root store).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// Skip certificate verification: only for a smarthost on a network
    /// you trust; must be said explicitly when TLS is on without `ca_file`.
    #[serde(default)]
    pub insecure_skip_verify: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<SmarthostAuth>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmarthostTls {
    /// Plain text (a relay on the same host or a private network).
    None,
    /// STARTTLS, required: a smarthost without it is a deferral.
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Implicit,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmarthostAuth {
    pub username: String,
    pub password_file: PathBuf,
}

impl Validate for QueueConfig {
    fn validate(&self, at: &str, p: &mut Problems) {
        if self.dir.as_os_str().is_empty() {
            p.push(at, "dir", "must name the spool directory");
        }
        if self.retry_min.is_zero() || self.retry_max < self.retry_min {
            p.push(at, "retry_min", "must be above 0 and at most retry_max");
        }
        if self.lifetime.is_zero() {
            p.push(at, "lifetime", "must be above 0");
        }
        if self.reply_timeout.is_zero() {
            p.push(at, "reply_timeout", "must be above 0");
        }
        if self.max_messages == 0 || self.max_bytes == 0 || self.max_parallel == 0 {
            p.push(at, "max_messages", "limits must be above 0");
        }
        if let Some(s) = &self.smarthost {
            let sat = join(at, "smarthost");
            if s.address
                .rsplit_once(':')
                .is_none_or(|(h, port)| h.is_empty() || port.parse::<u16>().is_err())
            {
                p.push(&sat, "address", "must be host:port");
            }
            if s.tls != SmarthostTls::None && s.ca_file.is_none() && !s.insecure_skip_verify {
                p.push(
                    &sat,
                    "ca_file",
                    "TLS needs ca_file (or insecure_skip_verify: true, said explicitly)",
                );
            }
            if s.auth.is_some() && s.tls == SmarthostTls::None {
                p.push(&sat, "auth", "would send the password in clear: set tls");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_validation() {
        let c: QueueConfig = serde_saphyr::from_str("dir: /tmp/q\n").unwrap();
        assert_eq!(c.deliver_wait, Duration::from_secs(30));
        assert_eq!(c.lifetime, Duration::from_secs(5 * 86_400));
        let mut p = Problems::default();
        c.validate("frontend.queue", &mut p);
        assert!(p.is_empty());
        let c: QueueConfig = serde_saphyr::from_str(
            "dir: /tmp/q\nretry_min: 2h\nsmarthost:\n  address: relay\n  auth: { username: u, password_file: /x }\n  tls: none\n",
        )
        .unwrap();
        c.validate("frontend.queue", &mut p);
        let fields: Vec<_> = p.into_vec().into_iter().map(|p| p.field).collect();
        assert_eq!(
            fields,
            [
                "frontend.queue.retry_min",
                "frontend.queue.smarthost.address",
                "frontend.queue.smarthost.auth"
            ]
        );
        assert!(serde_saphyr::from_str::<QueueConfig>("dir: /q\nretries: 3\n").is_err());
    }
}
