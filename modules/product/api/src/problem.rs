//! [`ProductError`] as data on the wire: each client-visible variant has a stable `code` and
//! its figures as members of the problem document (never named like a standard member:
//! `status` is the HTTP status, so a reservation's status is `reservation_status`).
//! [`ProductProblem`] is the one place the codes and member names are spelled: the server
//! encodes through it and the HTTP client decodes through it, so neither reads `title` or
//! `detail`.

use kernel_api::error::{ApiError, ErrorKind, Problem, ProblemCode, Unavailable};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{ProductError, ProductId, ReservationId, ReservationStatus};

/// The product errors a client can tell apart, tagged by their `code`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum ProductProblem {
    ProductNotFound {
        product_id: ProductId,
    },
    DuplicateSku {
        sku: String,
    },
    PreconditionFailed,
    StockBelowReserved {
        requested: i64,
        reserved: i64,
    },
    HasReservations {
        product_id: ProductId,
    },
    InsufficientStock {
        product_id: ProductId,
        requested: i64,
        available: i64,
    },
    ReservationNotFound {
        reservation_id: ReservationId,
    },
    ReservationConflict {
        reservation_id: ReservationId,
    },
    ReservationClosed {
        reservation_id: ReservationId,
        reservation_status: ReservationStatus,
        /// `released` or `committed`: what could not be done.
        action: String,
    },
    /// Invalid input; the offending fields are the problem's `errors`.
    ValidationFailed,
    Unavailable,
    Internal,
}

impl ProductProblem {
    fn of(error: &ProductError) -> Self {
        match error {
            ProductError::NotFound(id) => Self::ProductNotFound { product_id: *id },
            ProductError::DuplicateSku(sku) => Self::DuplicateSku { sku: sku.clone() },
            ProductError::PreconditionFailed => Self::PreconditionFailed,
            ProductError::StockBelowReserved {
                requested,
                reserved,
            } => Self::StockBelowReserved {
                requested: *requested,
                reserved: *reserved,
            },
            ProductError::HasReservations(id) => Self::HasReservations { product_id: *id },
            ProductError::InsufficientStock {
                product_id,
                requested,
                available,
            } => Self::InsufficientStock {
                product_id: *product_id,
                requested: *requested,
                available: *available,
            },
            ProductError::ReservationNotFound(id) => Self::ReservationNotFound {
                reservation_id: *id,
            },
            ProductError::ReservationConflict(id) => Self::ReservationConflict {
                reservation_id: *id,
            },
            ProductError::ReservationClosed { id, status, action } => Self::ReservationClosed {
                reservation_id: *id,
                reservation_status: *status,
                action: (*action).to_owned(),
            },
            ProductError::Invalid(_) => Self::ValidationFailed,
            ProductError::Unavailable(_) => Self::Unavailable,
            ProductError::Unexpected(_) => Self::Internal,
        }
    }

    /// The typed error this problem carries, or `None` for a code product does not answer
    /// with (or figures that do not parse). `problem` supplies the field errors and, for
    /// unavailability, a message for logs.
    pub fn decode(problem: &Problem) -> Option<ProductError> {
        let decoded: Self = kernel_api::error::from_tagged(problem)?;
        Some(match decoded {
            Self::ProductNotFound { product_id } => ProductError::NotFound(product_id),
            Self::DuplicateSku { sku } => ProductError::DuplicateSku(sku),
            Self::PreconditionFailed => ProductError::PreconditionFailed,
            Self::StockBelowReserved {
                requested,
                reserved,
            } => ProductError::StockBelowReserved {
                requested,
                reserved,
            },
            Self::HasReservations { product_id } => ProductError::HasReservations(product_id),
            Self::InsufficientStock {
                product_id,
                requested,
                available,
            } => ProductError::InsufficientStock {
                product_id,
                requested,
                available,
            },
            Self::ReservationNotFound { reservation_id } => {
                ProductError::ReservationNotFound(reservation_id)
            }
            Self::ReservationConflict { reservation_id } => {
                ProductError::ReservationConflict(reservation_id)
            }
            Self::ReservationClosed {
                reservation_id,
                reservation_status,
                action,
            } => ProductError::ReservationClosed {
                id: reservation_id,
                status: reservation_status,
                action: match action.as_str() {
                    "released" => "released",
                    "committed" => "committed",
                    _ => return None,
                },
            },
            Self::ValidationFailed => ProductError::Invalid(problem.errors.clone()),
            Self::Unavailable => ProductError::Unavailable(Unavailable::new(
                "product",
                std::time::Duration::from_secs(1),
            )),
            Self::Internal => return None,
        })
    }
}

impl ProblemCode for ProductError {
    fn code(&self) -> &'static str {
        match ProductProblem::of(self) {
            ProductProblem::ProductNotFound { .. } => "product_not_found",
            ProductProblem::DuplicateSku { .. } => "duplicate_sku",
            ProductProblem::PreconditionFailed => "precondition_failed",
            ProductProblem::StockBelowReserved { .. } => "stock_below_reserved",
            ProductProblem::HasReservations { .. } => "has_reservations",
            ProductProblem::InsufficientStock { .. } => "insufficient_stock",
            ProductProblem::ReservationNotFound { .. } => "reservation_not_found",
            ProductProblem::ReservationConflict { .. } => "reservation_conflict",
            ProductProblem::ReservationClosed { .. } => "reservation_closed",
            ProductProblem::ValidationFailed => "validation_failed",
            ProductProblem::Unavailable => "unavailable",
            ProductProblem::Internal => "internal",
        }
    }

    fn members(&self) -> Map<String, Value> {
        kernel_api::error::tagged_members(&ProductProblem::of(self))
    }
}

impl From<ProductError> for ApiError {
    fn from(err: ProductError) -> Self {
        let kind = match &err {
            ProductError::NotFound(_) | ProductError::ReservationNotFound(_) => ErrorKind::NotFound,
            ProductError::PreconditionFailed => ErrorKind::PreconditionFailed,
            ProductError::DuplicateSku(_)
            | ProductError::StockBelowReserved { .. }
            | ProductError::HasReservations(_)
            | ProductError::InsufficientStock { .. }
            | ProductError::ReservationConflict(_)
            | ProductError::ReservationClosed { .. } => ErrorKind::Conflict,
            ProductError::Invalid(_) => ErrorKind::Validation,
            ProductError::Unavailable(_) => ErrorKind::ServiceUnavailable,
            ProductError::Unexpected(_) => ErrorKind::Internal,
        };
        match err {
            ProductError::Invalid(errors) => ApiError::validation(errors),
            ProductError::Unavailable(unavailable) => ApiError::from(unavailable),
            ProductError::Unexpected(source) => ApiError::internal(source),
            other => ApiError::from_coded(kind, &other),
        }
    }
}
