//! The FHIR R4 `Patient` resource (<https://hl7.org/fhir/R4/patient.html>) a patient is
//! served as. FHIR forbids empty arrays, empty strings and nulls, so absent values and empty
//! lists are left out rather than written empty.

use chrono::{NaiveDate, SecondsFormat};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{Gender, Patient, TelecomSystem, parse::redacted_debug};

/// The media type of FHIR's JSON format.
pub const FHIR_JSON: &str = "application/fhir+json";

/// The identifier system of Tessera's medical record numbers.
pub const MRN_SYSTEM: &str = "urn:tessera:mrn";

/// A FHIR R4 `Patient` resource.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FhirPatient {
    /// Always `Patient`.
    #[schema(example = "Patient")]
    pub resource_type: String,
    /// The patient id.
    pub id: String,
    /// Version and last change of the record.
    pub meta: FhirMeta,
    /// The medical record number, with system `urn:tessera:mrn`.
    pub identifier: Vec<FhirIdentifier>,
    /// Always true: deleted patients are not served.
    pub active: bool,
    /// The patient's name.
    pub name: Vec<FhirHumanName>,
    /// Phone numbers and email addresses; absent when there are none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub telecom: Vec<FhirContactPoint>,
    /// Administrative gender.
    pub gender: Gender,
    /// Date of birth (`YYYY-MM-DD`).
    pub birth_date: NaiveDate,
    /// Postal address; absent when there is none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub address: Vec<FhirAddress>,
}

/// `Resource.meta`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FhirMeta {
    /// The record's revision (its ETag without quotes).
    pub version_id: String,
    /// When the record last changed: an instant with milliseconds and `Z`.
    #[schema(example = "2026-11-22T10:00:00.123Z")]
    pub last_updated: String,
}

/// `Identifier`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FhirIdentifier {
    /// The namespace of the value.
    #[schema(example = "urn:tessera:mrn")]
    pub system: String,
    /// The identifier.
    pub value: String,
}

/// `HumanName`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FhirHumanName {
    /// Family name.
    pub family: String,
    /// Given names; absent when there are none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub given: Vec<String>,
}

/// `ContactPoint`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FhirContactPoint {
    /// `phone` or `email`.
    pub system: TelecomSystem,
    /// The number or address.
    pub value: String,
}

/// `Address`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FhirAddress {
    /// Street lines; absent when there are none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub line: Vec<String>,
    /// City.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    /// Postal code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    /// Country.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
}

redacted_debug!(
    FhirPatient,
    FhirIdentifier,
    FhirHumanName,
    FhirContactPoint,
    FhirAddress
);

impl From<&Patient> for FhirPatient {
    fn from(p: &Patient) -> Self {
        Self {
            resource_type: "Patient".into(),
            id: p.id.to_string(),
            meta: FhirMeta {
                version_id: p.version.to_string(),
                last_updated: p.updated_at.to_rfc3339_opts(SecondsFormat::Millis, true),
            },
            identifier: vec![FhirIdentifier {
                system: MRN_SYSTEM.into(),
                value: p.identifier.clone(),
            }],
            active: true,
            name: vec![FhirHumanName {
                family: p.name.family.clone(),
                given: p.name.given.clone(),
            }],
            telecom: p
                .telecom
                .iter()
                .map(|t| FhirContactPoint {
                    system: t.system,
                    value: t.value.clone(),
                })
                .collect(),
            gender: p.gender,
            birth_date: p.birth_date,
            address: p
                .address
                .iter()
                .map(|a| FhirAddress {
                    line: a.line.clone(),
                    city: a.city.clone(),
                    postal_code: a.postal_code.clone(),
                    country: a.country.clone(),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Address, ContactPoint, HumanName, PatientId};
    use chrono::{TimeZone, Utc};
    use serde_json::json;

    fn patient() -> Patient {
        let at = Utc
            .with_ymd_and_hms(2026, 11, 22, 10, 0, 0)
            .unwrap()
            .checked_add_signed(chrono::Duration::microseconds(123_456))
            .unwrap();
        Patient {
            id: PatientId::new(),
            identifier: "MRN-1".into(),
            name: HumanName {
                family: "Quixotic".into(),
                given: vec!["Zebulon".into()],
            },
            gender: Gender::Male,
            birth_date: NaiveDate::from_ymd_opt(1970, 1, 31).unwrap(),
            telecom: vec![ContactPoint {
                system: TelecomSystem::Phone,
                value: "+44 20 7946 0958".into(),
            }],
            address: Some(Address {
                line: vec!["1 Main St".into()],
                city: Some("Leeds".into()),
                postal_code: None,
                country: Some("GB".into()),
            }),
            version: 3,
            created_at: at,
            updated_at: at,
        }
    }

    #[test]
    fn a_patient_becomes_an_r4_patient_resource() {
        let p = patient();
        let resource = serde_json::to_value(FhirPatient::from(&p)).unwrap();
        assert_eq!(
            resource,
            json!({
                "resourceType": "Patient",
                "id": p.id.to_string(),
                "meta": {"versionId": "3", "lastUpdated": "2026-11-22T10:00:00.123Z"},
                "identifier": [{"system": "urn:tessera:mrn", "value": "MRN-1"}],
                "active": true,
                "name": [{"family": "Quixotic", "given": ["Zebulon"]}],
                "telecom": [{"system": "phone", "value": "+44 20 7946 0958"}],
                "gender": "male",
                "birthDate": "1970-01-31",
                "address": [{"line": ["1 Main St"], "city": "Leeds", "country": "GB"}],
            })
        );
    }

    #[test]
    fn empty_lists_and_absent_values_are_left_out() {
        let mut p = patient();
        p.name.given.clear();
        p.telecom.clear();
        p.address = None;
        let resource = serde_json::to_value(FhirPatient::from(&p)).unwrap();
        let text = resource.to_string();
        assert!(!text.contains("null") && !text.contains("[]"), "{text}");
        assert!(resource.get("telecom").is_none() && resource.get("address").is_none());
        assert_eq!(resource["name"], json!([{"family": "Quixotic"}]));
    }
}
