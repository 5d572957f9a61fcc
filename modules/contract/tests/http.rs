//! The contract handlers over HTTP (SQLite; the service is covered on both backends by
//! `contracts.rs`): status codes, roles checked before the body, problem details.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use actix_web::{
    App,
    http::{StatusCode, header},
    test as actix_test,
};
use contract::ContractSettings;
use kernel::{
    auth::{JwtKeys, Role},
    module::Module,
    testing,
};
use serde_json::{Value, json};
use support::*;
use utoipa_actix_web::{AppExt, scope};

fn keys() -> JwtKeys {
    testing::jwt_keys("contract-http-tests")
}

fn bearer(sub: &str, role: Role) -> (header::HeaderName, String) {
    testing::bearer(&keys(), sub, role)
}

macro_rules! app {
    ($f:expr) => {{
        let (app, _) = App::new()
            .into_utoipa_app()
            .app_data(keys().authenticator())
            .service(scope::scope("/api/v1").configure(|cfg| $f.module.routes(cfg)))
            .split_for_parts();
        actix_test::init_service(app).await
    }};
}

fn post(uri: &str, who: Option<(&str, Role)>, body: &Value) -> actix_test::TestRequest {
    let mut req = actix_test::TestRequest::post().uri(uri).set_json(body);
    if let Some((sub, role)) = who {
        req = req.insert_header(bearer(sub, role));
    }
    req
}

