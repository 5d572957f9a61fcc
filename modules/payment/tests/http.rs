//! The payment handlers over HTTP (SQLite; the store is covered on both backends by
//! `payments.rs`): status codes, roles checked before the body, `card.*` field errors, and
//! what the OpenAPI document says about them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use actix_web::{
    App,
    http::{StatusCode, header},
    test as actix_test, web,
};
use kernel::{
    auth::{JwtKeys, Role},
    module::Module,
    testing,
};
use order_api::{OrderId, OrderStatus};
use payment::PaymentModule;
use serde_json::{Value, json};
use support::*;
use utoipa_actix_web::{AppExt, scope};

fn keys() -> JwtKeys {
    testing::jwt_keys("payment-http-tests")
}

fn bearer(sub: &str, role: Role) -> (header::HeaderName, String) {
    testing::bearer(&keys(), sub, role)
}

fn alice() -> (header::HeaderName, String) {
    bearer("alice", Role::Customer)
}

fn root() -> (header::HeaderName, String) {
    bearer("root", Role::Admin)
}

/// The payment handlers under `/api/v1`, as the application mounts them. A macro: the
/// service's type cannot be named in a function signature without actix-http.
macro_rules! app {
    ($f:expr) => {{
        let (app, _) = App::new()
            .into_utoipa_app()
            .app_data(keys().authenticator())
            .app_data(web::Data::from($f.payments.clone()))
            .service(scope::scope("/api/v1").configure(PaymentModule::mount))
            .split_for_parts();
        actix_test::init_service(app).await
    }};
}

