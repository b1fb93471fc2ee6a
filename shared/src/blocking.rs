//! One way to run CPU-heavy or blocking work (password KDFs, fsync-heavy
//! commits, big parses) off the async reactor, bounded so that a login storm
//! queues instead of spawning thousands of blocking threads.

use std::sync::Arc;

use tokio::sync::Semaphore;

/// A bounded gate in front of `tokio::task::spawn_blocking`.
#[derive(Clone, Debug)]
pub struct Blocking {
    permits: Arc<Semaphore>,
}

#[derive(Debug, thiserror::Error)]
#[error("blocking task failed: {0}")]
pub struct BlockingError(String);

impl Blocking {
    /// At most `parallel` jobs run at once; the rest wait their turn.
    pub fn new(parallel: usize) -> Self {
        Blocking {
            permits: Arc::new(Semaphore::new(parallel.max(1))),
        }
    }

    /// Sized to the machine: one job per core.
    pub fn per_core() -> Self {
        Self::new(std::thread::available_parallelism().map_or(2, |n| n.get()))
    }

    pub async fn run<T, F>(&self, f: F) -> Result<T, BlockingError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| BlockingError(e.to_string()))?;
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| BlockingError(e.to_string()))
    }
}
