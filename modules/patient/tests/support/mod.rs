//! What the patient tests share: a fixture with its own database, callers, sample records
//! whose personal data is easy to search for in raw bytes, and raw-SQL helpers.
#![allow(dead_code, reason = "each test binary uses a part of it")]

use std::{collections::BTreeMap, sync::Arc};

use base64::{Engine, engine::general_purpose::STANDARD};
use diesel::{QueryableByName, RunQueryDsl, sql_types::Text};
use kernel::{
    auth::{Principal, Role},
    bus::{self, Bus},
    config::{AppEnv, Settings},
    db::{Backend, Db},
    module::{Context, Module},
    testing::{TestDatabase, published_events},
};
use patient::{PatientModule, PatientSettings};
use patient_api::{
    AccessContext, DiagnosisInput, DiagnosisStatus, NewDiagnosis, NewPatient, Patient,
    PatientInput, PatientService,
};
use serde_json::json;

/// The personal data of [`zebulon`]: none of it may appear at rest, in events or in logs.
pub const FAMILY: &str = "Quixotic";
pub const GIVEN: &str = "Zebulon";
pub const PHONE: &str = "+44 20 7946 0958";
pub const EMAIL: &str = "zebulon.q@example.org";
pub const MRN: &str = "MRN-ZQ-4471";
pub const STREET: &str = "42 Wallaby Way";
pub const BIRTH_DATE: &str = "1937-06-18";

/// Strings that must never be found outside the API's responses.
pub const PERSONAL: [&str; 8] = [
    FAMILY,
    GIVEN,
    PHONE,
    "7946 0958",
    EMAIL,
    MRN,
    STREET,
    BIRTH_DATE,
];

pub struct Fixture {
    pub patients: Arc<dyn PatientService>,
    pub bus: Bus,
    pub db: Db,
    pub settings: PatientSettings,
    pub database: TestDatabase,
}

impl Fixture {
    /// Another service on the same database with other keys (a restart after rotation).
    pub fn restarted_with(&self, settings: &PatientSettings) -> Arc<dyn PatientService> {
        service(&self.bus, settings)
    }
}

/// The patient module's service on `bus`, with `settings`.
pub fn service(bus: &Bus, settings: &PatientSettings) -> Arc<dyn PatientService> {
    let context = Context {
        bus: bus.clone(),
        settings: settings.clone(),
    };
    PatientModule::new(context, ()).unwrap().service()
}

/// Keys `ids` (each 32 bytes derived from its name), the last one active.
pub fn patient_keys(ids: &[&str]) -> PatientSettings {
    PatientSettings {
        encryption_keys: ids
            .iter()
            .map(|id| {
                let mut key = [0u8; 32];
                for (i, b) in id.bytes().cycle().take(32).enumerate() {
                    key[i] = b.wrapping_add(i as u8);
                }
                ((*id).to_owned(), STANDARD.encode(key))
            })
            .collect::<BTreeMap<_, _>>(),
        active_key: ids.last().unwrap().to_string(),
        search_key: STANDARD.encode([42u8; 32]),
    }
}

pub fn fixture_with(backend: Backend, settings: PatientSettings) -> Option<Fixture> {
    let database = TestDatabase::new(backend)?;
    let db = Db::connect(&database.settings()).unwrap();
    db.migrate(&[bus::MIGRATIONS, patient::MIGRATIONS]).unwrap();
    let bus = Bus::new(db.clone(), Settings::defaults(AppEnv::Test).unwrap().bus);
    Some(Fixture {
        patients: service(&bus, &settings),
        bus,
        db,
        settings,
        database,
    })
}

pub fn fixture(backend: Backend) -> Option<Fixture> {
    fixture_with(backend, PatientSettings::default())
}

pub fn principal(sub: &str, role: Role) -> Principal {
    Principal {
        sub: sub.into(),
        role,
    }
}

pub fn clinician() -> AccessContext {
    AccessContext::new(principal("dr-who", Role::Clinician), "req-clinician")
}

pub fn admin() -> AccessContext {
    AccessContext::new(principal("root", Role::Admin), "req-admin")
}

/// The body of a patient like Zebulon, with identifier `mrn`.
pub fn zebulon_json(mrn: &str) -> serde_json::Value {
    json!({
        "identifier": mrn,
        "name": {"family": FAMILY, "given": [GIVEN, "Amadeus"]},
        "gender": "male",
        "birth_date": BIRTH_DATE,
        "telecom": [
            {"system": "phone", "value": PHONE},
            {"system": "email", "value": EMAIL}
        ],
        "address": {"line": [STREET], "city": "Sydney", "postal_code": "2000", "country": "AU"}
    })
}

