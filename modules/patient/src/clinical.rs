//! Diesel queries for diagnoses and treatments. Codes, statuses and dates are plain (they
//! are what other modules and reports work with); free text (description, plan,
//! medication, dosage) is sealed like personal data, since people write names into it.
//! Each access is audited in its transaction, like patients.

use anyhow::{Context, anyhow};
use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use kernel::db::{DbConnection, KeysetPage, page_total};
use patient_api::{
    AccessContext, AuditAction, Diagnosis, DiagnosisId, DiagnosisPage, DiagnosisStatus,
    NewDiagnosis, NewTreatment, PageQuery, PatientError, PatientId, Period, Treatment, TreatmentId,
    TreatmentPage, TreatmentStatus,
    events::{DiagnosisRecorded, TreatmentPlanned},
};

use crate::{
    audit,
    domain::{self, diagnosis_resource, page_suffix, treatment_resource},
    schema::{patient_diagnoses, patient_treatments},
    store::{Store, load_live, lock_live},
};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = patient_diagnoses)]
struct DiagnosisRow {
    id: String,
    patient_id: String,
    code: String,
    description_enc: String,
    onset: NaiveDate,
    status: String,
    created_at: NaiveDateTime,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = patient_treatments)]
struct TreatmentRow {
    id: String,
    patient_id: String,
    diagnosis_id: Option<String>,
    plan_enc: String,
    medication_enc: String,
    dosage_enc: String,
    period_start: NaiveDate,
    period_end: Option<NaiveDate>,
    status: String,
    created_at: NaiveDateTime,
}

fn diagnosis_context(id: &str, column: &str) -> String {
    format!("patient_diagnoses/{id}/{column}")
}

fn treatment_context(id: &str, column: &str) -> String {
    format!("patient_treatments/{id}/{column}")
}

impl Store {
    fn open_diagnosis(&self, row: DiagnosisRow) -> anyhow::Result<Diagnosis> {
        let context = diagnosis_context(&row.id, "description");
        Ok(Diagnosis {
            description: self.vault.open_str(&context, &row.description_enc)?,
            id: row
                .id
                .parse()
                .with_context(|| format!("corrupt diagnosis id {:?}", row.id))?,
            patient_id: row
                .patient_id
                .parse()
                .with_context(|| format!("diagnosis {}: corrupt patient id", row.id))?,
            status: DiagnosisStatus::parse(&row.status)
                .map_err(|e| anyhow!("diagnosis {}: {e}", row.id))?,
            code: row.code,
            onset: row.onset,
            created_at: row.created_at.and_utc(),
        })
    }

    fn open_treatment(&self, row: TreatmentRow) -> anyhow::Result<Treatment> {
        let v = &self.vault;
        let id = &row.id;
        Ok(Treatment {
            id: id
                .parse()
                .with_context(|| format!("corrupt treatment id {id:?}"))?,
            patient_id: row
                .patient_id
                .parse()
                .with_context(|| format!("treatment {id}: corrupt patient id"))?,
            diagnosis_id: row
                .diagnosis_id
                .as_deref()
                .map(str::parse)
                .transpose()
                .with_context(|| format!("treatment {id}: corrupt diagnosis id"))?,
            plan: v.open_str(&treatment_context(id, "plan"), &row.plan_enc)?,
            medication: v.open_str(&treatment_context(id, "medication"), &row.medication_enc)?,
            dosage: v.open_str(&treatment_context(id, "dosage"), &row.dosage_enc)?,
            period: Period {
                start: row.period_start,
                end: row.period_end,
            },
            status: TreatmentStatus::parse(&row.status)
                .map_err(|e| anyhow!("treatment {id}: {e}"))?,
            created_at: row.created_at.and_utc(),
        })
    }

