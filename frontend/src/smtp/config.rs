//! The `frontend.smtp` settings: limits of the MX and submission listeners.
//!
//! ```yaml
//! frontend:
//!   smtp:
//!     hostname: mx1.example.com   # greeting and Received:; default the host name
//!     max_message_size: 50M       # advertised as SIZE
//!     max_recipients: 100         # per message; more get 452 4.5.3
//!     idle_timeout: 5m
//!     max_errors: 20              # errors (refused recipients too) before 421 and close
//!     max_transactions: 100       # messages per connection
//!     max_junk_commands: 100      # NOOP, VRFY, RSET, EHLO... per connection
//!     connection_rate: 60         # new connections per minute per client address
//!     connection_burst: 30
//! ```

use std::time::Duration;

use serde::{Deserialize, Serialize};
use shared::config::{Problems, Validate};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpConfig {
    /// The name in the greeting, EHLO reply and `Received:` headers;
    /// default: the host name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Largest message accepted, in bytes as sent (CRLF line ends, before
    /// our `Received:`); advertised as SIZE. A number or `50M`. Default 50 MiB.
    #[serde(with = "shared::config::size")]
    pub max_message_size: u64,
    /// Recipients per message; more get `452 4.5.3` (RFC 5321 §4.5.3.1.10
    /// asks for at least 100). Default 100.
    pub max_recipients: usize,
    /// A client that sends nothing this long is told `421 4.4.2`. Default 5m
    /// (RFC 5321 §4.5.3.2.7 asks for at least 5 minutes).
    #[serde(with = "shared::config::duration")]
    pub idle_timeout: Duration,
    /// Errors per connection (unknown commands, bad syntax, wrong
    /// sequence, refused recipients) before `421 4.7.0` and close.
    /// Default 20.
    pub max_errors: u32,
    /// Messages (MAIL commands) per connection. Default 100.
    pub max_transactions: u32,
    /// Commands that move no mail (NOOP, VRFY, RSET, HELO/EHLO) per
    /// connection. Default 100.
    pub max_junk_commands: u32,
    /// New connections per minute from one client address (the PROXY
    /// header's), beyond `connection_burst`; more get `421 4.7.0`. The
    /// trusted networks are not limited. 0: no limit. Default 60.
    pub connection_rate: u32,
    /// Connections one client address may open at once before the rate
    /// applies. Default 30.
    pub connection_burst: u32,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            hostname: None,
            max_message_size: 50 << 20,
            max_recipients: 100,
            idle_timeout: Duration::from_secs(300),
            max_errors: 20,
            max_transactions: 100,
            max_junk_commands: 100,
            connection_rate: 60,
            connection_burst: 30,
        }
    }
}

impl Validate for SmtpConfig {
    fn validate(&self, at: &str, p: &mut Problems) {
        if let Some(h) = &self.hostname
            && (h.is_empty() || !h.bytes().all(|b| b.is_ascii_graphic()))
        {
            p.push(at, "hostname", "must be a host name, printable ASCII");
        }
        shared::smtp::validate_message_size(self.max_message_size, at, p);
        if self.max_recipients == 0 {
            p.push(at, "max_recipients", "must be at least 1");
        }
        if self.idle_timeout < Duration::from_secs(1) {
            p.push(at, "idle_timeout", "must be at least 1s");
        }
        for (field, v) in [
            ("max_errors", self.max_errors),
            ("max_transactions", self.max_transactions),
            ("max_junk_commands", self.max_junk_commands),
        ] {
            if v == 0 {
                p.push(at, field, "must be at least 1");
            }
        }
        if self.connection_rate > 0 && self.connection_burst == 0 {
            p.push(
                at,
                "connection_burst",
                "must be at least 1 when connection_rate is set",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse_and_validate() {
        let cfg: SmtpConfig = serde_saphyr::from_str("{}").unwrap();
        assert_eq!(cfg, SmtpConfig::default());
        let cfg: SmtpConfig =
            serde_saphyr::from_str("max_message_size: 10M\nidle_timeout: 30s\nhostname: mx.test\n")
                .unwrap();
        assert_eq!(cfg.max_message_size, 10 << 20);
        assert_eq!(cfg.hostname.as_deref(), Some("mx.test"));
        assert!(serde_saphyr::from_str::<SmtpConfig>("max_size: 1\n").is_err());
        let mut p = Problems::default();
        SmtpConfig::default().validate("frontend.smtp", &mut p);
        assert!(p.is_empty());
        let bad = SmtpConfig {
            hostname: Some("a b".into()),
            max_message_size: 0,
            max_recipients: 0,
            idle_timeout: Duration::ZERO,
            max_errors: 0,
            max_transactions: 0,
            max_junk_commands: 0,
            connection_rate: 1,
            connection_burst: 0,
        };
        bad.validate("frontend.smtp", &mut p);
        let fields: Vec<_> = p.into_vec().into_iter().map(|p| p.field).collect();
        assert_eq!(
            fields,
            [
                "frontend.smtp.hostname",
                "frontend.smtp.max_message_size",
                "frontend.smtp.max_recipients",
                "frontend.smtp.idle_timeout",
                "frontend.smtp.max_errors",
                "frontend.smtp.max_transactions",
                "frontend.smtp.max_junk_commands",
                "frontend.smtp.connection_burst",
            ]
        );
    }
}
