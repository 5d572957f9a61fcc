//! The patient handlers over HTTP (SQLite; the store is covered on both backends by
//! `records.rs`): the role matrix of every route, roles checked before the body, field
//! errors, ETags and If-Match, the FHIR resource, request ids in the audit trail, and what
//! the OpenAPI document says.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::atomic::{AtomicU32, Ordering};

use actix_web::{
    App,
    body::MessageBody,
    dev::ServiceResponse,
    http::{Method, StatusCode, header},
    middleware::from_fn,
    test::{self as actix_test, TestRequest},
    web,
};
use kernel::{
    auth::{JwtKeys, Role},
    db::Backend,
    http::middleware,
    module::Module,
    testing,
};
use patient::PatientModule;
use serde_json::{Value, json};
use support::*;
use utoipa_actix_web::{AppExt, scope};

fn keys() -> JwtKeys {
    testing::jwt_keys("patient-http-tests")
}

fn bearer(role: Role) -> (header::HeaderName, String) {
    testing::bearer(&keys(), &format!("test-{role}"), role)
}

/// The patient handlers under `/api/v1`, as the application mounts them, behind the
/// request-context middleware (which gives every request its id). A macro: the service's
/// type cannot be named in a function signature.
macro_rules! app {
    ($f:expr) => {{
        let (app, _) = App::new()
            .into_utoipa_app()
            .app_data(keys().authenticator())
            .app_data(web::Data::from($f.patients.clone()))
            .app_data(web::PathConfig::default().error_handler(kernel::http::path_error_handler))
            .service(scope::scope("/api/v1").configure(PatientModule::mount))
            .split_for_parts();
        actix_test::init_service(app.wrap(from_fn(middleware::request_context))).await
    }};
}

struct Reply {
    status: StatusCode,
    headers: header::HeaderMap,
    body: Value,
}

