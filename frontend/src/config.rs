//! The `frontend:` section of a Tandem config file.
//!
//! ```yaml
//! frontend:
//!   proxy_protocol_from: [10.0.0.0/24]   # load balancers sending PROXY headers
//!   trusted_networks: []                 # plaintext logins allowed from here
//!   backend_login:                       # the backends' proxy_login
//!     identity: tandem-proxy
//!     secret_file: /etc/tandem/proxy.secret
//!   tls: { cert: /etc/tandem/tls.crt, key: /etc/tandem/tls.key }
//!   listen: { imap: 0.0.0.0:143, imaps: 0.0.0.0:993, pop3: 0.0.0.0:110, pop3s: 0.0.0.0:995, admin: 127.0.0.1:9100 }
//!   # MX and submission: smtp: 0.0.0.0:25, submission: 0.0.0.0:587, submissions: 0.0.0.0:465
//!   smtp: { max_message_size: 50M }      # see frontend::smtp::config
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use shared::config::{Problems, ProxyLogin, TlsFiles, Validate, join};
use shared::net::NetList;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrontendConfig {
    /// Load balancers that open every connection with a PROXY header.
    #[serde(default)]
    pub proxy_protocol_from: NetList,
    /// Clients that may send passwords without TLS (besides loopback).
    #[serde(default)]
    pub trusted_networks: NetList,
    pub backend_login: ProxyLogin,
    /// Source address for connections to backends, when the host has
    /// several (the backends trust PROXY headers by source address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_address: Option<std::net::IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsFiles>,
    pub listen: Listen,
    #[serde(default)]
    pub limits: Limits,
    /// The durable mail queue (spool directory, retries, smarthost); needed
    /// by the SMTP listeners.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<crate::queue::QueueConfig>,
    /// Limits of the SMTP listeners (MX and submission).
    #[serde(default)]
    pub smtp: crate::smtp::SmtpConfig,
    /// How often every backend node is health-checked (0s: never; routing
    /// then learns of dead nodes from failed connects only).
    #[serde(default = "default_health_interval", with = "shared::config::duration")]
    pub health_check_interval: Duration,
}

fn default_health_interval() -> Duration {
    Duration::from_secs(5)
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listen {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imap: Option<SocketAddr>,
    /// IMAP over implicit TLS; needs `tls`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imaps: Option<SocketAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pop3: Option<SocketAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pop3s: Option<SocketAddr>,
    /// Inbound mail for our domains (MX, port 25); never relays.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp: Option<SocketAddr>,
    /// Mail submission by users (port 587): STARTTLS, then AUTH.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submission: Option<SocketAddr>,
    /// Mail submission over implicit TLS (port 465, RFC 8314); needs `tls`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submissions: Option<SocketAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<SocketAddr>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub max_connections: usize,
    pub max_per_ip: usize,
    /// Before login: a client silent this long is disconnected.
    #[serde(with = "shared::config::duration")]
    pub login_timeout: Duration,
    /// After login: a session idle this long in both directions is closed.
    #[serde(with = "shared::config::duration")]
    pub idle_timeout: Duration,
    /// Wait before answering a failed login.
    #[serde(with = "shared::config::duration")]
    pub auth_failure_delay: Duration,
    /// The longest wait a failing client address is given before its next
    /// login is checked (a failing account name: a third of it, at most 5s,
    /// because its owner shares that wait).
    #[serde(with = "shared::config::duration")]
    pub auth_penalty_max: Duration,
    /// After SIGTERM: how long logged-in sessions may go on before they are
    /// told goodbye (the balancer already sees `/health` fail).
    #[serde(with = "shared::config::duration")]
    pub drain_timeout: Duration,
    /// Connecting to a backend node; past it the next node is tried.
    #[serde(with = "shared::config::duration")]
    pub connect_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 50_000,
            max_per_ip: 100,
            login_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(30 * 60),
            auth_failure_delay: Duration::from_secs(2),
            auth_penalty_max: Duration::from_secs(15),
            drain_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(3),
        }
    }
}

impl Validate for FrontendConfig {
    fn validate(&self, at: &str, p: &mut Problems) {
        let b = &self.backend_login;
        let bat = join(at, "backend_login");
        if b.identity.is_empty() {
            p.push(
                &bat,
                "identity",
                "must name the backends' proxy_login identity",
            );
        }
        if b.secret.is_none() && b.secret_file.is_none() {
            p.push(&bat, "secret", "set secret or secret_file");
        }
        let l = &self.listen;
        if [
            l.imap,
            l.imaps,
            l.pop3,
            l.pop3s,
            l.smtp,
            l.submission,
            l.submissions,
        ]
        .iter()
        .all(Option::is_none)
        {
            p.push(
                &join(at, "listen"),
                "imap",
                "no service to listen for (imap, imaps, pop3, pop3s, smtp, submission, submissions)",
            );
        }
        if (l.smtp.is_some() || l.submission.is_some() || l.submissions.is_some())
            && self.queue.is_none()
        {
            p.push(
                at,
                "queue",
                "the SMTP listeners (smtp, submission, submissions) need a `queue` section",
            );
        }
        if l.submissions.is_some() && self.tls.is_none() {
            p.push(&join(at, "listen"), "submissions", "needs a `tls` section");
        }
        self.smtp.validate(&join(at, "smtp"), p);
        if l.pop3s.is_some() && self.tls.is_none() {
            p.push(&join(at, "listen"), "pop3s", "needs a `tls` section");
        }
        if let Some(q) = &self.queue {
            q.validate(&join(at, "queue"), p);
        }
        if self.limits.max_connections == 0 || self.limits.max_per_ip == 0 {
            p.push(
                &join(at, "limits"),
                "max_connections",
                "limits must be above 0",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(yaml: &str) -> Vec<String> {
        let cfg: FrontendConfig = serde_saphyr::from_str(yaml).unwrap();
        let mut p = Problems::default();
        cfg.validate("frontend", &mut p);
        p.into_vec().into_iter().map(|p| p.field).collect()
    }

    #[test]
    fn smtp_listeners_need_a_queue_and_submissions_tls() {
        let base = "backend_login: { identity: p, secret: s }\n";
        assert_eq!(
            problems(&format!(
                "{base}listen: {{ smtp: 127.0.0.1:25, submissions: 127.0.0.1:465 }}\n"
            )),
            ["frontend.queue", "frontend.listen.submissions"]
        );
        assert!(
            problems(&format!(
                "{base}listen: {{ smtp: 127.0.0.1:25, submission: 127.0.0.1:587 }}\nqueue: {{ dir: /tmp/q }}\n"
            ))
            .is_empty()
        );
        assert_eq!(
            problems(&format!(
                "{base}listen: {{ imap: 127.0.0.1:143 }}\nsmtp: {{ max_recipients: 0 }}\n"
            )),
            ["frontend.smtp.max_recipients"]
        );
    }
}
