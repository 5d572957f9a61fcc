//! Answers written for people: one 422 names every offending field of a body or a query (of
//! the wrong type, not an allowed value, missing, unknown, nested, or breaking a module's
//! rule) in plain words, never serde's or Rust's, never a secret; and every error, whichever
//! layer produced it, is a problem document carrying the request id and the security
//! headers.

use kernel::{auth::Role, db::Backend};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{TestApp, on_both_backends, problem};

async fn app() -> TestApp {
    TestApp::spawn(Backend::Sqlite).await.unwrap()
}

fn send(app: &TestApp, role: Role, method: Method, path: &str, body: &Value) -> RequestBuilder {
    app.client
        .request(method, app.url(path))
        .bearer_auth(app.token(role))
        .json(body)
}

/// The 422's errors as `field → message`, checking that no message speaks serde or Rust.
async fn report(response: Response) -> Vec<(String, String)> {
    let body = problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(body["code"], "validation_failed");
    let text = body.to_string();
    for rust in [
        "invalid type",
        "expected",
        "struct ",
        "u32",
        "i32",
        "i64",
        "value hidden",
        "variant",
        "floating point",
        "invalid digit",
    ] {
        assert!(!text.contains(rust), "`{rust}` in {text}");
    }
    body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let text = |k: &str| e[k].as_str().unwrap().to_owned();
            (text("field"), text("message"))
        })
        .collect()
}

/// POSTs `body` to `path`, expecting a 422: its errors, as [`report`] reads them.
async fn rejected(app: &TestApp, role: Role, path: &str, body: &Value) -> Vec<(String, String)> {
    report(
        send(app, role, Method::POST, path, body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

fn named(errors: &[(String, String)]) -> Vec<&str> {
    let mut names: Vec<&str> = errors.iter().map(|(f, _)| f.as_str()).collect();
    names.sort_unstable();
    names
}

fn message<'a>(errors: &'a [(String, String)], field: &str) -> &'a str {
    &errors.iter().find(|(f, _)| f == field).unwrap().1
}

#[tokio::test]
async fn a_product_names_every_field_of_the_wrong_type_and_every_broken_rule() {
    let app = app().await;
    let body = json!({"sku": "", "price": {"amount": -5, "currency": "euro"}, "stock": -1});
    let errors = rejected(&app, Role::Admin, "/api/v1/products", &body).await;
    assert_eq!(
        named(&errors),
        ["name", "price.amount", "price.currency", "sku", "stock"]
    );
    assert_eq!(message(&errors, "name"), "is required");
    assert_eq!(message(&errors, "stock"), "must not be negative");
}

#[tokio::test]
async fn a_card_names_every_wrongly_typed_field_without_repeating_it() {
    let app = app().await;
    let body = json!({
        "order_id": "01900000-0000-7000-8000-000000000000",
        "card": {"number": 4242424242424242_u64, "exp_month": "12", "exp_year": 2030, "cvc": 737}
    });
    let errors = rejected(&app, Role::Customer, "/api/v1/payments", &body).await;
    assert_eq!(
        named(&errors),
        ["card.cvc", "card.exp_month", "card.number"]
    );
    assert_eq!(
        message(&errors, "card.exp_month"),
        "must be a whole number between 1 and 12"
    );
    let text = format!("{errors:?}");
    assert!(
        !text.contains("4242424242424242") && !text.contains("737"),
        "{text}"
    );
}

async fn a_patient(app: &TestApp) -> String {
    let body = json!({"identifier": "MRN-REPORT-1", "gender": "male", "birth_date": "1961-07-14",
                      "name": {"family": "Quixotic", "given": ["Zebulon"]}});
    let request = send(
        app,
        Role::Clinician,
        Method::POST,
        "/api/v1/patients",
        &body,
    );
    let created: Value = request.send().await.unwrap().json().await.unwrap();
    created["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_diagnosis_names_its_bad_code_its_future_onset_and_its_unknown_status() {
    let app = app().await;
    let id = a_patient(&app).await;
    let body = json!({"code": "diabetes", "description": "Type 2", "onset": "2999-01-01",
                      "status": "weird"});
    let path = format!("/api/v1/patients/{id}/diagnoses");
    let errors = rejected(&app, Role::Clinician, &path, &body).await;
    assert_eq!(named(&errors), ["code", "onset", "status"]);
    assert_eq!(
        message(&errors, "status"),
        "must be one of: active, resolved, inactive"
    );
    assert_eq!(message(&errors, "onset"), "must not be in the future");
}

#[tokio::test]
async fn an_unknown_value_is_answered_with_the_allowed_ones() {
    let app = app().await;
    let body = json!({"identifier": "MRN-2", "name": {"family": "Q", "given": ["Z"]},
                      "gender": "robot", "birth_date": "1970-01-01"});
    let errors = rejected(&app, Role::Clinician, "/api/v1/patients", &body).await;
    assert_eq!(
        errors,
        [(
            "gender".to_owned(),
            "must be one of: male, female, other, unknown".to_owned()
        )]
    );
}

#[tokio::test]
async fn an_order_line_names_its_index_and_the_range_of_a_quantity_too_large() {
    let app = app().await;
    let body: Value = serde_json::from_str(
        r#"{"items": [
            {"product_id": "01900000-0000-7000-8000-000000000000", "quantity": 2},
            {"product_id": "not-an-id", "quantity": 99999999999999999999}
        ]}"#,
    )
    .unwrap();
    let errors = rejected(&app, Role::Customer, "/api/v1/orders", &body).await;
    assert_eq!(named(&errors), ["items[1].product_id", "items[1].quantity"]);
    assert_eq!(
        message(&errors, "items[1].quantity"),
        "must be a whole number between 1 and 1000"
    );
    assert_eq!(message(&errors, "items[1].product_id"), "must be a UUID");
}

