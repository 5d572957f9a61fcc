//! How the payment module reacts to other modules' events.
//!
//! `payment.refund_cancelled_orders`: a cancelled order whose money was taken
//! (`order.cancelled` with `refund`) gets what is left of every payment that still holds money
//! reserved for a refund, inside the handler's transaction (so being told twice reserves
//! once). The gateway is not called there: no transaction is held across a gateway call. Each
//! reserved refund is carried out by a task that first waits for the payment's lock, which the
//! handler's transaction holds until it commits; if the gateway does not answer, the refund
//! stays pending and reconciliation retries it with the same idempotency key.

use anyhow::Context;
use kernel::bus::{self, Event, Subscriber, catalog::ConsumerDoc};
use order_api::events::OrderCancelled;
use std::sync::Arc;

use crate::{refunder::Refunder, refunds};

/// The subscriber's name on the bus (its deliveries and inbox are keyed by it).
pub(crate) const REFUND_CANCELLED_ORDERS: &str = "payment.refund_cancelled_orders";

pub(crate) fn refund_cancelled_orders(refunder: Refunder) -> Arc<dyn Subscriber> {
    bus::on::<OrderCancelled, _>(REFUND_CANCELLED_ORDERS, move |tx, event, _envelope| {
        if !event.refund {
            return Ok(());
        }
        let runtime = tokio::runtime::Handle::try_current()
            .context("refunding needs the tokio runtime to reach the payment gateway")?;
        let reserved = refunds::reserve_order_refunds(tx, event.order_id)?;
        for (refund, payment) in &reserved {
            refunder.spawn(&runtime, *refund, *payment);
        }
        tracing::info!(order_id = %event.order_id, refunds = reserved.len(), "reserved the refunds of a cancelled order");
        Ok(())
    })
}

pub(crate) fn consumers() -> Vec<ConsumerDoc> {
    const TYPES: &[&str] = &[<OrderCancelled as Event>::TYPE];
    vec![ConsumerDoc {
        subscriber: REFUND_CANCELLED_ORDERS,
        module: "payment",
        event_types: TYPES,
        summary: "Refunds in full every payment of a cancelled order that still holds money, \
                  when the cancellation says money was taken.",
    }]
}
