//! The audit log. Entries are only ever inserted: no code path here updates or deletes one,
//! and the migrations make the database refuse both.

use anyhow::{Context, anyhow};
use chrono::NaiveDateTime;
use diesel::prelude::*;
use kernel::db::{DbConnection, KeysetPage, page_total};
use patient_api::{
    AccessContext, AuditAction, AuditEntry, AuditEntryId, AuditPage, PageQuery, PatientError,
    PatientId,
};

use crate::{
    schema::patient_audit,
    store::{Store, ever_registered},
};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = patient_audit)]
struct AuditRow {
    id: String,
    actor: String,
    role: String,
    action: String,
    resource: String,
    patient_id: Option<String>,
    request_id: String,
    at: NaiveDateTime,
}

impl AuditRow {
    fn into_entry(self) -> anyhow::Result<AuditEntry> {
        Ok(AuditEntry {
            id: self
                .id
                .parse()
                .with_context(|| format!("corrupt audit entry id {:?}", self.id))?,
            role: self
                .role
                .parse()
                .map_err(|e| anyhow!("audit entry {}: {e}", self.id))?,
            action: AuditAction::parse(&self.action)
                .map_err(|e| anyhow!("audit entry {}: {e}", self.id))?,
            patient_id: self
                .patient_id
                .map(|p| p.parse())
                .transpose()
                .with_context(|| format!("audit entry {}: corrupt patient id", self.id))?,
            actor: self.actor,
            resource: self.resource,
            request_id: self.request_id,
            at: self.at.and_utc(),
        })
    }
}

/// Appends one entry, in the caller's transaction. `resource` must hold ids only.
///
/// # Errors
/// Database errors; the caller's transaction then fails as a whole.
pub(crate) fn append(
    conn: &mut DbConnection,
    access: &AccessContext,
    action: AuditAction,
    resource: &str,
    patient: Option<PatientId>,
) -> anyhow::Result<()> {
    diesel::insert_into(patient_audit::table)
        .values(&AuditRow {
            id: AuditEntryId::new().to_string(),
            actor: access.actor.sub.clone(),
            role: access.actor.role.as_str().to_owned(),
            action: action.as_str().to_owned(),
            resource: resource.to_owned(),
            patient_id: patient.map(|p| p.to_string()),
            request_id: access.request_id.clone(),
            at: kernel::time::now(),
        })
        .execute(conn)
        .context("append to the audit log")?;
    Ok(())
}

impl Store {
    /// A patient's audit trail, newest first; readable after the patient was deleted. The
    /// read is itself audited (after the page is taken, so it shows on the next page read).
    pub(crate) fn audit_trail(
        &self,
        conn: &mut DbConnection,
        access: &AccessContext,
        patient: PatientId,
        page: PageQuery,
    ) -> Result<AuditPage, PatientError> {
        self.bus.write(conn, |tx| {
            if !ever_registered(tx.conn(), patient)? {
                return Err(PatientError::NotFound(patient));
            }
            let total: i64 = patient_audit::table
                .filter(patient_audit::patient_id.eq(patient.to_string()))
                .count()
                .get_result(tx.conn())
                .context("count the audit trail")?;
            let mut q = patient_audit::table
                .filter(patient_audit::patient_id.eq(patient.to_string()))
                .into_boxed();
            // Ids are UUID v7 in their canonical text form, so text order is append order.
            if let Some(before) = page.before {
                q = q.filter(patient_audit::id.lt(before.to_string()));
            }
            let rows: Vec<AuditRow> = q
                .order_by(patient_audit::id.desc())
                .limit(KeysetPage::<AuditRow>::fetch(page.limit))
                .select(AuditRow::as_select())
                .load(tx.conn())
                .context("read the audit trail")?;
            let (items, next) = KeysetPage::of(rows, page.limit)
                .try_map(AuditRow::into_entry)?
                .finish(|e| PageQuery::cursor_after(e.id.0));
            append(
                tx.conn(),
                access,
                AuditAction::AuditRead,
                &format!("Patient/{patient}/Audit?limit={}", page.limit),
                Some(patient),
            )?;
            Ok(AuditPage {
                items,
                next,
                total: page_total(total),
            })
        })
    }
}
