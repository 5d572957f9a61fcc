//! What the order module does when other modules report: a successful payment makes a
//! pending order paid; a payment that arrives for an order already cancelled (it expired
//! while the customer paid) is announced as a cancellation with refund, so the money goes
//! back.

use std::sync::Arc;

use kernel::bus::{self, Subscriber, Tx, catalog::ConsumerDoc};
use order_api::{OrderError, OrderStatus, events::OrderCancelled};
use payment_api::events::PaymentSucceeded;

use crate::store::{self, Store};

pub(crate) const APPLY_PAYMENTS: &str = "order.apply_payments";

pub(crate) fn subscribers(store: Store) -> Vec<Arc<dyn Subscriber>> {
    vec![bus::on::<PaymentSucceeded, _>(
        APPLY_PAYMENTS,
        move |tx, event, _| apply_payment(&store, tx, &event),
    )]
}

/// Makes a pending order paid, or has the money of a payment that came too late given back.
fn apply_payment(store: &Store, tx: &mut Tx<'_>, event: &PaymentSucceeded) -> anyhow::Result<()> {
    // A cancellation or expiry may commit between the read and the conditional change: then
    // the change applies to nothing, and the order is read again to act on where it is now.
    for _ in 0..3 {
        let order = store::load(tx.conn(), event.order_id)?;
        match order.status {
            OrderStatus::PendingPayment => {
                match store.change_status_in(tx, &order, OrderStatus::Paid, None) {
                    Ok(_) => return Ok(()),
                    Err(OrderError::IllegalTransition { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            OrderStatus::Cancelled => {
                tracing::warn!(
                    order = %order.id,
                    payment = %event.payment_id,
                    "payment succeeded for an order already cancelled; it is refunded"
                );
                tx.publish(&OrderCancelled {
                    order_id: order.id,
                    reason: "paid after cancellation".into(),
                    refund: true,
                })?;
                return Ok(());
            }
            // Already applied (a redelivery): nothing to do.
            OrderStatus::Paid | OrderStatus::Shipped | OrderStatus::Delivered => return Ok(()),
        }
    }
    anyhow::bail!(
        "order {} kept changing while payment {} was applied",
        event.order_id,
        event.payment_id
    )
}

pub(crate) fn consumers() -> Vec<ConsumerDoc> {
    vec![ConsumerDoc {
        subscriber: APPLY_PAYMENTS,
        module: "order",
        event_types: &["payment.succeeded"],
        summary: "Marks the order paid (or asks for a refund when it was already cancelled).",
    }]
}
