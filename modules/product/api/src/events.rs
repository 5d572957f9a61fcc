//! Events the product module publishes. Subjects: the product id for `product.*`, the
//! reservation id for `inventory.*`.

use kernel_api::event::catalog::EventDoc;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{Product, ProductId, ReservationId, ReservationLine, ReservationStatus};

/// A product was added to the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProductCreated {
    /// The product as created.
    pub product: Product,
}

/// A product's catalog fields or stock changed (PUT or PATCH).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProductUpdated {
    /// The product after the change.
    pub product: Product,
}

/// A product was removed from the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProductDeleted {
    /// The removed product's id.
    pub product_id: ProductId,
    /// Its SKU, now free again.
    pub sku: String,
}

/// Available stock fell to or below the configured threshold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StockLow {
    /// The product running low.
    pub product_id: ProductId,
    /// Its SKU.
    pub sku: String,
    /// Units still available.
    pub available: i64,
    /// The configured threshold it crossed.
    pub threshold: i64,
}

/// Stock was reserved for an order (all lines).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InventoryReserved {
    /// The reservation (the order id for order's reservations).
    pub reservation_id: ReservationId,
    /// What is held.
    pub lines: Vec<ReservationLine>,
}

/// A reservation was released: its stock is available again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InventoryReleased {
    /// The reservation.
    pub reservation_id: ReservationId,
    /// What was returned.
    pub lines: Vec<ReservationLine>,
}

/// A reservation was committed: its stock left the warehouse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InventoryCommitted {
    /// The reservation.
    pub reservation_id: ReservationId,
    /// What left.
    pub lines: Vec<ReservationLine>,
}

/// A paid order's reservation was not committed because it was no longer active: it had been
/// released (the order was cancelled, or expired, before the payment's commit arrived). The
/// stock stays as the release left it; the cancellation refunds the payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InventoryCommitSkipped {
    /// The reservation (the order id for order's reservations).
    pub reservation_id: ReservationId,
    /// Where it stood when the commit arrived.
    pub status: ReservationStatus,
    /// Why nothing was committed, in words.
    pub reason: String,
}

kernel_api::event!(
    ProductCreated,
    "product.created",
    "product",
    "A product was added to the catalog.",
    |e| e.product.id
);
kernel_api::event!(
    ProductUpdated,
    "product.updated",
    "product",
    "A product's fields or stock changed.",
    |e| e.product.id
);
kernel_api::event!(
    ProductDeleted,
    "product.deleted",
    "product",
    "A product was removed from the catalog.",
    |e| e.product_id
);
kernel_api::event!(
    StockLow,
    "product.stock_low",
    "product",
    "Available stock fell to or below the threshold.",
    |e| e.product_id
);
kernel_api::event!(
    InventoryReserved,
    "inventory.reserved",
    "product",
    "Stock was reserved for an order.",
    |e| e.reservation_id
);
kernel_api::event!(
    InventoryReleased,
    "inventory.released",
    "product",
    "A reservation was released.",
    |e| e.reservation_id
);
kernel_api::event!(
    InventoryCommitted,
    "inventory.committed",
    "product",
    "A reservation's stock left the warehouse.",
    |e| e.reservation_id
);
kernel_api::event!(
    InventoryCommitSkipped,
    "inventory.commit_skipped",
    "product",
    "A paid order's reservation was already released; nothing was committed.",
    |e| e.reservation_id
);

/// Every event type the product module publishes, for the event catalog.
pub fn catalog() -> Vec<EventDoc> {
    vec![
        EventDoc::of::<ProductCreated>(),
        EventDoc::of::<ProductUpdated>(),
        EventDoc::of::<ProductDeleted>(),
        EventDoc::of::<StockLow>(),
        EventDoc::of::<InventoryReserved>(),
        EventDoc::of::<InventoryReleased>(),
        EventDoc::of::<InventoryCommitted>(),
        EventDoc::of::<InventoryCommitSkipped>(),
    ]
}