const ADMIN: Option<(&str, Role)> = Some(("root", Role::Admin));

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contract_is_created_deployed_and_executed_over_http() {
    let f = fixture(kernel::db::Backend::Sqlite).unwrap();
    let app = app!(f);
    let body = json!({"name": "loyalty", "parties": ["alice"], "code": LOYALTY,
        "state": {"points": 0}, "triggers": ["order.paid"]});
    let created =
        actix_test::call_service(&app, post("/api/v1/contracts", ADMIN, &body).to_request()).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let contract = actix_test::read_body_json::<Value, _>(created).await;
    assert_eq!(contract["status"], "draft");
    let id = contract["id"].as_str().unwrap().to_owned();

    let execute = format!("/api/v1/contracts/{id}/executions");
    let input = json!({"input": {"order_id": "o1", "total": {"amount": 3000, "currency": "EUR"}}});
    let early = actix_test::call_service(&app, post(&execute, ADMIN, &input).to_request()).await;
    assert_eq!(early.status(), StatusCode::CONFLICT);

    let deployed = actix_test::call_service(
        &app,
        post(&format!("/api/v1/contracts/{id}/deploy"), ADMIN, &json!({})).to_request(),
    )
    .await;
    assert_eq!(deployed.status(), StatusCode::OK);
    let deployed = actix_test::read_body_json::<Value, _>(deployed).await;
    assert_eq!(deployed["status"], "deployed");
    assert_eq!(deployed["version"], 1);
    assert_eq!(deployed["code_sha256"].as_str().unwrap().len(), 64);

    let ran = actix_test::call_service(
        &app,
        post(&execute, Some(("alice", Role::Customer)), &input).to_request(),
    )
    .await;
    assert_eq!(ran.status(), StatusCode::CREATED);
    let execution = actix_test::read_body_json::<Value, _>(ran).await;
    assert_eq!(execution["seq"], 1);
    assert_eq!(execution["output"], json!({"awarded": 30}));
    assert_eq!(execution["state"], json!({"points": 30}));
    assert_eq!(execution["hash"].as_str().unwrap().len(), 64);

    let code_change = actix_test::call_service(
        &app,
        actix_test::TestRequest::patch()
            .uri(&format!("/api/v1/contracts/{id}"))
            .insert_header(bearer("root", Role::Admin))
            .set_json(json!({"code": "{'output': 1}"}))
            .to_request(),
    )
    .await;
    assert_eq!(code_change.status(), StatusCode::CONFLICT);

    let verify = actix_test::call_service(
        &app,
        actix_test::TestRequest::get()
            .uri(&format!("/api/v1/contracts/{id}/ledger/verify"))
            .insert_header(bearer("alice", Role::Customer))
            .to_request(),
    )
    .await;
    assert_eq!(verify.status(), StatusCode::OK);
    let verify = actix_test::read_body_json::<Value, _>(verify).await;
    assert_eq!(verify["valid"], true);
    assert_eq!(verify["length"], 1);
    assert_eq!(verify["head"], execution["hash"]);
    assert_eq!(verify["first_bad_seq"], Value::Null);

    let listed = actix_test::call_service(
        &app,
        actix_test::TestRequest::get()
            .uri(&format!("{execute}?limit=5"))
            .insert_header(bearer("billing", Role::Service))
            .to_request(),
    )
    .await;
    let listed = actix_test::read_body_json::<Value, _>(listed).await;
    assert_eq!(listed["items"][0]["id"], execution["id"]);
    assert_eq!(listed["next"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_syntax_error_is_a_422_naming_code_with_line_and_column() {
    let f = fixture(kernel::db::Backend::Sqlite).unwrap();
    let app = app!(f);
    let body = json!({"name": "bad", "parties": ["alice"], "code": "{\n 'output': 1 +\n}"});
    let response =
        actix_test::call_service(&app, post("/api/v1/contracts", ADMIN, &body).to_request()).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let problem = actix_test::read_body_json::<Value, _>(response).await;
    assert_eq!(problem["errors"][0]["field"], "code");
    let message = problem["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("line 3") && message.contains("column"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn who_may_execute_is_checked_before_the_body() {
    let f = fixture(kernel::db::Backend::Sqlite).unwrap();
    let app = app!(f);
    let c = deployed_counter(&f).await;
    let uri = format!("/api/v1/contracts/{}/executions", c.id);
    let body = json!({"input": {}});
    let cases = [
        (None, StatusCode::UNAUTHORIZED),
        (Some(("dr-who", Role::Clinician)), StatusCode::FORBIDDEN),
        // Not a party: to her the contract does not exist.
        (Some(("mallory", Role::Customer)), StatusCode::NOT_FOUND),
        (Some(("alice", Role::Customer)), StatusCode::CREATED),
        (Some(("billing", Role::Service)), StatusCode::CREATED),
        (ADMIN, StatusCode::CREATED),
    ];
    for (who, status) in cases {
        let response = actix_test::call_service(&app, post(&uri, who, &body).to_request()).await;
        assert_eq!(response.status(), status, "{who:?}");
    }
    // A clinician's body is never read: a malformed one still gets 403.
    let response = actix_test::call_service(
        &app,
        post(&uri, Some(("dr-who", Role::Clinician)), &json!({"nope": 1})).to_request(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let response = actix_test::call_service(
        &app,
        post(
            "/api/v1/contracts",
            Some(("alice", Role::Customer)),
            &json!({}),
        )
        .to_request(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bounds_answer_413_for_input_and_422_for_evaluation() {
    let settings = ContractSettings {
        max_input_bytes: 10_000,
        max_eval_ms: 50,
        ..Default::default()
    };
    let f = fixture_with(kernel::db::Backend::Sqlite, settings).unwrap();
    let app = app!(f);
    let c = deployed_counter(&f).await;
    let uri = format!("/api/v1/contracts/{}/executions", c.id);
    let big = json!({"input": {"pad": "x".repeat(20_000)}});
    let response = actix_test::call_service(&app, post(&uri, ADMIN, &big).to_request()).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);

    let heavy = deployed(
        &f,
        draft(
            "{'output': input.all(x, input.all(y, x * y >= 0))}",
            json!({}),
        ),
    )
    .await;
    let xs: Vec<i64> = (0..1500).collect();
    let response = actix_test::call_service(
        &app,
        post(
            &format!("/api/v1/contracts/{}/executions", heavy.id),
            ADMIN,
            &json!({ "input": xs }),
        )
        .to_request(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let problem = actix_test::read_body_json::<Value, _>(response).await;
    assert!(
        problem["detail"].as_str().unwrap().contains("50 ms"),
        "{problem}"
    );

    let runtime = actix_test::call_service(
        &app,
        post(&uri, ADMIN, &json!({"input": null})).to_request(),
    )
    .await;
    assert_eq!(runtime.status(), StatusCode::UNPROCESSABLE_ENTITY);
}
