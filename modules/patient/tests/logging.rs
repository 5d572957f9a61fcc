//! Logs and spans carry no personal data: every span field and event of a whole session of
//! patient requests — successes, refusals, conflicts, validation failures and a server
//! error with its cause chain — is captured and searched for the patient's data.
//!
//! One test in its own binary, because it installs the process-wide tracing subscriber
//! (the work runs on tokio's worker and blocking threads, which a thread-local one misses).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{
    fmt::{Debug, Write as _},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use actix_web::{
    App,
    http::{StatusCode, header},
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
use serde_json::json;
use support::*;
use tracing::{
    Event, Metadata, Subscriber,
    field::{Field, Visit},
    span,
};
use utoipa_actix_web::{AppExt, scope};

/// Writes every span (name and fields), every recorded value and every event into one text.
struct Capture {
    next_id: AtomicU64,
    text: Arc<Mutex<String>>,
}

struct Fields<'a>(&'a mut String);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        let _ = write!(self.0, " {}={value:?}", field.name());
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, attrs: &span::Attributes<'_>) -> span::Id {
        let mut text = self.text.lock().unwrap();
        let _ = write!(text, "\nspan {}:", attrs.metadata().name());
        attrs.record(&mut Fields(&mut text));
        span::Id::from_u64(self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    fn record(&self, _: &span::Id, values: &span::Record<'_>) {
        let mut text = self.text.lock().unwrap();
        text.push_str("\nrecord:");
        values.record(&mut Fields(&mut text));
    }

    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut text = self.text.lock().unwrap();
        let _ = write!(text, "\nevent {}:", event.metadata().level());
        event.record(&mut Fields(&mut text));
    }

    fn enter(&self, _: &span::Id) {}

    fn exit(&self, _: &span::Id) {}
}

fn keys() -> JwtKeys {
    testing::jwt_keys("patient-logging-tests")
}

fn bearer(role: Role) -> (header::HeaderName, String) {
    testing::bearer(&keys(), &format!("test-{role}"), role)
}

macro_rules! app {
    ($patients:expr) => {{
        let (app, _) = App::new()
            .into_utoipa_app()
            .app_data(keys().authenticator())
            .app_data(web::Data::from($patients))
            .service(scope::scope("/api/v1").configure(PatientModule::mount))
            .split_for_parts();
        actix_test::init_service(app.wrap(from_fn(middleware::request_context))).await
    }};
}

macro_rules! call {
    ($app:expr, $method:ident, $uri:expr, $role:expr $(, $body:expr)?) => {{
        let request = TestRequest::$method().uri(AsRef::<str>::as_ref(&$uri)).insert_header(bearer($role));
        $(let request = request.set_json($body);)?
        actix_test::call_service(&$app, request.to_request()).await.status()
    }};
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_log_line_or_span_carries_personal_data() {
    let text = Arc::new(Mutex::new(String::new()));
    tracing::subscriber::set_global_default(Capture {
        next_id: AtomicU64::new(1),
        text: text.clone(),
    })
    .unwrap();

    let f = fixture_with(Backend::Sqlite, patient_keys(&["k1"])).unwrap();
    let app = app!(f.patients.clone());
    let clinician = Role::Clinician;

    let created = actix_test::call_service(
        &app,
        TestRequest::post()
            .uri("/api/v1/patients")
            .insert_header(bearer(clinician))
            .set_json(zebulon_json(MRN))
            .to_request(),
    )
    .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let body: serde_json::Value = actix_test::read_body_json(created).await;
    let id = body["id"].as_str().unwrap().to_owned();
    let patient = format!("/api/v1/patients/{id}");

    let statuses = [
        call!(app, get, patient, clinician),
        call!(
            app,
            get,
            format!("/api/v1/patients?family={FAMILY}&identifier={MRN}"),
            clinician
        ),
        call!(app, put, patient, clinician, zebulon_json(MRN)),
        call!(
            app,
            patch,
            patient,
            clinician,
            json!({"telecom": [{"system": "phone", "value": PHONE}]})
        ),
        call!(app, get, format!("/api/v1/fhir/Patient/{id}"), clinician),
        call!(
            app,
            post,
            format!("{patient}/diagnoses"),
            clinician,
            json!({"code": "E11.9", "description": format!("Seen by {GIVEN}'s GP"), "onset": "2020-01-01", "status": "active"})
        ),
        call!(app, get, format!("{patient}/diagnoses"), clinician),
        call!(app, get, format!("{patient}/audit"), Role::Admin),
        // Refusals, a conflict and validation failures.
        call!(app, get, patient, Role::Customer),
        call!(app, post, "/api/v1/patients", clinician, zebulon_json(MRN)),
        call!(
            app,
            post,
            "/api/v1/patients",
            clinician,
            json!({"identifier": MRN, "name": {"family": FAMILY}, "gender": "robot", "birth_date": BIRTH_DATE})
        ),
        call!(
            app,
            post,
            "/api/v1/patients",
            clinician,
            json!({"identifier": MRN, "name": {"family": FAMILY}, "gender": "male", "birth_date": "2999-01-01",
                   "telecom": [{"system": "email", "value": PHONE}]})
        ),
    ];
    assert_eq!(
        statuses.map(|s| s.as_u16()),
        [200, 200, 200, 200, 200, 201, 200, 200, 403, 409, 422, 422]
    );

    // A server error: the record cannot be decrypted by a process missing its key. The
    // cause chain is logged; it must name the record, not its content.
    let wrong_keys = app!(f.restarted_with(&patient_keys(&["other"])));
    assert_eq!(
        call!(wrong_keys, get, patient, clinician),
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(
        call!(app, delete, patient, clinician),
        StatusCode::NO_CONTENT
    );

    let text = text.lock().unwrap().clone();
    assert!(
        text.contains("span patient.register"),
        "the capture works: {text}"
    );
    assert!(text.contains(&id), "ids are logged");
    assert!(
        text.contains("request failed"),
        "the 500 was logged: {text}"
    );
    assert_no_personal_data("the logs and spans", &text);
}
