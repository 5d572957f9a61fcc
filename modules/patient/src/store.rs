//! Diesel queries for patients. Personal data is sealed before it reaches a query and
//! opened after it leaves one, so no SQL statement, row or error ever holds it in
//! plaintext. Every access runs in one transaction through the bus with its audit entry:
//! a write, its audit entry and its event commit together, and a read whose audit entry
//! cannot be written fails instead of disclosing anything.
//!
//! A change that depends on what was read holds the patient's row lock ([`lock_live`]), so
//! it is correct under PostgreSQL's read committed as well as SQLite's single writer.

use anyhow::{Context, anyhow};
use chrono::{NaiveDate, NaiveDateTime};
use diesel::{
    prelude::*,
    result::{DatabaseErrorKind, Error as DieselError},
};
use kernel::{
    bus::Bus,
    db::{DbConnection, MultiBackend},
    version::ExpectedVersion,
};
use patient_api::{
    AccessContext, Address, AuditAction, ContactPoint, Gender, HumanName, NewPatient, Patient,
    PatientChanges, PatientError, PatientId, PatientPage, PatientQuery,
    events::{PatientRegistered, PatientUpdated},
};

use crate::{audit, crypto::Vault, schema::patients};

/// Purposes of the keyed search hashes.
const MRN_HASH: &str = "patient.identifier";
const FAMILY_HASH: &str = "patient.family";

/// The patient module's persistence: the bus (for transactions and events) and the vault.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    pub bus: Bus,
    pub vault: Vault,
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

pub(crate) fn is_unique_violation(e: &DieselError) -> bool {
    matches!(
        e,
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)
    )
}

/// The associated data of a sealed column: which row and column it belongs to.
fn context(id: &str, column: &str) -> String {
    format!("patients/{id}/{column}")
}

impl Store {
    /// Seals `patient` into a row.
    fn seal(&self, patient: &Patient) -> anyhow::Result<PatientRow> {
        let id = patient.id.to_string();
        let v = &self.vault;
        let address_enc = match &patient.address {
            Some(address) => Some(v.seal_str(&context(&id, "address"), &to_json(address)?)?),
            None => None,
        };
        Ok(PatientRow {
            identifier_hash: v.search_hash(MRN_HASH, &patient.identifier),
            identifier_enc: v.seal_str(&context(&id, "identifier"), &patient.identifier)?,
            family_hash: v.search_hash(FAMILY_HASH, &patient.name.family.to_lowercase()),
            name_enc: v.seal_str(&context(&id, "name"), &to_json(&patient.name)?)?,
            gender: patient.gender.as_str().to_owned(),
            birth_date_enc: v.seal_str(
                &context(&id, "birth_date"),
                &patient.birth_date.format("%Y-%m-%d").to_string(),
            )?,
            telecom_enc: v.seal_str(&context(&id, "telecom"), &to_json(&patient.telecom)?)?,
            address_enc,
            version: patient.version,
            created_at: patient.created_at.naive_utc(),
            updated_at: patient.updated_at.naive_utc(),
            deleted_at: None,
            id,
        })
    }

    /// Opens a row into a patient.
    fn open(&self, row: &PatientRow) -> anyhow::Result<Patient> {
        let v = &self.vault;
        let id = &row.id;
        let name: HumanName =
            serde_json::from_str(&v.open_str(&context(id, "name"), &row.name_enc)?)
                .with_context(|| format!("patient {id}: the name does not parse"))?;
        let telecom: Vec<ContactPoint> =
            serde_json::from_str(&v.open_str(&context(id, "telecom"), &row.telecom_enc)?)
                .with_context(|| format!("patient {id}: the telecom does not parse"))?;
        let address: Option<Address> = match &row.address_enc {
            Some(sealed) => Some(
                serde_json::from_str(&v.open_str(&context(id, "address"), sealed)?)
                    .with_context(|| format!("patient {id}: the address does not parse"))?,
            ),
            None => None,
        };
        let birth_date = NaiveDate::parse_from_str(
            &v.open_str(&context(id, "birth_date"), &row.birth_date_enc)?,
            "%Y-%m-%d",
        )
        .with_context(|| format!("patient {id}: the birth date does not parse"))?;
        Ok(Patient {
            id: id
                .parse()
                .with_context(|| format!("corrupt patient id {id:?}"))?,
            identifier: v.open_str(&context(id, "identifier"), &row.identifier_enc)?,
            name,
            gender: Gender::parse(&row.gender)
                .map_err(|e| anyhow!("patient {id}: {e} in the database"))?,
            birth_date,
            telecom,
            address,
            version: row.version,
            created_at: row.created_at.and_utc(),
            updated_at: row.updated_at.and_utc(),
        })
    }

