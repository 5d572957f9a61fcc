//! Clinical records through the composed app: FHIR R4 validity checked by an independent
//! validator, audit entries carrying the request id, and no personal data in the idempotency
//! store.

use std::process::Command;

use kernel::auth::Role;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, on_both_backends};

fn patient(mrn: &str) -> Value {
    json!({
        "identifier": mrn,
        "name": {"family": "Quixotic", "given": ["Zebulon", "Amadeus"]},
        "gender": "male",
        "birth_date": "1961-07-14",
        "telecom": [{"system": "phone", "value": "+44 20 7946 0958"}, {"system": "email", "value": "zq@example.org"}],
        "address": {"line": ["221B Baker Street"], "city": "London", "postal_code": "NW1 6XE", "country": "GB"}
    })
}

impl TestApp {
    fn clinician(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(self.token(Role::Clinician))
    }
}

fn validate_fhir(document: &Value) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("patient.json");
    std::fs::write(&file, serde_json::to_vec(document).unwrap()).unwrap();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/fhir-validate");
    let out = Command::new(script)
        .arg(&file)
        .output()
        .expect("run scripts/fhir-validate");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

on_both_backends!(
    the_fhir_view_is_a_valid_r4_patient,
    every_access_is_audited_with_its_request_id,
    patient_bodies_never_reach_the_idempotency_store,
);

async fn the_fhir_view_is_a_valid_r4_patient(app: TestApp) {
    let created: Value = app
        .clinician(Method::POST, "/api/v1/patients")
        .json(&patient("MRN-FHIR-1"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap();
    let response = app
        .clinician(Method::GET, &format!("/api/v1/fhir/Patient/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/fhir+json")
    );
    let fhir: Value = response.json().await.unwrap();
    assert_eq!(fhir["resourceType"], "Patient");
    assert_eq!(fhir["id"], id);
    assert_eq!(fhir["birthDate"], "1961-07-14");
    assert_eq!(fhir["name"][0]["family"], "Quixotic");
    assert!(fhir["meta"]["lastUpdated"].is_string());

    let (valid, report) = validate_fhir(&fhir);
    assert!(valid, "{report}");
    // The validator is not a rubber stamp: a broken resource fails it.
    let mut broken = fhir.clone();
    broken["gender"] = json!("alien");
    broken["telecom"] = json!([]);
    let (valid, report) = validate_fhir(&broken);
    assert!(!valid, "{report}");
}

async fn every_access_is_audited_with_its_request_id(app: TestApp) {
    let created = app
        .clinician(Method::POST, "/api/v1/patients")
        .header("x-request-id", "audit-create-1")
        .json(&patient("MRN-AUDIT-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let id = created.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.clinician(Method::GET, &format!("/api/v1/patients/{id}"))
        .header("x-request-id", "audit-read-1")
        .send()
        .await
        .unwrap();
    app.clinician(Method::GET, &format!("/api/v1/fhir/Patient/{id}"))
        .header("x-request-id", "audit-fhir-1")
        .send()
        .await
        .unwrap();

    let audit = app
        .admin(Method::GET, &format!("/api/v1/patients/{id}/audit"))
        .send()
        .await
        .unwrap();
    assert_eq!(audit.status(), StatusCode::OK);
    let audit: Value = audit.json().await.unwrap();
    let entries = audit["items"].as_array().unwrap();
    for (request_id, action) in [
        ("audit-create-1", "patient.create"),
        ("audit-read-1", "patient.read"),
        ("audit-fhir-1", "fhir.read"),
    ] {
        let entry = entries
            .iter()
            .find(|e| e["request_id"] == request_id)
            .unwrap_or_else(|| panic!("no audit entry for {request_id}: {audit}"));
        assert_eq!(entry["action"], action);
        assert_eq!(entry["actor"], "test-clinician");
        assert_eq!(entry["role"], "clinician");
        assert_eq!(entry["patient_id"], id.as_str());
    }
    let as_clinician = app
        .clinician(Method::GET, &format!("/api/v1/patients/{id}/audit"))
        .send()
        .await
        .unwrap();
    assert_eq!(as_clinician.status(), StatusCode::FORBIDDEN);
    let as_customer = app
        .client
        .get(app.url(&format!("/api/v1/patients/{id}")))
        .bearer_auth(app.token(Role::Customer))
        .send()
        .await
        .unwrap();
    assert_eq!(as_customer.status(), StatusCode::FORBIDDEN);
}

async fn patient_bodies_never_reach_the_idempotency_store(app: TestApp) {
    let send = || {
        app.clinician(Method::POST, "/api/v1/patients")
            .header("Idempotency-Key", "patient-key")
            .json(&patient("MRN-IDEM-1"))
            .send()
    };
    assert_eq!(send().await.unwrap().status(), StatusCode::CREATED);
    // Not replayed: the key is ignored on clinical routes, so the duplicate MRN is refused.
    let second = send().await.unwrap();
    assert_eq!(second.status(), StatusCode::CONFLICT);
    assert!(second.headers().get("idempotent-replayed").is_none());
    if let Some(path) = app.sqlite_path() {
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend(std::fs::read(path.with_extension("db-wal")).unwrap_or_default());
        for secret in ["Quixotic", "Zebulon", "7946 0958", "Baker Street"] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{secret} stored in plaintext"
            );
        }
    }
}
