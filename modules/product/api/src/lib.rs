//! The product module's contract: the [`ProductService`] trait other modules call, its
//! request and response types, and [`ProductError`]. Nothing here touches a database, so an
//! HTTP client can implement the same trait in a split deployment.

#[cfg(feature = "client")]
pub mod client;
pub mod events;
mod listing;
#[cfg(feature = "client")]
mod neighbour;
mod problem;
mod product;
mod reservation;
mod values;

use async_trait::async_trait;
use kernel_api::{
    error::{FieldError, Unavailable},
    version::ExpectedVersion,
};

pub use listing::{After, ProductListParams, ProductQuery, Sort, SortKey};
pub use problem::ProductProblem;
pub use product::{NewProduct, Product, ProductChanges, ProductInput, ProductPage, ProductPatch};
pub use reservation::{
    Reservation, ReservationInput, ReservationLine, ReservationLines, ReservationStatus,
    ReservedLine,
};
pub use values::{Description, MAX_UNITS, ProductName, Sku};

kernel_api::typed_id!(
    /// Identifies a product.
    ProductId
);
kernel_api::typed_id!(
    /// Identifies a stock reservation; order uses its order id, so retries are idempotent.
    ReservationId
);

/// Catalog and inventory, as other modules and the HTTP layer see them.
///
/// Every method is safe under concurrency: writes are atomic and guarded by the resource's
/// version, and stock is never reserved beyond what is on hand.
#[async_trait]
pub trait ProductService: Send + Sync + 'static {
    /// # Errors
    /// [`ProductError::DuplicateSku`] when the SKU is taken.
    async fn create(&self, input: NewProduct) -> Result<Product, ProductError>;

    /// # Errors
    /// [`ProductError::NotFound`].
    async fn get(&self, id: ProductId) -> Result<Product, ProductError>;

    /// A page of products matching the filter, in the requested order.
    ///
    /// # Errors
    /// Only unexpected ones.
    async fn list(&self, query: ProductQuery) -> Result<ProductPage, ProductError>;

    /// Replaces every writable field (PUT) or the given ones (PATCH).
    ///
    /// # Errors
    /// [`ProductError::NotFound`]; [`ProductError::PreconditionFailed`] when the product is
    /// not at an `expected` version; [`ProductError::DuplicateSku`];
    /// [`ProductError::StockBelowReserved`].
    async fn update(
        &self,
        id: ProductId,
        expected: ExpectedVersion,
        changes: ProductChanges,
    ) -> Result<Product, ProductError>;

    /// # Errors
    /// [`ProductError::NotFound`]; [`ProductError::PreconditionFailed`];
    /// [`ProductError::HasReservations`] while stock is reserved.
    async fn delete(&self, id: ProductId, expected: ExpectedVersion) -> Result<(), ProductError>;

    /// Reserves every line or none, and says at which price: each line of the answer carries
    /// the product's SKU, name and unit price as they were when the stock was taken, so a
    /// caller needs no separate read (and sees no price change between reading and
    /// reserving). Calling it again with the same id and lines returns the existing
    /// reservation, with the prices of the first call, instead of reserving twice.
    ///
    /// # Errors
    /// [`ProductError::InsufficientStock`] naming the first short product;
    /// [`ProductError::NotFound`] for an unknown product; [`ProductError::ReservationConflict`]
    /// when the id was used with other lines.
    async fn reserve(
        &self,
        id: ReservationId,
        lines: ReservationLines,
    ) -> Result<Reservation, ProductError>;

    /// Returns the reservation's units to `available`: reserved units are freed, and units of
    /// a committed reservation (an order cancelled after payment, before shipping) come back
    /// into `stock`. Idempotent.
    ///
    /// # Errors
    /// [`ProductError::ReservationNotFound`].
    async fn release(&self, id: ReservationId) -> Result<Reservation, ProductError>;

    /// Takes reserved stock out of `stock` (the goods leave). Idempotent.
    ///
    /// # Errors
    /// [`ProductError::ReservationNotFound`]; [`ProductError::ReservationClosed`] when it was
    /// released.
    async fn commit(&self, id: ReservationId) -> Result<Reservation, ProductError>;
}

/// Everything that can go wrong in the product module.
#[derive(Debug, thiserror::Error)]
pub enum ProductError {
    #[error("product {0} not found")]
    NotFound(ProductId),
    #[error("a product with SKU {0:?} already exists")]
    DuplicateSku(String),
    #[error("If-Match does not match the current ETag: the product has changed")]
    PreconditionFailed,
    #[error("stock cannot be set to {requested}: {reserved} units are reserved")]
    StockBelowReserved { requested: i64, reserved: i64 },
    #[error("product {0} has reserved stock and cannot be deleted")]
    HasReservations(ProductId),
    #[error(
        "insufficient stock for product {product_id}: requested {requested}, available {available}"
    )]
    InsufficientStock {
        product_id: ProductId,
        requested: i64,
        available: i64,
    },
    #[error("reservation {0} not found")]
    ReservationNotFound(ReservationId),
    #[error("reservation {0} already exists with different lines")]
    ReservationConflict(ReservationId),
    #[error("reservation {id} is {status} and cannot be {action}")]
    ReservationClosed {
        id: ReservationId,
        status: ReservationStatus,
        action: &'static str,
    },
    #[error("invalid product input")]
    Invalid(Vec<FieldError>),
    /// The product module cannot be reached (split deployment: its service is down, or the
    /// client's circuit breaker is open).
    #[error(transparent)]
    Unavailable(Unavailable),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// A write that lost a lock conflict (deadlock, serialization failure) may be run again.
impl kernel_api::error::Retryable for ProductError {
    fn unexpected(&self) -> Option<&anyhow::Error> {
        match self {
            Self::Unexpected(e) => Some(e),
            _ => None,
        }
    }
}
