//! Diagnoses and treatments of a patient: request bodies, the domain values they parse
//! into, and responses. Free text (descriptions, plans, medication, dosage) is redacted from
//! `Debug` output like personal data: people write names into it.

mod diagnosis;
mod treatment;

pub use diagnosis::{
    Diagnosis, DiagnosisInput, DiagnosisPage, DiagnosisStatus, Icd10Code, NewDiagnosis,
};
pub use treatment::{
    NewTreatment, Period, Treatment, TreatmentInput, TreatmentPage, TreatmentStatus,
};
