//! The event types deployed contracts name: kept in memory for the trigger subscriber's
//! `accepts`, and the query of which contracts an event triggers.

use std::{
    collections::HashSet,
    sync::{Arc, RwLock},
};

use anyhow::Context;
use contract_api::{ContractId, ContractStatus};
use diesel::prelude::*;
use kernel::db::DbConnection;

use super::Store;
use crate::schema::{contract_triggers, contracts};

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

    pub(super) fn add(&self, types: &[String]) {
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

impl Store {
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
}