    pub(crate) fn register(
        &self,
        conn: &mut DbConnection,
        access: &AccessContext,
        new: &NewPatient,
    ) -> Result<Patient, PatientError> {
        let now = kernel::time::now().and_utc();
        let patient = Patient {
            id: PatientId::new(),
            identifier: new.identifier.as_str().to_owned(),
            name: HumanName {
                family: new.family.as_str().to_owned(),
                given: new.given.as_slice().to_vec(),
            },
            gender: new.gender,
            birth_date: new.birth_date.date(),
            telecom: new.telecom.as_slice().to_vec(),
            address: new.address.as_ref().map(|a| a.as_address().clone()),
            version: 1,
            created_at: now,
            updated_at: now,
        };
        let row = self.seal(&patient)?;
        self.bus.write(conn, |tx| {
            diesel::insert_into(patients::table)
                .values(&row)
                .execute(tx.conn())
                .map_err(|e| {
                    if is_unique_violation(&e) {
                        PatientError::DuplicateIdentifier
                    } else {
                        anyhow::Error::new(e).context("insert patient").into()
                    }
                })?;
            audit::append(
                tx.conn(),
                access,
                AuditAction::PatientCreate,
                &resource(patient.id),
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
            audit::append(tx.conn(), access, action, &resource(id), Some(id))?;
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
            let mut q: patients::BoxedQuery<'_, MultiBackend> = patients::table
                .filter(patients::deleted_at.is_null())
                .into_boxed();
            if let Some(hash) = &identifier_hash {
                q = q.filter(patients::identifier_hash.eq(hash));
            }
            if let Some(hash) = &family_hash {
                q = q.filter(patients::family_hash.eq(hash));
            }
            // Ids are UUID v7 in their canonical text form, so text order is creation order.
            if let Some(before) = query.before {
                q = q.filter(patients::id.lt(before.to_string()));
            }
            let rows: Vec<PatientRow> = q
                .order_by(patients::id.desc())
                .limit(i64::from(query.limit) + 1)
                .select(PatientRow::as_select())
                .load(tx.conn())
                .context("list patients")?;
            let has_more = rows.len() > query.limit as usize;
            let items = rows
                .iter()
                .take(query.limit as usize)
                .map(|row| self.open(row))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let next = has_more
                .then(|| items.last().map(|p| PatientQuery::cursor_after(p.id)))
                .flatten();
            audit::append(
                tx.conn(),
                access,
                AuditAction::PatientList,
                &query.describe(),
                None,
            )?;
            Ok(PatientPage { items, next })
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
            let next = apply(self.open(&row)?, changes, now);
            // Everything is sealed again, so a change also moves the record to the active key.
            let sealed = self.seal(&next)?;
            diesel::update(patients::table.find(&sealed.id))
                .set(&sealed)
                .execute(tx.conn())
                .map_err(|e| {
                    if is_unique_violation(&e) {
                        PatientError::DuplicateIdentifier
                    } else {
                        anyhow::Error::new(e).context("update patient").into()
                    }
                })?;
            audit::append(
                tx.conn(),
                access,
                AuditAction::PatientUpdate,
                &resource(id),
                Some(id),
            )?;
            tx.publish(&PatientUpdated {
                patient_id: id,
                version: next.version,
                deleted: false,
            })?;
            Ok(next)
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
                &resource(id),
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

/// How the audit log names a patient.
pub(crate) fn resource(id: PatientId) -> String {
    format!("Patient/{id}")
}

/// `current` with `changes` applied, as its next revision.
fn apply(
    current: Patient,
    changes: &PatientChanges,
    now: chrono::DateTime<chrono::Utc>,
) -> Patient {
    let c = changes;
    Patient {
        identifier: c
            .identifier
            .as_ref()
            .map_or(current.identifier, |m| m.as_str().to_owned()),
        name: HumanName {
            family: c
                .family
                .as_ref()
                .map_or(current.name.family, |f| f.as_str().to_owned()),
            given: c
                .given
                .as_ref()
                .map_or(current.name.given, |g| g.as_slice().to_vec()),
        },
        gender: c.gender.unwrap_or(current.gender),
        birth_date: c.birth_date.map_or(current.birth_date, |d| d.date()),
        telecom: c
            .telecom
            .as_ref()
            .map_or(current.telecom, |t| t.as_slice().to_vec()),
        address: match &c.address {
            None => current.address,
            Some(address) => address.as_ref().map(|a| a.as_address().clone()),
        },
        version: current.version + 1,
        updated_at: now,
        ..current
    }
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

/// The JSON form of a sealed column.
fn to_json<T: serde::Serialize>(value: &T) -> anyhow::Result<String> {
    // A serde_json error names a position, never the content.
    serde_json::to_string(value).map_err(|e| anyhow!("serialize a sealed column: {e}"))
}
