//! Treatments: the body of a new treatment and its checked form, its period and status, and
//! the treatment as it is read. Plan, medication and dosage are redacted from `Debug`.

use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use kernel_api::error::FieldError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{
    DiagnosisId, PatientId, TreatmentId,
    parse::{Fields, redacted_debug, text},
};

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
    /// How many treatments the patient has, over all pages.
    pub total: u64,
}

redacted_debug!(TreatmentInput, NewTreatment);

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
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