#[tokio::test]
async fn a_contract_names_its_wrong_types_and_its_broken_rules() {
    let app = app().await;
    let body = json!({"name": "", "parties": "alice", "code": 5, "colour": "red"});
    let errors = rejected(&app, Role::Admin, "/api/v1/contracts", &body).await;
    assert_eq!(named(&errors), ["code", "colour", "name", "parties"]);
    assert_eq!(message(&errors, "parties"), "must be an array");
    assert_eq!(message(&errors, "name"), "must not be empty");
    assert!(message(&errors, "colour").starts_with("unknown field; the fields are: code,"));
}

#[tokio::test]
async fn a_query_names_every_bad_parameter_in_words() {
    let app = app().await;
    let response = app
        .get("/api/v1/products?limit=abc&sort=weird&colour=red")
        .send()
        .await
        .unwrap();
    let errors = report(response).await;
    assert_eq!(named(&errors), ["colour", "limit", "sort"]);
    assert_eq!(
        message(&errors, "limit"),
        "must be a whole number between 1 and 100"
    );
}

#[tokio::test]
async fn json_nested_up_to_the_documented_depth_is_accepted_and_deeper_is_named() {
    let app = app().await;
    let nested = |depth: usize| {
        // The body is one level and `state` another.
        let inner = format!("{}1{}", "[".repeat(depth - 2), "]".repeat(depth - 2));
        format!(
            r#"{{"name": "deep", "parties": ["a"], "code": "{{}}", "state": {{"a": {inner}}}}}"#
        )
    };
    let contract = |body: String| {
        app.admin(Method::POST, "/api/v1/contracts")
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let accepted = contract(nested(kernel::http::MAX_DEPTH)).await.unwrap();
    assert_eq!(accepted.status(), StatusCode::CREATED);
    let created: Value = accepted.json().await.unwrap();
    let read = app
        .admin(
            Method::GET,
            &format!("/api/v1/contracts/{}", created["id"].as_str().unwrap()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), StatusCode::OK, "what is accepted reads back");

    let errors = report(contract(nested(200)).await.unwrap()).await;
    assert_eq!(named(&errors), ["$"]);
    assert!(
        message(&errors, "$").contains("more than 127 levels"),
        "{errors:?}"
    );
}

on_both_backends!(an_sku_may_hold_letters_of_any_script);

async fn an_sku_may_hold_letters_of_any_script(app: TestApp) {
    let product = app.create_product("CAFÉ-005", "Café", 450, 3).await;
    assert_eq!(product["sku"], "CAFÉ-005");
    // The same letters typed with a combining accent are the same SKU.
    let again = send(
        &app,
        Role::Admin,
        Method::POST,
        "/api/v1/products",
        &json!({"sku": "CAFE\u{301}-005", "name": "Again", "price": {"amount": 1, "currency": "EUR"}, "stock": 1}),
    )
    .send()
    .await
    .unwrap();
    let body = problem(again, StatusCode::CONFLICT).await;
    assert_eq!(body["code"], "duplicate_sku");
}

const SECURITY_HEADERS: [&str; 5] = [
    "x-content-type-options",
    "referrer-policy",
    "x-frame-options",
    "content-security-policy",
    "cross-origin-opener-policy",
];

/// Status, headers and body of a response read off a raw connection.
struct Raw {
    status: u16,
    headers: Vec<(String, String)>,
    body: Value,
}

impl Raw {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `request` as bytes (no client would send them so) and reads the answer.
async fn raw(app: &TestApp, request: &[u8]) -> Raw {
    let address = app.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).await.unwrap();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines.next().unwrap()[9..12].parse().unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect();
    Raw {
        status,
        headers,
        body: serde_json::from_str(body).unwrap_or(Value::Null),
    }
}

/// Checks an error response as every layer must finish it.
async fn finished(label: &str, response: Response, status: StatusCode) -> Value {
    assert_eq!(response.status(), status, "{label}");
    assert!(
        response.headers().contains_key("x-request-id"),
        "{label}: no x-request-id"
    );
    for name in SECURITY_HEADERS {
        assert!(response.headers().contains_key(name), "{label}: no {name}");
    }
    let body = problem(response, status).await;
    assert!(body["code"].is_string(), "{label}");
    body
}

#[tokio::test]
async fn every_error_is_a_problem_with_the_request_id_and_security_headers_whichever_layer() {
    let app = TestApp::spawn_with(Backend::Sqlite, |s| {
        s.http.cors_origins = vec!["https://shop.example".into()];
    })
    .await
    .unwrap();
    let product = json!({"sku": "KEY-1", "name": "Keyed", "price": {"amount": 1, "currency": "EUR"}, "stock": 1});
    let keyed = |body: &Value| {
        send(&app, Role::Admin, Method::POST, "/api/v1/products", body)
            .header("idempotency-key", "matrix-1")
    };
    assert_eq!(
        keyed(&product).send().await.unwrap().status(),
        StatusCode::CREATED
    );

    let cases: Vec<(&str, RequestBuilder, StatusCode)> = vec![
        (
            "bad path id",
            app.get("/api/v1/products/not-a-uuid"),
            StatusCode::NOT_FOUND,
        ),
        (
            "bad query",
            app.get("/api/v1/products?limit=abc"),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "malformed JSON",
            app.admin(Method::POST, "/api/v1/products")
                .header("content-type", "application/json")
                .body("{\"sku\": "),
            StatusCode::BAD_REQUEST,
        ),
        (
            "another media type",
            app.admin(Method::POST, "/api/v1/products").body("sku=X"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "too large",
            send(
                &app,
                Role::Admin,
                Method::POST,
                "/api/v1/products",
                &json!({"description": "x".repeat(2 * 1024 * 1024)}),
            ),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            "unknown route",
            app.get("/api/v1/nothing-here"),
            StatusCode::NOT_FOUND,
        ),
        (
            "wrong method",
            app.admin(Method::DELETE, "/api/v1/products"),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            "no token",
            app.client.post(app.url("/api/v1/orders")).json(&json!({})),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "idempotency key reused",
            keyed(
                &json!({"sku": "KEY-2", "name": "Other", "price": {"amount": 1, "currency": "EUR"}, "stock": 1}),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "malformed idempotency key",
            send(
                &app,
                Role::Admin,
                Method::POST,
                "/api/v1/products",
                &product,
            )
            .header("idempotency-key", ""),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "cross-origin preflight refused",
            app.client
                .request(Method::OPTIONS, app.url("/api/v1/orders"))
                .header("origin", "https://evil.example")
                .header("access-control-request-method", "POST"),
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (label, request, status) in cases {
        finished(label, request.send().await.unwrap(), status).await;
    }

    // Raw UTF-8 in the request line, as curl sends a typed `café`: read as its
    // percent-encoded form, like every browser sends it.
    let answer = raw(
        &app,
        b"GET /api/v1/products/caf\xc3\xa9 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(answer.status, 404);
    assert_eq!(
        answer.header("content-type"),
        Some("application/problem+json")
    );
    assert!(answer.header("x-request-id").is_some());
    for name in SECURITY_HEADERS {
        assert!(answer.header(name).is_some(), "raw bytes: no {name}");
    }
    assert_eq!(answer.body["code"], "not_found");
    let search = raw(
        &app,
        "GET /api/v1/products?q=café HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".as_bytes(),
    )
    .await;
    assert_eq!(search.status, 200);

    // The rate limit's 429.
    let limited = TestApp::spawn_with(Backend::Sqlite, |s| {
        s.http.rate_limit_per_second = 1;
        s.http.rate_limit_burst = 1;
    })
    .await
    .unwrap();
    let _ = limited.get("/api/v1/products").send().await.unwrap();
    let refused = limited.get("/api/v1/products").send().await.unwrap();
    finished("rate limit", refused, StatusCode::TOO_MANY_REQUESTS).await;
}
