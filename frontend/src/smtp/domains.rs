//! Which domains are ours, asked of the directory at most every
//! [`REFRESH`] and kept when it fails: the MX must tell "unknown user"
//! (550 5.1.1) from "not our domain" (550 5.7.1 relay denied).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use locator::{Locator, LookupError};
use shared::Domain;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// How long a domain list is used before it is asked for again.
pub const REFRESH: Duration = Duration::from_secs(10);

pub struct Domains {
    locator: Arc<Locator>,
    cached: Mutex<Option<(Instant, Arc<HashSet<Domain>>)>>,
}

impl Domains {
    pub fn new(locator: Arc<Locator>) -> Self {
        Domains {
            locator,
            cached: Mutex::new(None),
        }
    }

    /// Whether `domain` is one of ours. While the directory fails, the last
    /// list it gave is used; with none, the answer is unavailable.
    pub async fn is_ours(&self, domain: &str) -> Result<bool, LookupError> {
        // One query at a time: the others wait for its answer.
        let mut cached = self.cached.lock().await;
        let fresh = cached
            .as_ref()
            .is_some_and(|(at, _)| at.elapsed() < REFRESH);
        if !fresh {
            match self.locator.directory().domains().await {
                Ok(list) => *cached = Some((Instant::now(), Arc::new(list.into_iter().collect()))),
                Err(e) => match cached.as_mut() {
                    Some((at, _)) => {
                        tracing::warn!(error = %e, "directory failed listing domains; using the last list");
                        // Ask again at the next refresh, not at every RCPT.
                        *at = Instant::now();
                    }
                    None => return Err(LookupError::Unavailable(e.to_string())),
                },
            }
        }
        let list = cached.as_ref().map(|(_, l)| l.clone()).unwrap_or_default();
        drop(cached);
        Ok(Domain::parse(domain).is_ok_and(|d| list.contains(&d)))
    }
}
