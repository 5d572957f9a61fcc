//! Drafts: creating, reading, listing, changing and deleting contracts. Only a draft's code,
//! state, triggers and parties change, and only a draft is deleted.

use anyhow::Context;
use chrono::NaiveDateTime;
use contract_api::{
    Contract, ContractError, ContractId, ContractPage, ContractQuery, ContractStatus, GENESIS_HASH,
};
use diesel::prelude::*;
use kernel::db::{DbConnection, KeysetPage, MultiBackend, page_total};

use super::{ContractRow, Store, conflict, load, to_json_text};
use crate::{
    canonical,
    domain::{Changes, Draft},
    schema::{contract_parties, contract_triggers, contracts},
};

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

    pub(crate) fn list(
        &self,
        conn: &mut DbConnection,
        query: &ContractQuery,
        party: Option<&str>,
    ) -> Result<ContractPage, ContractError> {
        // The filter, shared by the count and the page.
        let filtered = || {
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
            q
        };
        let total: i64 = filtered()
            .count()
            .get_result(conn)
            .context("count contracts")?;
        let mut q = filtered();
        // Ids are UUID v7 in their canonical text form, so text order is creation order.
        if let Some(before) = query.before {
            q = q.filter(contracts::id.lt(before.to_string()));
        }
        let rows: Vec<ContractRow> = q
            .order_by(contracts::id.desc())
            .limit(KeysetPage::<ContractRow>::fetch(query.limit))
            .select(ContractRow::as_select())
            .load(conn)
            .context("list contracts")?;
        let (items, next) = KeysetPage::of(rows, query.limit)
            .try_map(ContractRow::into_contract)?
            .finish(|c| ContractQuery::cursor_after(c.id));
        Ok(ContractPage {
            items,
            next,
            total: page_total(total),
        })
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
            if next == row {
                // A change that changes nothing writes nothing (`updated_at` stays).
                return Ok(row.into_contract()?);
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
}
