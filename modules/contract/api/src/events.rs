//! Events the contract module publishes; the subject is the contract id, so one contract's
//! deployment, executions and termination keep their order.
//!
//! `contract.executed` carries ids, the sequence number and the ledger hash only: inputs,
//! outputs and state stay in the ledger, readable through the API by the parties.

use kernel_api::event::catalog::EventDoc;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{ContractId, ExecutionId};

/// A draft was deployed: its code is frozen and it can be executed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ContractDeployed {
    /// The contract.
    pub contract_id: ContractId,
    /// Its name.
    pub name: String,
    /// The deployment's version among the contracts of that name (1, 2, …).
    pub version: i64,
    /// SHA-256 (hex) of the deployed code.
    pub code_sha256: String,
    /// Event types that trigger it.
    pub triggers: Vec<String>,
}

/// A contract ran and its execution was appended to the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ContractExecuted {
    /// The contract.
    pub contract_id: ContractId,
    /// The execution (ledger entry).
    pub execution_id: ExecutionId,
    /// Its position in the contract's ledger (1, 2, …).
    pub seq: i64,
    /// The entry's ledger hash.
    pub hash: String,
}

/// A deployed contract was terminated; it runs no more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ContractTerminated {
    /// The contract.
    pub contract_id: ContractId,
    /// How many executions its ledger holds.
    pub executions: i64,
}

kernel_api::event!(
    ContractDeployed,
    "contract.deployed",
    "contract",
    "A contract was deployed; its code is frozen.",
    |e| e.contract_id
);
kernel_api::event!(
    ContractExecuted,
    "contract.executed",
    "contract",
    "A contract ran and its ledger grew by one entry.",
    |e| e.contract_id
);
kernel_api::event!(
    ContractTerminated,
    "contract.terminated",
    "contract",
    "A contract was terminated and runs no more.",
    |e| e.contract_id
);

/// Every event type the contract module publishes, for the event catalog.
pub fn catalog() -> Vec<EventDoc> {
    vec![
        EventDoc::of::<ContractDeployed>(),
        EventDoc::of::<ContractExecuted>(),
        EventDoc::of::<ContractTerminated>(),
    ]
}
