//! `tandem queue list|show|retry|delete`: the spool of this frontend host
//! (`frontend.queue.dir`). Reading needs nothing else; a change goes
//! through the running frontend when there is one (a request file it
//! applies within a second), else straight to the spool under its lock
//! (see `frontend::queue::requests`).

use std::path::Path;
use std::time::Duration;

use frontend::queue::requests::{self, Request};
use frontend::queue::spool::{self, Loaded, RcptState, SpoolRoute};
use serde_json::json;

use crate::Failure;
use crate::cli::QueueCmd;
use crate::config::TandemConfig;

/// How long the CLI waits for a running frontend to apply a request.
const APPLY_WAIT: Duration = Duration::from_secs(10);

pub async fn run(cfg: &TandemConfig, json: bool, cmd: &QueueCmd) -> Result<(), Failure> {
    let Some(q) = cfg.frontend.as_ref().and_then(|f| f.queue.as_ref()) else {
        return Err(Failure::Usage(
            "the config file has no `frontend.queue` section".into(),
        ));
    };
    let dir = q.dir.as_path();
    let io = |e: std::io::Error| Failure::Io(format!("{}: {e}", dir.display()));
    match cmd {
        QueueCmd::List => {
            let entries = spool::load_all(dir, false).map_err(io)?.entries;
            let now = frontend::queue::now_ms();
            if json {
                let list: Vec<_> = entries.iter().map(|l| summary(l, now)).collect();
                return crate::output::json(&list);
            }
            let rows: Vec<Vec<String>> = entries
                .iter()
                .map(|l| {
                    vec![
                        l.header.id.clone(),
                        age((now - l.header.created_ms) / 1000),
                        sender(&l.header.sender),
                        pending(l).join(","),
                        l.attempts.to_string(),
                        next(l.next, now / 1000),
                        l.last_error.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            crate::output::table(
                &[
                    "ID",
                    "AGE",
                    "SENDER",
                    "PENDING",
                    "ATTEMPTS",
                    "NEXT",
                    "LAST ERROR",
                ],
                &rows,
            );
            Ok(())
        }
        QueueCmd::Show { id } => {
            let l = load(dir, id)?;
            let message = std::fs::read(spool::msg_path(dir, id)).map_err(io)?;
            let headers = String::from_utf8_lossy(spool::headers_of(&message)).into_owned();
            let now = frontend::queue::now_ms();
            let mut v = summary(&l, now);
            v["recipients"] = l
                .header
                .recipients
                .iter()
                .zip(&l.rcpts)
                .map(|(r, s)| json!({ "address": r.address, "route": route(&r.route), "state": s }))
                .collect();
            v["size"] = json!(l.header.size);
            v["session"] = json!(l.header.session);
            v["headers"] = json!(headers);
            if json {
                return crate::output::json(&v);
            }
            println!("id:         {}", l.header.id);
            println!(
                "arrived:    {}",
                shared::time::rfc3339(l.header.created_ms / 1000)
            );
            println!("session:    {}", l.header.session);
            println!("sender:     {}", sender(&l.header.sender));
            println!("size:       {}", l.header.size);
            println!("attempts:   {}", l.attempts);
            println!("next:       {}", next(l.next, now / 1000));
            if let Some(e) = &l.last_error {
                println!("last error: {e}");
            }
            for (r, s) in l.header.recipients.iter().zip(&l.rcpts) {
                let state = match s {
                    RcptState::Pending { error: Some(e) } => format!("pending ({e})"),
                    RcptState::Pending { error: None } => "pending".into(),
                    RcptState::Delivered => "delivered".into(),
                    RcptState::Failed { reply, .. } => format!("failed ({reply})"),
                };
                println!("recipient:  {} via {}: {state}", r.address, route(&r.route));
            }
            println!();
            print!("{headers}");
            Ok(())
        }
        QueueCmd::Retry { id, all } => {
            let request = match (id, all) {
                (_, true) => Request::RetryAll,
                (Some(id), false) => {
                    load(dir, id)?;
                    Request::Retry { id: id.clone() }
                }
                (None, false) => return Err(Failure::Usage("give an ID or --all".into())),
            };
            let how = change(dir, &request).await?;
            let what = id.clone().unwrap_or_else(|| "all".into());
            done(json, json!({ "retry": what, "applied_by": how }), || {
                format!("{what}: due now ({how})")
            })
        }
        QueueCmd::Delete { id } => {
            load(dir, id)?;
            let how = change(dir, &Request::Delete { id: id.clone() }).await?;
            done(json, json!({ "deleted": id, "applied_by": how }), || {
                format!("{id}: deleted ({how})")
            })
        }
    }
}

fn done(json: bool, v: serde_json::Value, text: impl FnOnce() -> String) -> Result<(), Failure> {
    if json {
        crate::output::json(&v)
    } else {
        println!("{}", text());
        Ok(())
    }
}

fn load(dir: &Path, id: &str) -> Result<Loaded, Failure> {
    if !spool::valid_id(id) || !spool::journal_path(dir, id).exists() {
        return Err(Failure::Usage(format!(
            "no message {id:?} in the spool {}",
            dir.display()
        )));
    }
    spool::load(dir, id, false).map_err(|e| Failure::Io(e.to_string()))
}

/// Applies a change: by the running frontend, or directly when none runs.
/// Says which.
async fn change(dir: &Path, request: &Request) -> Result<&'static str, Failure> {
    let io = |e: std::io::Error| Failure::Io(format!("{}: {e}", dir.display()));
    if let Some(_lock) = requests::lock(dir, Duration::ZERO).await.map_err(io)? {
        requests::apply_offline(dir, request).map_err(io)?;
        return Ok("spool");
    }
    let file = requests::submit(dir, request).map_err(io)?;
    let until = tokio::time::Instant::now() + APPLY_WAIT;
    while file.exists() {
        if tokio::time::Instant::now() >= until {
            return Err(Failure::Io(format!(
                "the frontend did not apply {} within {APPLY_WAIT:?}; it will when it can",
                file.display()
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok("frontend")
}

fn summary(l: &Loaded, now_ms: i64) -> serde_json::Value {
    json!({
        "id": l.header.id,
        "age_seconds": (now_ms - l.header.created_ms).max(0) / 1000,
        "arrived": shared::time::rfc3339(l.header.created_ms / 1000),
        "sender": l.header.sender,
        "pending": pending(l),
        "attempts": l.attempts,
        "next_attempt": if l.next == 0 { None } else { Some(shared::time::rfc3339(l.next)) },
        "last_error": l.last_error,
    })
}

fn pending(l: &Loaded) -> Vec<String> {
    l.pending()
        .map(|i| l.header.recipients[i].address.clone())
        .collect()
}

fn route(r: &SpoolRoute) -> String {
    match r {
        SpoolRoute::Local { cluster, .. } => format!("cluster {cluster}"),
        SpoolRoute::Relay => "smarthost".into(),
        SpoolRoute::Lookup => "lookup".into(),
    }
}

fn sender(s: &str) -> String {
    if s.is_empty() {
        "<>".into()
    } else {
        s.to_owned()
    }
}

fn next(at: i64, now: i64) -> String {
    if at <= now {
        "now".into()
    } else {
        format!("in {}", age(at - now))
    }
}

fn age(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        7200..=172_799 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}
