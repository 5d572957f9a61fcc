//! What the product module does when orders change: a paid order's reservation is
//! committed; a cancelled order's reservation is released (its units come back).

use std::sync::Arc;

use kernel::bus::{self, Subscriber, catalog::ConsumerDoc};
use order_api::events::{OrderCancelled, OrderPaid};
use product_api::{ProductError, ReservationId, ReservationStatus};

use crate::store::Store;

const COMMIT_PAID: &str = "product.commit_paid_orders";
const RELEASE_CANCELLED: &str = "product.release_cancelled_orders";

pub(crate) fn subscribers(store: Store) -> Vec<Arc<dyn Subscriber>> {
    let releasing = store.clone();
    vec![
        bus::on::<OrderPaid, _>(COMMIT_PAID, move |tx, event, _| {
            store.close_in(
                tx,
                ReservationId(event.order_id.0),
                ReservationStatus::Committed,
            )?;
            Ok(())
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

pub(crate) fn consumers() -> Vec<ConsumerDoc> {
    vec![
        ConsumerDoc {
            subscriber: COMMIT_PAID,
            module: "product",
            event_types: &["order.paid"],
            summary: "Commits the order's reservation: its units leave stock.",
        },
        ConsumerDoc {
            subscriber: RELEASE_CANCELLED,
            module: "product",
            event_types: &["order.cancelled"],
            summary: "Releases the order's reservation: its units are available again.",
        },
    ]
}
