//! [`ContractError`] and how it goes on the wire: a stable code and the ids it concerns.

use kernel_api::error::{ApiError, ErrorKind, FieldError, ProblemCode, members};
use serde_json::Value;

use crate::{ContractId, ExecutionId};

/// Everything that can go wrong in the contract module.
#[derive(Debug, thiserror::Error)]
pub enum ContractError {
    #[error("contract {0} not found")]
    NotFound(ContractId),
    #[error("execution {0} not found")]
    ExecutionNotFound(ExecutionId),
    #[error("{0}")]
    Forbidden(String),
    #[error("contract {0} {1}")]
    Conflict(ContractId, String),
    #[error("invalid contract")]
    Invalid(Vec<FieldError>),
    #[error("the input is {size} bytes, more than the {limit} allowed")]
    InputTooLarge { size: usize, limit: usize },
    #[error("evaluation failed: {0}")]
    Evaluation(String),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Codes and figures of [`ContractError`] on the wire (see the `Problem` schema).
impl ProblemCode for ContractError {
    fn code(&self) -> &'static str {
        match self {
            Self::NotFound(_) => "contract_not_found",
            Self::ExecutionNotFound(_) => "execution_not_found",
            Self::Forbidden(_) => "forbidden",
            Self::Conflict(..) => "contract_conflict",
            Self::Invalid(_) => "validation_failed",
            Self::InputTooLarge { .. } => "input_too_large",
            Self::Evaluation(_) => "evaluation_failed",
            Self::Unexpected(_) => "internal",
        }
    }

    fn members(&self) -> serde_json::Map<String, serde_json::Value> {
        members(match self {
            Self::NotFound(id) | Self::Conflict(id, _) => serde_json::json!({ "contract_id": id }),
            Self::ExecutionNotFound(id) => serde_json::json!({ "execution_id": id }),
            Self::InputTooLarge { size, limit } => {
                serde_json::json!({ "size": size, "limit": limit })
            }
            _ => Value::Null,
        })
    }
}

impl From<ContractError> for ApiError {
    fn from(err: ContractError) -> Self {
        match err {
            ContractError::Invalid(errors) => ApiError::validation(errors),
            ContractError::Unexpected(source) => ApiError::internal(source),
            other => {
                let kind = match &other {
                    ContractError::NotFound(_) | ContractError::ExecutionNotFound(_) => {
                        ErrorKind::NotFound
                    }
                    ContractError::Forbidden(_) => ErrorKind::Forbidden,
                    ContractError::InputTooLarge { .. } => ErrorKind::PayloadTooLarge,
                    ContractError::Evaluation(_) => ErrorKind::Validation,
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
    fn errors_map_to_their_statuses() {
        let id = ContractId::new();
        let status = |e: ContractError| ApiError::from(e).kind();
        assert_eq!(status(ContractError::NotFound(id)), ErrorKind::NotFound);
        assert_eq!(
            status(ContractError::Conflict(id, "is a draft".into())),
            ErrorKind::Conflict
        );
        assert_eq!(
            status(ContractError::InputTooLarge { size: 2, limit: 1 }),
            ErrorKind::PayloadTooLarge
        );
        assert_eq!(
            status(ContractError::Evaluation("x".into())),
            ErrorKind::Validation
        );
        assert_eq!(
            status(ContractError::Forbidden("no".into())),
            ErrorKind::Forbidden
        );
    }
}
