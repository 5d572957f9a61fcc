//! How the payment module reacts to other modules' events.
//!
//! `payment.refund_cancelled_orders`: a cancelled order whose money was taken
//! (`order.cancelled` with `refund`) gets every payment that still holds money refunded in
//! full, inside the handler's transaction.
//!
//! The gateway is called from inside that transaction. Handlers are synchronous and run on a
//! blocking-pool thread (the relay works through `Db::run`), so the async gateway call is
//! driven with the runtime handle's `block_on`, which is allowed there. This keeps refund and
//! record atomic: a gateway failure rolls the whole delivery back and the relay retries it,
//! and a redelivery finds the payments `refunded` already and does nothing. The price is a
//! write transaction held open for the gateway's latency; acceptable for the simulated gateway
//! and for the rare cancellation of a paid order. A real gateway must treat the payment id as
//! the refund's idempotency key so a call whose transaction later rolls back is not repeated.

use std::sync::Arc;

use anyhow::Context;
use kernel::bus::{self, Event, Subscriber, catalog::ConsumerDoc};
use order_api::events::OrderCancelled;
use payment_api::PaymentGateway;

use crate::store;

/// The subscriber's name on the bus (its deliveries and inbox are keyed by it).
pub(crate) const REFUND_CANCELLED_ORDERS: &str = "payment.refund_cancelled_orders";

pub(crate) fn refund_cancelled_orders(gateway: Arc<dyn PaymentGateway>) -> Arc<dyn Subscriber> {
    bus::on::<OrderCancelled, _>(REFUND_CANCELLED_ORDERS, move |tx, event, _envelope| {
        if !event.refund {
            return Ok(());
        }
        let runtime = tokio::runtime::Handle::try_current()
            .context("refunding needs the tokio runtime to reach the payment gateway")?;
        let refunded = store::refund_order_in_full(tx, event.order_id, |payment, amount| {
            runtime
                .block_on(gateway.refund(payment, amount))
                .with_context(|| format!("the gateway did not refund payment {payment}"))
        })?;
        tracing::info!(order_id = %event.order_id, refunded, "refunded the payments of a cancelled order");
        Ok(())
    })
}

pub(crate) fn consumer_docs() -> Vec<ConsumerDoc> {
    const TYPES: &[&str] = &[<OrderCancelled as Event>::TYPE];
    vec![ConsumerDoc {
        subscriber: REFUND_CANCELLED_ORDERS,
        module: "payment",
        event_types: TYPES,
        summary: "Refunds in full every payment of a cancelled order that still holds money, \
                  when the cancellation says money was taken.",
    }]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalog_describes_the_subscriber_as_registered() {
        let subscriber = refund_cancelled_orders(Arc::new(crate::gateway::SimulatedGateway));
        let docs = consumer_docs();
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0].subscriber, subscriber.name());
        assert_eq!(subscriber.event_types(), docs[0].event_types.to_vec());
    }
}
