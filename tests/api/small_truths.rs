//! Small truths a user checks by hand: an event nobody consumes is not called `delivered`;
//! metric labels name modules; a change that changes nothing keeps the version and ETag; no
//! token without a subject; every list page says how many items match.

use std::process::Command;

use kernel::auth::Role;
use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};

use crate::helpers::{TestApp, on_both_backends, problem};

on_both_backends!(
    an_event_nobody_consumes_is_listed_as_unconsumed,
    published_events_are_counted_under_the_module_that_published_them,
    a_product_patch_that_changes_nothing_keeps_version_and_etag,
    a_patient_patch_that_changes_nothing_keeps_version_and_etag,
    a_contract_patch_that_changes_nothing_keeps_updated_at,
    a_token_without_a_subject_is_refused,
    every_list_page_carries_the_total_of_its_filter,
);

const MODULES: [&str; 5] = ["product", "order", "payment", "patient", "contract"];

/// Sends `body` (none for `Value::Null`) as `role` and returns the answer's status, ETag
/// (empty when none) and JSON body.
async fn call(
    app: &TestApp,
    role: Role,
    method: Method,
    path: &str,
    body: Value,
) -> (StatusCode, String, Value) {
    let mut request = app
        .client
        .request(method, app.url(path))
        .bearer_auth(app.token(role));
    if !body.is_null() {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let etag = response
        .headers()
        .get(header::ETAG)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, etag, response.json().await.unwrap_or_default())
}

/// POSTs `body` as `role`, expecting 201; the created resource.
async fn create(app: &TestApp, role: Role, path: &str, body: Value) -> Value {
    let (status, _, created) = call(app, role, Method::POST, path, body).await;
    assert_eq!(status, StatusCode::CREATED, "POST {path}: {created}");
    created
}

async fn admin_json(app: &TestApp, path: &str) -> Value {
    let (status, _, body) = call(app, Role::Admin, Method::GET, path, Value::Null).await;
    assert_eq!(status, StatusCode::OK, "GET {path}");
    body
}