    pub(crate) fn record_diagnosis(
        &self,
        conn: &mut DbConnection,
        access: &AccessContext,
        patient: PatientId,
        new: &NewDiagnosis,
    ) -> Result<Diagnosis, PatientError> {
        let id = DiagnosisId::new();
        let key = id.to_string();
        let row = DiagnosisRow {
            description_enc: self
                .vault
                .seal_str(&diagnosis_context(&key, "description"), &new.description)?,
            id: key,
            patient_id: patient.to_string(),
            code: new.code.as_str().to_owned(),
            onset: new.onset,
            status: new.status.as_str().to_owned(),
            created_at: kernel::time::now(),
        };
        self.bus.write(conn, |tx| {
            // Held until commit, so the patient cannot be deleted in between.
            lock_live(tx.conn(), patient)?;
            diesel::insert_into(patient_diagnoses::table)
                .values(&row)
                .execute(tx.conn())
                .context("insert diagnosis")?;
            audit::append(
                tx.conn(),
                access,
                AuditAction::DiagnosisCreate,
                &diagnosis_resource(patient, id),
                Some(patient),
            )?;
            tx.publish(&DiagnosisRecorded {
                patient_id: patient,
                diagnosis_id: id,
                code: new.code.as_str().to_owned(),
                status: new.status,
            })?;
            Ok(self.open_diagnosis(row.clone())?)
        })
    }

    pub(crate) fn list_diagnoses(
        &self,
        conn: &mut DbConnection,
        access: &AccessContext,
        patient: PatientId,
        page: PageQuery,
    ) -> Result<DiagnosisPage, PatientError> {
        self.bus.write(conn, |tx| {
            load_live(tx.conn(), patient)?;
            let total: i64 = patient_diagnoses::table
                .filter(patient_diagnoses::patient_id.eq(patient.to_string()))
                .count()
                .get_result(tx.conn())
                .context("count diagnoses")?;
            let mut q = patient_diagnoses::table
                .filter(patient_diagnoses::patient_id.eq(patient.to_string()))
                .into_boxed();
            if let Some(before) = page.before {
                q = q.filter(patient_diagnoses::id.lt(before.to_string()));
            }
            let rows: Vec<DiagnosisRow> = q
                .order_by(patient_diagnoses::id.desc())
                .limit(KeysetPage::<DiagnosisRow>::fetch(page.limit))
                .select(DiagnosisRow::as_select())
                .load(tx.conn())
                .context("list diagnoses")?;
            let (items, next) = KeysetPage::of(rows, page.limit)
                .try_map(|row| self.open_diagnosis(row))?
                .finish(|d| PageQuery::cursor_after(d.id.0));
            audit::append(
                tx.conn(),
                access,
                AuditAction::DiagnosisList,
                &format!("Patient/{patient}/Diagnosis{}", page_suffix(page)),
                Some(patient),
            )?;
            Ok(DiagnosisPage {
                items,
                next,
                total: page_total(total),
            })
        })
    }

    pub(crate) fn get_diagnosis(
        &self,
        conn: &mut DbConnection,
        access: &AccessContext,
        patient: PatientId,
        id: DiagnosisId,
    ) -> Result<Diagnosis, PatientError> {
        self.bus.write(conn, |tx| {
            load_live(tx.conn(), patient)?;
            let row = patient_diagnoses::table
                .find(id.to_string())
                .filter(patient_diagnoses::patient_id.eq(patient.to_string()))
                .select(DiagnosisRow::as_select())
                .first(tx.conn())
                .optional()
                .context("load diagnosis")?
                .ok_or(PatientError::DiagnosisNotFound(id))?;
            let diagnosis = self.open_diagnosis(row)?;
            audit::append(
                tx.conn(),
                access,
                AuditAction::DiagnosisRead,
                &diagnosis_resource(patient, id),
                Some(patient),
            )?;
            Ok(diagnosis)
        })
    }

