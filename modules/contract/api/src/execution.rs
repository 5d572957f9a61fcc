//! Executions: the body that runs a contract, who ran it, the hash-chained ledger entry each
//! run appends, and what verifying the ledger found.

use chrono::{DateTime, Utc};
use kernel_api::auth::{Principal, Role};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::{ContractId, ExecutionId};

/// The `prev_hash` of a ledger's first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Body of `POST /contracts/{id}/executions`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecuteContract {
    /// Any JSON value, bound to the variable `input` (default `null`).
    #[serde(default)]
    #[schema(value_type = Value, example = json!({"total": {"amount": 3000, "currency": "EUR"}}))]
    pub input: Value,
}
/// Who ran an execution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Caller {
    /// The caller's `sub` (`bus` for a run triggered by an event).
    pub sub: String,
    /// The caller's role.
    pub role: Role,
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
    /// The input it ran with: any JSON value, null when it ran without one.
    #[schema(value_type = Value)]
    pub input: Value,
    /// What the program returned as `output`: any JSON value, null when it returned none.
    #[schema(value_type = Value)]
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

/// One page of a contract's executions, in ledger order.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ExecutionPage {
    /// The executions on this page.
    pub items: Vec<Execution>,
    /// Cursor for the next page, or null.
    pub next: Option<String>,
    /// How many executions the contract's ledger holds, over all pages.
    pub total: u64,
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
