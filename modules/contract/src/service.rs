//! The in-process implementation of [`ContractService`]: database work runs on the blocking
//! pool, evaluation on a thread of its own (never inside a transaction), each call in a span
//! named after the trait method. Spans carry ids, never inputs, outputs or state.

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use chrono::{DateTime, SubsecRound, Utc};
use contract_api::{
    Caller, Contract, ContractError, ContractId, ContractPage, ContractPatch, ContractQuery,
    ContractService, ContractStatus, Execution, ExecutionId, ExecutionPage, ExecutionQuery,
    LedgerVerification, NewContract,
};
use kernel::{
    auth::{Principal, Role},
    db::BlockingStore,
};
use serde_json::Value;

use crate::{
    ContractSettings, canonical,
    domain::{Changes, Draft},
    eval::{self, Bindings},
    store::{ContractRow, Store},
};

/// How many times an execution evaluates again after losing the race for its contract's
/// ledger to another execution before it gives up with a 409.
pub(crate) const MAX_ATTEMPTS: usize = 100;

/// Where `now` comes from; tests inject a fixed one.
pub(crate) type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// The `now` a run sees: the clock's, to the microsecond (what both databases keep).
pub(crate) fn tick(clock: &Clock) -> DateTime<Utc> {
    clock().trunc_subsecs(6)
}

#[derive(Clone)]
pub(crate) struct LocalContracts {
    pub store: Store,
    pub settings: ContractSettings,
    pub clock: Clock,
}

impl std::fmt::Debug for LocalContracts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalContracts")
            .field("store", &self.store)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

fn sees_everything(actor: &Principal) -> bool {
    matches!(actor.role, Role::Admin | Role::Service)
}

fn is_party(actor: &Principal, row: &ContractRow) -> anyhow::Result<bool> {
    Ok(actor.role == Role::Customer && row.parties()?.contains(&actor.sub))
}

/// Admins and services read every contract; customers those they are a party to.
fn may_read(actor: &Principal, row: &ContractRow) -> anyhow::Result<bool> {
    Ok(sees_everything(actor) || is_party(actor, row)?)
}

fn require_admin(actor: &Principal) -> Result<(), ContractError> {
    if actor.role == Role::Admin {
        Ok(())
    } else {
        Err(ContractError::Forbidden(format!(
            "only an admin may do this; the caller is a {}",
            actor.role
        )))
    }
}

/// Checks the caller may execute the contract, and that the contract runs. A role that may
/// never execute is refused (403); a caller who may not read this contract learns nothing of
/// it: the same 404 as reading it, or as a contract that does not exist.
fn check_executable(actor: &Principal, row: &ContractRow) -> Result<(), ContractError> {
    let id = row.contract_id()?;
    if !matches!(actor.role, Role::Admin | Role::Service | Role::Customer) {
        return Err(ContractError::Forbidden(format!(
            "a {} may not execute contracts",
            actor.role
        )));
    }
    if !may_read(actor, row)? {
        return Err(ContractError::NotFound(id));
    }
    let status = row.status()?;
    if status != ContractStatus::Deployed {
        return Err(ContractError::Conflict(
            id,
            format!("is {status}: only deployed contracts can be executed"),
        ));
    }
    Ok(())
}

impl LocalContracts {
    fn now(&self) -> chrono::NaiveDateTime {
        tick(&self.clock).naive_utc()
    }

    fn bound(&self) -> Duration {
        Duration::from_millis(self.settings.max_eval_ms)
    }

    /// The contract, if `actor` may read it.
    async fn readable(
        &self,
        actor: &Principal,
        id: ContractId,
    ) -> Result<ContractRow, ContractError> {
        let row = self.store.run(move |s, c| s.get(c, id)).await?;
        if may_read(actor, &row)? {
            Ok(row)
        } else {
            Err(ContractError::NotFound(id))
        }
    }
}

#[async_trait]
impl ContractService for LocalContracts {
    #[tracing::instrument(name = "contract.create", skip_all, fields(role = %actor.role))]
    async fn create(
        &self,
        actor: &Principal,
        draft: NewContract,
    ) -> Result<Contract, ContractError> {
        require_admin(actor)?;
        let draft = Draft::parse(draft, &self.settings).map_err(ContractError::Invalid)?;
        let now = self.now();
        self.store.run(move |s, c| s.create(c, &draft, now)).await
    }

    #[tracing::instrument(name = "contract.list", skip_all, fields(role = %actor.role, limit = query.limit))]
    async fn list(
        &self,
        actor: &Principal,
        query: ContractQuery,
    ) -> Result<ContractPage, ContractError> {
        let party = (!sees_everything(actor)).then(|| actor.sub.clone());
        if !sees_everything(actor) && actor.role != Role::Customer {
            return Ok(ContractPage {
                items: Vec::new(),
                next: None,
                total: 0,
            });
        }
        self.store
            .run(move |s, c| s.list(c, &query, party.as_deref()))
            .await
    }

