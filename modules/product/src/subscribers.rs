//! What the product module does when orders change: a paid order's reservation is
//! committed; a cancelled order's reservation is released (its units come back).
//!
//! The two arrive through different subscribers, so nothing orders one after the other: a
//! paid order cancelled while its commit is held up (a relay that died holding the lease, a
//! retry after a deadlock) has its reservation released first. The late commit then has
//! nothing to do — the release gave the units back and the cancellation refunds the payment —
//! so it is skipped and announced (`inventory.commit_skipped`, and a warning in the log)
//! instead of failing until it is dead-lettered. Releasing a committed reservation is legal
//! (a paid order cancelled before shipping): its units come back.

use std::sync::Arc;

use kernel::bus::{self, Subscriber, Tx, catalog::ConsumerDoc};
use order_api::events::{OrderCancelled, OrderPaid};
use product_api::{ProductError, ReservationId, ReservationStatus, events::InventoryCommitSkipped};

use crate::store::Store;

const COMMIT_PAID: &str = "product.commit_paid_orders";
const RELEASE_CANCELLED: &str = "product.release_cancelled_orders";

pub(crate) fn subscribers(store: Store) -> Vec<Arc<dyn Subscriber>> {
    let releasing = store.clone();
    vec![
        bus::on::<OrderPaid, _>(COMMIT_PAID, move |tx, event, _| {
            let id = ReservationId(event.order_id.0);
            match store.close_in(tx, id, ReservationStatus::Committed) {
                Ok(_) => Ok(()),
                Err(ProductError::ReservationClosed { status, .. }) => skip_commit(tx, id, status),
                Err(e) => Err(e.into()),
            }
        }),
        bus::on::<OrderCancelled, _>(RELEASE_CANCELLED, move |tx, event, _| {
            match releasing.close_in(
                tx,
                ReservationId(event.order_id.0),
                ReservationStatus::Released,
            ) {
                // An order cancelled before its stock was reserved has nothing to release.
                Ok(_) | Err(ProductError::ReservationNotFound(_)) => Ok(()),
                Err(e) => Err(e.into()),
            }
        }),
    ]
}

/// A commit that came after the reservation was closed the other way (released).
fn skip_commit(
    tx: &mut Tx<'_>,
    id: ReservationId,
    status: ReservationStatus,
) -> anyhow::Result<()> {
    let reason = format!(
        "the reservation was already {status} when the order's payment was applied: \
         the order was cancelled or expired first, so its units stay available"
    );
    tracing::warn!(reservation = %id, %status, "commit of a paid order skipped: {reason}");
    tx.publish(&InventoryCommitSkipped {
        reservation_id: id,
        status,
        reason,
    })?;
    Ok(())
}

pub(crate) fn consumers() -> Vec<ConsumerDoc> {
    vec![
        ConsumerDoc {
            subscriber: COMMIT_PAID,
            module: "product",
            event_types: &["order.paid"],
            summary: "Commits the order's reservation: its units leave stock (skipped, and \
                      announced as inventory.commit_skipped, when it was released first).",
        },
        ConsumerDoc {
            subscriber: RELEASE_CANCELLED,
            module: "product",
            event_types: &["order.cancelled"],
            summary: "Releases the order's reservation: its units are available again.",
        },
    ]
}