impl Reply {
    fn header(&self, name: header::HeaderName) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or_default()
    }

    fn fields(&self) -> Vec<String> {
        self.body["errors"]
            .as_array()
            .map(|errors| {
                errors
                    .iter()
                    .map(|e| e["field"].as_str().unwrap().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Sends a `TestRequest` to the app; a macro because actix-http's request type, which the
/// app's `Service` bound would have to name, is not a dependency here.
macro_rules! send {
    ($app:expr, $request:expr $(,)?) => {
        reply(actix_test::call_service($app, $request.to_request()).await).await
    };
}

async fn reply<B: MessageBody>(response: ServiceResponse<B>) -> Reply {
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = actix_test::read_body(response).await;
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    Reply {
        status,
        headers,
        body,
    }
}

fn request(method: Method, uri: &str, role: Option<Role>, body: Option<Value>) -> TestRequest {
    let mut request = TestRequest::default().method(method).uri(uri);
    if let Some(role) = role {
        request = request.insert_header(bearer(role));
    }
    if let Some(body) = body {
        request = request.set_json(body);
    }
    request
}

static MRNS: AtomicU32 = AtomicU32::new(0);

fn fresh_mrn() -> String {
    format!("MRN-H{}", MRNS.fetch_add(1, Ordering::SeqCst))
}

fn diagnosis_body(code: &str) -> Value {
    json!({"code": code, "description": "Asthma", "onset": "2020-05-01", "status": "active"})
}

fn treatment_body(diagnosis: Option<&str>) -> Value {
    json!({
        "plan": "Inhaled steroid", "medication": "Budesonide", "dosage": "200 mcg twice daily",
        "period": {"start": "2026-01-01", "end": "2026-06-30"}, "status": "planned",
        "diagnosis_id": diagnosis,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_admits_clinicians_and_admins_and_refuses_everyone_else() {
    let f = fixture(Backend::Sqlite).unwrap();
    let app = app!(f);

    for role in [
        None,
        Some(Role::Customer),
        Some(Role::Service),
        Some(Role::Clinician),
        Some(Role::Admin),
    ] {
        // Fresh records per role, so the delete at the end cannot disturb the others.
        let p = register(&f, someone(&fresh_mrn(), "Matrix")).await;
        let d = f
            .patients
            .record_diagnosis(&clinician(), p.id, diagnosis("J45"))
            .await
            .unwrap();
        let t = f
            .patients
            .plan_treatment(
                &clinician(),
                p.id,
                patient_api::NewTreatment::try_from(
                    serde_json::from_value::<patient_api::TreatmentInput>(treatment_body(None))
                        .unwrap(),
                )
                .unwrap(),
            )
            .await
            .unwrap();
        let patient = format!("/api/v1/patients/{}", p.id);
        let routes: Vec<(Method, String, Option<Value>, StatusCode, bool)> = vec![
            (
                Method::POST,
                "/api/v1/patients".into(),
                Some(zebulon_json(&fresh_mrn())),
                StatusCode::CREATED,
                false,
            ),
            (
                Method::GET,
                "/api/v1/patients".into(),
                None,
                StatusCode::OK,
                false,
            ),
            (Method::GET, patient.clone(), None, StatusCode::OK, false),
            (
                Method::PUT,
                patient.clone(),
                Some(zebulon_json(&fresh_mrn())),
                StatusCode::OK,
                false,
            ),
            (
                Method::PATCH,
                patient.clone(),
                Some(json!({"gender": "other"})),
                StatusCode::OK,
                false,
            ),
            (
                Method::POST,
                format!("{patient}/diagnoses"),
                Some(diagnosis_body("J45.909")),
                StatusCode::CREATED,
                false,
            ),
            (
                Method::GET,
                format!("{patient}/diagnoses"),
                None,
                StatusCode::OK,
                false,
            ),
            (
                Method::GET,
                format!("{patient}/diagnoses/{}", d.id),
                None,
                StatusCode::OK,
                false,
            ),
            (
                Method::POST,
                format!("{patient}/treatments"),
                Some(treatment_body(None)),
                StatusCode::CREATED,
                false,
            ),
            (
                Method::GET,
                format!("{patient}/treatments"),
                None,
                StatusCode::OK,
                false,
            ),
            (
                Method::GET,
                format!("{patient}/treatments/{}", t.id),
                None,
                StatusCode::OK,
                false,
            ),
            (
                Method::GET,
                format!("/api/v1/fhir/Patient/{}", p.id),
                None,
                StatusCode::OK,
                false,
            ),
            (
                Method::GET,
                format!("{patient}/audit"),
                None,
                StatusCode::OK,
                true,
            ),
            (
                Method::DELETE,
                patient.clone(),
                None,
                StatusCode::NO_CONTENT,
                false,
            ),
        ];
        for (method, uri, body, allowed, admin_only) in routes {
            let expected = match role {
                None => StatusCode::UNAUTHORIZED,
                Some(Role::Customer | Role::Service) => StatusCode::FORBIDDEN,
                Some(Role::Clinician) if admin_only => StatusCode::FORBIDDEN,
                Some(_) => allowed,
            };
            // Refused callers send a body that is not even valid: the role is checked first.
            let body = match (expected, body) {
                (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN, Some(_)) => {
                    Some(json!({"not": "a valid body"}))
                }
                (_, body) => body,
            };
            let reply = send!(&app, request(method.clone(), &uri, role, body));
            assert_eq!(
                reply.status, expected,
                "{role:?} {method} {uri}: {}",
                reply.body
            );
            if expected.is_client_error() {
                assert_eq!(
                    reply.header(header::CONTENT_TYPE),
                    "application/problem+json"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registering_answers_201_with_location_and_etag_and_a_duplicate_identifier_409() {
    let f = fixture(Backend::Sqlite).unwrap();
    let app = app!(f);
    let created = send!(
        &app,
        request(
            Method::POST,
            "/api/v1/patients",
            Some(Role::Clinician),
            Some(zebulon_json(MRN)),
        ),
    );
    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(created.header(header::ETAG), "\"1\"");
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        created.header(header::LOCATION),
        format!("/api/v1/patients/{id}")
    );
    assert_eq!(created.body["identifier"], MRN);
    assert_eq!(
        created.body["name"],
        json!({"family": FAMILY, "given": [GIVEN, "Amadeus"]})
    );
    assert_eq!(created.body["birth_date"], BIRTH_DATE);
    assert_eq!(
        created.body["telecom"][0],
        json!({"system": "phone", "value": PHONE})
    );
    assert_eq!(created.body["address"]["postal_code"], "2000");

    let fetched = send!(
        &app,
        request(
            Method::GET,
            &format!("/api/v1/patients/{id}"),
            Some(Role::Admin),
            None
        )
    );
    assert_eq!(fetched.status, StatusCode::OK);
    assert_eq!(fetched.header(header::ETAG), "\"1\"");
    assert_eq!(fetched.body, created.body);

    let duplicate = send!(
        &app,
        request(
            Method::POST,
            "/api/v1/patients",
            Some(Role::Clinician),
            Some(zebulon_json(MRN)),
        ),
    );
    assert_eq!(duplicate.status, StatusCode::CONFLICT);
    assert!(!duplicate.body.to_string().contains(MRN));

    let missing = send!(
        &app,
        request(
            Method::GET,
            &format!("/api/v1/patients/{}", patient_api::PatientId::new()),
            Some(Role::Admin),
            None,
        ),
    );
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let garbage = send!(
        &app,
        request(
            Method::GET,
            "/api/v1/patients/not-a-uuid",
            Some(Role::Admin),
            None
        )
    );
    assert_eq!(garbage.status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_patients_are_422_naming_each_field_without_echoing_values() {
    let f = fixture(Backend::Sqlite).unwrap();
    let app = app!(f);
    let post = |body: Value| {
        request(
            Method::POST,
            "/api/v1/patients",
            Some(Role::Clinician),
            Some(body),
        )
    };

    let mut unknown_gender = zebulon_json(MRN);
    unknown_gender["gender"] = json!("robot");
    let reply = send!(&app, post(unknown_gender));
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.fields(), ["gender"]);

    let tomorrow = (chrono::Utc::now().date_naive() + chrono::Days::new(1)).to_string();
    let mut bad = zebulon_json(MRN);
    bad["birth_date"] = json!(tomorrow);
    bad["name"]["family"] = json!("");
    bad["telecom"] = json!([
        {"system": "phone", "value": PHONE},
        {"system": "email", "value": "zebulon at example"},
        {"system": "phone", "value": "call me"}
    ]);
    let reply = send!(&app, post(bad));
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        reply.fields(),
        [
            "name.family",
            "birth_date",
            "telecom[1].value",
            "telecom[2].value"
        ]
    );
    let text = reply.body.to_string();
    assert!(
        !text.contains("zebulon at example") && !text.contains("call me"),
        "{text}"
    );

    let mut missing = zebulon_json(MRN);
    missing.as_object_mut().unwrap().remove("identifier");
    missing["nickname"] = json!("Zeb");
    let reply = send!(&app, post(missing));
    let mut fields = reply.fields();
    fields.sort();
    assert_eq!(fields, ["identifier", "nickname"]);

    let reply = send!(
        &app,
        request(
            Method::GET,
            "/api/v1/patients?family=&limit=0&colour=red",
            Some(Role::Clinician),
            None,
        ),
    );
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    // The unknown parameter, and what the rules say of the others: all in one answer.
    assert_eq!(reply.fields(), ["colour", "family", "limit"]);
    let reply = send!(
        &app,
        request(
            Method::GET,
            "/api/v1/patients?family=%20&limit=0",
            Some(Role::Clinician),
            None,
        ),
    );
    assert_eq!(reply.fields(), ["family", "limit"]);
    assert!(stored_patients(&f).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_diagnoses_and_treatments_are_422_naming_the_field() {
    let f = fixture(Backend::Sqlite).unwrap();
    let app = app!(f);
    let p = register(&f, zebulon(MRN)).await;
    let q = register(&f, someone("MRN-Q", "Other")).await;
    let theirs = f
        .patients
        .record_diagnosis(&clinician(), q.id, diagnosis("E11.9"))
        .await
        .unwrap();
    let base = format!("/api/v1/patients/{}", p.id);

    let reply = send!(
        &app,
        request(
            Method::POST,
            &format!("{base}/diagnoses"),
            Some(Role::Clinician),
            Some(diagnosis_body("diabetes")),
        ),
    );
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.fields(), ["code"]);

    let mut future = diagnosis_body("E11.9");
    future["onset"] = json!("2999-01-01");
    future["status"] = json!("cured");
    let reply = send!(
        &app,
        request(
            Method::POST,
            &format!("{base}/diagnoses"),
            Some(Role::Clinician),
            Some(future)
        )
    );
    // The shape error and the rule broken by a field of the right shape, in one answer.
    assert_eq!(reply.fields(), ["status", "onset"]);

    let theirs_id = theirs.id.to_string();
    let reply = send!(
        &app,
        request(
            Method::POST,
            &format!("{base}/treatments"),
            Some(Role::Clinician),
            Some(treatment_body(Some(&theirs_id))),
        ),
    );
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.fields(), ["diagnosis_id"]);

    let mut backwards = treatment_body(None);
    backwards["period"] = json!({"start": "2026-02-01", "end": "2026-01-01"});
    backwards["plan"] = json!(" ");
    let reply = send!(
        &app,
        request(
            Method::POST,
            &format!("{base}/treatments"),
            Some(Role::Clinician),
            Some(backwards)
        )
    );
    assert_eq!(reply.fields(), ["plan", "period.end"]);

    let created = send!(
        &app,
        request(
            Method::POST,
            &format!("{base}/diagnoses"),
            Some(Role::Clinician),
            Some(diagnosis_body("j45.909")),
        ),
    );
    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(created.body["code"], "J45.909");
    let did = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        created.header(header::LOCATION),
        format!("{base}/diagnoses/{did}")
    );
    let treated = send!(
        &app,
        request(
            Method::POST,
            &format!("{base}/treatments"),
            Some(Role::Clinician),
            Some(treatment_body(Some(&did))),
        ),
    );
    assert_eq!(treated.status, StatusCode::CREATED);
    assert_eq!(treated.body["diagnosis_id"], did.as_str());
    assert_eq!(
        treated.body["period"],
        json!({"start": "2026-01-01", "end": "2026-06-30"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_and_deletion_honour_if_match_and_a_deleted_patient_is_404_but_audited() {
    let f = fixture(Backend::Sqlite).unwrap();
    let app = app!(f);
    let p = register(&f, zebulon(MRN)).await;
    let uri = format!("/api/v1/patients/{}", p.id);
    let with_if_match = |method: Method, etag: &str, body: Option<Value>| {
        let mut r = TestRequest::default()
            .method(method)
            .uri(&uri)
            .insert_header(bearer(Role::Clinician))
            .insert_header((header::IF_MATCH, etag.to_owned()));
        if let Some(body) = body {
            r = r.set_json(body);
        }
        r
    };

    let stale = send!(
        &app,
        with_if_match(Method::PUT, "\"7\"", Some(zebulon_json(MRN)))
    );
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);
    let patched = send!(
        &app,
        with_if_match(
            Method::PATCH,
            "\"1\"",
            Some(json!({"name": {"given": []}, "address": null}))
        )
    );
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    assert_eq!(patched.header(header::ETAG), "\"2\"");
    assert_eq!(patched.body["name"], json!({"family": FAMILY, "given": []}));
    assert_eq!(patched.body["address"], Value::Null);

    let stale = send!(&app, with_if_match(Method::DELETE, "\"1\"", None));
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);
    let deleted = send!(&app, with_if_match(Method::DELETE, "\"2\"", None));
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);

    for uri in [
        uri.clone(),
        format!("{uri}/diagnoses"),
        format!("{uri}/treatments"),
        format!("/api/v1/fhir/Patient/{}", p.id),
    ] {
        let reply = send!(&app, request(Method::GET, &uri, Some(Role::Admin), None));
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{uri}");
    }
    let trail = send!(
        &app,
        request(
            Method::GET,
            &format!("{uri}/audit"),
            Some(Role::Admin),
            None
        )
    );
    assert_eq!(trail.status, StatusCode::OK);
    let actions: Vec<&str> = trail.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["patient.delete", "patient.update", "patient.create"]
    );
    assert_eq!(trail.body["next"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fhir_endpoint_serves_an_r4_patient_as_fhir_json() {
    let f = fixture(Backend::Sqlite).unwrap();
    let app = app!(f);
    let p = register(&f, zebulon(MRN)).await;
    let reply = send!(
        &app,
        request(
            Method::GET,
            &format!("/api/v1/fhir/Patient/{}", p.id),
            Some(Role::Clinician),
            None
        )
    );
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header(header::CONTENT_TYPE), "application/fhir+json");
    assert_eq!(reply.header(header::ETAG), "W/\"1\"");
    let r = &reply.body;
    assert_eq!(r["resourceType"], "Patient");
    assert_eq!(r["id"], p.id.to_string());
    assert_eq!(r["active"], true);
    assert_eq!(
        r["identifier"],
        json!([{"system": "urn:tessera:mrn", "value": MRN}])
    );
    assert_eq!(
        r["name"],
        json!([{"family": FAMILY, "given": [GIVEN, "Amadeus"]}])
    );
    assert_eq!(r["gender"], "male");
    assert_eq!(r["birthDate"], BIRTH_DATE);
    assert_eq!(
        r["telecom"],
        json!([{"system": "phone", "value": PHONE}, {"system": "email", "value": EMAIL}])
    );
    assert_eq!(
        r["address"],
        json!([{"line": [STREET], "city": "Sydney", "postalCode": "2000", "country": "AU"}])
    );
    let last_updated = r["meta"]["lastUpdated"].as_str().unwrap();
    let parsed = chrono::DateTime::parse_from_rfc3339(last_updated).unwrap();
    assert!(last_updated.ends_with('Z') && last_updated.len() == "2026-11-22T10:00:00.123Z".len());
    assert_eq!(parsed.timestamp_millis(), p.updated_at.timestamp_millis());

    let bare = register(&f, someone("MRN-BARE", "Bare")).await;
    let reply = send!(
        &app,
        request(
            Method::GET,
            &format!("/api/v1/fhir/Patient/{}", bare.id),
            Some(Role::Admin),
            None
        )
    );
    let text = reply.body.to_string();
    assert!(!text.contains("null") && !text.contains("[]"), "{text}");
    assert_eq!(reply.body["name"], json!([{"family": "Bare"}]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn searches_work_over_http_and_the_audit_trail_carries_the_request_id() {
    let f = fixture(Backend::Sqlite).unwrap();
    let app = app!(f);
    let p = register(&f, zebulon(MRN)).await;
    register(&f, someone("MRN-2", "Smith")).await;

    let search = TestRequest::get()
        .uri("/api/v1/patients?family=QUIXOTIC&limit=5")
        .insert_header(bearer(Role::Clinician))
        .insert_header(("x-request-id", "trace-me-123"));
    let reply = send!(&app, search);
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(reply.body["items"][0]["id"], p.id.to_string());
    assert_eq!(reply.body["next"], Value::Null);
    assert_eq!(
        reply.header(header::HeaderName::from_static("x-request-id")),
        "trace-me-123"
    );

    let read = TestRequest::get()
        .uri(&format!("/api/v1/patients/{}", p.id))
        .insert_header(bearer(Role::Clinician))
        .insert_header(("x-request-id", "read-42"));
    assert_eq!(send!(&app, read).status, StatusCode::OK);

    let trail = send!(
        &app,
        request(
            Method::GET,
            &format!("/api/v1/patients/{}/audit?limit=1", p.id),
            Some(Role::Admin),
            None
        )
    );
    let entry = &trail.body["items"][0];
    assert_eq!(entry["action"], "patient.read");
    assert_eq!(entry["actor"], "test-clinician");
    assert_eq!(entry["role"], "clinician");
    assert_eq!(entry["request_id"], "read-42");
    assert_eq!(entry["resource"], format!("Patient/{}", p.id));
    assert!(trail.body["next"].is_string());

    let list = stored_audit(&f)
        .into_iter()
        .find(|e| e.action == "patient.list")
        .unwrap();
    assert_eq!(list.request_id, "trace-me-123");
    assert_eq!(list.resource, "Patient?family=[redacted]&limit=5");
}

#[test]
fn the_openapi_document_describes_every_operation() {
    let (_, api) = App::new()
        .into_utoipa_app()
        .service(scope::scope("/api/v1").configure(PatientModule::mount))
        .split_for_parts();
    let doc = serde_json::to_value(&api).unwrap();
    let cases = [
        ("/api/v1/patients", "post", "create_patient"),
        ("/api/v1/patients", "get", "list_patients"),
        ("/api/v1/patients/{id}", "get", "get_patient"),
        ("/api/v1/patients/{id}", "put", "replace_patient"),
        ("/api/v1/patients/{id}", "patch", "patch_patient"),
        ("/api/v1/patients/{id}", "delete", "delete_patient"),
        (
            "/api/v1/patients/{id}/diagnoses",
            "post",
            "create_diagnosis",
        ),
        ("/api/v1/patients/{id}/diagnoses", "get", "list_diagnoses"),
        (
            "/api/v1/patients/{id}/diagnoses/{did}",
            "get",
            "get_diagnosis",
        ),
        (
            "/api/v1/patients/{id}/treatments",
            "post",
            "create_treatment",
        ),
        ("/api/v1/patients/{id}/treatments", "get", "list_treatments"),
        (
            "/api/v1/patients/{id}/treatments/{tid}",
            "get",
            "get_treatment",
        ),
        ("/api/v1/patients/{id}/audit", "get", "list_patient_audit"),
        ("/api/v1/fhir/Patient/{id}", "get", "get_fhir_patient"),
    ];
    let operations: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|p| p.as_object().unwrap().len())
        .sum();
    assert_eq!(operations, cases.len(), "no operation is left undescribed");
    for (path, method, id) in cases {
        let op = &doc["paths"][path][method];
        assert_eq!(op["operationId"], id, "{method} {path}");
        let tag = if id == "get_fhir_patient" {
            "fhir"
        } else {
            "patient"
        };
        assert_eq!(op["tags"], json!([tag]), "{id}");
        let roles = if id == "list_patient_audit" {
            json!(["admin"])
        } else {
            json!(["clinician", "admin"])
        };
        assert_eq!(op["security"], json!([{ "bearer": roles }]), "{id}");
        assert!(!op["summary"].is_null(), "{id}");
        assert!(
            op["responses"]["401"].is_object() && op["responses"]["403"].is_object(),
            "{id}"
        );
    }
    let fhir = &doc["paths"]["/api/v1/fhir/Patient/{id}"]["get"]["responses"]["200"]["content"];
    assert!(fhir["application/fhir+json"].is_object(), "{fhir}");
    for schema in [
        "PatientInput",
        "HumanName",
        "ContactPoint",
        "Address",
        "DiagnosisInput",
        "TreatmentInput",
        "FhirPatient",
    ] {
        let properties = &doc["components"]["schemas"][schema]["properties"];
        for (name, property) in properties.as_object().unwrap_or_else(|| panic!("{schema}")) {
            let documented = property.get("description").is_some()
                || property.get("$ref").is_some()
                || property["allOf"].is_array()
                || property["oneOf"].is_array();
            assert!(documented, "{schema}.{name} has no description");
        }
    }
}
