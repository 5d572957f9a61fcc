//! [`OrderError`] as data on the wire: each client-visible variant has a stable `code` and
//! its figures as members of the problem document (never named like a standard member:
//! `status` is the HTTP status, so an order's status is `order_status`). [`OrderProblem`] is
//! the one place the codes and member names are spelled: the server encodes through it and
//! the HTTP client decodes through it, so neither reads `title` or `detail`.

use kernel_api::error::{ApiError, ErrorKind, FieldError, Problem, ProblemCode, Unavailable};
use product_api::ProductId;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{OrderError, OrderId, OrderStatus, Transition};

/// The order errors a client can tell apart, tagged by their `code`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum OrderProblem {
    OrderNotFound {
        order_id: OrderId,
    },
    Forbidden {
        /// Why the caller may not do this (empty when the role check at the edge refused).
        #[serde(default)]
        reason: String,
    },
    /// A line names a product that does not exist; also listed in `errors`.
    UnknownProduct {
        index: usize,
        product_id: ProductId,
    },
    InsufficientStock {
        product_id: ProductId,
        requested: i64,
        available: i64,
    },
    IllegalTransition {
        order_id: OrderId,
        order_status: OrderStatus,
        /// `cancelled`, `shipped` or `delivered`: what could not be done.
        action: String,
    },
    /// Invalid input; the offending fields are the problem's `errors`.
    ValidationFailed,
    Unavailable,
    Internal,
}

impl OrderProblem {
    fn of(error: &OrderError) -> Self {
        match error {
            OrderError::NotFound(id) => Self::OrderNotFound { order_id: *id },
            OrderError::Forbidden(reason) => Self::Forbidden {
                reason: reason.clone(),
            },
            OrderError::UnknownProduct { index, product_id } => Self::UnknownProduct {
                index: *index,
                product_id: *product_id,
            },
            OrderError::InsufficientStock {
                product_id,
                requested,
                available,
            } => Self::InsufficientStock {
                product_id: *product_id,
                requested: *requested,
                available: *available,
            },
            OrderError::IllegalTransition { id, status, action } => Self::IllegalTransition {
                order_id: *id,
                order_status: *status,
                action: (*action).to_owned(),
            },
            OrderError::Invalid(_) => Self::ValidationFailed,
            OrderError::Unavailable(_) => Self::Unavailable,
            OrderError::Unexpected(_) => Self::Internal,
        }
    }

    /// The typed error this problem carries, or `None` for a code order does not answer with
    /// (or figures that do not parse). `problem` supplies the field errors and, for
    /// unavailability, a message for logs.
    pub fn decode(problem: &Problem) -> Option<OrderError> {
        let decoded: Self = kernel_api::error::from_tagged(problem)?;
        Some(match decoded {
            Self::OrderNotFound { order_id } => OrderError::NotFound(order_id),
            Self::Forbidden { reason } => OrderError::Forbidden(reason),
            Self::UnknownProduct { index, product_id } => {
                OrderError::UnknownProduct { index, product_id }
            }
            Self::InsufficientStock {
                product_id,
                requested,
                available,
            } => OrderError::InsufficientStock {
                product_id,
                requested,
                available,
            },
            Self::IllegalTransition {
                order_id,
                order_status,
                action,
            } => OrderError::IllegalTransition {
                id: order_id,
                status: order_status,
                action: [Transition::Cancel, Transition::Ship, Transition::Deliver]
                    .into_iter()
                    .map(Transition::verb)
                    .find(|verb| *verb == action)?,
            },
            Self::ValidationFailed => OrderError::Invalid(problem.errors.clone()),
            Self::Unavailable => OrderError::Unavailable(Unavailable::new(
                "order",
                std::time::Duration::from_secs(1),
            )),
            Self::Internal => return None,
        })
    }
}

impl ProblemCode for OrderError {
    fn code(&self) -> &'static str {
        match OrderProblem::of(self) {
            OrderProblem::OrderNotFound { .. } => "order_not_found",
            OrderProblem::Forbidden { .. } => "forbidden",
            OrderProblem::UnknownProduct { .. } => "unknown_product",
            OrderProblem::InsufficientStock { .. } => "insufficient_stock",
            OrderProblem::IllegalTransition { .. } => "illegal_transition",
            OrderProblem::ValidationFailed => "validation_failed",
            OrderProblem::Unavailable => "unavailable",
            OrderProblem::Internal => "internal",
        }
    }

    fn members(&self) -> Map<String, Value> {
        kernel_api::error::tagged_members(&OrderProblem::of(self))
    }
}

impl From<OrderError> for ApiError {
    fn from(err: OrderError) -> Self {
        match err {
            OrderError::Invalid(errors) => ApiError::validation(errors),
            OrderError::Unavailable(unavailable) => ApiError::from(unavailable),
            OrderError::UnknownProduct { index, product_id } => {
                let coded = OrderError::UnknownProduct { index, product_id };
                ApiError::validation(vec![FieldError::new(
                    format!("items[{index}].product_id"),
                    format!("product {product_id} does not exist"),
                )])
                .with_code(coded.code())
                .with_members(coded.members())
            }
            OrderError::Unexpected(source) => ApiError::internal(source),
            other => {
                let kind = match &other {
                    OrderError::NotFound(_) => ErrorKind::NotFound,
                    OrderError::Forbidden(_) => ErrorKind::Forbidden,
                    _ => ErrorKind::Conflict,
                };
                ApiError::from_coded(kind, &other)
            }
        }
    }
}
