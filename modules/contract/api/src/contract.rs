//! A contract: where it stands, the bodies that create and change a draft, and the contract
//! as it is read.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::ContractId;

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

/// One page of contracts, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ContractPage {
    /// The contracts on this page.
    pub items: Vec<Contract>,
    /// Cursor for the next page, or null.
    pub next: Option<String>,
    /// How many contracts match the filter (the caller sees), over all pages.
    pub total: u64,
}
