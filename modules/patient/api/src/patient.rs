//! A patient: the bodies clients write (`PatientInput`, `PatientPatch`), the valid values
//! they parse into (`NewPatient`, `PatientChanges`), and the patient as it is read.

use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use kernel_api::error::FieldError;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use crate::{
    PatientId,
    demographics::{BirthDate, FamilyName, GivenNames, Mrn, PostalAddress, Telecoms},
    parse::{Fields, redacted_debug, today},
    person::{Address, ContactPoint, Gender, HumanName},
};

/// A valid new patient.
#[derive(Clone, PartialEq, Eq)]
pub struct NewPatient {
    pub identifier: Mrn,
    pub family: FamilyName,
    pub given: GivenNames,
    pub gender: Gender,
    pub birth_date: BirthDate,
    pub telecom: Telecoms,
    pub address: Option<PostalAddress>,
}

impl NewPatient {
    /// Parses a patient whose birth date is checked against `today`.
    ///
    /// # Errors
    /// Every offending field.
    pub fn parse(input: PatientInput, today: NaiveDate) -> Result<Self, Vec<FieldError>> {
        let mut f = Fields::default();
        let identifier = f.check("identifier", Mrn::parse(&input.identifier));
        let family = f.check("name.family", FamilyName::parse(&input.name.family));
        let given = f.nested(GivenNames::parse(&input.name.given));
        let birth_date = f.check("birth_date", BirthDate::parse(input.birth_date, today));
        let telecom = f.nested(Telecoms::parse(&input.telecom));
        let address = input
            .address
            .as_ref()
            .map(|a| f.nested(PostalAddress::parse(a)));
        let value = (|| {
            Some(Self {
                identifier: identifier?,
                family: family?,
                given: given?,
                gender: input.gender,
                birth_date: birth_date?,
                telecom: telecom?,
                address: match address {
                    Some(parsed) => Some(parsed?),
                    None => None,
                },
            })
        })();
        f.finish(value)
    }
}

impl TryFrom<PatientInput> for NewPatient {
    type Error = Vec<FieldError>;

    fn try_from(input: PatientInput) -> Result<Self, Self::Error> {
        Self::parse(input, today())
    }
}

/// The fields a PUT or PATCH changes; `None` leaves a field as it is. `address:
/// Some(None)` removes the address.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct PatientChanges {
    pub identifier: Option<Mrn>,
    pub family: Option<FamilyName>,
    pub given: Option<GivenNames>,
    pub gender: Option<Gender>,
    pub birth_date: Option<BirthDate>,
    pub telecom: Option<Telecoms>,
    pub address: Option<Option<PostalAddress>>,
}

impl From<NewPatient> for PatientChanges {
    fn from(p: NewPatient) -> Self {
        Self {
            identifier: Some(p.identifier),
            family: Some(p.family),
            given: Some(p.given),
            gender: Some(p.gender),
            birth_date: Some(p.birth_date),
            telecom: Some(p.telecom),
            address: Some(p.address),
        }
    }
}

impl PatientChanges {
    /// Parses a merge patch whose birth date is checked against `today`.
    ///
    /// # Errors
    /// Every offending field.
    pub fn parse(patch: PatientPatch, today: NaiveDate) -> Result<Self, Vec<FieldError>> {
        let mut f = Fields::default();
        let (family, given) = match &patch.name {
            Some(name) => (
                name.family
                    .as_deref()
                    .and_then(|n| f.check("name.family", FamilyName::parse(n))),
                name.given
                    .as_deref()
                    .and_then(|g| f.nested(GivenNames::parse(g))),
            ),
            None => (None, None),
        };
        let changes = Self {
            identifier: patch
                .identifier
                .as_deref()
                .and_then(|s| f.check("identifier", Mrn::parse(s))),
            family,
            given,
            gender: patch.gender,
            birth_date: patch
                .birth_date
                .and_then(|d| f.check("birth_date", BirthDate::parse(d, today))),
            telecom: patch
                .telecom
                .as_deref()
                .and_then(|t| f.nested(Telecoms::parse(t))),
            address: match &patch.address {
                None => None,
                Some(None) => Some(None),
                Some(Some(a)) => f.nested(PostalAddress::parse(a)).map(Some),
            },
        };
        f.finish(Some(changes))
    }
}

