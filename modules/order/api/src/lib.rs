//! The order module's contract: [`OrderService`], its request and response types,
//! [`OrderError`] and the order events.

#[cfg(feature = "client")]
pub mod client;
pub mod events;
#[cfg(feature = "client")]
mod neighbour;
mod problem;

use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use kernel_api::{
    auth::Principal,
    error::{FieldError, Unavailable},
    money::Money,
};
use product_api::ProductId;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

pub use problem::OrderProblem;

kernel_api::typed_id!(
    /// Identifies an order.
    OrderId
);

/// Where an order stands. `pending_payment → paid → shipped → delivered`;
/// `pending_payment | paid → cancelled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Stock is reserved; waiting for a successful payment (expires after a configured time).
    PendingPayment,
    /// Paid; stock committed.
    Paid,
    /// Handed to the carrier.
    Shipped,
    /// Arrived.
    Delivered,
    /// Cancelled by the customer or an admin, or expired unpaid; stock released, payment
    /// refunded.
    Cancelled,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PendingPayment => "pending_payment",
            Self::Paid => "paid",
            Self::Shipped => "shipped",
            Self::Delivered => "delivered",
            Self::Cancelled => "cancelled",
        }
    }

    /// # Errors
    /// An unknown name.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "pending_payment" => Ok(Self::PendingPayment),
            "paid" => Ok(Self::Paid),
            "shipped" => Ok(Self::Shipped),
            "delivered" => Ok(Self::Delivered),
            "cancelled" => Ok(Self::Cancelled),
            other => Err(format!("unknown order status {other:?}")),
        }
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One line of a new order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderItemInput {
    /// The product to buy.
    pub product_id: ProductId,
    /// How many, 1–1000.
    #[schema(minimum = 1, maximum = 1000)]
    pub quantity: i64,
}

/// Body of `POST /orders`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrder {
    /// 1–100 lines; a product listed twice is one line with the quantities summed.
    pub items: Vec<OrderItemInput>,
}

/// A valid new order: lines merged by product, in product order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOrder {
    items: Vec<OrderItemInput>,
}

impl NewOrder {
    pub fn items(&self) -> &[OrderItemInput] {
        &self.items
    }
}

impl TryFrom<CreateOrder> for NewOrder {
    type Error = Vec<FieldError>;

    fn try_from(input: CreateOrder) -> Result<Self, Self::Error> {
        if input.items.is_empty() || input.items.len() > 100 {
            return Err(vec![FieldError::new("items", "must have 1 to 100 lines")]);
        }
        let errors: Vec<FieldError> = input
            .items
            .iter()
            .enumerate()
            .filter(|(_, item)| !(1..=1000).contains(&item.quantity))
            .map(|(i, _)| {
                FieldError::new(format!("items[{i}].quantity"), "must be between 1 and 1000")
            })
            .collect();
        if !errors.is_empty() {
            return Err(errors);
        }
        let mut merged: std::collections::BTreeMap<ProductId, i64> = Default::default();
        for item in input.items {
            *merged.entry(item.product_id).or_default() += item.quantity;
        }
        if merged.values().any(|q| *q > 1000) {
            return Err(vec![FieldError::new(
                "items",
                "at most 1000 units of one product",
            )]);
        }
        Ok(Self {
            items: merged
                .into_iter()
                .map(|(product_id, quantity)| OrderItemInput {
                    product_id,
                    quantity,
                })
                .collect(),
        })
    }
}

/// One line of an order, with the price as it was when the order was placed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OrderItem {
    /// The product.
    pub product_id: ProductId,
    /// Its SKU when ordered.
    pub sku: String,
    /// Its name when ordered.
    pub name: String,
    /// Unit price when ordered.
    pub unit_price: Money,
    /// Units.
    pub quantity: i64,
    /// `unit_price × quantity`.
    pub line_total: Money,
}

