//! Idempotency-Key compares requests by meaning: a client that re-serialises its JSON body on a
//! retry (other whitespace, other key order) gets the first response replayed; different
//! content under the same key is still refused.

use reqwest::{Method, StatusCode, header};
use serde_json::Value;

use crate::helpers::{TestApp, fields, on_both_backends, problem};

on_both_backends!(
    a_retry_with_reordered_keys_and_other_whitespace_is_replayed,
    a_retry_with_other_content_is_refused,
);

/// `POST /orders` by `ivy` under `key` with this exact body text.
async fn post_raw(app: &TestApp, key: &str, body: String) -> reqwest::Response {
    app.as_customer("ivy", Method::POST, "/api/v1/orders")
        .header("Idempotency-Key", key)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
}

/// A product (`sku`) and an order of two of it, placed compactly under `key`: the product's
/// id and the order.
async fn first_order(app: &TestApp, sku: &str, key: &str) -> (String, Value) {
    let product = app.create_product(sku, "Meaning", 250, 10).await;
    let id = product["id"].as_str().unwrap().to_owned();
    let body = format!(r#"{{"items":[{{"product_id":"{id}","quantity":2}}]}}"#);
    let first = post_raw(app, key, body).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    (id, first.json().await.unwrap())
}

async fn a_retry_with_reordered_keys_and_other_whitespace_is_replayed(app: TestApp) {
    let (id, order) = first_order(&app, "MEAN-1", "by-meaning").await;

    let retry = post_raw(
        &app,
        "by-meaning",
        format!(
            "{{\n  \"items\" : [ {{ \"quantity\" : 2,\n    \"product_id\" : \"{id}\" }} ]\n}}\n"
        ),
    )
    .await;
    assert_eq!(
        retry.status(),
        StatusCode::CREATED,
        "the same request, serialised differently, is replayed"
    );
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    let replayed: Value = retry.json().await.unwrap();
    assert_eq!(replayed, order, "the original response, byte for byte");
    let product = app.product(&id).await;
    assert_eq!(product["reserved"], 2, "one order, not two");
}

async fn a_retry_with_other_content_is_refused(app: TestApp) {
    let (id, _) = first_order(&app, "MEAN-2", "other-content").await;
    let retry = post_raw(
        &app,
        "other-content",
        format!(r#"{{"items": [{{"quantity": 3, "product_id": "{id}"}}]}}"#),
    )
    .await;
    let body = problem(retry, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(body["code"], "idempotency_key_reused");
    assert_eq!(fields(&body), ["Idempotency-Key"]);
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("already used for a different request"),
        "{body}"
    );
    let product = app.product(&id).await;
    assert_eq!(product["reserved"], 2);
}
