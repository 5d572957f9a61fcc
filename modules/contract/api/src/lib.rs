//! The contract module's contract: [`ContractService`], the contract, execution and ledger
//! types, [`ContractError`] and the contract events.
//!
//! A contract is a CEL expression agreed between parties. It is edited as a draft, deployed
//! once (its code is then frozen and hashed), executed many times, and terminated. Every
//! execution is appended to a hash-chained ledger that anyone allowed to read the contract
//! can verify.

mod contract;
mod error;
pub mod events;
mod execution;
mod listing;

use async_trait::async_trait;
use kernel_api::auth::Principal;
use serde_json::Value;

pub use contract::{Contract, ContractPage, ContractPatch, ContractStatus, NewContract};
pub use error::ContractError;
pub use execution::{
    Caller, ExecuteContract, Execution, ExecutionPage, GENESIS_HASH, LedgerVerification,
};
pub use listing::{ContractListParams, ContractQuery, ExecutionListParams, ExecutionQuery};

kernel_api::typed_id!(
    /// Identifies a contract.
    ContractId
);

kernel_api::typed_id!(
    /// Identifies one execution of a contract (one ledger entry).
    ExecutionId
);

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
    /// [`ContractError::NotFound`] for a contract the caller may not read (a customer who is
    /// not a party: the same answer as for a contract that does not exist);
    /// [`ContractError::Forbidden`] for a role that may never execute;
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
