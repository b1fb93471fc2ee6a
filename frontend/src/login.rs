//! Checking a login at the frontend, the same for every protocol: the
//! address's and the account's penalties first, then the locator; failures
//! feed both penalties and wait `auth_failure_delay`, successes clear them.

use std::net::SocketAddr;
use std::sync::Arc;

use locator::{Account, AuthOutcome};
use shared::Address;
use shared::sasl::Plain;

use crate::Frontend;

/// Why a login was refused; each protocol words it its own way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Wrong password, unknown user, or acting as someone else.
    Failed,
    Suspended,
    /// The directory could not answer, or the account is being moved.
    Unavailable,
}

pub async fn check(
    fe: &Frontend,
    client: SocketAddr,
    session: &str,
    plain: &Plain,
) -> Result<Arc<Account>, Refused> {
    // An address, or an account, that has been failing waits before it is
    // even checked.
    let account = plain.authcid.to_ascii_lowercase();
    let wait = fe
        .penalty
        .delay(&client.ip())
        .max(fe.account_penalty.delay(&account));
    if !wait.is_zero() {
        tokio::time::sleep(wait).await;
    }
    let user = match Address::parse(&plain.authcid) {
        Ok(u)
            if plain.authzid.is_empty() || Address::parse(&plain.authzid).is_ok_and(|z| z == u) =>
        {
            u
        }
        _ => return Err(failed(fe, client, session, &plain.authcid).await),
    };
    let slot = fe.login_slots.acquire(&client.ip()).await;
    let outcome = fe
        .router
        .locator()
        .authenticate(&user, &plain.password)
        .await;
    drop(slot);
    match outcome {
        AuthOutcome::Ok(a) => {
            fe.penalty.succeeded(&client.ip());
            fe.account_penalty.succeeded(&account);
            Ok(a)
        }
        AuthOutcome::Failed => Err(failed(fe, client, session, &plain.authcid).await),
        AuthOutcome::Suspended(_) => {
            fe.metrics.login("suspended");
            tracing::info!(%user, %client, "login refused: account suspended");
            Err(Refused::Suspended)
        }
        AuthOutcome::Unavailable(why) => {
            fe.metrics.login("unavailable");
            tracing::warn!(%user, %why, "login unavailable");
            Err(Refused::Unavailable)
        }
    }
}

async fn failed(fe: &Frontend, client: SocketAddr, session: &str, who: &str) -> Refused {
    fe.metrics.login("failed");
    fe.penalty.failed(client.ip());
    fe.account_penalty.failed(who.to_ascii_lowercase());
    tracing::info!(user = %who, %client, %session, "login failed");
    tokio::time::sleep(fe.limits.auth_failure_delay).await;
    Refused::Failed
}