/// An order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Order {
    /// Order id (UUID v7); also the id of its stock reservation.
    pub id: OrderId,
    /// The customer (`sub` of the token that placed it).
    pub customer: String,
    /// Where the order stands.
    pub status: OrderStatus,
    /// The lines, priced when the order was placed.
    pub items: Vec<OrderItem>,
    /// Sum of the lines.
    pub total: Money,
    /// Why it was cancelled, when it was.
    pub cancel_reason: Option<String>,
    /// When an unpaid order expires (UTC).
    pub expires_at: DateTime<Utc>,
    /// When the order was placed (UTC).
    pub created_at: DateTime<Utc>,
    /// When its status last changed (UTC).
    pub updated_at: DateTime<Utc>,
}

/// One page of orders, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OrderPage {
    /// The orders on this page.
    pub items: Vec<Order>,
    /// Cursor for the next page, or null.
    pub next: Option<String>,
    /// How many orders match the filter (the caller sees), over all pages.
    pub total: u64,
}

/// Query parameters of `GET /orders`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OrderListParams {
    /// Only orders in this status.
    pub status: Option<OrderStatus>,
    /// Only this customer's orders (admins; a customer always sees only their own).
    pub customer: Option<String>,
    /// Page size, 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The `next` value of the previous page.
    pub cursor: Option<String>,
}

/// A valid listing request, already narrowed to what the caller may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderQuery {
    pub status: Option<OrderStatus>,
    pub customer: Option<String>,
    pub limit: u32,
    /// List orders older than this one (the cursor).
    pub before: Option<OrderId>,
}

/// A state change an order can be asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Cancel,
    Ship,
    Deliver,
}

impl Transition {
    pub fn verb(self) -> &'static str {
        match self {
            Self::Cancel => "cancelled",
            Self::Ship => "shipped",
            Self::Deliver => "delivered",
        }
    }
}

/// Orders, as other modules and the HTTP layer see them. `actor` is the authenticated
/// caller: customers only ever see and touch their own orders.
#[async_trait]
pub trait OrderService: Send + Sync + 'static {
    /// Prices the lines from the catalog, reserves all of them or none, and stores the order
    /// as `pending_payment`.
    ///
    /// # Errors
    /// [`OrderError::UnknownProduct`]; [`OrderError::InsufficientStock`];
    /// [`OrderError::Invalid`] for mixed currencies.
    async fn place(&self, actor: &Principal, order: NewOrder) -> Result<Order, OrderError>;

    /// # Errors
    /// [`OrderError::NotFound`], also for another customer's order.
    async fn get(&self, actor: &Principal, id: OrderId) -> Result<Order, OrderError>;

    /// # Errors
    /// Only unexpected ones.
    async fn list(&self, actor: &Principal, query: OrderQuery) -> Result<OrderPage, OrderError>;

    /// Cancel (owner or admin), ship or deliver (admin).
    ///
    /// # Errors
    /// [`OrderError::NotFound`]; [`OrderError::Forbidden`];
    /// [`OrderError::IllegalTransition`] (409).
    async fn transition(
        &self,
        actor: &Principal,
        id: OrderId,
        transition: Transition,
    ) -> Result<Order, OrderError>;
}

/// Everything that can go wrong in the order module.
#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    #[error("order {0} not found")]
    NotFound(OrderId),
    #[error("{0}")]
    Forbidden(String),
    #[error("product {product_id} does not exist")]
    UnknownProduct { index: usize, product_id: ProductId },
    #[error(
        "insufficient stock for product {product_id}: requested {requested}, available {available}"
    )]
    InsufficientStock {
        product_id: ProductId,
        requested: i64,
        available: i64,
    },
    #[error("order {id} is {status} and cannot be {action}")]
    IllegalTransition {
        id: OrderId,
        status: OrderStatus,
        action: &'static str,
    },
    #[error("invalid order")]
    Invalid(Vec<FieldError>),
    /// A module the order needs cannot be reached (split deployment).
    #[error(transparent)]
    Unavailable(Unavailable),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// A write that lost a lock conflict (deadlock, serialization failure) may be run again.
impl kernel_api::error::Retryable for OrderError {
    fn unexpected(&self) -> Option<&anyhow::Error> {
        match self {
            Self::Unexpected(e) => Some(e),
            _ => None,
        }
    }
}
