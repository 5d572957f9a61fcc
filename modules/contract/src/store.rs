//! Diesel queries for contracts and their ledgers. Every write is one transaction through the
//! bus, so the events it causes are published with it. A change that depends on what was
//! read is a conditional `UPDATE … WHERE`, so it stays correct on PostgreSQL's read-committed
//! isolation as well as under SQLite's single writer.
//!
//! An execution reads the contract (its state and `seq`), evaluates outside any transaction,
//! then commits with `UPDATE contracts SET seq = seq + 1, state = … WHERE seq = <read>`:
//! that update is the per-contract lock. When another execution committed first it matches
//! no row and the caller evaluates again on the new state, so executions of one contract
//! serialize and every ledger entry follows from its predecessor's state.

use std::{
    collections::HashSet,
    sync::{Arc, RwLock},
};

use anyhow::{Context, anyhow};
use chrono::{DateTime, NaiveDateTime, Utc};
use contract_api::{
    Caller, Contract, ContractError, ContractId, ContractPage, ContractQuery, ContractStatus,
    Execution, ExecutionId, ExecutionPage, ExecutionQuery, GENESIS_HASH, LedgerVerification,
    events::{ContractDeployed, ContractExecuted, ContractTerminated},
};
use diesel::prelude::*;
use kernel::{
    bus::{Bus, Tx},
    db::{DbConnection, MultiBackend},
};
use serde_json::Value;

use crate::{
    canonical::{self, Record},
    domain::{Changes, Draft},
    eval::Outcome,
    schema::{contract_executions, contract_parties, contract_triggers, contracts},
};

/// The event types deployed contracts name, shared by the store (which keeps it current on
/// deploy and terminate) and the trigger subscriber (whose `accepts` reads it).
#[derive(Debug, Clone, Default)]
pub(crate) struct TriggerSet(Arc<RwLock<HashSet<String>>>);

impl TriggerSet {
    pub(crate) fn contains(&self, event_type: &str) -> bool {
        self.0.read().is_ok_and(|s| s.contains(event_type))
    }

    pub(crate) fn all(&self) -> Vec<String> {
        let mut all: Vec<String> = self
            .0
            .read()
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        all.sort();
        all
    }

    fn add(&self, types: &[String]) {
        if let Ok(mut set) = self.0.write() {
            set.extend(types.iter().cloned());
        }
    }

    fn replace(&self, types: HashSet<String>) {
        if let Ok(mut set) = self.0.write() {
            *set = types;
        }
    }

    /// Reads the set from the database (start-up, and after a termination).
    pub(crate) fn reload(&self, conn: &mut DbConnection) -> anyhow::Result<()> {
        let types: Vec<String> = contract_triggers::table
            .inner_join(contracts::table.on(contracts::id.eq(contract_triggers::contract_id)))
            .filter(contracts::status.eq(ContractStatus::Deployed.as_str()))
            .select(contract_triggers::event_type)
            .distinct()
            .load(conn)
            .context("load the trigger event types")?;
        self.replace(types.into_iter().collect());
        Ok(())
    }
}

/// The contract module's persistence.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    pub bus: Bus,
    pub triggers: TriggerSet,
    /// Largest state (canonical JSON bytes) an execution may leave.
    pub max_state_bytes: usize,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = contracts)]
pub(crate) struct ContractRow {
    pub id: String,
    pub name: String,
    pub parties: String,
    pub code: String,
    pub state: String,
    pub triggers: String,
    pub status: String,
    pub version: Option<i64>,
    pub code_sha256: Option<String>,
    pub seq: i64,
    pub head_hash: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub deployed_at: Option<NaiveDateTime>,
    pub terminated_at: Option<NaiveDateTime>,
}

impl ContractRow {
    pub(crate) fn contract_id(&self) -> anyhow::Result<ContractId> {
        self.id
            .parse()
            .with_context(|| format!("corrupt contract id {:?}", self.id))
    }

    pub(crate) fn status(&self) -> anyhow::Result<ContractStatus> {
        ContractStatus::parse(&self.status)
            .map_err(|e| anyhow!("corrupt status of contract {}: {e}", self.id))
    }

