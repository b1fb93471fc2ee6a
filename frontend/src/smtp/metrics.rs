//! `tandem_smtp_*` metrics.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListenerLabel {
    pub listener: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub listener: &'static str,
    pub result: &'static str,
}

/// Cheap to clone.
#[derive(Clone, Default)]
pub struct SmtpMetrics {
    /// Connections served, by listener (`smtp`, `submission`, `submissions`).
    pub sessions: Family<ListenerLabel, Counter>,
    /// Messages by result: `accepted`, or why not: `too_big`, `bare_line_end`,
    /// `nul`, `long_line`, `refused` (the queue: every recipient failed),
    /// `unavailable` (the queue could not take it).
    pub messages: Family<ResultLabels, Counter>,
    /// RCPT commands by result: `ok`, `relay`, `unknown`, `suspended`,
    /// `relay_denied`, `unavailable`, `too_many`, `bad_address`.
    pub recipients: Family<ResultLabels, Counter>,
    /// Message bytes received (DATA and BDAT, as sent).
    pub received_bytes: Family<ListenerLabel, Counter>,
    /// Connections refused for opening too fast.
    pub rate_limited: Family<ListenerLabel, Counter>,
}

impl SmtpMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        let r = registry.sub_registry_with_prefix("tandem_smtp");
        r.register("sessions", "SMTP connections served", m.sessions.clone());
        r.register(
            "messages",
            "Messages at the end of DATA/BDAT, by result",
            m.messages.clone(),
        );
        r.register(
            "recipients",
            "RCPT commands by result",
            m.recipients.clone(),
        );
        r.register(
            "received_bytes",
            "Message bytes received over SMTP",
            m.received_bytes.clone(),
        );
        r.register(
            "rate_limited",
            "Connections refused for opening too fast",
            m.rate_limited.clone(),
        );
        m
    }

    pub fn message(&self, listener: &'static str, result: &'static str) {
        self.messages
            .get_or_create(&ResultLabels { listener, result })
            .inc();
    }

    pub fn recipient(&self, listener: &'static str, result: &'static str) {
        self.recipients
            .get_or_create(&ResultLabels { listener, result })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names() {
        let mut reg = Registry::default();
        let m = SmtpMetrics::register(&mut reg);
        m.message("smtp", "accepted");
        m.recipient("submission", "relay");
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &reg).unwrap();
        for want in [
            "tandem_smtp_messages_total{listener=\"smtp\",result=\"accepted\"} 1",
            "tandem_smtp_recipients_total{listener=\"submission\",result=\"relay\"} 1",
        ] {
            assert!(text.contains(want), "missing {want} in\n{text}");
        }
    }
}