fn pay_body(order: OrderId, number: &str) -> Value {
    json!({
        "order_id": order,
        "card": { "number": number, "exp_month": 12, "exp_year": 2099, "cvc": CVC },
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paying_answers_201_with_the_payment_and_its_location() {
    let f = fixture(kernel::db::Backend::Sqlite).unwrap();
    let app = app!(f);
    let order = order(&f, "alice", 1500, OrderStatus::PendingPayment);
    let response = actix_test::call_service(
        &app,
        actix_test::TestRequest::post()
            .uri("/api/v1/payments")
            .insert_header(alice())
            .set_json(pay_body(order, GOOD_CARD))
            .to_request(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let location = response.headers().get(header::LOCATION).unwrap();
    let location = location.to_str().unwrap().to_owned();
    let payment = actix_test::read_body_json::<Value, _>(response).await;
    assert_eq!(
        location,
        format!("/api/v1/payments/{}", payment["id"].as_str().unwrap())
    );
    assert_eq!(payment["status"], "succeeded");
    assert_eq!(
        payment["amount"],
        json!({"amount": 1500, "currency": "EUR"})
    );
    assert_eq!(
        (payment["brand"].as_str(), payment["last4"].as_str()),
        (Some("visa"), Some("4242"))
    );

    let fetched = actix_test::call_service(
        &app,
        actix_test::TestRequest::get()
            .uri(&location)
            .insert_header(alice())
            .to_request(),
    )
    .await;
    assert_eq!(fetched.status(), StatusCode::OK);
    assert_eq!(
        actix_test::read_body_json::<Value, _>(fetched).await,
        payment
    );

    let listed = actix_test::call_service(
        &app,
        actix_test::TestRequest::get()
            .uri(&format!("/api/v1/payments?order_id={order}&limit=5"))
            .insert_header(alice())
            .to_request(),
    )
    .await;
    assert_eq!(listed.status(), StatusCode::OK);
    assert_eq!(
        actix_test::read_body_json::<Value, _>(listed).await,
        json!({"items": [payment], "next": null, "total": 1})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declined_card_is_still_201_with_a_failed_payment() {
    let f = fixture(kernel::db::Backend::Sqlite).unwrap();
    let app = app!(f);
    let order = order(&f, "alice", 1500, OrderStatus::PendingPayment);
    let response = actix_test::call_service(
        &app,
        actix_test::TestRequest::post()
            .uri("/api/v1/payments")
            .insert_header(alice())
            .set_json(pay_body(order, DECLINED_CARD))
            .to_request(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let payment = actix_test::read_body_json::<Value, _>(response).await;
    assert_eq!(payment["status"], "failed");
    assert_eq!(payment["failure_code"], "card_declined");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_card_is_422_naming_each_card_field() {
    let f = fixture(kernel::db::Backend::Sqlite).unwrap();
    let app = app!(f);
    let order = order(&f, "alice", 1500, OrderStatus::PendingPayment);
    let body = json!({
        "order_id": order,
        "card": { "number": "4242424242424241", "exp_month": 13, "exp_year": 2099, "cvc": "1" },
    });
    let response = actix_test::call_service(
        &app,
        actix_test::TestRequest::post()
            .uri("/api/v1/payments")
            .insert_header(alice())
            .set_json(body)
            .to_request(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let problem = actix_test::read_body_json::<Value, _>(response).await;
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["card.number", "card.exp_month", "card.cvc"]);
    assert!(!problem.to_string().contains("4242424242424241"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_are_checked_before_the_body_is_read() {
    let f = fixture(kernel::db::Backend::Sqlite).unwrap();
    let app = app!(f);
    let call = |uri: &str, auth: Option<(header::HeaderName, String)>| {
        let mut request = actix_test::TestRequest::post()
            .uri(uri)
            .insert_header((header::CONTENT_TYPE, "application/json"))
            .set_payload("{\"not\": \"a valid body\"}");
        if let Some(auth) = auth {
            request = request.insert_header(auth);
        }
        request.to_request()
    };
    let refund = format!("/api/v1/payments/{}/refunds", payment_api::PaymentId::new());
    for (uri, auth, status) in [
        ("/api/v1/payments", None, StatusCode::UNAUTHORIZED),
        (
            "/api/v1/payments",
            Some(bearer("doc", Role::Clinician)),
            StatusCode::FORBIDDEN,
        ),
        (
            "/api/v1/payments",
            Some(bearer("svc", Role::Service)),
            StatusCode::FORBIDDEN,
        ),
        (refund.as_str(), Some(alice()), StatusCode::FORBIDDEN),
        (refund.as_str(), None, StatusCode::UNAUTHORIZED),
    ] {
        let response = actix_test::call_service(&app, call(uri, auth)).await;
        assert_eq!(response.status(), status, "{uri}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_refund_and_over_refunds_conflict() {
    let f = fixture(kernel::db::Backend::Sqlite).unwrap();
    let app = app!(f);
    let (_, payment) = paid(&f, 1000).await;
    let refund = |amount: i64| {
        actix_test::TestRequest::post()
            .uri(&format!("/api/v1/payments/{payment}/refunds"))
            .insert_header(root())
            .set_json(json!({ "amount": amount }))
            .to_request()
    };
    let response = actix_test::call_service(&app, refund(400)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body = actix_test::read_body_json::<Value, _>(response).await;
    assert_eq!(
        (body["status"].as_str(), body["refunded"].as_i64()),
        (Some("partially_refunded"), Some(400))
    );

    let response = actix_test::call_service(&app, refund(601)).await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let response = actix_test::call_service(&app, refund(0)).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        actix_test::read_body_json::<Value, _>(response).await["errors"][0]["field"],
        "amount"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_customers_payment_is_not_found_and_bad_listing_params_are_422() {
    let f = fixture(kernel::db::Backend::Sqlite).unwrap();
    let app = app!(f);
    let (_, payment) = paid(&f, 1000).await;
    let response = actix_test::call_service(
        &app,
        actix_test::TestRequest::get()
            .uri(&format!("/api/v1/payments/{payment}"))
            .insert_header(bearer("bob", Role::Customer))
            .to_request(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    let response = actix_test::call_service(
        &app,
        actix_test::TestRequest::get()
            .uri("/api/v1/payments?limit=500&cursor=nope")
            .insert_header(alice())
            .to_request(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let problem = actix_test::read_body_json::<Value, _>(response).await;
    assert_eq!(problem["errors"].as_array().unwrap().len(), 2);
}

#[test]
fn the_openapi_document_describes_every_operation() {
    let (_, api) = App::new()
        .into_utoipa_app()
        .service(scope::scope("/api/v1").configure(PaymentModule::mount))
        .split_for_parts();
    let doc = serde_json::to_value(&api).unwrap();
    let operation = |path: &str, method: &str| doc["paths"][path][method].clone();
    let cases = [
        ("/api/v1/payments", "post", "create_payment", true),
        ("/api/v1/payments", "get", "list_payments", false),
        ("/api/v1/payments/{id}", "get", "get_payment", false),
        (
            "/api/v1/payments/{id}/refunds",
            "post",
            "create_refund",
            true,
        ),
    ];
    for (path, method, id, idempotent) in cases {
        let op = operation(path, method);
        assert_eq!(op["operationId"], id, "{method} {path}");
        assert_eq!(op["tags"], json!(["payment"]), "{id}");
        let roles = if id == "create_refund" {
            json!(["admin"])
        } else {
            json!(["customer", "admin"])
        };
        assert_eq!(op["security"], json!([{ "bearer": roles }]), "{id}");
        assert!(
            !op["description"].is_null() || !op["summary"].is_null(),
            "{id}"
        );
        let headers: Vec<&str> = op["parameters"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .filter(|p| p["in"] == "header")
                    .map(|p| p["name"].as_str().unwrap())
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(headers.contains(&"Idempotency-Key"), idempotent, "{id}");
    }
    assert!(
        operation("/api/v1/payments", "post")["responses"]["201"]["headers"]["Location"]
            .is_object()
    );
}
