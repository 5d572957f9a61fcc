//! The expiry sweep, the order module's background job: unpaid orders past their time, and
//! placements a crash left half done, are cancelled (their stock is released).

use std::time::Duration;

use kernel::db::retry_on_conflict;
use order_api::OrderError;
use tokio::{sync::watch, task::JoinHandle};

use crate::{OrderSettings, store::Store};

/// Runs [`sweep`] every `expiry_check_secs` until `stop` changes.
pub(crate) fn start(
    store: Store,
    settings: &OrderSettings,
    stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let stuck = Duration::from_secs(settings.stuck_placement_secs);
    kernel::jobs::every(
        Duration::from_secs(settings.expiry_check_secs.max(1)),
        stop,
        move || {
            let store = store.clone();
            async move {
                if let Err(e) = sweep(&store, stuck).await {
                    tracing::warn!(error = ?e, "order expiry sweep failed");
                }
            }
        },
    )
}

/// Cancels unpaid orders past `expires_at` and placements a crash left half done.
pub(crate) async fn sweep(store: &Store, stuck_after: Duration) -> Result<usize, OrderError> {
    let now = kernel::time::now();
    let stuck_before = now - chrono::Duration::from_std(stuck_after).unwrap_or_default();
    let s = store.clone();
    let due = store
        .bus
        .db()
        .run(move |conn| s.due_for_expiry(conn, now, stuck_before))
        .await?;
    let mut expired = 0;
    for (id, status) in due {
        let s = store.clone();
        if store
            .bus
            .db()
            .run(move |conn| retry_on_conflict(conn, |conn| s.expire(conn, id, &status)))
            .await?
        {
            tracing::info!(order = %id, "order expired unpaid");
            expired += 1;
        }
    }
    Ok(expired)
}