    #[tracing::instrument(name = "contract.get", skip(self, actor), fields(role = %actor.role))]
    async fn get(&self, actor: &Principal, id: ContractId) -> Result<Contract, ContractError> {
        Ok(self.readable(actor, id).await?.into_contract()?)
    }

    #[tracing::instrument(name = "contract.update", skip(self, actor, patch), fields(role = %actor.role))]
    async fn update(
        &self,
        actor: &Principal,
        id: ContractId,
        patch: ContractPatch,
    ) -> Result<Contract, ContractError> {
        require_admin(actor)?;
        let changes = Changes::parse(patch, &self.settings).map_err(ContractError::Invalid)?;
        let now = self.now();
        self.store
            .run(move |s, c| s.update(c, id, &changes, now))
            .await
    }

    #[tracing::instrument(name = "contract.delete", skip(self, actor), fields(role = %actor.role))]
    async fn delete(&self, actor: &Principal, id: ContractId) -> Result<(), ContractError> {
        require_admin(actor)?;
        self.store.run(move |s, c| s.delete(c, id)).await
    }

    #[tracing::instrument(name = "contract.deploy", skip(self, actor), fields(role = %actor.role))]
    async fn deploy(&self, actor: &Principal, id: ContractId) -> Result<Contract, ContractError> {
        require_admin(actor)?;
        let now = self.now();
        self.store.run(move |s, c| s.deploy(c, id, now)).await
    }

    #[tracing::instrument(name = "contract.terminate", skip(self, actor), fields(role = %actor.role))]
    async fn terminate(
        &self,
        actor: &Principal,
        id: ContractId,
    ) -> Result<Contract, ContractError> {
        require_admin(actor)?;
        let now = self.now();
        self.store.run(move |s, c| s.terminate(c, id, now)).await
    }

    #[tracing::instrument(
        name = "contract.execute",
        skip(self, actor, input),
        fields(role = %actor.role, seq = tracing::field::Empty)
    )]
    async fn execute(
        &self,
        actor: &Principal,
        id: ContractId,
        input: Value,
    ) -> Result<Execution, ContractError> {
        let input_text = canonical::to_string(&input);
        if input_text.len() > self.settings.max_input_bytes {
            return Err(ContractError::InputTooLarge {
                size: input_text.len(),
                limit: self.settings.max_input_bytes,
            });
        }
        let input_text = Arc::new(input_text);
        let caller = Caller::from(actor);
        for _ in 0..MAX_ATTEMPTS {
            let row = self.store.run(move |s, c| s.get(c, id)).await?;
            check_executable(actor, &row)?;
            let bindings = Bindings {
                input: input.clone(),
                state: row.state()?,
                now: tick(&self.clock),
                caller: caller.clone(),
            };
            let now = bindings.now;
            let code = row.code.clone();
            let bound = self.bound();
            let outcome =
                tokio::task::spawn_blocking(move || eval::evaluate(&code, bindings, bound))
                    .await
                    .map_err(|e| anyhow::anyhow!("the evaluation task failed: {e}"))?
                    .map_err(ContractError::Evaluation)?;
            let (input_text, caller) = (input_text.clone(), caller.clone());
            let appended = self
                .store
                .run(move |s, c| {
                    s.bus.write(c, |tx| {
                        s.append(tx, &row, &input_text, &outcome, &caller, now)
                    })
                })
                .await?;
            if let Some(execution) = appended {
                tracing::Span::current().record("seq", execution.seq);
                return Ok(execution);
            }
        }
        Err(ContractError::Conflict(
            id,
            "is being executed by too many callers at once; try again".into(),
        ))
    }

    #[tracing::instrument(name = "contract.list_executions", skip(self, actor), fields(role = %actor.role))]
    async fn list_executions(
        &self,
        actor: &Principal,
        id: ContractId,
        query: ExecutionQuery,
    ) -> Result<ExecutionPage, ContractError> {
        self.readable(actor, id).await?;
        self.store
            .run(move |s, c| s.list_executions(c, id, &query))
            .await
    }

    #[tracing::instrument(name = "contract.get_execution", skip(self, actor), fields(role = %actor.role))]
    async fn get_execution(
        &self,
        actor: &Principal,
        id: ContractId,
        execution: ExecutionId,
    ) -> Result<Execution, ContractError> {
        self.readable(actor, id).await?;
        self.store
            .run(move |s, c| s.get_execution(c, id, execution))
            .await
    }

    #[tracing::instrument(name = "contract.verify_ledger", skip(self, actor), fields(role = %actor.role))]
    async fn verify_ledger(
        &self,
        actor: &Principal,
        id: ContractId,
    ) -> Result<LedgerVerification, ContractError> {
        let row = self.readable(actor, id).await?;
        let verification = self.store.run(move |s, c| s.verify(c, &row)).await?;
        if !verification.valid {
            tracing::warn!(
                contract_id = %id,
                first_bad_seq = verification.first_bad_seq,
                "a contract's ledger does not verify"
            );
        }
        Ok(verification)
    }
}