    pub(crate) fn parties(&self) -> anyhow::Result<Vec<String>> {
        serde_json::from_str(&self.parties)
            .with_context(|| format!("corrupt parties of contract {}", self.id))
    }

    pub(crate) fn state(&self) -> anyhow::Result<Value> {
        serde_json::from_str(&self.state)
            .with_context(|| format!("corrupt state of contract {}", self.id))
    }

    pub(crate) fn into_contract(self) -> anyhow::Result<Contract> {
        Ok(Contract {
            id: self.contract_id()?,
            parties: self.parties()?,
            state: self.state()?,
            status: self.status()?,
            triggers: serde_json::from_str(&self.triggers)
                .with_context(|| format!("corrupt triggers of contract {}", self.id))?,
            name: self.name,
            code: self.code,
            version: self.version,
            code_sha256: self.code_sha256,
            executions: self.seq,
            created_at: self.created_at.and_utc(),
            updated_at: self.updated_at.and_utc(),
            deployed_at: self.deployed_at.map(|t| t.and_utc()),
            terminated_at: self.terminated_at.map(|t| t.and_utc()),
        })
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = contract_executions)]
pub(crate) struct ExecutionRow {
    pub id: String,
    pub contract_id: String,
    pub version: i64,
    pub seq: i64,
    pub input: String,
    pub output: String,
    pub state: String,
    pub caller_sub: String,
    pub caller_role: String,
    pub executed_at: NaiveDateTime,
    pub prev_hash: String,
    pub hash: String,
}

impl ExecutionRow {
    fn record(&self) -> Record<'_> {
        Record {
            contract_id: &self.contract_id,
            version: self.version,
            seq: self.seq,
            input: &self.input,
            output: &self.output,
            state: &self.state,
            caller_sub: &self.caller_sub,
            caller_role: &self.caller_role,
            time: self.executed_at.and_utc(),
        }
    }

    fn into_execution(self) -> anyhow::Result<Execution> {
        let parse = |what: &str, text: &str| -> anyhow::Result<Value> {
            serde_json::from_str(text)
                .with_context(|| format!("corrupt {what} of execution {}", self.id))
        };
        Ok(Execution {
            id: self
                .id
                .parse()
                .with_context(|| format!("corrupt execution id {:?}", self.id))?,
            contract_id: self
                .contract_id
                .parse()
                .with_context(|| format!("corrupt contract id of execution {}", self.id))?,
            version: self.version,
            seq: self.seq,
            input: parse("input", &self.input)?,
            output: parse("output", &self.output)?,
            state: parse("state", &self.state)?,
            caller: Caller {
                sub: self.caller_sub.clone(),
                role: self
                    .caller_role
                    .parse()
                    .map_err(|e| anyhow!("corrupt caller of execution {}: {e}", self.id))?,
            },
            executed_at: self.executed_at.and_utc(),
            prev_hash: self.prev_hash,
            hash: self.hash,
        })
    }
}

fn to_json_text<T: serde::Serialize>(value: &T) -> anyhow::Result<String> {
    serde_json::to_string(value).context("serialize")
}

/// The contract's row, or [`ContractError::NotFound`].
pub(crate) fn load(conn: &mut DbConnection, id: ContractId) -> Result<ContractRow, ContractError> {
    contracts::table
        .find(id.to_string())
        .select(ContractRow::as_select())
        .first(conn)
        .optional()
        .context("load contract")?
        .ok_or(ContractError::NotFound(id))
}

fn set_parties(conn: &mut DbConnection, id: &str, parties: &[String]) -> anyhow::Result<()> {
    diesel::delete(contract_parties::table.filter(contract_parties::contract_id.eq(id)))
        .execute(conn)
        .context("clear parties")?;
    for party in parties {
        diesel::insert_into(contract_parties::table)
            .values((
                contract_parties::contract_id.eq(id),
                contract_parties::party.eq(party),
            ))
            .execute(conn)
            .context("insert party")?;
    }
    Ok(())
}

