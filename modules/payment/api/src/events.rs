//! Events the payment module publishes; the subject is the order id, so a payment's events
//! and its order's events keep one order.

use kernel::{
    bus::{Event, catalog::EventDoc},
    money::Money,
};
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

macro_rules! event {
    ($ty:ty, $name:literal, $summary:literal) => {
        impl Event for $ty {
            const TYPE: &'static str = $name;
            const SOURCE: &'static str = "payment";
            const SUMMARY: &'static str = $summary;
            fn subject(&self) -> String {
                self.order_id.to_string()
            }
        }
    };
}

event!(
    PaymentSucceeded,
    "payment.succeeded",
    "A payment captured the order's total."
);
event!(
    PaymentFailed,
    "payment.failed",
    "The gateway declined a payment."
);
event!(
    PaymentRefunded,
    "payment.refunded",
    "A payment was refunded, in part or in full."
);

/// Every event type the payment module publishes, for the event catalog.
pub fn catalog() -> Vec<EventDoc> {
    vec![
        EventDoc::of::<PaymentSucceeded>(),
        EventDoc::of::<PaymentFailed>(),
        EventDoc::of::<PaymentRefunded>(),
    ]
}
