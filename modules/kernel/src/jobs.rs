//! Periodic background work (expiring orders, purging idempotency keys), stopped together
//! with the server.

use std::{future::Future, time::Duration};

/// Runs `task` every `every` until `stop` changes.
pub fn every<F, Fut>(
    every: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
    mut task: F,
) -> tokio::task::JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = tokio::time::sleep(every) => task().await,
                _ = stop.changed() => break,
            }
        }
    })
}
