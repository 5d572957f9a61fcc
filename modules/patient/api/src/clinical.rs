//! Diagnoses and treatments of a patient: request bodies, the domain values they parse
//! into, and responses. Free text (descriptions, plans, medication, dosage) is redacted from
//! `Debug` output like personal data: people write names into it.

use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use kernel::error::FieldError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{
    DiagnosisId, PatientId, TreatmentId,
    model::{Fields, not_in_future, redacted_debug, text, today},
};

/// An ICD-10 code: a letter, two digits, then optionally `.` and 1–4 letters or digits
/// (`E11.9`, `S72.001A`). Stored in upper case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Icd10Code(String);

impl Icd10Code {
    /// # Errors
    /// A message saying what the format is.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let s = raw.trim().to_ascii_uppercase();
        let b = s.as_bytes();
        let category = b.len() >= 3
            && b[0].is_ascii_uppercase()
            && b[1].is_ascii_digit()
            && b[2].is_ascii_digit();
        let rest_ok = match b.get(3..).unwrap_or_default() {
            [] => true,
            [b'.', tail @ ..] => {
                (1..=4).contains(&tail.len()) && tail.iter().all(u8::is_ascii_alphanumeric)
            }
            _ => false,
        };
        if category && rest_ok {
            Ok(Self(s))
        } else {
            Err(
                "must be an ICD-10 code: a letter, two digits, then optionally '.' and 1 to 4 \
                 letters or digits (e.g. E11.9)"
                    .into(),
            )
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Icd10Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a diagnosis stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DiagnosisStatus {
    Active,
    Resolved,
    Inactive,
}

impl DiagnosisStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Resolved => "resolved",
            Self::Inactive => "inactive",
        }
    }

    /// # Errors
    /// An unknown name.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "active" => Ok(Self::Active),
            "resolved" => Ok(Self::Resolved),
            "inactive" => Ok(Self::Inactive),
            other => Err(format!("unknown diagnosis status {other:?}")),
        }
    }
}

/// Body of `POST /patients/{id}/diagnoses`.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DiagnosisInput {
    /// ICD-10 code, e.g. `E11.9`.
    #[schema(example = "E11.9")]
    pub code: String,
    /// What was diagnosed, 1–2000 characters. Clinical text only: no names or contact
    /// details.
    #[schema(example = "Type 2 diabetes mellitus without complications")]
    pub description: String,
    /// When the condition began (`YYYY-MM-DD`), not in the future.
    #[schema(example = "2024-03-01")]
    pub onset: NaiveDate,
    /// `active`, `resolved` or `inactive`.
    pub status: DiagnosisStatus,
}

/// A valid new diagnosis.
#[derive(Clone, PartialEq, Eq)]
pub struct NewDiagnosis {
    pub code: Icd10Code,
    pub description: String,
    pub onset: NaiveDate,
    pub status: DiagnosisStatus,
}

impl NewDiagnosis {
    /// Parses a diagnosis whose onset is checked against `today`.
    ///
    /// # Errors
    /// Every offending field.
    pub fn parse(input: DiagnosisInput, today: NaiveDate) -> Result<Self, Vec<FieldError>> {
        let mut f = Fields::default();
        let code = f.check("code", Icd10Code::parse(&input.code));
        let description = f.check("description", text(&input.description, 2000));
        let onset = f.check("onset", not_in_future(input.onset, today));
        let value = (|| {
            Some(Self {
                code: code?,
                description: description?,
                onset: onset?,
                status: input.status,
            })
        })();
        f.finish(value)
    }
}

impl TryFrom<DiagnosisInput> for NewDiagnosis {
    type Error = Vec<FieldError>;

    fn try_from(input: DiagnosisInput) -> Result<Self, Self::Error> {
        Self::parse(input, today())
    }
}

/// A diagnosis of a patient.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Diagnosis {
    /// Diagnosis id (UUID v7).
    pub id: DiagnosisId,
    /// The patient diagnosed.
    pub patient_id: PatientId,
    /// ICD-10 code.
    pub code: String,
    /// What was diagnosed.
    pub description: String,
    /// When the condition began.
    pub onset: NaiveDate,
    /// `active`, `resolved` or `inactive`.
    pub status: DiagnosisStatus,
    /// When it was recorded (UTC).
    pub created_at: DateTime<Utc>,
}

impl fmt::Debug for Diagnosis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Diagnosis")
            .field("id", &self.id)
            .field("patient_id", &self.patient_id)
            .field("code", &self.code)
            .finish_non_exhaustive()
    }
}

/// One page of a patient's diagnoses, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DiagnosisPage {
    /// The diagnoses on this page.
    pub items: Vec<Diagnosis>,
    /// Cursor for the next page (pass it as `cursor`), or null on the last page.
    pub next: Option<String>,
}

/// Where a treatment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TreatmentStatus {
    Planned,
    Active,
    Completed,
    Stopped,
}

impl TreatmentStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Planned => "planned",
            Self::Active => "active",
            Self::Completed => "completed",
            Self::Stopped => "stopped",
        }
    }

    /// # Errors
    /// An unknown name.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "planned" => Ok(Self::Planned),
            "active" => Ok(Self::Active),
            "completed" => Ok(Self::Completed),
            "stopped" => Ok(Self::Stopped),
            other => Err(format!("unknown treatment status {other:?}")),
        }
    }
}

