//! Sealing a patient into a row and opening a row into a patient: every personal column is
//! encrypted with its row and column as associated data, and the identifier and family name
//! get keyed search hashes.

use anyhow::{Context, anyhow};
use chrono::NaiveDate;
use patient_api::{Address, ContactPoint, Gender, HumanName, Patient};

use super::{PatientRow, Store};

/// Purposes of the keyed search hashes.
pub(super) const MRN_HASH: &str = "patient.identifier";
pub(super) const FAMILY_HASH: &str = "patient.family";

/// The associated data of a sealed column: which row and column it belongs to.
fn context(id: &str, column: &str) -> String {
    format!("patients/{id}/{column}")
}

impl Store {
    /// Seals `patient` into a row.
    pub(super) fn seal(&self, patient: &Patient) -> anyhow::Result<PatientRow> {
        let id = patient.id.to_string();
        let v = &self.vault;
        let address_enc = match &patient.address {
            Some(address) => Some(v.seal_str(&context(&id, "address"), &to_json(address)?)?),
            None => None,
        };
        Ok(PatientRow {
            identifier_hash: v.search_hash(MRN_HASH, &patient.identifier),
            identifier_enc: v.seal_str(&context(&id, "identifier"), &patient.identifier)?,
            family_hash: v.search_hash(FAMILY_HASH, &patient.name.family.to_lowercase()),
            name_enc: v.seal_str(&context(&id, "name"), &to_json(&patient.name)?)?,
            gender: patient.gender.as_str().to_owned(),
            birth_date_enc: v.seal_str(
                &context(&id, "birth_date"),
                &patient.birth_date.format("%Y-%m-%d").to_string(),
            )?,
            telecom_enc: v.seal_str(&context(&id, "telecom"), &to_json(&patient.telecom)?)?,
            address_enc,
            version: patient.version,
            created_at: patient.created_at.naive_utc(),
            updated_at: patient.updated_at.naive_utc(),
            deleted_at: None,
            id,
        })
    }

    /// Opens a row into a patient.
    pub(super) fn open(&self, row: &PatientRow) -> anyhow::Result<Patient> {
        let v = &self.vault;
        let id = &row.id;
        let name: HumanName =
            serde_json::from_str(&v.open_str(&context(id, "name"), &row.name_enc)?)
                .with_context(|| format!("patient {id}: the name does not parse"))?;
        let telecom: Vec<ContactPoint> =
            serde_json::from_str(&v.open_str(&context(id, "telecom"), &row.telecom_enc)?)
                .with_context(|| format!("patient {id}: the telecom does not parse"))?;
        let address: Option<Address> = match &row.address_enc {
            Some(sealed) => Some(
                serde_json::from_str(&v.open_str(&context(id, "address"), sealed)?)
                    .with_context(|| format!("patient {id}: the address does not parse"))?,
            ),
            None => None,
        };
        let birth_date = NaiveDate::parse_from_str(
            &v.open_str(&context(id, "birth_date"), &row.birth_date_enc)?,
            "%Y-%m-%d",
        )
        .with_context(|| format!("patient {id}: the birth date does not parse"))?;
        Ok(Patient {
            id: id
                .parse()
                .with_context(|| format!("corrupt patient id {id:?}"))?,
            identifier: v.open_str(&context(id, "identifier"), &row.identifier_enc)?,
            name,
            gender: Gender::parse(&row.gender)
                .map_err(|e| anyhow!("patient {id}: {e} in the database"))?,
            birth_date,
            telecom,
            address,
            version: row.version,
            created_at: row.created_at.and_utc(),
            updated_at: row.updated_at.and_utc(),
        })
    }
}

/// The JSON form of a sealed column.
fn to_json<T: serde::Serialize>(value: &T) -> anyhow::Result<String> {
    // A serde_json error names a position, never the content.
    serde_json::to_string(value).map_err(|e| anyhow!("serialize a sealed column: {e}"))
}
