//! The patient module's contract: [`PatientService`], the patient, diagnosis, treatment,
//! audit and FHIR types, [`PatientError`] and the patient events.
//!
//! Personal data (identifier, name, birth date, telecom, address) only ever travels inside
//! the request and response types here. Their `Debug` output is redacted, the events carry
//! ids and codes only, and nothing here is meant to reach a log or a span.

pub mod audit;
pub mod clinical;
mod demographics;
pub mod events;
pub mod fhir;
mod listing;
mod parse;
mod patient;
mod person;

use async_trait::async_trait;
use kernel_api::{
    auth::{AllowedRoles, Principal, Role},
    error::{ApiError, ErrorKind, FieldError, ProblemCode, members},
    version::ExpectedVersion,
};

pub use audit::{AuditAction, AuditEntry, AuditPage};
pub use clinical::{
    Diagnosis, DiagnosisInput, DiagnosisPage, DiagnosisStatus, Icd10Code, NewDiagnosis,
    NewTreatment, Period, Treatment, TreatmentInput, TreatmentPage, TreatmentStatus,
};
pub use demographics::{BirthDate, FamilyName, GivenNames, Mrn, PostalAddress, Telecoms};
pub use fhir::FhirPatient;
pub use listing::{PageParams, PageQuery, PatientListParams, PatientQuery};
pub use parse::today;
pub use patient::{
    NamePatch, NewPatient, Patient, PatientChanges, PatientInput, PatientPage, PatientPatch,
};
pub use person::{Address, ContactPoint, Gender, HumanName, TelecomSystem};

kernel_api::typed_id!(
    /// Identifies a patient.
    PatientId
);
kernel_api::typed_id!(
    /// Identifies a diagnosis of a patient.
    DiagnosisId
);
kernel_api::typed_id!(
    /// Identifies a treatment of a patient.
    TreatmentId
);
kernel_api::typed_id!(
    /// Identifies an audit entry.
    AuditEntryId
);

/// `clinician` or `admin`: the only roles that may read or write clinical records.
#[derive(Debug)]
pub struct ClinicalStaff;

impl AllowedRoles for ClinicalStaff {
    const ROLES: &'static [Role] = &[Role::Clinician, Role::Admin];
}

/// Who is asking, and as part of which request: every call of [`PatientService`] is
/// written to the audit log under this caller and request id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessContext {
    /// The authenticated caller.
    pub actor: Principal,
    /// The request id (`x-request-id`) the call belongs to.
    pub request_id: String,
}

impl AccessContext {
    pub fn new(actor: Principal, request_id: impl Into<String>) -> Self {
        Self {
            actor,
            request_id: request_id.into(),
        }
    }
}

/// Clinical records, as the HTTP layer and other modules see them. Every method is audited:
/// reads and lists as much as writes, each write in the transaction that makes it. Only
/// [`ClinicalStaff`] may call them (the audit trail: `admin` only); anyone else gets
/// [`PatientError::Forbidden`]. A deleted patient is [`PatientError::NotFound`] everywhere
/// except in its audit trail.
#[async_trait]
pub trait PatientService: Send + Sync + 'static {
    /// Registers a patient.
    ///
    /// # Errors
    /// [`PatientError::DuplicateIdentifier`] when another patient has the identifier.
    async fn register(
        &self,
        access: &AccessContext,
        patient: NewPatient,
    ) -> Result<Patient, PatientError>;

    /// # Errors
    /// [`PatientError::NotFound`].
    async fn get(&self, access: &AccessContext, id: PatientId) -> Result<Patient, PatientError>;

    /// The patient as a FHIR R4 `Patient` resource (audited as `fhir.read`).
    ///
    /// # Errors
    /// [`PatientError::NotFound`].
    async fn get_fhir(
        &self,
        access: &AccessContext,
        id: PatientId,
    ) -> Result<FhirPatient, PatientError>;

    /// Patients, newest first, optionally only those with an identifier or family name.
    ///
    /// # Errors
    /// Only unexpected ones.
    async fn list(
        &self,
        access: &AccessContext,
        query: PatientQuery,
    ) -> Result<PatientPage, PatientError>;

    /// Changes the given fields (all of them for a replacement).
    ///
    /// # Errors
    /// [`PatientError::NotFound`]; [`PatientError::PreconditionFailed`] when the patient is
    /// not at an `expected` version; [`PatientError::DuplicateIdentifier`].
    async fn update(
        &self,
        access: &AccessContext,
        id: PatientId,
        expected: ExpectedVersion,
        changes: PatientChanges,
    ) -> Result<Patient, PatientError>;

    /// Marks the patient deleted; its records and audit trail stay.
    ///
    /// # Errors
    /// [`PatientError::NotFound`]; [`PatientError::PreconditionFailed`].
    async fn delete(
        &self,
        access: &AccessContext,
        id: PatientId,
        expected: ExpectedVersion,
    ) -> Result<(), PatientError>;

    /// # Errors
    /// [`PatientError::NotFound`] for the patient.
    async fn record_diagnosis(
        &self,
        access: &AccessContext,
        patient: PatientId,
        diagnosis: NewDiagnosis,
    ) -> Result<Diagnosis, PatientError>;

    /// # Errors
    /// [`PatientError::NotFound`] for the patient.
    async fn list_diagnoses(
        &self,
        access: &AccessContext,
        patient: PatientId,
        page: PageQuery,
    ) -> Result<DiagnosisPage, PatientError>;

    /// # Errors
    /// [`PatientError::NotFound`]; [`PatientError::DiagnosisNotFound`], also for another
    /// patient's diagnosis.
    async fn get_diagnosis(
        &self,
        access: &AccessContext,
        patient: PatientId,
        id: DiagnosisId,
    ) -> Result<Diagnosis, PatientError>;

    /// # Errors
    /// [`PatientError::NotFound`] for the patient; [`PatientError::Invalid`] naming
    /// `diagnosis_id` when it is not one of this patient's diagnoses.
    async fn plan_treatment(
        &self,
        access: &AccessContext,
        patient: PatientId,
        treatment: NewTreatment,
    ) -> Result<Treatment, PatientError>;

    /// # Errors
    /// [`PatientError::NotFound`] for the patient.
    async fn list_treatments(
        &self,
        access: &AccessContext,
        patient: PatientId,
        page: PageQuery,
    ) -> Result<TreatmentPage, PatientError>;

    /// # Errors
    /// [`PatientError::NotFound`]; [`PatientError::TreatmentNotFound`], also for another
    /// patient's treatment.
    async fn get_treatment(
        &self,
        access: &AccessContext,
        patient: PatientId,
        id: TreatmentId,
    ) -> Result<Treatment, PatientError>;

    /// Who did what to the patient's records, newest first (`admin` only). Readable after
    /// the patient was deleted.
    ///
    /// # Errors
    /// [`PatientError::Forbidden`] for anyone but an admin; [`PatientError::NotFound`] when
    /// no such patient was ever registered.
    async fn audit_trail(
        &self,
        access: &AccessContext,
        patient: PatientId,
        page: PageQuery,
    ) -> Result<AuditPage, PatientError>;
}