/// When a treatment runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Period {
    /// First day (`YYYY-MM-DD`).
    #[schema(example = "2026-11-22")]
    pub start: NaiveDate,
    /// Last day, on or after `start`; absent while open-ended.
    #[serde(default)]
    #[schema(example = "2026-12-22")]
    pub end: Option<NaiveDate>,
}

/// Body of `POST /patients/{id}/treatments`.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TreatmentInput {
    /// The plan, 1–2000 characters. Clinical text only: no names or contact details.
    #[schema(example = "Lifestyle advice and metformin; review HbA1c in 3 months")]
    pub plan: String,
    /// The medication, 1–200 characters.
    #[schema(example = "Metformin")]
    pub medication: String,
    /// The dosage, 1–200 characters.
    #[schema(example = "500 mg twice daily")]
    pub dosage: String,
    /// When it runs.
    pub period: Period,
    /// `planned`, `active`, `completed` or `stopped`.
    pub status: TreatmentStatus,
    /// The diagnosis it treats; must be one of this patient's diagnoses.
    #[serde(default)]
    pub diagnosis_id: Option<DiagnosisId>,
}

/// A valid new treatment (whether `diagnosis_id` belongs to the patient is checked when it
/// is stored).
#[derive(Clone, PartialEq, Eq)]
pub struct NewTreatment {
    pub plan: String,
    pub medication: String,
    pub dosage: String,
    pub period: Period,
    pub status: TreatmentStatus,
    pub diagnosis_id: Option<DiagnosisId>,
}

impl TryFrom<TreatmentInput> for NewTreatment {
    type Error = Vec<FieldError>;

    fn try_from(input: TreatmentInput) -> Result<Self, Self::Error> {
        let mut f = Fields::default();
        let plan = f.check("plan", text(&input.plan, 2000));
        let medication = f.check("medication", text(&input.medication, 200));
        let dosage = f.check("dosage", text(&input.dosage, 200));
        let period = f.check(
            "period.end",
            match input.period.end {
                Some(end) if end < input.period.start => {
                    Err("must not be before period.start".to_owned())
                }
                _ => Ok(input.period),
            },
        );
        let value = (|| {
            Some(Self {
                plan: plan?,
                medication: medication?,
                dosage: dosage?,
                period: period?,
                status: input.status,
                diagnosis_id: input.diagnosis_id,
            })
        })();
        f.finish(value)
    }
}

/// A treatment of a patient.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Treatment {
    /// Treatment id (UUID v7).
    pub id: TreatmentId,
    /// The patient treated.
    pub patient_id: PatientId,
    /// The diagnosis it treats, if any.
    pub diagnosis_id: Option<DiagnosisId>,
    /// The plan.
    pub plan: String,
    /// The medication.
    pub medication: String,
    /// The dosage.
    pub dosage: String,
    /// When it runs.
    pub period: Period,
    /// `planned`, `active`, `completed` or `stopped`.
    pub status: TreatmentStatus,
    /// When it was recorded (UTC).
    pub created_at: DateTime<Utc>,
}

impl fmt::Debug for Treatment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Treatment")
            .field("id", &self.id)
            .field("patient_id", &self.patient_id)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

/// One page of a patient's treatments, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TreatmentPage {
    /// The treatments on this page.
    pub items: Vec<Treatment>,
    /// Cursor for the next page (pass it as `cursor`), or null on the last page.
    pub next: Option<String>,
}

redacted_debug!(DiagnosisInput, NewDiagnosis, TreatmentInput, NewTreatment);

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn icd10_codes_have_a_letter_two_digits_and_an_optional_subdivision() {
        for good in ["E11.9", "e11.9", "A00", "S72.001A", " J45.909 "] {
            assert!(Icd10Code::parse(good).is_ok(), "{good}");
        }
        assert_eq!(Icd10Code::parse("e11.9").unwrap().as_str(), "E11.9");
        for bad in [
            "",
            "E1",
            "11.9",
            "E11.",
            "E11.12345",
            "E119",
            "EE1.9",
            "E11-9",
            "E11.9 x",
            "C4A.1",
        ] {
            assert!(Icd10Code::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_diagnosis_names_each_bad_field() {
        let input = DiagnosisInput {
            code: "diabetes".into(),
            description: " ".into(),
            onset: date(2026, 11, 23),
            status: DiagnosisStatus::Active,
        };
        let errors = NewDiagnosis::parse(input, date(2026, 11, 22)).unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["code", "description", "onset"]);
    }

    #[test]
    fn a_treatment_may_not_end_before_it_starts() {
        let input = TreatmentInput {
            plan: "Plan".into(),
            medication: "Metformin".into(),
            dosage: "500 mg".into(),
            period: Period {
                start: date(2026, 1, 10),
                end: Some(date(2026, 1, 9)),
            },
            status: TreatmentStatus::Planned,
            diagnosis_id: None,
        };
        let errors = NewTreatment::try_from(input.clone()).unwrap_err();
        assert_eq!(errors[0].field, "period.end");
        let same_day = TreatmentInput {
            period: Period {
                start: date(2026, 1, 10),
                end: Some(date(2026, 1, 10)),
            },
            ..input
        };
        assert!(NewTreatment::try_from(same_day).is_ok());
    }
}
