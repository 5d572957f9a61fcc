//! Listing contracts and a contract's executions: query parameters, their checked forms, and
//! cursors.

use kernel_api::{
    error::FieldError,
    page::{cursor, page_params},
};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::{ContractId, ContractStatus};

/// Query parameters of `GET /contracts`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ContractListParams {
    /// Only contracts in this status.
    pub status: Option<ContractStatus>,
    /// Page size, 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The `next` value of the previous page.
    pub cursor: Option<String>,
}

/// A valid contract listing request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContractQuery {
    pub status: Option<ContractStatus>,
    pub limit: u32,
    /// List contracts older than this one (the cursor).
    pub before: Option<ContractId>,
}

impl Default for ContractQuery {
    fn default() -> Self {
        Self {
            status: None,
            limit: kernel_api::page::DEFAULT_PAGE_SIZE,
            before: None,
        }
    }
}

impl ContractQuery {
    /// The `next` cursor of a page whose last (oldest) item is `last`.
    pub fn cursor_after(last: ContractId) -> String {
        cursor::encode(&last)
    }
}

impl TryFrom<ContractListParams> for ContractQuery {
    type Error = Vec<FieldError>;

    fn try_from(p: ContractListParams) -> Result<Self, Self::Error> {
        let (limit, before) = page_params(p.limit, p.cursor.as_deref())?;
        Ok(Self {
            status: p.status,
            limit,
            before,
        })
    }
}

/// Query parameters of `GET /contracts/{id}/executions`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExecutionListParams {
    /// Page size, 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The `next` value of the previous page.
    pub cursor: Option<String>,
}

/// A valid execution listing request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionQuery {
    pub limit: u32,
    /// List executions after this sequence number (the cursor).
    pub after_seq: Option<i64>,
}

impl Default for ExecutionQuery {
    fn default() -> Self {
        Self {
            limit: kernel_api::page::DEFAULT_PAGE_SIZE,
            after_seq: None,
        }
    }
}

impl ExecutionQuery {
    /// The `next` cursor of a page whose last item has `seq`.
    pub fn cursor_after(seq: i64) -> String {
        cursor::encode(&seq)
    }
}

impl TryFrom<ExecutionListParams> for ExecutionQuery {
    type Error = Vec<FieldError>;

    fn try_from(p: ExecutionListParams) -> Result<Self, Self::Error> {
        let (limit, after_seq) = page_params(p.limit, p.cursor.as_deref())?;
        Ok(Self { limit, after_seq })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_params_default_to_the_first_page_of_twenty() {
        let query = ContractQuery::try_from(ContractListParams::default()).unwrap();
        assert_eq!(query, ContractQuery::default());
        let query = ExecutionQuery::try_from(ExecutionListParams::default()).unwrap();
        assert_eq!(query, ExecutionQuery::default());
    }

    #[test]
    fn cursors_read_back_as_the_position_they_were_made_from() {
        let last = ContractId::new();
        let params = ContractListParams {
            cursor: Some(ContractQuery::cursor_after(last)),
            ..Default::default()
        };
        assert_eq!(ContractQuery::try_from(params).unwrap().before, Some(last));
        let params = ExecutionListParams {
            cursor: Some(ExecutionQuery::cursor_after(7)),
            ..Default::default()
        };
        assert_eq!(ExecutionQuery::try_from(params).unwrap().after_seq, Some(7));
    }

    #[test]
    fn bad_listing_params_name_every_field() {
        let params = ExecutionListParams {
            limit: Some(0),
            cursor: Some("garbage".into()),
        };
        let errors = ExecutionQuery::try_from(params).unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["limit", "cursor"]);
    }
}
