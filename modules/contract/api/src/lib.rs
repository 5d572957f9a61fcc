//! The contract module's contract: [`ContractService`], the contract, execution and ledger
//! types, [`ContractError`] and the contract events.
//!
//! A contract is a CEL expression agreed between parties. It is edited as a draft, deployed
//! once (its code is then frozen and hashed), executed many times, and terminated. Every
//! execution is appended to a hash-chained ledger that anyone allowed to read the contract
//! can verify.

pub mod events;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use kernel::{
    auth::{Principal, Role},
    error::{ApiError, ErrorKind, FieldError, ProblemCode, members},
    http::{cursor, page_params},
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

kernel::typed_id!(
    /// Identifies a contract.
    ContractId
);

kernel::typed_id!(
    /// Identifies one execution of a contract (one ledger entry).
    ExecutionId
);

/// The `prev_hash` of a ledger's first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Where a contract stands. `draft → deployed → terminated`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ContractStatus {
    /// Editable; cannot run.
    Draft,
    /// Frozen code; runs on request and on its trigger events.
    Deployed,
    /// Ended; its ledger stays readable.
    Terminated,
}

impl ContractStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Deployed => "deployed",
            Self::Terminated => "terminated",
        }
    }

    /// # Errors
    /// An unknown name.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "draft" => Ok(Self::Draft),
            "deployed" => Ok(Self::Deployed),
            "terminated" => Ok(Self::Terminated),
            other => Err(format!("unknown contract status {other:?}")),
        }
    }
}

impl std::fmt::Display for ContractStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Body of `POST /contracts`: a new draft.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewContract {
    /// What the contract is called; deployments of the same name are numbered versions.
    #[schema(example = "loyalty points")]
    pub name: String,
    /// Who agreed to it: the `sub`s (or names) of the parties. Customers who are parties
    /// may read and execute it.
    #[schema(example = json!(["alice", "shop"]))]
    pub parties: Vec<String>,
    /// The program: one CEL expression over `input`, `state`, `now` and `caller` that
    /// evaluates to a map with optional `output` and `state`.
    #[schema(
        example = "{\"state\": {\"points\": state.points + int(input.total.amount) / 100}, \"output\": {\"awarded\": int(input.total.amount) / 100}}"
    )]
    pub code: String,
    /// The initial state, a JSON object (default `{}`).
    #[serde(default)]
    #[schema(value_type = Option<Object>, example = json!({"points": 0}))]
    pub state: Option<Value>,
    /// Event types (e.g. `order.paid`) whose events run the contract once deployed.
    #[serde(default)]
    pub triggers: Option<Vec<String>>,
}

/// Body of `PATCH /contracts/{id}`: the fields to change; absent fields stay. Only drafts
/// may change their `code`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContractPatch {
    /// New name.
    #[serde(default)]
    pub name: Option<String>,
    /// New parties.
    #[serde(default)]
    pub parties: Option<Vec<String>>,
    /// New code (drafts only; a deployed contract's code is frozen).
    #[serde(default)]
    pub code: Option<String>,
    /// New state, a JSON object (drafts only).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub state: Option<Value>,
    /// New trigger event types (drafts only).
    #[serde(default)]
    pub triggers: Option<Vec<String>>,
}

/// Body of `POST /contracts/{id}/executions`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecuteContract {
    /// Any JSON value, bound to the variable `input` (default `null`).
    #[serde(default)]
    #[schema(value_type = Object, example = json!({"total": {"amount": 3000, "currency": "EUR"}}))]
    pub input: Value,
}

/// A contract.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Contract {
    /// Contract id.
    pub id: ContractId,
    /// Its name.
    pub name: String,
    /// The parties' `sub`s or names.
    pub parties: Vec<String>,
    /// The CEL program.
    pub code: String,
    /// The current state (a JSON object): the initial one until an execution returns a new one.
    #[schema(value_type = Object)]
    pub state: Value,
    /// Event types that run it once deployed.
    pub triggers: Vec<String>,
    /// Where it stands.
    pub status: ContractStatus,
    /// Its version among the deployed contracts of the same name (1, 2, …); null for a draft.
    pub version: Option<i64>,
    /// SHA-256 (hex) of the code, fixed at deployment; null for a draft.
    pub code_sha256: Option<String>,
    /// How many executions its ledger holds.
    pub executions: i64,
    /// When it was created (UTC).
    pub created_at: DateTime<Utc>,
    /// When it last changed (UTC).
    pub updated_at: DateTime<Utc>,
    /// When it was deployed (UTC).
    pub deployed_at: Option<DateTime<Utc>>,
    /// When it was terminated (UTC).
    pub terminated_at: Option<DateTime<Utc>>,
}

/// Who ran an execution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Caller {
    /// The caller's `sub` (`bus` for a run triggered by an event).
    pub sub: String,
    /// The caller's role.
    pub role: Role,
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

impl From<&Principal> for Caller {
    fn from(p: &Principal) -> Self {
        Self {
            sub: p.sub.clone(),
            role: p.role,
        }
    }
}

/// One execution: an entry of the contract's hash-chained ledger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Execution {
    /// Execution id.
    pub id: ExecutionId,
    /// The contract that ran.
    pub contract_id: ContractId,
    /// The contract's version.
    pub version: i64,
    /// Position in the ledger: 1, 2, …
    pub seq: i64,
    /// The input it ran with.
    #[schema(value_type = Object)]
    pub input: Value,
    /// What the program returned as `output` (null when it returned none).
    #[schema(value_type = Object)]
    pub output: Value,
    /// The contract's state after the execution.
    #[schema(value_type = Object)]
    pub state: Value,
    /// Who ran it.
    pub caller: Caller,
    /// The `now` the program saw, which is also when it was recorded (UTC, microseconds).
    pub executed_at: DateTime<Utc>,
    /// The previous entry's hash (64 zeros for the first).
    pub prev_hash: String,
    /// SHA-256 (hex) over `prev_hash` and the entry's canonical JSON.
    pub hash: String,
}

