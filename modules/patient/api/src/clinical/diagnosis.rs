//! Diagnoses: the ICD-10 code, the body of a new diagnosis and its checked form, and the
//! diagnosis as it is read. The description is redacted from `Debug`.

use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use kernel_api::error::FieldError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{
    DiagnosisId, PatientId,
    parse::{Fields, not_in_future, redacted_debug, text, today},
};

/// An ICD-10 code: a letter A–Z, two digits, then optionally `.` and 1–4 letters A–Z or digits
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
                "must be an ICD-10 code: a letter A-Z, two digits, then optionally '.' and 1 \
                 to 4 letters A-Z or digits (e.g. E11.9)"
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
    /// How many diagnoses the patient has, over all pages.
    pub total: u64,
}

redacted_debug!(DiagnosisInput, NewDiagnosis);

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
}