impl TryFrom<PatientPatch> for PatientChanges {
    type Error = Vec<FieldError>;

    fn try_from(patch: PatientPatch) -> Result<Self, Self::Error> {
        Self::parse(patch, today())
    }
}

redacted_debug!(NewPatient, PatientChanges);

/// A patient as written by `POST /patients` and `PUT /patients/{id}`.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatientInput {
    /// Medical record number (MRN), unique: 1–64 letters (of any script), digits, `-`, `_`,
    /// `.` or `/`.
    #[schema(example = "MRN-000123")]
    pub identifier: String,
    /// The patient's name; `family` is required.
    pub name: HumanName,
    /// Administrative gender.
    pub gender: Gender,
    /// Date of birth (`YYYY-MM-DD`), not in the future.
    #[schema(example = "1980-04-01")]
    pub birth_date: NaiveDate,
    /// Phone numbers and email addresses, at most 10.
    #[serde(default)]
    pub telecom: Vec<ContactPoint>,
    /// Postal address.
    #[serde(default)]
    pub address: Option<Address>,
}

/// Part of a name in a merge patch.
#[derive(Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NamePatch {
    /// New family name.
    pub family: Option<String>,
    /// New given names (replaces the list).
    pub given: Option<Vec<String>>,
}

/// A JSON merge patch for `PATCH /patients/{id}`: fields that are absent (or null) stay as
/// they are, except `address`, which null removes. Lists are replaced whole.
#[derive(Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatientPatch {
    /// New medical record number.
    pub identifier: Option<String>,
    /// New family and/or given names.
    pub name: Option<NamePatch>,
    /// New administrative gender.
    pub gender: Option<Gender>,
    /// New date of birth (`YYYY-MM-DD`), not in the future.
    pub birth_date: Option<NaiveDate>,
    /// New phone numbers and email addresses (replaces the list).
    pub telecom: Option<Vec<ContactPoint>>,
    /// New postal address, or null to remove it.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<Address>)]
    pub address: Option<Option<Address>>,
}

/// Tells a field that is present (even as null) from one that is absent.
fn present<'de, D, T>(de: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(de).map(Some)
}

redacted_debug!(PatientInput, NamePatch, PatientPatch);

/// A patient.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Patient {
    /// Patient id (UUID v7).
    pub id: PatientId,
    /// Medical record number (MRN).
    pub identifier: String,
    /// The patient's name.
    pub name: HumanName,
    /// Administrative gender.
    pub gender: Gender,
    /// Date of birth.
    pub birth_date: NaiveDate,
    /// Phone numbers and email addresses.
    pub telecom: Vec<ContactPoint>,
    /// Postal address, or null.
    pub address: Option<Address>,
    /// Revision, incremented by every change; the ETag is this number in quotes.
    pub version: i64,
    /// When the patient was registered (UTC).
    pub created_at: DateTime<Utc>,
    /// When the record last changed (UTC).
    pub updated_at: DateTime<Utc>,
}

