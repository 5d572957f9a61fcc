//! Events the payment module publishes; the subject is the order id, so a payment's events
//! and its order's events keep one order.

use kernel_api::{event::catalog::EventDoc, money::Money};
use order_api::OrderId;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::PaymentId;

/// The order's total was captured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PaymentSucceeded {
    /// The payment.
    pub payment_id: PaymentId,
    /// The order it paid.
    pub order_id: OrderId,
    /// The amount captured (the order's total).
    pub amount: Money,
}

/// The gateway declined; the order stays payable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PaymentFailed {
    /// The payment.
    pub payment_id: PaymentId,
    /// The order it was for; the order stays payable.
    pub order_id: OrderId,
    /// `card_declined`, `insufficient_funds`, `gateway_error`, …
    pub failure_code: String,
}

/// Money was given back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PaymentRefunded {
    /// The payment.
    pub payment_id: PaymentId,
    /// The order it paid.
    pub order_id: OrderId,
    /// This refund's amount.
    pub amount: Money,
    /// Whether the whole captured amount has now been refunded.
    pub full: bool,
}

kernel_api::event!(
    PaymentSucceeded,
    "payment.succeeded",
    "payment",
    "A payment captured the order's total.",
    |e| e.order_id
);
kernel_api::event!(
    PaymentFailed,
    "payment.failed",
    "payment",
    "The gateway declined a payment.",
    |e| e.order_id
);
kernel_api::event!(
    PaymentRefunded,
    "payment.refunded",
    "payment",
    "A payment was refunded, in part or in full.",
    |e| e.order_id
);

/// Every event type the payment module publishes, for the event catalog.
pub fn catalog() -> Vec<EventDoc> {
    vec![
        EventDoc::of::<PaymentSucceeded>(),
        EventDoc::of::<PaymentFailed>(),
        EventDoc::of::<PaymentRefunded>(),
    ]
}
