//! One mail transaction, MAIL to the end of DATA, as the LMTP client and
//! the smarthost client both run it once their session is set up: the
//! commands pipelined when the server offers PIPELINING (RFC 2920), the
//! RCPT replies per recipient, and after DATA one reply per accepted
//! recipient for LMTP (RFC 2033 §4.2) or one for all of them for SMTP.
//!
//! A Tandem backend (LHLO keyword `X-TANDEM-DEDUP`) is given the queue id
//! as `ENVID=` (RFC 3461 §4.4, xtext) on every transaction, which tags the
//! stored copies at no cost, and `X-TANDEM-RETRY` when an earlier attempt
//! may have stored some copies without our knowing: then it looks for a
//! copy with the same tag before storing. Other servers get neither.

use std::future::Future;

use super::dialogue::{Dialogue, DialogueError};
use super::reply::Reply;

/// What one attempt did for one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 250 after DATA: stored (LMTP) or taken by the smarthost.
    Delivered,
    /// Try again later; the reply or the error that broke the dialogue.
    Deferred(String),
    /// Try again later, but the server may have stored the copy: the
    /// dialogue broke after the message's final dot, before its reply.
    Unknown(String),
    /// 5xx: never retried, reported in a DSN.
    Failed(String),
}

impl Outcome {
    fn from_reply(r: &Reply) -> Outcome {
        if r.is_positive() {
            Outcome::Delivered
        } else if r.is_permanent() {
            Outcome::Failed(r.one_line())
        } else {
            Outcome::Deferred(r.one_line())
        }
    }
}

/// Where each recipient's outcome goes as soon as it is known, so that a
/// delivery is made durable right after its 250.
pub trait Recorder: Send + Sync {
    /// `rcpt` is the recipient's index in the queue entry.
    fn record(&self, rcpt: usize, outcome: Outcome) -> impl Future<Output = ()> + Send;
}

/// What one transaction carries.
pub struct Transaction<'a> {
    /// Reverse path, empty for the null sender.
    pub sender: &'a str,
    /// (index in the entry, forward path).
    pub recipients: Vec<(usize, String)>,
    /// The message, dot-stuffed and terminated ([`super::reply::dot_stuff`]).
    pub data: &'a [u8],
    pub eight_bit: bool,
    pub smtputf8: bool,
    /// The queue id, sent as `ENVID=` to a server that dedupes.
    pub envid: &'a str,
    /// Some recipient's earlier outcome is unknown: `X-TANDEM-RETRY`.
    pub retry: bool,
}

/// The LHLO keyword of a server that takes `ENVID=` and `X-TANDEM-RETRY`.
pub const DEDUP: &str = "X-TANDEM-DEDUP";

/// Which reply shape follows DATA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    Lmtp,
    Smtp,
}

/// Runs the transaction on a session past its greeting and EHLO/LHLO
/// (`ehlo`: that reply, for the extensions). Every recipient is recorded
/// exactly once; a dialogue that breaks off defers those not yet answered.
pub async fn run<R: Recorder>(
    d: &mut Dialogue,
    ehlo: &Reply,
    flavour: Flavour,
    tx: &Transaction<'_>,
    recorder: &R,
) {
    let mut answered = vec![false; tx.recipients.len()];
    let mut sent = false;
    let r = exchange(d, ehlo, flavour, tx, recorder, &mut answered, &mut sent).await;
    if let Err(e) = r {
        let why = e.to_string();
        for (i, (rcpt, _)) in tx.recipients.iter().enumerate() {
            if !answered[i] {
                // Once the body went out, its final dot may have arrived.
                let outcome = if sent {
                    Outcome::Unknown(why.clone())
                } else {
                    Outcome::Deferred(why.clone())
                };
                recorder.record(*rcpt, outcome).await;
            }
        }
    }
}

