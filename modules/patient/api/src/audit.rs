//! The audit log: who read or wrote which clinical record, when, in which request. Entries
//! name resources by id only, never by personal values.

use chrono::{DateTime, Utc};
use kernel_api::auth::Role;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{AuditEntryId, PatientId};

/// What was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum AuditAction {
    #[serde(rename = "patient.create")]
    PatientCreate,
    #[serde(rename = "patient.read")]
    PatientRead,
    #[serde(rename = "patient.list")]
    PatientList,
    #[serde(rename = "patient.update")]
    PatientUpdate,
    #[serde(rename = "patient.delete")]
    PatientDelete,
    #[serde(rename = "diagnosis.create")]
    DiagnosisCreate,
    #[serde(rename = "diagnosis.read")]
    DiagnosisRead,
    #[serde(rename = "diagnosis.list")]
    DiagnosisList,
    #[serde(rename = "treatment.create")]
    TreatmentCreate,
    #[serde(rename = "treatment.read")]
    TreatmentRead,
    #[serde(rename = "treatment.list")]
    TreatmentList,
    #[serde(rename = "fhir.read")]
    FhirRead,
    #[serde(rename = "audit.read")]
    AuditRead,
}

impl AuditAction {
    pub const ALL: [Self; 13] = [
        Self::PatientCreate,
        Self::PatientRead,
        Self::PatientList,
        Self::PatientUpdate,
        Self::PatientDelete,
        Self::DiagnosisCreate,
        Self::DiagnosisRead,
        Self::DiagnosisList,
        Self::TreatmentCreate,
        Self::TreatmentRead,
        Self::TreatmentList,
        Self::FhirRead,
        Self::AuditRead,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::PatientCreate => "patient.create",
            Self::PatientRead => "patient.read",
            Self::PatientList => "patient.list",
            Self::PatientUpdate => "patient.update",
            Self::PatientDelete => "patient.delete",
            Self::DiagnosisCreate => "diagnosis.create",
            Self::DiagnosisRead => "diagnosis.read",
            Self::DiagnosisList => "diagnosis.list",
            Self::TreatmentCreate => "treatment.create",
            Self::TreatmentRead => "treatment.read",
            Self::TreatmentList => "treatment.list",
            Self::FhirRead => "fhir.read",
            Self::AuditRead => "audit.read",
        }
    }

    /// # Errors
    /// An unknown name.
    pub fn parse(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| format!("unknown audit action {s:?}"))
    }
}

/// One access to clinical records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditEntry {
    /// Entry id (UUID v7, in the order entries were written).
    pub id: AuditEntryId,
    /// Who (`sub` of the caller's token).
    pub actor: String,
    /// The caller's role.
    pub role: Role,
    /// What was done, e.g. `patient.read`.
    #[schema(example = "patient.read")]
    pub action: AuditAction,
    /// What it was done to: `Patient/<id>`, `Patient/<id>/Diagnosis/<id>`, or a list query
    /// such as `Patient?family=[redacted]&limit=20` (filter values are never recorded).
    pub resource: String,
    /// The patient concerned; null for lists and searches.
    pub patient_id: Option<PatientId>,
    /// The request it happened in (`x-request-id`).
    pub request_id: String,
    /// When (UTC).
    pub at: DateTime<Utc>,
}

/// One page of a patient's audit trail, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditPage {
    /// The entries on this page.
    pub items: Vec<AuditEntry>,
    /// Cursor for the next page (pass it as `cursor`), or null on the last page.
    pub next: Option<String>,
    /// How many entries the trail held when this page was read (this read's own entry comes after).
    pub total: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_serialize_as_their_names_and_read_back() {
        for action in AuditAction::ALL {
            let json = serde_json::to_value(action).unwrap();
            assert_eq!(json, action.as_str());
            assert_eq!(AuditAction::parse(action.as_str()).unwrap(), action);
        }
    }
}