    pub(crate) fn plan_treatment(
        &self,
        conn: &mut DbConnection,
        access: &AccessContext,
        patient: PatientId,
        new: &NewTreatment,
    ) -> Result<Treatment, PatientError> {
        let id = TreatmentId::new();
        let key = id.to_string();
        let v = &self.vault;
        let row = TreatmentRow {
            plan_enc: v.seal_str(&treatment_context(&key, "plan"), &new.plan)?,
            medication_enc: v.seal_str(&treatment_context(&key, "medication"), &new.medication)?,
            dosage_enc: v.seal_str(&treatment_context(&key, "dosage"), &new.dosage)?,
            id: key,
            patient_id: patient.to_string(),
            diagnosis_id: new.diagnosis_id.map(|d| d.to_string()),
            period_start: new.period.start,
            period_end: new.period.end,
            status: new.status.as_str().to_owned(),
            created_at: kernel::time::now(),
        };
        self.bus.write(conn, |tx| {
            lock_live(tx.conn(), patient)?;
            if let Some(diagnosis) = new.diagnosis_id {
                let owner: Option<String> = patient_diagnoses::table
                    .find(diagnosis.to_string())
                    .select(patient_diagnoses::patient_id)
                    .first(tx.conn())
                    .optional()
                    .context("look up the treated diagnosis")?;
                let owner = owner.and_then(|id| id.parse().ok());
                domain::check_treated_diagnosis(owner, patient)?;
            }
            diesel::insert_into(patient_treatments::table)
                .values(&row)
                .execute(tx.conn())
                .context("insert treatment")?;
            audit::append(
                tx.conn(),
                access,
                AuditAction::TreatmentCreate,
                &treatment_resource(patient, id),
                Some(patient),
            )?;
            tx.publish(&TreatmentPlanned {
                patient_id: patient,
                treatment_id: id,
                diagnosis_id: new.diagnosis_id,
                status: new.status,
            })?;
            Ok(self.open_treatment(row.clone())?)
        })
    }

    pub(crate) fn list_treatments(
        &self,
        conn: &mut DbConnection,
        access: &AccessContext,
        patient: PatientId,
        page: PageQuery,
    ) -> Result<TreatmentPage, PatientError> {
        self.bus.write(conn, |tx| {
            load_live(tx.conn(), patient)?;
            let total: i64 = patient_treatments::table
                .filter(patient_treatments::patient_id.eq(patient.to_string()))
                .count()
                .get_result(tx.conn())
                .context("count treatments")?;
            let mut q = patient_treatments::table
                .filter(patient_treatments::patient_id.eq(patient.to_string()))
                .into_boxed();
            if let Some(before) = page.before {
                q = q.filter(patient_treatments::id.lt(before.to_string()));
            }
            let rows: Vec<TreatmentRow> = q
                .order_by(patient_treatments::id.desc())
                .limit(KeysetPage::<TreatmentRow>::fetch(page.limit))
                .select(TreatmentRow::as_select())
                .load(tx.conn())
                .context("list treatments")?;
            let (items, next) = KeysetPage::of(rows, page.limit)
                .try_map(|row| self.open_treatment(row))?
                .finish(|t| PageQuery::cursor_after(t.id.0));
            audit::append(
                tx.conn(),
                access,
                AuditAction::TreatmentList,
                &format!("Patient/{patient}/Treatment{}", page_suffix(page)),
                Some(patient),
            )?;
            Ok(TreatmentPage {
                items,
                next,
                total: page_total(total),
            })
        })
    }

    pub(crate) fn get_treatment(
        &self,
        conn: &mut DbConnection,
        access: &AccessContext,
        patient: PatientId,
        id: TreatmentId,
    ) -> Result<Treatment, PatientError> {
        self.bus.write(conn, |tx| {
            load_live(tx.conn(), patient)?;
            let row = patient_treatments::table
                .find(id.to_string())
                .filter(patient_treatments::patient_id.eq(patient.to_string()))
                .select(TreatmentRow::as_select())
                .first(tx.conn())
                .optional()
                .context("load treatment")?
                .ok_or(PatientError::TreatmentNotFound(id))?;
            let treatment = self.open_treatment(row)?;
            audit::append(
                tx.conn(),
                access,
                AuditAction::TreatmentRead,
                &treatment_resource(patient, id),
                Some(patient),
            )?;
            Ok(treatment)
        })
    }
}