fn set_triggers(conn: &mut DbConnection, id: &str, triggers: &[String]) -> anyhow::Result<()> {
    diesel::delete(contract_triggers::table.filter(contract_triggers::contract_id.eq(id)))
        .execute(conn)
        .context("clear triggers")?;
    for t in triggers {
        diesel::insert_into(contract_triggers::table)
            .values((
                contract_triggers::contract_id.eq(id),
                contract_triggers::event_type.eq(t),
            ))
            .execute(conn)
            .context("insert trigger")?;
    }
    Ok(())
}

fn conflict(id: ContractId, status: ContractStatus, what: &str) -> ContractError {
    ContractError::Conflict(id, format!("is {status}: {what}"))
}

impl Store {
    pub(crate) fn create(
        &self,
        conn: &mut DbConnection,
        draft: &Draft,
        now: NaiveDateTime,
    ) -> Result<Contract, ContractError> {
        let row = ContractRow {
            id: ContractId::new().to_string(),
            name: draft.name.clone(),
            parties: to_json_text(&draft.parties)?,
            code: draft.code.clone(),
            state: canonical::to_string(&draft.state),
            triggers: to_json_text(&draft.triggers)?,
            status: ContractStatus::Draft.as_str().to_owned(),
            version: None,
            code_sha256: None,
            seq: 0,
            head_hash: GENESIS_HASH.to_owned(),
            created_at: now,
            updated_at: now,
            deployed_at: None,
            terminated_at: None,
        };
        let contract = row.clone().into_contract()?;
        self.bus.write(conn, |tx| {
            diesel::insert_into(contracts::table)
                .values(&row)
                .execute(tx.conn())
                .context("insert contract")?;
            set_parties(tx.conn(), &row.id, &draft.parties)?;
            set_triggers(tx.conn(), &row.id, &draft.triggers)?;
            Ok(contract)
        })
    }

    pub(crate) fn get(
        &self,
        conn: &mut DbConnection,
        id: ContractId,
    ) -> Result<ContractRow, ContractError> {
        load(conn, id)
    }

    /// Newest first; only contracts `party` is a party to when given.
    pub(crate) fn list(
        &self,
        conn: &mut DbConnection,
        query: &ContractQuery,
        party: Option<&str>,
    ) -> Result<ContractPage, ContractError> {
        let mut q: contracts::BoxedQuery<'_, MultiBackend> = contracts::table.into_boxed();
        if let Some(party) = party {
            q = q.filter(
                contracts::id.eq_any(
                    contract_parties::table
                        .filter(contract_parties::party.eq(party.to_owned()))
                        .select(contract_parties::contract_id),
                ),
            );
        }
        if let Some(status) = query.status {
            q = q.filter(contracts::status.eq(status.as_str()));
        }
        // Ids are UUID v7 in their canonical text form, so text order is creation order.
        if let Some(before) = query.before {
            q = q.filter(contracts::id.lt(before.to_string()));
        }
        let rows: Vec<ContractRow> = q
            .order_by(contracts::id.desc())
            .limit(i64::from(query.limit) + 1)
            .select(ContractRow::as_select())
            .load(conn)
            .context("list contracts")?;
        let has_more = rows.len() > query.limit as usize;
        let items = rows
            .into_iter()
            .take(query.limit as usize)
            .map(ContractRow::into_contract)
            .collect::<anyhow::Result<Vec<_>>>()?;
        let next = has_more
            .then(|| items.last().map(|c| ContractQuery::cursor_after(c.id)))
            .flatten();
        Ok(ContractPage { items, next })
    }

