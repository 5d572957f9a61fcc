//! Deploying a draft (its code becomes immutable under a version and its triggers go live)
//! and terminating a deployed contract (it runs no more).

use anyhow::Context;
use chrono::NaiveDateTime;
use contract_api::{
    Contract, ContractError, ContractId, ContractStatus,
    events::{ContractDeployed, ContractTerminated},
};
use diesel::prelude::*;
use kernel::db::DbConnection;

use super::{ContractRow, Store, conflict, load};
use crate::{canonical, schema::contracts};

impl Store {
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
}