/// Everything that can go wrong in the patient module. No variant carries personal data.
#[derive(Debug, thiserror::Error)]
pub enum PatientError {
    #[error("patient {0} not found")]
    NotFound(PatientId),
    #[error("diagnosis {0} not found")]
    DiagnosisNotFound(DiagnosisId),
    #[error("treatment {0} not found")]
    TreatmentNotFound(TreatmentId),
    #[error("another patient already has this identifier")]
    DuplicateIdentifier,
    #[error("If-Match does not match the current ETag: the patient has changed")]
    PreconditionFailed,
    #[error("{0}")]
    Forbidden(String),
    #[error("invalid patient data")]
    Invalid(Vec<FieldError>),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Codes and figures of [`PatientError`] on the wire (see the `Problem` schema): ids only,
/// never clinical data.
impl ProblemCode for PatientError {
    fn code(&self) -> &'static str {
        match self {
            Self::NotFound(_) => "patient_not_found",
            Self::DiagnosisNotFound(_) => "diagnosis_not_found",
            Self::TreatmentNotFound(_) => "treatment_not_found",
            Self::DuplicateIdentifier => "duplicate_identifier",
            Self::PreconditionFailed => "precondition_failed",
            Self::Forbidden(_) => "forbidden",
            Self::Invalid(_) => "validation_failed",
            Self::Unexpected(_) => "internal",
        }
    }

    fn members(&self) -> serde_json::Map<String, serde_json::Value> {
        members(match self {
            Self::NotFound(id) => serde_json::json!({ "patient_id": id }),
            Self::DiagnosisNotFound(id) => serde_json::json!({ "diagnosis_id": id }),
            Self::TreatmentNotFound(id) => serde_json::json!({ "treatment_id": id }),
            _ => serde_json::Value::Null,
        })
    }
}

impl From<PatientError> for ApiError {
    fn from(err: PatientError) -> Self {
        match err {
            PatientError::Invalid(errors) => ApiError::validation(errors),
            PatientError::Unexpected(source) => ApiError::internal(source),
            other => {
                let kind = match &other {
                    PatientError::NotFound(_)
                    | PatientError::DiagnosisNotFound(_)
                    | PatientError::TreatmentNotFound(_) => ErrorKind::NotFound,
                    PatientError::PreconditionFailed => ErrorKind::PreconditionFailed,
                    PatientError::Forbidden(_) => ErrorKind::Forbidden,
                    _ => ErrorKind::Conflict,
                };
                ApiError::new(kind, format!("{}.", capitalize(&other.to_string())))
                    .with_code(other.code())
                    .with_members(other.members())
            }
        }
    }
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_become_the_documented_statuses() {
        let cases = [
            (PatientError::NotFound(PatientId::new()), 404),
            (PatientError::DuplicateIdentifier, 409),
            (PatientError::PreconditionFailed, 412),
            (PatientError::Forbidden("no".into()), 403),
            (
                PatientError::Invalid(vec![FieldError::new("diagnosis_id", "x")]),
                422,
            ),
        ];
        for (err, status) in cases {
            assert_eq!(ApiError::from(err).kind().status(), status);
        }
    }

    #[test]
    fn clinical_staff_are_clinicians_and_admins() {
        assert_eq!(ClinicalStaff::ROLES, &[Role::Clinician, Role::Admin]);
    }
}
