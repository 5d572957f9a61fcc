//! Events the order module publishes; the subject is the order id.

use kernel_api::{event::catalog::EventDoc, money::Money};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{OrderId, OrderItem};

/// An order was placed: its stock is reserved and it waits for payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OrderPlaced {
    pub order_id: OrderId,
    /// The customer's `sub`.
    pub customer: String,
    pub items: Vec<OrderItem>,
    pub total: Money,
}

/// A payment for the order succeeded: the order is paid, its stock is to be committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OrderPaid {
    pub order_id: OrderId,
    pub total: Money,
}

/// The order was cancelled (by a person, or because it expired unpaid): its stock is to be
/// released and, when `refund` is set, its successful payments refunded in full.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OrderCancelled {
    pub order_id: OrderId,
    /// Why: `cancelled by <sub>`, `expired`, or `paid after cancellation`.
    pub reason: String,
    /// Whether money was taken and must be given back.
    pub refund: bool,
}

/// The order was handed to the carrier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OrderShipped {
    pub order_id: OrderId,
}

/// The order arrived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OrderDelivered {
    pub order_id: OrderId,
}

kernel_api::event!(
    OrderPlaced,
    "order.placed",
    "order",
    "An order was placed and its stock reserved.",
    |e| e.order_id
);
kernel_api::event!(
    OrderPaid,
    "order.paid",
    "order",
    "An order was paid; its stock is to be committed.",
    |e| e.order_id
);
kernel_api::event!(
    OrderCancelled,
    "order.cancelled",
    "order",
    "An order was cancelled; stock to release, payment to refund.",
    |e| e.order_id
);
kernel_api::event!(
    OrderShipped,
    "order.shipped",
    "order",
    "An order was handed to the carrier.",
    |e| e.order_id
);
kernel_api::event!(
    OrderDelivered,
    "order.delivered",
    "order",
    "An order arrived.",
    |e| e.order_id
);

/// Every event type the order module publishes, for the event catalog.
pub fn catalog() -> Vec<EventDoc> {
    vec![
        EventDoc::of::<OrderPlaced>(),
        EventDoc::of::<OrderPaid>(),
        EventDoc::of::<OrderCancelled>(),
        EventDoc::of::<OrderShipped>(),
        EventDoc::of::<OrderDelivered>(),
    ]
}