async fn exchange<R: Recorder>(
    d: &mut Dialogue,
    ehlo: &Reply,
    flavour: Flavour,
    tx: &Transaction<'_>,
    recorder: &R,
    answered: &mut [bool],
    sent: &mut bool,
) -> Result<(), DialogueError> {
    let mut mail = format!("MAIL FROM:<{}>", tx.sender);
    if flavour == Flavour::Lmtp && ehlo.extension(DEDUP).is_some() && !tx.envid.is_empty() {
        mail.push_str(&format!(" ENVID={}", xtext(tx.envid)));
        if tx.retry {
            mail.push_str(" X-TANDEM-RETRY");
        }
    }
    if tx.eight_bit && ehlo.extension("8BITMIME").is_some() {
        mail.push_str(" BODY=8BITMIME");
    }
    if tx.smtputf8 && ehlo.extension("SMTPUTF8").is_some() {
        mail.push_str(" SMTPUTF8");
    }
    if ehlo.extension("SIZE").is_some() {
        // The stuffed body without its final ".\r\n": at least the size.
        mail.push_str(&format!(" SIZE={}", tx.data.len().saturating_sub(3)));
    }
    let mut commands = vec![mail];
    commands.extend(tx.recipients.iter().map(|(_, a)| format!("RCPT TO:<{a}>")));
    commands.push("DATA".to_owned());
    let pipelining = ehlo.extension("PIPELINING").is_some();
    if pipelining {
        let all: String = commands.iter().map(|c| format!("{c}\r\n")).collect();
        d.send(all.as_bytes()).await?;
    }
    let mut replies = Vec::with_capacity(commands.len());
    for c in &commands {
        if !pipelining {
            d.send(format!("{c}\r\n").as_bytes()).await?;
        }
        let r = d.read().await?;
        let stop = !pipelining && !r.is_positive() && c.starts_with("MAIL");
        replies.push(r);
        if stop {
            break;
        }
    }
    let mail = &replies[0];
    if !mail.is_positive() {
        // The sender is refused: every recipient shares that fate.
        for (i, (rcpt, _)) in tx.recipients.iter().enumerate() {
            answered[i] = true;
            recorder.record(*rcpt, Outcome::from_reply(mail)).await;
        }
        return Ok(());
    }
    let mut accepted = Vec::new();
    for (i, (rcpt, _)) in tx.recipients.iter().enumerate() {
        let r = &replies[1 + i];
        if r.is_positive() {
            accepted.push(i);
        } else {
            answered[i] = true;
            recorder.record(*rcpt, Outcome::from_reply(r)).await;
        }
    }
    let data = &replies[1 + tx.recipients.len()];
    if accepted.is_empty() {
        // Nothing to send; a server that still said 354 waits for a body
        // no one wants: the connection is dropped instead.
        return Ok(());
    }
    if !data.is_intermediate() {
        // A 2xx here would claim a delivery no body was sent for.
        let outcome = if data.is_positive() {
            Outcome::Deferred(format!("DATA answered {}", data.one_line()))
        } else {
            Outcome::from_reply(data)
        };
        for &i in &accepted {
            answered[i] = true;
            recorder.record(tx.recipients[i].0, outcome.clone()).await;
        }
        return Ok(());
    }
    *sent = true;
    d.send(tx.data).await?;
    match flavour {
        Flavour::Lmtp => {
            for &i in &accepted {
                let r = d.read().await?;
                answered[i] = true;
                recorder
                    .record(tx.recipients[i].0, Outcome::from_reply(&r))
                    .await;
            }
        }
        Flavour::Smtp => {
            let r = d.read().await?;
            for &i in &accepted {
                answered[i] = true;
                recorder
                    .record(tx.recipients[i].0, Outcome::from_reply(&r))
                    .await;
            }
        }
    }
    Ok(())
}

