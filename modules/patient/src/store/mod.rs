//! Diesel queries for patients. Personal data is sealed before it reaches a query and
//! opened after it leaves one, so no SQL statement, row or error ever holds it in
//! plaintext. Every access runs in one transaction through the bus with its audit entry:
//! a write, its audit entry and its event commit together, and a read whose audit entry
//! cannot be written fails instead of disclosing anything.
//!
//! A change that depends on what was read holds the patient's row lock ([`lock_live`]), so
//! it is correct under PostgreSQL's read committed as well as SQLite's single writer.
//!
//! This file holds the [`Store`], the patient row and the lookups the clinical queries share;
//! sealing and opening a row is in `sealing`, the patient queries are in `registry`.

use anyhow::Context;
use chrono::NaiveDateTime;
use diesel::prelude::*;
use kernel::{
    bus::Bus,
    db::{BlockingStore, Db, DbConnection},
};
use patient_api::{PatientError, PatientId};

use crate::{crypto::Vault, schema::patients};

mod registry;
mod sealing;

/// The patient module's persistence: the bus (for transactions and events) and the vault.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    pub bus: Bus,
    pub vault: Vault,
}

impl BlockingStore for Store {
    fn db(&self) -> &Db {
        self.bus.db()
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = patients, treat_none_as_null = true)]
pub(crate) struct PatientRow {
    pub id: String,
    pub identifier_hash: String,
    pub identifier_enc: String,
    pub family_hash: String,
    pub name_enc: String,
    pub gender: String,
    pub birth_date_enc: String,
    pub telecom_enc: String,
    pub address_enc: Option<String>,
    pub version: i64,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub deleted_at: Option<NaiveDateTime>,
}

/// A patient that has not been deleted.
pub(crate) fn load_live(
    conn: &mut DbConnection,
    id: PatientId,
) -> Result<PatientRow, PatientError> {
    patients::table
        .find(id.to_string())
        .filter(patients::deleted_at.is_null())
        .select(PatientRow::as_select())
        .first(conn)
        .optional()
        .context("load patient")?
        .ok_or(PatientError::NotFound(id))
}

/// [`load_live`], holding the row until the transaction ends, so a change computed from
/// what was read cannot race another change or a deletion. A no-op `UPDATE … RETURNING`
/// takes the row lock on both backends (`SELECT … FOR UPDATE` is PostgreSQL only; under
/// SQLite the write transaction holds the database already).
pub(crate) fn lock_live(
    conn: &mut DbConnection,
    id: PatientId,
) -> Result<PatientRow, PatientError> {
    diesel::update(
        patients::table
            .find(id.to_string())
            .filter(patients::deleted_at.is_null()),
    )
    .set(patients::version.eq(patients::version))
    .returning(patients::all_columns)
    .get_result::<PatientRow>(conn)
    .optional()
    .context("lock patient")?
    .ok_or(PatientError::NotFound(id))
}

/// Whether a patient was ever registered (deleted ones included).
pub(crate) fn ever_registered(conn: &mut DbConnection, id: PatientId) -> anyhow::Result<bool> {
    let found: Option<String> = patients::table
        .find(id.to_string())
        .select(patients::id)
        .first(conn)
        .optional()
        .context("look up patient")?;
    Ok(found.is_some())
}