impl fmt::Debug for Patient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Patient")
            .field("id", &self.id)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// One page of patients, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PatientPage {
    /// The patients on this page.
    pub items: Vec<Patient>,
    /// Cursor for the next page (pass it as `cursor`), or null on the last page.
    pub next: Option<String>,
    /// How many living patients match the search, over all pages.
    pub total: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 22).unwrap()
    }

    fn input() -> serde_json::Value {
        json!({
            "identifier": "MRN-0001",
            "name": {"family": "Quixotic", "given": ["Zebulon"]},
            "gender": "male",
            "birth_date": "1970-01-31",
            "telecom": [
                {"system": "phone", "value": "+44 20 7946 0958"},
                {"system": "email", "value": "zq@example.org"}
            ],
            "address": {"line": ["1 Main St"], "city": "Leeds", "postal_code": "LS1 1AA", "country": "GB"}
        })
    }

    fn parse(value: serde_json::Value) -> Result<NewPatient, Vec<FieldError>> {
        let input: PatientInput = kernel::http::from_value(value)?;
        NewPatient::parse(input, today())
    }

    fn fields(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn a_complete_patient_parses() {
        let patient = parse(input()).unwrap();
        assert_eq!(patient.identifier.as_str(), "MRN-0001");
        assert_eq!(patient.family.folded(), "quixotic");
        assert_eq!(patient.telecom.as_slice().len(), 2);
        assert!(patient.address.is_some());
    }

    #[test]
    fn every_bad_field_is_named() {
        let mut value = input();
        value["identifier"] = json!("has spaces");
        value["name"] = json!({"family": "  ", "given": ["", "Ok"]});
        value["birth_date"] = json!("2026-11-23");
        value["telecom"] = json!([
            {"system": "email", "value": "not-an-email"},
            {"system": "phone", "value": "12"},
            {"system": "phone", "value": "+1 (555) 010-0199"}
        ]);
        value["address"] = json!({"line": [], "city": ""});
        let errors = parse(value).unwrap_err();
        assert_eq!(
            fields(&errors),
            [
                "identifier",
                "name.family",
                "name.given[0]",
                "birth_date",
                "telecom[0].value",
                "telecom[1].value",
                "address.city"
            ]
        );
    }

    #[test]
    fn an_unknown_gender_or_field_is_a_shape_error() {
        let mut value = input();
        value["gender"] = json!("robot");
        value["nickname"] = json!("Zeb");
        let errors = kernel::http::from_value::<PatientInput>(value).unwrap_err();
        let mut named = fields(&errors);
        named.sort_unstable();
        assert_eq!(named, ["gender", "nickname"]);
    }

    #[test]
    fn an_empty_address_is_refused() {
        let mut value = input();
        value["address"] = json!({});
        assert_eq!(fields(&parse(value).unwrap_err()), ["address"]);
    }

    #[test]
    fn a_birth_date_of_today_is_accepted() {
        let mut value = input();
        value["birth_date"] = json!("2026-11-22");
        assert!(parse(value).is_ok());
    }

    #[test]
    fn debug_output_never_shows_personal_data() {
        let patient = parse(input()).unwrap();
        let raw: PatientInput = serde_json::from_value(input()).unwrap();
        let printed = format!(
            "{patient:?} {raw:?} {:?}",
            PatientChanges::from(patient.clone())
        );
        for secret in ["Quixotic", "Zebulon", "7946", "MRN-0001", "1970", "Leeds"] {
            assert!(!printed.contains(secret), "{printed}");
        }
    }

    #[test]
    fn a_patch_distinguishes_a_null_address_from_an_absent_one() {
        let removed: PatientPatch = serde_json::from_value(json!({"address": null})).unwrap();
        let changes = PatientChanges::parse(removed, today()).unwrap();
        assert_eq!(changes.address, Some(None));
        let untouched: PatientPatch = serde_json::from_value(json!({"gender": "other"})).unwrap();
        let changes = PatientChanges::parse(untouched, today()).unwrap();
        assert_eq!(changes.address, None);
        assert_eq!(changes.gender, Some(Gender::Other));
    }

    #[test]
    fn a_patch_names_its_bad_fields() {
        let patch: PatientPatch = serde_json::from_value(json!({
            "name": {"family": ""},
            "birth_date": "2030-01-01",
            "telecom": [{"system": "email", "value": "a@b"}]
        }))
        .unwrap();
        let errors = PatientChanges::parse(patch, today()).unwrap_err();
        assert_eq!(
            fields(&errors),
            ["name.family", "birth_date", "telecom[0].value"]
        );
    }
}
