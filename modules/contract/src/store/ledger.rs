//! The ledger of executions: appending one (with the conditional update that serializes a
//! contract's executions), reading them, and verifying the hash chain.

use anyhow::{Context, anyhow};
use chrono::{DateTime, Utc};
use contract_api::{
    Caller, ContractError, ContractId, ContractStatus, Execution, ExecutionId, ExecutionPage,
    ExecutionQuery, GENESIS_HASH, LedgerVerification, events::ContractExecuted,
};
use diesel::prelude::*;
use kernel::{
    bus::Tx,
    db::{DbConnection, KeysetPage, page_total},
};

use super::{ContractRow, ExecutionRow, Store, conflict, load};
use crate::{
    canonical,
    eval::Outcome,
    schema::{contract_executions, contracts},
};

impl Store {
    /// state, inside `tx`. `None` when another execution committed since `read` was taken:
    /// the caller evaluates again on the new state.
    ///
    /// # Errors
    /// [`ContractError::Evaluation`] for a resulting state over the size bound;
    /// [`ContractError::Conflict`] when the contract is no longer deployed.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn append(
        &self,
        tx: &mut Tx<'_>,
        read: &ContractRow,
        input: &str,
        outcome: &Outcome,
        caller: &Caller,
        now: DateTime<Utc>,
    ) -> Result<Option<Execution>, ContractError> {
        let id = read.contract_id()?;
        let version = read
            .version
            .ok_or_else(|| anyhow!("deployed contract {id} has no version"))?;
        let state = match &outcome.state {
            Some(state) => canonical::to_string(state),
            None => read.state.clone(),
        };
        if state.len() > self.max_state_bytes {
            return Err(ContractError::Evaluation(format!(
                "the resulting state is {} bytes, more than the {} allowed",
                state.len(),
                self.max_state_bytes
            )));
        }
        let seq = read.seq + 1;
        let row = ExecutionRow {
            id: ExecutionId::new().to_string(),
            contract_id: read.id.clone(),
            version,
            seq,
            input: input.to_owned(),
            output: canonical::to_string(&outcome.output),
            state,
            caller_sub: caller.sub.clone(),
            caller_role: caller.role.as_str().to_owned(),
            executed_at: now.naive_utc(),
            prev_hash: read.head_hash.clone(),
            hash: String::new(),
        };
        let hash = row.record().hash(&row.prev_hash);
        let row = ExecutionRow { hash, ..row };
        let locked = diesel::update(
            contracts::table
                .find(&read.id)
                .filter(contracts::seq.eq(read.seq))
                .filter(contracts::status.eq(ContractStatus::Deployed.as_str())),
        )
        .set((
            contracts::seq.eq(seq),
            contracts::state.eq(&row.state),
            contracts::head_hash.eq(&row.hash),
            contracts::updated_at.eq(row.executed_at),
        ))
        .execute(tx.conn())
        .context("take the contract's ledger")?;
        if locked != 1 {
            let current = load(tx.conn(), id)?;
            let status = current.status()?;
            if status != ContractStatus::Deployed {
                return Err(conflict(
                    id,
                    status,
                    "only deployed contracts can be executed",
                ));
            }
            return Ok(None);
        }
        diesel::insert_into(contract_executions::table)
            .values(&row)
            .execute(tx.conn())
            .context("append to the ledger")?;
        let execution = row.into_execution()?;
        tx.publish(&ContractExecuted {
            contract_id: id,
            execution_id: execution.id,
            seq,
            hash: execution.hash.clone(),
        })?;
        Ok(Some(execution))
    }

    pub(crate) fn list_executions(
        &self,
        conn: &mut DbConnection,
        id: ContractId,
        query: &ExecutionQuery,
    ) -> Result<ExecutionPage, ContractError> {
        let total: i64 = contract_executions::table
            .filter(contract_executions::contract_id.eq(id.to_string()))
            .count()
            .get_result(conn)
            .context("count executions")?;
        let rows: Vec<ExecutionRow> = contract_executions::table
            .filter(contract_executions::contract_id.eq(id.to_string()))
            .filter(contract_executions::seq.gt(query.after_seq.unwrap_or(0)))
            .order_by(contract_executions::seq)
            .limit(KeysetPage::<ExecutionRow>::fetch(query.limit))
            .select(ExecutionRow::as_select())
            .load(conn)
            .context("list executions")?;
        let (items, next) = KeysetPage::of(rows, query.limit)
            .try_map(ExecutionRow::into_execution)?
            .finish(|e| ExecutionQuery::cursor_after(e.seq));
        Ok(ExecutionPage {
            items,
            next,
            total: page_total(total),
        })
    }

    pub(crate) fn get_execution(
        &self,
        conn: &mut DbConnection,
        id: ContractId,
        execution: ExecutionId,
    ) -> Result<Execution, ContractError> {
        let row: ExecutionRow = contract_executions::table
            .find(execution.to_string())
            .filter(contract_executions::contract_id.eq(id.to_string()))
            .select(ExecutionRow::as_select())
            .first(conn)
            .optional()
            .context("load execution")?
            .ok_or(ContractError::ExecutionNotFound(execution))?;
        Ok(row.into_execution()?)
    }

    /// Walks the ledger in pages, recomputing each hash and its link to the previous one;
    /// finally checks the ledger is as long as the contract says and ends at its head.
    pub(crate) fn verify(
        &self,
        conn: &mut DbConnection,
        contract: &ContractRow,
    ) -> Result<LedgerVerification, ContractError> {
        const PAGE: i64 = 500;
        let mut prev = GENESIS_HASH.to_owned();
        let mut expected_seq = 1;
        let mut length = 0;
        let mut first_bad = None;
        let mut last_seq = 0;
        loop {
            let rows: Vec<ExecutionRow> = contract_executions::table
                .filter(contract_executions::contract_id.eq(&contract.id))
                .filter(contract_executions::seq.gt(last_seq))
                .order_by(contract_executions::seq)
                .limit(PAGE)
                .select(ExecutionRow::as_select())
                .load(conn)
                .context("read the ledger")?;
            let Some(last) = rows.last() else { break };
            last_seq = last.seq;
            for row in &rows {
                length += 1;
                let good = row.seq == expected_seq
                    && row.prev_hash == prev
                    && row.record().hash(&row.prev_hash) == row.hash;
                if !good && first_bad.is_none() {
                    first_bad = Some(expected_seq);
                }
                expected_seq += 1;
                prev.clone_from(&row.hash);
            }
        }
        let head = (length > 0).then(|| prev.clone());
        if first_bad.is_none() && (length != contract.seq || prev != contract.head_hash) {
            // Entries removed from (or added to) the end.
            first_bad = Some(length.min(contract.seq) + 1);
        }
        Ok(LedgerVerification {
            valid: first_bad.is_none(),
            length,
            head,
            first_bad_seq: first_bad,
        })
    }
}
