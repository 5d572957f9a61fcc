//! The payment module's contract: [`PaymentService`], the card and payment types,
//! [`PaymentGateway`], [`PaymentError`] and the payment events.
//!
//! A full card number or CVC lives only in a [`Card`] value for the duration of one request:
//! `Card` has no `Serialize`, its `Debug` prints brand and last four digits only, and what is
//! stored, logged or published is a [`Payment`] (brand + last4).

pub mod card;
pub mod events;
pub mod gateway;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use kernel_api::{
    auth::Principal,
    error::{ApiError, ErrorKind, FieldError, ProblemCode, Unavailable, members},
    money::Money,
    page::{cursor, page_params},
};
use order_api::OrderId;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

pub use card::{Card, CardInput};
pub use gateway::{ChargeOutcome, GatewayRecord, IdempotencyKey, PaymentGateway, RefundOutcome};

kernel_api::typed_id!(
    /// Identifies a payment (a PaymentIntent-like object).
    PaymentId
);

kernel_api::typed_id!(
    /// Identifies one refund of a payment (the idempotency key of its gateway call).
    RefundId
);

/// Where a payment stands. `processing → succeeded | failed`;
/// `succeeded → partially_refunded → refunded`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// The gateway has not answered yet.
    Processing,
    /// The money was captured.
    Succeeded,
    /// The gateway declined; see `failure_code`.
    Failed,
    /// Part of the captured amount was given back.
    PartiallyRefunded,
    /// All of the captured amount was given back.
    Refunded,
}

impl PaymentStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Processing => "processing",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::PartiallyRefunded => "partially_refunded",
            Self::Refunded => "refunded",
        }
    }

    /// # Errors
    /// An unknown name.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "processing" => Ok(Self::Processing),
            "succeeded" => Ok(Self::Succeeded),
            "failed" => Ok(Self::Failed),
            "partially_refunded" => Ok(Self::PartiallyRefunded),
            "refunded" => Ok(Self::Refunded),
            other => Err(format!("unknown payment status {other:?}")),
        }
    }
}

/// Body of `POST /payments`. The amount comes from the order, never from the client.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePayment {
    /// The order to pay.
    pub order_id: OrderId,
    /// The card to charge.
    pub card: CardInput,
}

/// Body of `POST /payments/{id}/refunds`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRefund {
    /// Amount to give back, in the payment's minor units; at most what is left to refund.
    #[schema(minimum = 1)]
    pub amount: i64,
}

/// A payment. Shows the card's brand and last four digits only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Payment {
    /// Payment id.
    pub id: PaymentId,
    /// The order paid.
    pub order_id: OrderId,
    /// The customer who paid (`sub`).
    pub customer: String,
    /// The order's total at the time of payment.
    pub amount: Money,
    /// How much has been refunded so far (minor units).
    pub refunded: i64,
    /// Where the payment stands.
    pub status: PaymentStatus,
    /// Card brand, e.g. `visa`.
    pub brand: String,
    /// Last four digits of the card number.
    pub last4: String,
    /// Why the gateway declined (`card_declined`, `insufficient_funds`, …).
    pub failure_code: Option<String>,
    /// When it was created (UTC).
    pub created_at: DateTime<Utc>,
    /// When it last changed (UTC).
    pub updated_at: DateTime<Utc>,
}

/// One page of payments, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PaymentPage {
    /// The payments on this page.
    pub items: Vec<Payment>,
    /// Cursor for the next page, or null.
    pub next: Option<String>,
    /// How many payments match the filter (the caller sees), over all pages.
    pub total: u64,
}

/// Query parameters of `GET /payments`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PaymentListParams {
    /// Only payments of this order.
    pub order_id: Option<OrderId>,
    /// Page size, 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The `next` value of the previous page.
    pub cursor: Option<String>,
}

/// A valid listing request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentQuery {
    pub order_id: Option<OrderId>,
    pub limit: u32,
    /// List payments older than this one (the cursor).
    pub before: Option<PaymentId>,
}

impl Default for PaymentQuery {
    fn default() -> Self {
        Self {
            order_id: None,
            limit: kernel_api::page::DEFAULT_PAGE_SIZE,
            before: None,
        }
    }
}

impl PaymentQuery {
    /// The `next` cursor of a page whose last (oldest) item is `last`; [`PaymentQuery`]'s
    /// `TryFrom` reads it back, so both directions live here.
    pub fn cursor_after(last: PaymentId) -> String {
        cursor::encode(&last)
    }
}

impl TryFrom<PaymentListParams> for PaymentQuery {
    type Error = Vec<FieldError>;

    fn try_from(p: PaymentListParams) -> Result<Self, Self::Error> {
        let (limit, before) = page_params(p.limit, p.cursor.as_deref())?;
        Ok(Self {
            order_id: p.order_id,
            limit,
            before,
        })
    }
}

