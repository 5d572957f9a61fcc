//! The `contracts` and `contract_executions` rows, and their conversions into the API's
//! types (a corrupt column is an error naming the row, never a panic).

use anyhow::{Context, anyhow};
use chrono::NaiveDateTime;
use contract_api::{Caller, Contract, ContractId, ContractStatus, Execution};
use diesel::prelude::*;
use serde_json::Value;

use crate::{
    canonical::Record,
    schema::{contract_executions, contracts},
};

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
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
    pub(super) fn record(&self) -> Record<'_> {
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

    pub(super) fn into_execution(self) -> anyhow::Result<Execution> {
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
