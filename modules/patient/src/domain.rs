//! Pure rules of the patient module: who may touch clinical records, what a registration
//! and a change make of a patient, which diagnosis a treatment may name, and how the audit
//! log names what was accessed (by ids only, never by personal data).
//!
//! The shape of each field (an MRN, an ICD-10 code, a birth date not in the future) is
//! parsed at the boundary into `patient_api`'s types; these are the rules that span a record.

use chrono::{DateTime, Utc};
use kernel::{auth::AllowedRoles, error::FieldError};
use patient_api::{
    AccessContext, DiagnosisId, HumanName, NewPatient, PageQuery, Patient, PatientChanges,
    PatientError, PatientId, TreatmentId,
};

/// Clinical records are a door of their own, not only the HTTP layer's: every call checks
/// the caller's role.
///
/// # Errors
/// [`PatientError::Forbidden`] unless the caller's role is in `R`.
pub(crate) fn require<R: AllowedRoles>(access: &AccessContext) -> Result<(), PatientError> {
    if R::ROLES.contains(&access.actor.role) {
        Ok(())
    } else {
        let allowed: Vec<&str> = R::ROLES.iter().map(|r| r.as_str()).collect();
        Err(PatientError::Forbidden(format!(
            "this operation needs role {}; the token has role {}",
            allowed.join(" or "),
            access.actor.role
        )))
    }
}

/// A newly registered patient: a fresh id, revision 1.
pub(crate) fn register(new: &NewPatient, now: DateTime<Utc>) -> Patient {
    Patient {
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
    }
}

/// `current` with `changes` applied, as its next revision: an absent change keeps the field,
/// an address changed to nothing removes it. `None` when the changes change nothing, so the
/// revision (and the ETag every other client holds) stays.
pub(crate) fn apply(
    current: &Patient,
    changes: &PatientChanges,
    now: DateTime<Utc>,
) -> Option<Patient> {
    let c = changes;
    let next = Patient {
        identifier: c
            .identifier
            .as_ref()
            .map_or_else(|| current.identifier.clone(), |m| m.as_str().to_owned()),
        name: HumanName {
            family: c
                .family
                .as_ref()
                .map_or_else(|| current.name.family.clone(), |f| f.as_str().to_owned()),
            given: c
                .given
                .as_ref()
                .map_or_else(|| current.name.given.clone(), |g| g.as_slice().to_vec()),
        },
        gender: c.gender.unwrap_or(current.gender),
        birth_date: c.birth_date.map_or(current.birth_date, |d| d.date()),
        telecom: c
            .telecom
            .as_ref()
            .map_or_else(|| current.telecom.clone(), |t| t.as_slice().to_vec()),
        address: match &c.address {
            None => current.address.clone(),
            Some(address) => address.as_ref().map(|a| a.as_address().clone()),
        },
        ..current.clone()
    };
    (next != *current).then(|| Patient {
        version: current.version + 1,
        updated_at: now,
        ..next
    })
}

/// A treatment may name only a diagnosis of its own patient; `owner` is the patient the named
/// diagnosis belongs to (`None`: no such diagnosis).
///
/// # Errors
/// [`PatientError::Invalid`] naming `diagnosis_id` otherwise.
pub(crate) fn check_treated_diagnosis(
    owner: Option<PatientId>,
    patient: PatientId,
) -> Result<(), PatientError> {
    if owner == Some(patient) {
        Ok(())
    } else {
        Err(PatientError::Invalid(vec![FieldError::new(
            "diagnosis_id",
            "is not a diagnosis of this patient",
        )]))
    }
}

/// How the audit log names a patient.
pub(crate) fn patient_resource(id: PatientId) -> String {
    format!("Patient/{id}")
}

/// How the audit log names a diagnosis.
pub(crate) fn diagnosis_resource(patient: PatientId, id: DiagnosisId) -> String {
    format!("Patient/{patient}/Diagnosis/{id}")
}

/// How the audit log names a treatment.
pub(crate) fn treatment_resource(patient: PatientId, id: TreatmentId) -> String {
    format!("Patient/{patient}/Treatment/{id}")
}