/// RFC 3461 §4 xtext, for XCLIENT attribute values and ENVID.
pub fn xtext(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if (33..=126).contains(&b) && b != b'+' && b != b'=' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("+{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    #[derive(Default)]
    struct Log(Mutex<Vec<(usize, Outcome)>>);

    impl Recorder for Log {
        async fn record(&self, rcpt: usize, outcome: Outcome) {
            self.0.lock().unwrap().push((rcpt, outcome));
        }
    }

    /// A scripted peer for a pipelining client: takes the batch up to
    /// DATA and answers it with `replies`, takes the body up to the dot and
    /// answers `after_dot` and closes. Returns what it was sent.
    async fn peer(mut io: DuplexStream, replies: &'static str, after_dot: &'static str) -> String {
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        let mut answered = false;
        loop {
            let n = io.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&seen).into_owned();
            if !answered && text.ends_with("DATA\r\n") {
                answered = true;
                io.write_all(replies.as_bytes()).await.unwrap();
            } else if answered && text.ends_with("\r\n.\r\n") {
                io.write_all(after_dot.as_bytes()).await.unwrap();
                break;
            }
        }
        String::from_utf8_lossy(&seen).into_owned()
    }

    async fn run_script(
        flavour: Flavour,
        retry: bool,
        ehlo: &[&str],
        rcpts: usize,
        replies: &'static str,
        after_dot: &'static str,
    ) -> (Vec<(usize, Outcome)>, String) {
        let (client, server) = tokio::io::duplex(1 << 16);
        let server = tokio::spawn(peer(server, replies, after_dot));
        let mut d = Dialogue::new(Box::new(client), Duration::from_secs(5));
        let ehlo = Reply {
            code: 250,
            lines: ehlo.iter().map(|s| (*s).to_owned()).collect(),
        };
        let tx = Transaction {
            sender: "a@x.test",
            recipients: (0..rcpts).map(|i| (i, format!("r{i}@y.test"))).collect(),
            data: b"Subject: t\r\n\r\nhi\r\n.\r\n",
            eight_bit: false,
            smtputf8: false,
            envid: "18F0A+1",
            retry,
        };
        let log = Log::default();
        run(&mut d, &ehlo, flavour, &tx, &log).await;
        drop(d);
        let seen = server.await.unwrap();
        (log.0.into_inner().unwrap(), seen)
    }

    #[tokio::test]
    async fn lmtp_replies_per_recipient_pipelined() {
        let (log, seen) = run_script(
            Flavour::Lmtp,
            false,
            &["h", "PIPELINING", "SIZE 100"],
            3,
            "250 ok\r\n250 ok\r\n550 5.1.1 no\r\n250 ok\r\n354 go\r\n",
            "250 2.0.0 stored\r\n452 4.2.2 full\r\n",
        )
        .await;
        assert_eq!(
            log,
            vec![
                (1, Outcome::Failed("550 5.1.1 no".into())),
                (0, Outcome::Delivered),
                (2, Outcome::Deferred("452 4.2.2 full".into())),
            ]
        );
        assert!(
            seen.starts_with("MAIL FROM:<a@x.test> SIZE=18\r\nRCPT TO:<r0@y.test>\r\n"),
            "{seen}"
        );
    }

    #[tokio::test]
    async fn a_connection_lost_after_the_dot_defers_the_rest() {
        let (log, _) = run_script(
            Flavour::Lmtp,
            false,
            &["h", "PIPELINING"],
            2,
            "250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n",
            "250 2.0.0 stored\r\n",
        )
        .await;
        assert_eq!(log[0], (0, Outcome::Delivered));
        // Its copy may be stored: the retry must ask.
        assert!(
            matches!(&log[1], (1, Outcome::Unknown(why)) if why.contains("closed")),
            "{log:?}"
        );
    }

    #[tokio::test]
    async fn a_tandem_backend_gets_the_envelope_id_and_the_retry_marker() {
        let tandem: &[&str] = &["h", "PIPELINING", DEDUP];
        // Neither for a server that does not say it understands them, nor
        // for the smarthost.
        let cases: &[(Flavour, bool, &[&str], &str)] = &[
            (Flavour::Lmtp, false, tandem, " ENVID=18F0A+2B1"),
            (
                Flavour::Lmtp,
                true,
                tandem,
                " ENVID=18F0A+2B1 X-TANDEM-RETRY",
            ),
            (Flavour::Lmtp, true, &["h", "PIPELINING"], ""),
            (Flavour::Smtp, true, tandem, ""),
        ];
        for &(flavour, retry, ehlo, params) in cases {
            let ok = "250 ok\r\n250 ok\r\n354 go\r\n";
            let (log, seen) = run_script(flavour, retry, ehlo, 1, ok, "250 ok\r\n").await;
            let want = format!("MAIL FROM:<a@x.test>{params}\r\n");
            assert!(seen.starts_with(&want), "{seen}");
            assert_eq!(log, [(0, Outcome::Delivered)]);
        }
    }

    #[tokio::test]
    async fn smtp_one_reply_for_all_and_a_refused_sender() {
        let (log, _) = run_script(
            Flavour::Smtp,
            false,
            &["h", "PIPELINING"],
            2,
            "250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n",
            "250 2.0.0 queued\r\n",
        )
        .await;
        assert_eq!(log, vec![(0, Outcome::Delivered), (1, Outcome::Delivered)]);
        let (log, _) = run_script(
            Flavour::Smtp,
            false,
            &["h", "PIPELINING"],
            2,
            "553 5.7.1 sender refused\r\n503 no\r\n503 no\r\n503 no\r\n",
            "",
        )
        .await;
        let failed = Outcome::Failed("553 5.7.1 sender refused".into());
        assert_eq!(log, vec![(0, failed.clone()), (1, failed)]);
        // A server answering DATA with 250 delivered nothing.
        let (log, _) = run_script(
            Flavour::Lmtp,
            false,
            &["h", "PIPELINING"],
            1,
            "250 ok\r\n250 ok\r\n250 ok\r\n",
            "",
        )
        .await;
        assert!(
            matches!(&log[..], [(0, Outcome::Deferred(why))] if why.starts_with("DATA answered 250")),
            "{log:?}"
        );
    }

    #[test]
    fn xtext_encodes_specials() {
        assert_eq!(xtext("abc-123"), "abc-123");
        assert_eq!(xtext("a b+c=d"), "a+20b+2Bc+3Dd");
    }
}
