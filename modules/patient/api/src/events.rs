//! Events the patient module publishes; the subject is the patient id. They carry ids,
//! codes and statuses only, never names, contact details, dates of birth or free text: the
//! outbox is not encrypted and events travel to other services.

use kernel_api::event::catalog::EventDoc;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{DiagnosisId, DiagnosisStatus, PatientId, TreatmentId, TreatmentStatus};

/// A patient was registered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PatientRegistered {
    /// The new patient.
    pub patient_id: PatientId,
}

/// A patient's record changed, or was deleted (`deleted`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PatientUpdated {
    /// The patient.
    pub patient_id: PatientId,
    /// The record's revision after the change.
    pub version: i64,
    /// Whether the change deleted the patient.
    pub deleted: bool,
}

/// A diagnosis was recorded for a patient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DiagnosisRecorded {
    /// The patient.
    pub patient_id: PatientId,
    /// The new diagnosis.
    pub diagnosis_id: DiagnosisId,
    /// Its ICD-10 code.
    pub code: String,
    /// Its status.
    pub status: DiagnosisStatus,
}

/// A treatment was planned for a patient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TreatmentPlanned {
    /// The patient.
    pub patient_id: PatientId,
    /// The new treatment.
    pub treatment_id: TreatmentId,
    /// The diagnosis it treats, if any.
    pub diagnosis_id: Option<DiagnosisId>,
    /// Its status.
    pub status: TreatmentStatus,
}

kernel_api::event!(
    PatientRegistered,
    "patient.registered",
    "patient",
    "A patient was registered (ids only, no personal data).",
    |e| e.patient_id
);
kernel_api::event!(
    PatientUpdated,
    "patient.updated",
    "patient",
    "A patient's record changed or was deleted (ids only, no personal data).",
    |e| e.patient_id
);
kernel_api::event!(
    DiagnosisRecorded,
    "diagnosis.recorded",
    "patient",
    "A diagnosis was recorded for a patient (ids and ICD-10 code only).",
    |e| e.patient_id
);
kernel_api::event!(
    TreatmentPlanned,
    "treatment.planned",
    "patient",
    "A treatment was planned for a patient (ids and status only).",
    |e| e.patient_id
);

/// Every event type the patient module publishes, for the event catalog.
pub fn catalog() -> Vec<EventDoc> {
    vec![
        EventDoc::of::<PatientRegistered>(),
        EventDoc::of::<PatientUpdated>(),
        EventDoc::of::<DiagnosisRecorded>(),
        EventDoc::of::<TreatmentPlanned>(),
    ]
}
