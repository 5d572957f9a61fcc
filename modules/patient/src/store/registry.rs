//! Registering, reading, listing, changing and deleting patients, each in one transaction
//! with its audit entry (and its event, for a write).

use anyhow::Context;
use diesel::prelude::*;
use kernel::{
    db::{DbConnection, KeysetPage, MultiBackend, is_unique_violation, page_total},
    version::ExpectedVersion,
};
use patient_api::{
    AccessContext, AuditAction, NewPatient, Patient, PatientChanges, PatientError, PatientId,
    PatientPage, PatientQuery,
    events::{PatientRegistered, PatientUpdated},
};

use super::{
    PatientRow, Store, load_live, lock_live,
    sealing::{FAMILY_HASH, MRN_HASH},
};
use crate::{
    audit,
    domain::{self, patient_resource},
    schema::patients,
};

impl Store {
    pub(crate) fn register(
        &self,
        conn: &mut DbConnection,
        access: &AccessContext,
        new: &NewPatient,
    ) -> Result<Patient, PatientError> {
        let patient = domain::register(new, kernel::time::now().and_utc());
        let row = self.seal(&patient)?;
        self.bus.write(conn, |tx| {
            diesel::insert_into(patients::table)
                .values(&row)
                .execute(tx.conn())
                .map_err(|e| write_error(e, "insert patient"))?;
            audit::append(
                tx.conn(),
                access,
                AuditAction::PatientCreate,
                &patient_resource(patient.id),
                Some(patient.id),
            )?;
            tx.publish(&PatientRegistered {
                patient_id: patient.id,
            })?;
            Ok(patient)
        })
    }

    /// Reads a living patient, audited as `action` (`patient.read` or `fhir.read`).
    pub(crate) fn read(
        &self,
        conn: &mut DbConnection,
        access: &AccessContext,
        id: PatientId,
        action: AuditAction,
    ) -> Result<Patient, PatientError> {
        self.bus.write(conn, |tx| {
            let row = load_live(tx.conn(), id)?;
            let patient = self.open(&row)?;
            audit::append(tx.conn(), access, action, &patient_resource(id), Some(id))?;
            Ok(patient)
        })
    }

    /// Newest first, living patients only.
    pub(crate) fn list(
        &self,
        conn: &mut DbConnection,
        access: &AccessContext,
        query: &PatientQuery,
    ) -> Result<PatientPage, PatientError> {
        let identifier_hash = query
            .identifier
            .as_ref()
            .map(|mrn| self.vault.search_hash(MRN_HASH, mrn.as_str()));
        let family_hash = query
            .family
            .as_ref()
            .map(|family| self.vault.search_hash(FAMILY_HASH, &family.folded()));
        self.bus.write(conn, |tx| {
            // The filter, shared by the count and the page.
            let filtered = || {
                let mut q: patients::BoxedQuery<'_, MultiBackend> = patients::table
                    .filter(patients::deleted_at.is_null())
                    .into_boxed();
                if let Some(hash) = &identifier_hash {
                    q = q.filter(patients::identifier_hash.eq(hash));
                }
                if let Some(hash) = &family_hash {
                    q = q.filter(patients::family_hash.eq(hash));
                }
                q
            };
            let total: i64 = filtered()
                .count()
                .get_result(tx.conn())
                .context("count patients")?;
            let mut q = filtered();
            // Ids are UUID v7 in their canonical text form, so text order is creation order.
            if let Some(before) = query.before {
                q = q.filter(patients::id.lt(before.to_string()));
            }
            let rows: Vec<PatientRow> = q
                .order_by(patients::id.desc())
                .limit(KeysetPage::<PatientRow>::fetch(query.limit))
                .select(PatientRow::as_select())
                .load(tx.conn())
                .context("list patients")?;
            let (items, next) = KeysetPage::of(rows, query.limit)
                .try_map(|row| self.open(&row))?
                .finish(|p| PatientQuery::cursor_after(p.id));
            audit::append(
                tx.conn(),
                access,
                AuditAction::PatientList,
                &query.describe(),
                None,
            )?;
            Ok(PatientPage {
                items,
                next,
                total: page_total(total),
            })
        })
    }

    pub(crate) fn update(
        &self,
        conn: &mut DbConnection,
        access: &AccessContext,
        id: PatientId,
        if_match: &ExpectedVersion,
        changes: &PatientChanges,
    ) -> Result<Patient, PatientError> {
        let now = kernel::time::now().and_utc();
        self.bus.write(conn, |tx| {
            let row = lock_live(tx.conn(), id)?;
            if !if_match.allows(row.version) {
                return Err(PatientError::PreconditionFailed);
            }
            let current = self.open(&row)?;
            // A change that changes nothing writes nothing: same revision, same ETag.
            let next = domain::apply(&current, changes, now);
            if let Some(next) = &next {
                // Everything is sealed again, so a change also moves the record to the active
                // key.
                let sealed = self.seal(next)?;
                diesel::update(patients::table.find(&sealed.id))
                    .set(&sealed)
                    .execute(tx.conn())
                    .map_err(|e| write_error(e, "update patient"))?;
                tx.publish(&PatientUpdated {
                    patient_id: id,
                    version: next.version,
                    deleted: false,
                })?;
            }
            audit::append(
                tx.conn(),
                access,
                AuditAction::PatientUpdate,
                &patient_resource(id),
                Some(id),
            )?;
            Ok(next.unwrap_or(current))
        })
    }

    /// Marks the patient deleted. The row, its clinical records and its audit trail stay.
    pub(crate) fn delete(
        &self,
        conn: &mut DbConnection,
        access: &AccessContext,
        id: PatientId,
        if_match: &ExpectedVersion,
    ) -> Result<(), PatientError> {
        let now = kernel::time::now();
        self.bus.write(conn, |tx| {
            let row = lock_live(tx.conn(), id)?;
            if !if_match.allows(row.version) {
                return Err(PatientError::PreconditionFailed);
            }
            let version = row.version + 1;
            diesel::update(patients::table.find(&row.id))
                .set((
                    patients::deleted_at.eq(Some(now)),
                    patients::version.eq(version),
                    patients::updated_at.eq(now),
                ))
                .execute(tx.conn())
                .context("delete patient")?;
            audit::append(
                tx.conn(),
                access,
                AuditAction::PatientDelete,
                &patient_resource(id),
                Some(id),
            )?;
            tx.publish(&PatientUpdated {
                patient_id: id,
                version,
                deleted: true,
            })?;
            Ok(())
        })
    }
}

/// A failed insert or update of a patient row: its MRN taken (the identifier hash is
/// unique), or an unexpected error.
fn write_error(e: diesel::result::Error, what: &'static str) -> PatientError {
    if is_unique_violation(&e) {
        PatientError::DuplicateIdentifier
    } else {
        anyhow::Error::new(e).context(what).into()
    }
}