/// Payments, as the HTTP layer and other modules see them.
#[async_trait]
pub trait PaymentService: Send + Sync + 'static {
    /// Charges the order's total to `card`. Only the order's customer or an admin may pay.
    ///
    /// # Errors
    /// [`PaymentError::OrderNotFound`] (also for another customer's order);
    /// [`PaymentError::NotPayable`] when the order is not `pending_payment` or already has a
    /// payment in progress or succeeded. A decline is not an error: the payment is `failed`.
    async fn pay(
        &self,
        actor: &Principal,
        order: OrderId,
        card: Card,
    ) -> Result<Payment, PaymentError>;

    /// # Errors
    /// [`PaymentError::NotFound`], also for another customer's payment.
    async fn get(&self, actor: &Principal, id: PaymentId) -> Result<Payment, PaymentError>;

    /// # Errors
    /// Only unexpected ones.
    async fn list(
        &self,
        actor: &Principal,
        query: PaymentQuery,
    ) -> Result<PaymentPage, PaymentError>;

    /// Gives back `amount` (admin). The amount is reserved under the payment's lock before
    /// the gateway is called, with the refund's id as idempotency key.
    ///
    /// # Errors
    /// [`PaymentError::NotFound`]; [`PaymentError::NotRefundable`] when the payment did not
    /// succeed, `amount` exceeds what is left once refunds under way are counted, or the
    /// gateway refused; [`PaymentError::GatewayUnavailable`] when the gateway did not answer (the
    /// refund stays reserved until reconciliation settles it).
    async fn refund(&self, id: PaymentId, amount: i64) -> Result<Payment, PaymentError>;
}

/// Everything that can go wrong in the payment module.
#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    #[error("payment {0} not found")]
    NotFound(PaymentId),
    #[error("order {0} not found")]
    OrderNotFound(OrderId),
    #[error("order {0} cannot be paid: {1}")]
    NotPayable(OrderId, String),
    #[error("payment {0} cannot be refunded: {1}")]
    NotRefundable(PaymentId, String),
    #[error("invalid payment")]
    Invalid(Vec<FieldError>),
    /// A module the payment needs cannot be reached (split deployment).
    #[error(transparent)]
    Unavailable(Unavailable),
    /// The payment gateway did not answer a refund; reconciliation settles it.
    #[error("the payment gateway did not answer; the refund is settled once it does")]
    GatewayUnavailable,
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Codes and figures of [`PaymentError`] on the wire (see the `Problem` schema).
impl ProblemCode for PaymentError {
    fn code(&self) -> &'static str {
        match self {
            Self::NotFound(_) => "payment_not_found",
            Self::OrderNotFound(_) => "order_not_found",
            Self::NotPayable(..) => "not_payable",
            Self::NotRefundable(..) => "not_refundable",
            Self::Invalid(_) => "validation_failed",
            Self::Unavailable(_) | Self::GatewayUnavailable => "unavailable",
            Self::Unexpected(_) => "internal",
        }
    }

    fn members(&self) -> serde_json::Map<String, serde_json::Value> {
        members(match self {
            Self::NotFound(id) | Self::NotRefundable(id, _) => {
                serde_json::json!({ "payment_id": id })
            }
            Self::OrderNotFound(id) | Self::NotPayable(id, _) => {
                serde_json::json!({ "order_id": id })
            }
            Self::Invalid(_)
            | Self::Unavailable(_)
            | Self::GatewayUnavailable
            | Self::Unexpected(_) => serde_json::Value::Null,
        })
    }
}

impl From<PaymentError> for ApiError {
    fn from(err: PaymentError) -> Self {
        match err {
            PaymentError::Invalid(errors) => ApiError::validation(errors),
            PaymentError::Unavailable(unavailable) => ApiError::from(unavailable),
            PaymentError::Unexpected(source) => ApiError::internal(source),
            other => {
                let kind = match &other {
                    PaymentError::NotFound(_) | PaymentError::OrderNotFound(_) => {
                        ErrorKind::NotFound
                    }
                    PaymentError::GatewayUnavailable => ErrorKind::ServiceUnavailable,
                    _ => ErrorKind::Conflict,
                };
                ApiError::from_coded(kind, &other)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_params_default_to_the_first_page_of_twenty() {
        let query = PaymentQuery::try_from(PaymentListParams::default()).unwrap();
        assert_eq!(query, PaymentQuery::default());
    }

    #[test]
    fn a_cursor_reads_back_as_the_payment_it_was_made_from() {
        let last = PaymentId::new();
        let params = PaymentListParams {
            cursor: Some(PaymentQuery::cursor_after(last)),
            ..Default::default()
        };
        assert_eq!(PaymentQuery::try_from(params).unwrap().before, Some(last));
    }

    #[test]
    fn bad_listing_params_name_every_field() {
        let params = PaymentListParams {
            limit: Some(0),
            cursor: Some("garbage".into()),
            ..Default::default()
        };
        let errors = PaymentQuery::try_from(params).unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["limit", "cursor"]);
    }
}