    /// Applies `changes`. Only a draft's code, state, triggers and parties change; a deployed
    /// or terminated contract keeps them (a change to an equal value is no change).
    pub(crate) fn update(
        &self,
        conn: &mut DbConnection,
        id: ContractId,
        changes: &Changes,
        now: NaiveDateTime,
    ) -> Result<Contract, ContractError> {
        self.bus.write(conn, |tx| {
            let row = load(tx.conn(), id)?;
            let status = row.status()?;
            let mut next = row.clone();
            if let Some(name) = &changes.name {
                next.name.clone_from(name);
            }
            if let Some(parties) = &changes.parties {
                next.parties = to_json_text(parties)?;
            }
            if let Some(code) = &changes.code {
                next.code.clone_from(code);
            }
            if let Some(state) = &changes.state {
                next.state = canonical::to_string(state);
            }
            if let Some(triggers) = &changes.triggers {
                next.triggers = to_json_text(triggers)?;
            }
            if status != ContractStatus::Draft {
                let frozen = [
                    ("code", row.code != next.code),
                    ("state", row.state != next.state),
                    ("triggers", row.triggers != next.triggers),
                    ("parties", row.parties != next.parties),
                ];
                if let Some((field, _)) = frozen.iter().find(|(_, changed)| *changed) {
                    return Err(conflict(
                        id,
                        status,
                        &format!(
                            "its {field} cannot change (deploy a new contract or a new version \
                             instead)"
                        ),
                    ));
                }
            }
            let changed = diesel::update(
                contracts::table
                    .find(&row.id)
                    .filter(contracts::status.eq(&row.status)),
            )
            .set((
                contracts::name.eq(&next.name),
                contracts::parties.eq(&next.parties),
                contracts::code.eq(&next.code),
                contracts::state.eq(&next.state),
                contracts::triggers.eq(&next.triggers),
                contracts::updated_at.eq(now),
            ))
            .execute(tx.conn())
            .context("update contract")?;
            if changed != 1 {
                return Err(ContractError::Conflict(
                    id,
                    "changed while it was being edited; try again".into(),
                ));
            }
            if let Some(parties) = &changes.parties {
                set_parties(tx.conn(), &row.id, parties)?;
            }
            if let Some(triggers) = &changes.triggers {
                set_triggers(tx.conn(), &row.id, triggers)?;
            }
            next.updated_at = now;
            Ok(next.into_contract()?)
        })
    }

    pub(crate) fn delete(
        &self,
        conn: &mut DbConnection,
        id: ContractId,
    ) -> Result<(), ContractError> {
        self.bus.write(conn, |tx| {
            let row = load(tx.conn(), id)?;
            let status = row.status()?;
            if status != ContractStatus::Draft {
                return Err(conflict(id, status, "only drafts can be deleted"));
            }
            set_parties(tx.conn(), &row.id, &[])?;
            set_triggers(tx.conn(), &row.id, &[])?;
            let deleted = diesel::delete(
                contracts::table
                    .find(&row.id)
                    .filter(contracts::status.eq(ContractStatus::Draft.as_str())),
            )
            .execute(tx.conn())
            .context("delete contract")?;
            if deleted != 1 {
                return Err(ContractError::Conflict(
                    id,
                    "changed while it was being deleted; try again".into(),
                ));
            }
            Ok(())
        })
    }

    pub(crate) fn deploy(
        &self,
        conn: &mut DbConnection,
        id: ContractId,
        now: NaiveDateTime,
    ) -> Result<Contract, ContractError> {
        self.bus.write(conn, |tx| {
            let row = load(tx.conn(), id)?;
            let status = row.status()?;
            if status != ContractStatus::Draft {
                return Err(conflict(id, status, "only drafts can be deployed"));
            }
            let earlier: i64 = contracts::table
                .filter(contracts::name.eq(&row.name))
                .filter(contracts::status.ne(ContractStatus::Draft.as_str()))
                .count()
                .get_result(tx.conn())
                .context("count earlier versions")?;
            let version = earlier + 1;
            let sha = canonical::sha256_hex(&row.code);
            let changed = diesel::update(
                contracts::table
                    .find(&row.id)
                    .filter(contracts::status.eq(ContractStatus::Draft.as_str())),
            )
            .set((
                contracts::status.eq(ContractStatus::Deployed.as_str()),
                contracts::version.eq(version),
                contracts::code_sha256.eq(&sha),
                contracts::deployed_at.eq(now),
                contracts::updated_at.eq(now),
            ))
            .execute(tx.conn())
            .context("deploy contract")?;
            if changed != 1 {
                return Err(ContractError::Conflict(
                    id,
                    "changed while it was being deployed; try again".into(),
                ));
            }
            let contract = ContractRow {
                status: ContractStatus::Deployed.as_str().to_owned(),
                version: Some(version),
                code_sha256: Some(sha.clone()),
                deployed_at: Some(now),
                updated_at: now,
                ..row
            }
            .into_contract()?;
            tx.publish(&ContractDeployed {
                contract_id: id,
                name: contract.name.clone(),
                version,
                code_sha256: sha,
                triggers: contract.triggers.clone(),
            })?;
            // Before the commit: an event published right after it must find the subscriber
            // interested. Should the commit fail, the set holds a type no deployed contract
            // names, which only costs a delivery that finds nothing to run.
            self.triggers.add(&contract.triggers);
            Ok(contract)
        })
    }