/// One page of contracts, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ContractPage {
    /// The contracts on this page.
    pub items: Vec<Contract>,
    /// Cursor for the next page, or null.
    pub next: Option<String>,
}

/// One page of a contract's executions, in ledger order.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ExecutionPage {
    /// The executions on this page.
    pub items: Vec<Execution>,
    /// Cursor for the next page, or null.
    pub next: Option<String>,
}

/// What `GET /contracts/{id}/ledger/verify` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LedgerVerification {
    /// Whether every entry's hash recomputes and links to its predecessor, and the ledger is
    /// as long as the contract says.
    pub valid: bool,
    /// How many entries the ledger holds.
    pub length: i64,
    /// The last entry's hash (null for an empty ledger).
    pub head: Option<String>,
    /// The first entry that does not verify (null when valid).
    pub first_bad_seq: Option<i64>,
}

/// Query parameters of `GET /contracts`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ContractListParams {
    /// Only contracts in this status.
    pub status: Option<ContractStatus>,
    /// Page size, 1–100 (default 20).
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
            limit: kernel::http::DEFAULT_PAGE_SIZE,
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
            limit: kernel::http::DEFAULT_PAGE_SIZE,
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

/// Contracts, as the HTTP layer and other modules see them.
///
/// Drafts, deployment and termination are for admins. Contracts, executions and ledgers are
/// read by admins, services, and customers who are parties (for anyone else a contract does
/// not exist). Admins, services and customers who are parties may execute.
#[async_trait]
pub trait ContractService: Send + Sync + 'static {
    /// Creates a draft; its code is compiled on save.
    ///
    /// # Errors
    /// [`ContractError::Forbidden`] for anyone but an admin; [`ContractError::Invalid`]
    /// naming every bad field (a syntax error names `code` with its line and column).
    async fn create(
        &self,
        actor: &Principal,
        draft: NewContract,
    ) -> Result<Contract, ContractError>;

    /// # Errors
    /// Only unexpected ones.
    async fn list(
        &self,
        actor: &Principal,
        query: ContractQuery,
    ) -> Result<ContractPage, ContractError>;

    /// # Errors
    /// [`ContractError::NotFound`], also for a contract the caller may not read.
    async fn get(&self, actor: &Principal, id: ContractId) -> Result<Contract, ContractError>;

    /// Changes a contract (admin). Code, state and triggers change only on drafts.
    ///
    /// # Errors
    /// [`ContractError::NotFound`]; [`ContractError::Invalid`];
    /// [`ContractError::Conflict`] when a deployed or terminated contract's code, state or
    /// triggers would change.
    async fn update(
        &self,
        actor: &Principal,
        id: ContractId,
        patch: ContractPatch,
    ) -> Result<Contract, ContractError>;

    /// Deletes a draft (admin).
    ///
    /// # Errors
    /// [`ContractError::NotFound`]; [`ContractError::Conflict`] unless it is a draft.
    async fn delete(&self, actor: &Principal, id: ContractId) -> Result<(), ContractError>;

    /// Freezes a draft's code (admin): status `deployed`, a version and the code's SHA-256.
    ///
    /// # Errors
    /// [`ContractError::NotFound`]; [`ContractError::Conflict`] unless it is a draft.
    async fn deploy(&self, actor: &Principal, id: ContractId) -> Result<Contract, ContractError>;

    /// Ends a deployed contract (admin).
    ///
    /// # Errors
    /// [`ContractError::NotFound`]; [`ContractError::Conflict`] unless it is deployed.
    async fn terminate(&self, actor: &Principal, id: ContractId)
    -> Result<Contract, ContractError>;

    /// Runs the contract with `input` and appends the execution to its ledger; a returned
    /// `state` replaces the stored one in the same transaction.
    ///
    /// # Errors
    /// [`ContractError::NotFound`] for a contract the caller may not read;
    /// [`ContractError::Forbidden`] for a caller who may read but not execute;
    /// [`ContractError::Conflict`] unless it is deployed;
    /// [`ContractError::InputTooLarge`]; [`ContractError::Evaluation`] for a runtime error,
    /// a result of the wrong shape, a state too large or an evaluation over the time bound
    /// (nothing is stored).
    async fn execute(
        &self,
        actor: &Principal,
        id: ContractId,
        input: Value,
    ) -> Result<Execution, ContractError>;

    /// The contract's executions in ledger order.
    ///
    /// # Errors
    /// [`ContractError::NotFound`].
    async fn list_executions(
        &self,
        actor: &Principal,
        id: ContractId,
        query: ExecutionQuery,
    ) -> Result<ExecutionPage, ContractError>;

    /// # Errors
    /// [`ContractError::NotFound`]; [`ContractError::ExecutionNotFound`].
    async fn get_execution(
        &self,
        actor: &Principal,
        id: ContractId,
        execution: ExecutionId,
    ) -> Result<Execution, ContractError>;

    /// Recomputes the contract's hash chain.
    ///
    /// # Errors
    /// [`ContractError::NotFound`]. A broken chain is not an error: it is reported.
    async fn verify_ledger(
        &self,
        actor: &Principal,
        id: ContractId,
    ) -> Result<LedgerVerification, ContractError>;
}

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
