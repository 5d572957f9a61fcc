//! Clinical records through the composed app: FHIR R4 validity checked by an independent
//! validator (the `fhir.resources` package, plus the FHIR rules it does not enforce, each
//! error naming which of the two found it), audit entries carrying the request id, and no
//! personal data in plaintext anywhere in the database.

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
    // The validator is not a rubber stamp. fhir.resources itself rejects a malformed resource…
    let mut malformed = fhir.clone();
    malformed["birthDate"] = json!("14/07/1961");
    let (valid, report) = validate_fhir(&malformed);
    assert!(!valid, "{report}");
    assert!(report.contains("fhir.resources: "), "{report}");
    assert!(report.contains("birthDate"), "{report}");
    // …and the rules it does not enforce (value sets, no empty arrays), which the script adds,
    // reject what it lets through.
    let mut breaking_fhir_rules = fhir.clone();
    breaking_fhir_rules["gender"] = json!("alien");
    breaking_fhir_rules["telecom"] = json!([]);
    let (valid, report) = validate_fhir(&breaking_fhir_rules);
    assert!(!valid, "{report}");
    assert!(!report.contains("fhir.resources: "), "{report}");
    assert!(
        report.contains("extra rule: $.gender: 'alien' is not one of"),
        "{report}"
    );
    assert!(
        report.contains("extra rule: $.telecom: empty arrays are not allowed"),
        "{report}"
    );
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
    // The whole database, wherever the app may have put it: the SQLite file and its WAL byte
    // for byte, or every row of every table on PostgreSQL. The audit trail's actor is stored
    // in plaintext: finding it shows that the scan reads what the app wrote.
    let stored = match app.sqlite_path() {
        Some(path) => {
            let mut bytes = std::fs::read(&path).unwrap();
            bytes.extend(std::fs::read(path.with_extension("db-wal")).unwrap_or_default());
            bytes
        }
        None => postgres_rows(app.settings.database.url.clone()).await,
    };
    let contains = |needle: &str| stored.windows(needle.len()).any(|w| w == needle.as_bytes());
    assert!(contains("test-clinician"), "the scan sees no audit entry");
    for secret in ["Quixotic", "Zebulon", "7946 0958", "Baker Street"] {
        assert!(!contains(secret), "{secret} stored in plaintext");
    }
}

/// Every row of every table of the PostgreSQL database at `url`, as JSON text, one row a
/// line. `bytea` columns (the idempotency store's bodies) show their printable bytes as they
/// are.
async fn postgres_rows(url: String) -> Vec<u8> {
    use diesel::{QueryableByName, RunQueryDsl, sql_query, sql_types::Text};

    #[derive(QueryableByName)]
    struct Line {
        #[diesel(sql_type = Text)]
        line: String,
    }

    tokio::task::spawn_blocking(move || {
        let mut conn = kernel::db::establish_postgres(&url).unwrap();
        sql_query("SET bytea_output = 'escape'")
            .execute(&mut conn)
            .unwrap();
        let tables: Vec<Line> = sql_query(
            "SELECT quote_ident(table_schema) || '.' || quote_ident(table_name) AS line \
             FROM information_schema.tables \
             WHERE table_type = 'BASE TABLE' \
               AND table_schema NOT IN ('pg_catalog', 'information_schema')",
        )
        .load(&mut conn)
        .unwrap();
        assert!(
            tables.iter().any(|t| t.line.ends_with(".patients")),
            "no patients table among the scanned ones"
        );
        let mut stored = Vec::new();
        for table in tables {
            let rows: Vec<Line> = sql_query(format!(
                "SELECT row_to_json(t)::text AS line FROM {} t",
                table.line
            ))
            .load(&mut conn)
            .unwrap();
            for row in rows {
                stored.extend(row.line.as_bytes());
                stored.push(b'\n');
            }
        }
        stored
    })
    .await
    .unwrap()
}