    pub(crate) fn terminate(
        &self,
        conn: &mut DbConnection,
        id: ContractId,
        now: NaiveDateTime,
    ) -> Result<Contract, ContractError> {
        let contract = self.bus.write(conn, |tx| {
            let row = load(tx.conn(), id)?;
            let status = row.status()?;
            if status != ContractStatus::Deployed {
                return Err(conflict(
                    id,
                    status,
                    "only deployed contracts can be terminated",
                ));
            }
            let changed = diesel::update(
                contracts::table
                    .find(&row.id)
                    .filter(contracts::status.eq(ContractStatus::Deployed.as_str())),
            )
            .set((
                contracts::status.eq(ContractStatus::Terminated.as_str()),
                contracts::terminated_at.eq(now),
                contracts::updated_at.eq(now),
            ))
            .execute(tx.conn())
            .context("terminate contract")?;
            if changed != 1 {
                return Err(ContractError::Conflict(
                    id,
                    "changed while it was being terminated; try again".into(),
                ));
            }
            tx.publish(&ContractTerminated {
                contract_id: id,
                executions: row.seq,
            })?;
            Ok(ContractRow {
                status: ContractStatus::Terminated.as_str().to_owned(),
                terminated_at: Some(now),
                updated_at: now,
                ..row
            }
            .into_contract()?)
        })?;
        // After the commit: an event published meanwhile is delivered and finds the contract
        // terminated, which runs nothing.
        self.triggers.reload(conn)?;
        Ok(contract)
    }

    /// Appends an execution of `read` (the contract as the evaluation saw it) and stores its
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

    /// Deployed contracts triggered by `event_type`, oldest first.
    pub(crate) fn triggered(
        &self,
        conn: &mut DbConnection,
        event_type: &str,
    ) -> anyhow::Result<Vec<ContractId>> {
        let ids: Vec<String> = contracts::table
            .filter(contracts::status.eq(ContractStatus::Deployed.as_str()))
            .filter(
                contracts::id.eq_any(
                    contract_triggers::table
                        .filter(contract_triggers::event_type.eq(event_type.to_owned()))
                        .select(contract_triggers::contract_id),
                ),
            )
            .order_by(contracts::id)
            .select(contracts::id)
            .load(conn)
            .context("find triggered contracts")?;
        ids.iter()
            .map(|id| {
                id.parse()
                    .with_context(|| format!("corrupt contract id {id:?}"))
            })
            .collect()
    }

    pub(crate) fn list_executions(
        &self,
        conn: &mut DbConnection,
        id: ContractId,
        query: &ExecutionQuery,
    ) -> Result<ExecutionPage, ContractError> {
        let rows: Vec<ExecutionRow> = contract_executions::table
            .filter(contract_executions::contract_id.eq(id.to_string()))
            .filter(contract_executions::seq.gt(query.after_seq.unwrap_or(0)))
            .order_by(contract_executions::seq)
            .limit(i64::from(query.limit) + 1)
            .select(ExecutionRow::as_select())
            .load(conn)
            .context("list executions")?;
        let has_more = rows.len() > query.limit as usize;
        let items = rows
            .into_iter()
            .take(query.limit as usize)
            .map(ExecutionRow::into_execution)
            .collect::<anyhow::Result<Vec<_>>>()?;
        let next = has_more
            .then(|| items.last().map(|e| ExecutionQuery::cursor_after(e.seq)))
            .flatten();
        Ok(ExecutionPage { items, next })
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
