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
//!
//! This file holds the [`Store`] and what its queries share; the rest is one concern a
//! file: the rows and their conversions (`rows`), drafts (`drafts`: create, read, list,
//! change, delete), deploying and terminating (`lifecycle`), the hash-chained ledger of
//! executions (`ledger`), and the event types deployed contracts name (`triggers`).

use anyhow::Context;
use contract_api::{ContractError, ContractId, ContractStatus};
use diesel::prelude::*;
use kernel::{
    bus::Bus,
    db::{BlockingStore, Db, DbConnection},
};

use crate::schema::contracts;

mod drafts;
mod ledger;
mod lifecycle;
mod rows;
mod triggers;

pub(crate) use rows::{ContractRow, ExecutionRow};
pub(crate) use triggers::TriggerSet;

/// The contract module's persistence.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    pub bus: Bus,
    pub triggers: TriggerSet,
    /// Largest state (canonical JSON bytes) an execution may leave.
    pub max_state_bytes: usize,
}

impl BlockingStore for Store {
    fn db(&self) -> &Db {
        self.bus.db()
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

fn conflict(id: ContractId, status: ContractStatus, what: &str) -> ContractError {
    ContractError::Conflict(id, format!("is {status}: {what}"))
}