pub fn input(value: serde_json::Value) -> NewPatient {
    let input: PatientInput = kernel::http::from_value(value).unwrap();
    NewPatient::try_from(input).unwrap()
}

pub fn zebulon(mrn: &str) -> NewPatient {
    input(zebulon_json(mrn))
}

/// A patient with a family name of our choosing and no contact data.
pub fn someone(mrn: &str, family: &str) -> NewPatient {
    input(json!({
        "identifier": mrn,
        "name": {"family": family},
        "gender": "unknown",
        "birth_date": "2001-02-03",
    }))
}

pub async fn register(f: &Fixture, patient: NewPatient) -> Patient {
    f.patients.register(&clinician(), patient).await.unwrap()
}

pub fn diagnosis(code: &str) -> NewDiagnosis {
    NewDiagnosis::try_from(DiagnosisInput {
        code: code.into(),
        description: "Type 2 diabetes mellitus without complications".into(),
        onset: chrono::NaiveDate::from_ymd_opt(2024, 3, 1).unwrap(),
        status: DiagnosisStatus::Active,
    })
    .unwrap()
}

/// Every event in the outbox, as one JSON text.
pub fn events_text(f: &Fixture) -> String {
    serde_json::to_string(&published_events(&f.db)).unwrap()
}

/// `(type, subject)` of every published event, oldest first.
pub fn event_kinds(f: &Fixture) -> Vec<(String, String)> {
    published_events(&f.db)
        .into_iter()
        .map(|e| (e.kind, e.subject))
        .collect()
}

#[derive(Debug, QueryableByName)]
pub struct StoredPatient {
    #[diesel(sql_type = Text)]
    pub id: String,
    #[diesel(sql_type = Text)]
    pub identifier_hash: String,
    #[diesel(sql_type = Text)]
    pub identifier_enc: String,
    #[diesel(sql_type = Text)]
    pub family_hash: String,
    #[diesel(sql_type = Text)]
    pub name_enc: String,
    #[diesel(sql_type = Text)]
    pub gender: String,
    #[diesel(sql_type = Text)]
    pub birth_date_enc: String,
    #[diesel(sql_type = Text)]
    pub telecom_enc: String,
    #[diesel(sql_type = diesel::sql_types::Nullable<Text>)]
    pub address_enc: Option<String>,
}

impl StoredPatient {
    /// Every stored text value, for searching.
    pub fn text(&self) -> String {
        format!("{self:?}")
    }
}

/// The `patients` rows exactly as stored.
pub fn stored_patients(f: &Fixture) -> Vec<StoredPatient> {
    let mut conn = f.db.get().unwrap();
    diesel::sql_query(
        "SELECT id, identifier_hash, identifier_enc, family_hash, name_enc, gender, \
         birth_date_enc, telecom_enc, address_enc FROM patients ORDER BY id",
    )
    .load(&mut *conn)
    .unwrap()
}

#[derive(Debug, Clone, QueryableByName)]
pub struct StoredAudit {
    #[diesel(sql_type = Text)]
    pub actor: String,
    #[diesel(sql_type = Text)]
    pub role: String,
    #[diesel(sql_type = Text)]
    pub action: String,
    #[diesel(sql_type = Text)]
    pub resource: String,
    #[diesel(sql_type = diesel::sql_types::Nullable<Text>)]
    pub patient_id: Option<String>,
    #[diesel(sql_type = Text)]
    pub request_id: String,
}

/// The whole audit table, oldest first.
pub fn stored_audit(f: &Fixture) -> Vec<StoredAudit> {
    let mut conn = f.db.get().unwrap();
    diesel::sql_query(
        "SELECT actor, role, action, resource, patient_id, request_id FROM patient_audit \
         ORDER BY id",
    )
    .load(&mut *conn)
    .unwrap()
}

/// Fails with the offending string when any of [`PERSONAL`] is in `text`.
#[track_caller]
pub fn assert_no_personal_data(what: &str, text: &str) {
    for secret in PERSONAL {
        assert!(
            !text.contains(secret),
            "{what} contains personal data ({secret:?})"
        );
    }
    assert!(
        !text.to_lowercase().contains(&FAMILY.to_lowercase()),
        "{what} contains the family name"
    );
}