async fn an_event_nobody_consumes_is_listed_as_unconsumed(app: TestApp) {
    // Stock 1 is below the threshold: `product.stock_low`, which no module subscribes to.
    app.create_product("LONELY", "Lonely", 100, 1).await;
    let low = admin_json(&app, "/api/v1/admin/events?type=product.stock_low").await;
    assert_eq!(low["items"][0]["status"], "unconsumed", "{low}");
    assert_eq!(low["items"][0]["attempts"], 0);
    let unconsumed = admin_json(&app, "/api/v1/admin/events?status=unconsumed").await;
    let types: Vec<&str> = unconsumed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert!(types.contains(&"product.stock_low"), "{unconsumed}");
    let delivered = admin_json(&app, "/api/v1/admin/events?status=delivered").await;
    assert!(
        delivered["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["type"] != "product.stock_low"),
        "{delivered}"
    );
}

async fn published_events_are_counted_under_the_module_that_published_them(app: TestApp) {
    let product = app.create_product("LABEL", "Labelled", 100, 10).await;
    // The product module publishes `inventory.reserved` for this order.
    let placed = app
        .place_order("ivy", json!([{"product_id": product["id"], "quantity": 1}]))
        .await;
    assert_eq!(placed.status(), StatusCode::CREATED);
    let text = app
        .get("/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let published: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("bus_events_published_total{"))
        .collect();
    assert!(
        published.iter().any(|l| l.starts_with(
            r#"bus_events_published_total{module="product",type="inventory.reserved"}"#
        )),
        "{published:#?}"
    );
    for line in published {
        let module = line
            .split("module=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap();
        assert!(MODULES.contains(&module), "not a module: {line}");
    }
}

/// PATCHes `body` as `role`.
async fn patch(app: &TestApp, role: Role, path: &str, body: Value) -> (StatusCode, String, Value) {
    call(app, role, Method::PATCH, path, body).await
}

async fn a_product_patch_that_changes_nothing_keeps_version_and_etag(app: TestApp) {
    let product = app.create_product("STILL", "Still", 100, 10).await;
    let path = format!("/api/v1/products/{}", product["id"].as_str().unwrap());
    let same = json!({"name": "Still", "stock": 10, "price": {"amount": 100, "currency": "EUR"}});
    for body in [json!({}), json!({"name": null}), same] {
        let (status, etag, after) = patch(&app, Role::Admin, &path, body.clone()).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(etag, "\"1\"", "{body} changes nothing");
        assert_eq!(after, product, "{body}: the unchanged product");
    }
    // A full replacement with the same content changes nothing either.
    let same = json!({"sku": "STILL", "name": "Still", "description": product["description"],
                      "price": {"amount": 100, "currency": "EUR"}, "stock": 10});
    let (status, etag, _) = call(&app, Role::Admin, Method::PUT, &path, same).await;
    assert_eq!((status, etag.as_str()), (StatusCode::OK, "\"1\""));
    // Another client's If-Match is still current, and a real change moves the version.
    let (status, etag, changed) = patch(&app, Role::Admin, &path, json!({"stock": 11})).await;
    assert_eq!((status, etag.as_str()), (StatusCode::OK, "\"2\""));
    assert_eq!(changed["version"], 2);
}

async fn a_patient_patch_that_changes_nothing_keeps_version_and_etag(app: TestApp) {
    let patient = json!({
        "identifier": "MRN-STILL", "name": {"family": "Still", "given": ["Ada"]},
        "gender": "female", "birth_date": "1980-02-03"
    });
    let created = create(&app, Role::Clinician, "/api/v1/patients", patient).await;
    let path = format!("/api/v1/patients/{}", created["id"].as_str().unwrap());
    for body in [
        json!({}),
        json!({"gender": null}),
        json!({"gender": "female", "name": {"family": "Still"}}),
    ] {
        let (status, etag, after) = patch(&app, Role::Clinician, &path, body.clone()).await;
        assert_eq!(status, StatusCode::OK, "{body}: {after}");
        assert_eq!(etag, "\"1\"", "{body} changes nothing");
        assert_eq!(after, created, "{body}: the unchanged patient");
    }
    let (_, etag, _) = patch(&app, Role::Clinician, &path, json!({"gender": "other"})).await;
    assert_eq!(etag, "\"2\"");
}

async fn a_contract_patch_that_changes_nothing_keeps_updated_at(app: TestApp) {
    let contract = json!({"name": "Still", "parties": ["ada"], "code": "{\"state\": state}",
                          "state": {"n": 0}});
    let created = create(&app, Role::Admin, "/api/v1/contracts", contract).await;
    let path = format!("/api/v1/contracts/{}", created["id"].as_str().unwrap());
    for body in [
        json!({}),
        json!({"name": null}),
        json!({"name": "Still", "state": {"n": 0}}),
    ] {
        let (status, _, after) = patch(&app, Role::Admin, &path, body.clone()).await;
        assert_eq!(status, StatusCode::OK, "{body}: {after}");
        assert_eq!(after, created, "{body}: the unchanged contract");
    }
}

/// A correctly signed token whose subject is `sub`.
fn token_for(app: &TestApp, sub: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"sub": sub, "role": "admin", "iss": app.settings.auth.issuer,
                "iat": now, "exp": now + 600}),
        &jsonwebtoken::EncodingKey::from_secret(app.settings.auth.jwt_secret.as_bytes()),
    )
    .unwrap()
}

async fn a_token_without_a_subject_is_refused(app: TestApp) {
    for sub in ["", "   ", "\t"] {
        let response = app
            .client
            .get(app.url("/api/v1/orders"))
            .bearer_auth(token_for(&app, sub))
            .send()
            .await
            .unwrap();
        let body = problem(response, StatusCode::UNAUTHORIZED).await;
        assert!(
            body["detail"].as_str().unwrap().contains("subject"),
            "{sub:?}: {body}"
        );
    }
    let named = app
        .client
        .get(app.url("/api/v1/orders"))
        .bearer_auth(token_for(&app, "ada"))
        .send()
        .await
        .unwrap();
    assert_eq!(named.status(), StatusCode::OK);
}

#[test]
fn the_token_command_refuses_an_empty_subject() {
    let dir = tempfile::tempdir().unwrap();
    for sub in ["", "  "] {
        let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
            .current_dir(dir.path())
            .env_remove("TESSERA_ENV")
            .args(["token", "--sub", sub, "--role", "admin"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{sub:?} was accepted");
        assert!(out.stdout.is_empty(), "{sub:?} printed a token");
        assert!(stderr.contains("--sub"), "{sub:?}: {stderr}");
    }
}

/// GETs `path` as `role` and returns `(items on the page, total)`.
async fn page(app: &TestApp, role: Role, path: &str) -> (usize, Value) {
    let (status, _, body) = call(app, role, Method::GET, path, Value::Null).await;
    assert_eq!(status, StatusCode::OK, "GET {path}");
    (
        body["items"].as_array().unwrap().len(),
        body["total"].clone(),
    )
}

async fn every_list_page_carries_the_total_of_its_filter(app: TestApp) {
    let product = app.create_product("TOTAL", "Counted", 100, 10).await;
    let mut orders = Vec::new();
    for _ in 0..3 {
        let order: Value = app
            .place_order("ivy", json!([{"product_id": product["id"], "quantity": 1}]))
            .await
            .json()
            .await
            .unwrap();
        orders.push(order["id"].as_str().unwrap().to_owned());
    }
    let paid = app.pay("ivy", &orders[0], "4242424242424242").await;
    assert_eq!(paid.status(), StatusCode::CREATED);
    app.place_order("zed", json!([{"product_id": product["id"], "quantity": 1}]))
        .await;

    let patient = json!({"identifier": "MRN-TOTAL", "name": {"family": "Count", "given": ["Al"]},
                         "gender": "male", "birth_date": "1970-01-01"});
    let patient = create(&app, Role::Clinician, "/api/v1/patients", patient).await;
    let patient = format!("/api/v1/patients/{}", patient["id"].as_str().unwrap());
    for code in ["E11.9", "J45.909"] {
        let diagnosis =
            json!({"code": code, "description": "Seen", "onset": "2020-05-01", "status": "active"});
        create(
            &app,
            Role::Clinician,
            &format!("{patient}/diagnoses"),
            diagnosis,
        )
        .await;
    }
    for plan in ["Rest", "Walk"] {
        let treatment = json!({"plan": plan, "medication": "None", "dosage": "Daily",
                               "period": {"start": "2026-01-01"}, "status": "planned"});
        create(
            &app,
            Role::Clinician,
            &format!("{patient}/treatments"),
            treatment,
        )
        .await;
    }

    let counter = json!({"name": "Counter", "parties": ["ivy"],
                         "code": "{\"state\": {\"n\": state.n + 1}, \"output\": state.n + 1}",
                         "state": {"n": 0}});
    let contract = create(&app, Role::Admin, "/api/v1/contracts", counter).await;
    let contract = format!("/api/v1/contracts/{}", contract["id"].as_str().unwrap());
    let deploy = format!("{contract}/deploy");
    let (deployed, _, _) = call(&app, Role::Admin, Method::POST, &deploy, Value::Null).await;
    assert_eq!(deployed, StatusCode::OK);
    for _ in 0..2 {
        let input = json!({"input": {}});
        create(&app, Role::Admin, &format!("{contract}/executions"), input).await;
    }
    let other = json!({"name": "Other", "parties": ["zed"], "code": "{}", "state": {}});
    create(&app, Role::Admin, "/api/v1/contracts", other).await;

    let expected: [(Role, String, u64); 12] = [
        (Role::Admin, "/api/v1/products?limit=1".into(), 1),
        (Role::Admin, "/api/v1/orders?limit=1".into(), 4),
        (Role::Admin, "/api/v1/orders?limit=1&customer=ivy".into(), 3),
        (
            Role::Admin,
            "/api/v1/orders?status=pending_payment&customer=zed".into(),
            1,
        ),
        (Role::Admin, "/api/v1/payments?limit=1".into(), 1),
        (
            Role::Admin,
            format!("/api/v1/payments?order_id={}", orders[1]),
            0,
        ),
        (
            Role::Clinician,
            "/api/v1/patients?limit=1&family=count".into(),
            1,
        ),
        (Role::Clinician, format!("{patient}/diagnoses?limit=1"), 2),
        (Role::Clinician, format!("{patient}/treatments?limit=1"), 2),
        (
            Role::Admin,
            "/api/v1/contracts?limit=1&status=deployed".into(),
            1,
        ),
        (Role::Admin, format!("{contract}/executions?limit=1"), 2),
        (
            Role::Admin,
            "/api/v1/admin/events?limit=1&type=order.placed".into(),
            4,
        ),
    ];
    for (role, path, total) in expected {
        let (shown, counted) = page(&app, role, &path).await;
        assert_eq!(counted, json!(total), "GET {path}");
        assert!(shown <= 1, "GET {path}");
    }
    // The audit trail counts the entries before this read appends its own.
    let (shown, counted) = page(&app, Role::Admin, &format!("{patient}/audit?limit=100")).await;
    assert_eq!(counted, json!(shown), "audit total");
    assert!(shown >= 5, "create, two diagnoses, two treatments: {shown}");
}