/// The `limit` and cursor of a page, for the audit log.
pub(crate) fn page_suffix(page: PageQuery) -> String {
    match page.before {
        Some(before) => format!("?limit={}&before={before}", page.limit),
        None => format!("?limit={}", page.limit),
    }
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;
    use kernel::auth::{AdminOnly, Principal, Role};
    use patient_api::{Address, ClinicalStaff, Gender, PatientInput};

    use super::*;

    fn access(role: Role) -> AccessContext {
        AccessContext::new(
            Principal {
                sub: "someone".into(),
                role,
            },
            "req-1",
        )
    }

    fn new_patient() -> NewPatient {
        let input = PatientInput {
            identifier: "MRN-1".into(),
            name: HumanName {
                family: "Example".into(),
                given: vec!["Alex".into()],
            },
            gender: Gender::Other,
            birth_date: NaiveDate::from_ymd_opt(1980, 4, 1).unwrap(),
            telecom: Vec::new(),
            address: Some(Address {
                city: Some("Springfield".into()),
                ..Address::default()
            }),
        };
        NewPatient::parse(input, NaiveDate::from_ymd_opt(2026, 1, 1).unwrap()).unwrap()
    }

    #[test]
    fn only_clinical_staff_pass_and_only_admins_read_the_audit_trail() {
        for role in Role::ALL {
            let clinical = require::<ClinicalStaff>(&access(role)).is_ok();
            let audit = require::<AdminOnly>(&access(role)).is_ok();
            assert_eq!(
                clinical,
                matches!(role, Role::Clinician | Role::Admin),
                "{role}"
            );
            assert_eq!(audit, role == Role::Admin, "{role}");
        }
        let err = require::<ClinicalStaff>(&access(Role::Customer)).unwrap_err();
        assert!(matches!(err, PatientError::Forbidden(_)));
    }

    #[test]
    fn a_registration_is_revision_one_of_a_new_patient() {
        let now = Utc::now();
        let a = register(&new_patient(), now);
        let b = register(&new_patient(), now);
        assert_ne!(a.id, b.id);
        assert_eq!(a.version, 1);
        assert_eq!((a.created_at, a.updated_at), (now, now));
        assert_eq!(a.identifier, "MRN-1");
        assert_eq!(a.name.family, "Example");
        assert!(a.address.is_some());
    }

    #[test]
    fn a_change_keeps_what_it_does_not_name_and_bumps_the_revision() {
        let created = Utc::now();
        let current = register(&new_patient(), created);
        let later = created + chrono::Duration::seconds(5);
        let next = apply(
            &current,
            &PatientChanges {
                gender: Some(Gender::Female),
                ..PatientChanges::default()
            },
            later,
        )
        .unwrap();
        assert_eq!(next.gender, Gender::Female);
        assert_eq!(next.version, 2);
        assert_eq!(next.updated_at, later);
        assert_eq!(next.created_at, created);
        assert_eq!(
            (next.id, &next.identifier),
            (current.id, &current.identifier)
        );
        assert_eq!(next.address, current.address);
    }

    #[test]
    fn an_address_changed_to_nothing_is_removed() {
        let current = register(&new_patient(), Utc::now());
        let changes = PatientChanges {
            address: Some(None),
            ..PatientChanges::default()
        };
        let next = apply(&current, &changes, Utc::now()).unwrap();
        assert_eq!(next.address, None);
    }

    #[test]
    fn changes_to_the_current_values_are_no_revision() {
        let current = register(&new_patient(), Utc::now());
        let same = PatientChanges {
            gender: Some(current.gender),
            ..PatientChanges::default()
        };
        for changes in [PatientChanges::default(), same, new_patient().into()] {
            assert_eq!(apply(&current, &changes, Utc::now()), None);
        }
    }

    #[test]
    fn a_treatment_names_only_its_own_patients_diagnosis() {
        let (mine, other) = (PatientId::new(), PatientId::new());
        assert!(check_treated_diagnosis(Some(mine), mine).is_ok());
        for owner in [Some(other), None] {
            let Err(PatientError::Invalid(errors)) = check_treated_diagnosis(owner, mine) else {
                panic!("{owner:?} passed");
            };
            assert_eq!(errors[0].field, "diagnosis_id");
        }
    }

    #[test]
    fn the_audit_log_names_records_by_ids_and_pages_by_limit_and_cursor() {
        let patient = PatientId::new();
        let diagnosis = DiagnosisId::new();
        let treatment = TreatmentId::new();
        assert_eq!(patient_resource(patient), format!("Patient/{patient}"));
        assert_eq!(
            diagnosis_resource(patient, diagnosis),
            format!("Patient/{patient}/Diagnosis/{diagnosis}")
        );
        assert_eq!(
            treatment_resource(patient, treatment),
            format!("Patient/{patient}/Treatment/{treatment}")
        );
        let first = PageQuery {
            limit: 5,
            before: None,
        };
        assert_eq!(page_suffix(first), "?limit=5");
        let cursor = uuid::Uuid::now_v7();
        let next = PageQuery {
            limit: 5,
            before: Some(cursor),
        };
        assert_eq!(page_suffix(next), format!("?limit=5&before={cursor}"));
    }
}
