//! The daemons: configuration checked here, signals turned into a drain.

use tokio_util::sync::CancellationToken;

use crate::Failure;
use crate::config::TandemConfig;

/// `tandem backend --node ID`.
pub async fn backend(cfg: &TandemConfig, node: &str) -> Result<(), Failure> {
    let Some(b) = &cfg.backend else {
        return Err(Failure::Usage(
            "the config file has no `backend:` section".into(),
        ));
    };
    let shutdown = on_signals()?;
    backend::daemon::run(&cfg.locator, b, cfg.etcd.as_ref(), node, shutdown)
        .await
        .map_err(|e| Failure::Usage(e.to_string()))
}

/// `tandem frontend`.
pub async fn frontend(cfg: &TandemConfig) -> Result<(), Failure> {
    let Some(f) = &cfg.frontend else {
        return Err(Failure::Usage(
            "the config file has no `frontend:` section".into(),
        ));
    };
    let shutdown = on_signals()?;
    frontend::daemon::run(&cfg.locator, f, cfg.etcd.as_ref(), shutdown)
        .await
        .map_err(|e| Failure::Usage(e.to_string()))
}

/// A token cancelled by SIGTERM or SIGINT: the daemon drains and exits.
fn on_signals() -> Result<CancellationToken, Failure> {
    use tokio::signal::unix::{SignalKind, signal};
    let token = CancellationToken::new();
    let mut term = signal(SignalKind::terminate()).map_err(|e| Failure::Io(e.to_string()))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| Failure::Io(e.to_string()))?;
    let t = token.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM"),
            _ = int.recv() => tracing::info!("SIGINT"),
        }
        t.cancel();
    });
    Ok(token)
}
