//! Errors are data: real responses carry a stable `code` and the error's figures as members,
//! so clients never have to read `title` or `detail`.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, on_both_backends, problem};

on_both_backends!(
    insufficient_stock_names_the_product_and_the_figures,
    validation_failures_list_their_fields,
    unknown_resources_are_not_found_with_their_id,
    an_illegal_transition_names_the_order_its_status_and_the_action,
    the_kernels_own_problems_carry_codes,
);

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

async fn insufficient_stock_names_the_product_and_the_figures(app: TestApp) {
    let scarce = app.create_product("CODE-SCARCE", "Scarce", 100, 1).await;
    let response = app
        .place_order("bob", json!([{"product_id": id(&scarce), "quantity": 3}]))
        .await;
    let body = problem(response, StatusCode::CONFLICT).await;
    assert_eq!(body["code"], "insufficient_stock", "{body}");
    assert_eq!(body["product_id"], id(&scarce), "{body}");
    assert_eq!(body["requested"], 3, "{body}");
    assert_eq!(body["available"], 1, "{body}");
}

async fn validation_failures_list_their_fields(app: TestApp) {
    let response = app.place_order("bob", json!([])).await;
    let body = problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(body["code"], "validation_failed", "{body}");
    assert_eq!(body["errors"][0]["field"], "items", "{body}");

    let unknown = uuid::Uuid::now_v7().to_string();
    let response = app
        .place_order("bob", json!([{"product_id": unknown, "quantity": 1}]))
        .await;
    let body = problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(body["code"], "unknown_product", "{body}");
    assert_eq!(body["product_id"], unknown, "{body}");
    assert_eq!(body["index"], 0, "{body}");
    assert_eq!(body["errors"][0]["field"], "items[0].product_id", "{body}");
}

async fn unknown_resources_are_not_found_with_their_id(app: TestApp) {
    let missing = uuid::Uuid::now_v7().to_string();
    let response = app
        .get(&format!("/api/v1/products/{missing}"))
        .send()
        .await
        .unwrap();
    let body = problem(response, StatusCode::NOT_FOUND).await;
    assert_eq!(body["code"], "product_not_found", "{body}");
    assert_eq!(body["product_id"], missing, "{body}");

    let response = app
        .admin(Method::GET, &format!("/api/v1/orders/{missing}"))
        .send()
        .await
        .unwrap();
    let body = problem(response, StatusCode::NOT_FOUND).await;
    assert_eq!(body["code"], "order_not_found", "{body}");
    assert_eq!(body["order_id"], missing, "{body}");

    let response = app.get("/api/v1/no-such-route").send().await.unwrap();
    let body = problem(response, StatusCode::NOT_FOUND).await;
    assert_eq!(body["code"], "not_found", "{body}");
}

async fn an_illegal_transition_names_the_order_its_status_and_the_action(app: TestApp) {
    let p = app.create_product("CODE-FLOW", "Flow", 100, 5).await;
    let order: Value = app
        .place_order("dave", json!([{"product_id": id(&p), "quantity": 1}]))
        .await
        .json()
        .await
        .unwrap();
    let response = app
        .admin(Method::POST, &format!("/api/v1/orders/{}/ship", id(&order)))
        .send()
        .await
        .unwrap();
    let body = problem(response, StatusCode::CONFLICT).await;
    assert_eq!(body["code"], "illegal_transition", "{body}");
    assert_eq!(body["order_id"], id(&order), "{body}");
    assert_eq!(body["order_status"], "pending_payment", "{body}");
    assert_eq!(body["action"], "shipped", "{body}");
}

async fn the_kernels_own_problems_carry_codes(app: TestApp) {
    let response = app
        .client
        .post(app.url("/api/v1/orders"))
        .json(&json!({"items": []}))
        .send()
        .await
        .unwrap();
    let body = problem(response, StatusCode::UNAUTHORIZED).await;
    assert_eq!(body["code"], "unauthorized", "{body}");

    let response = app
        .as_customer("dave", Method::POST, "/api/v1/products")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let body = problem(response, StatusCode::FORBIDDEN).await;
    assert_eq!(body["code"], "forbidden", "{body}");

    let response = app
        .admin(Method::POST, "/api/v1/products")
        .header("content-type", "text/plain")
        .body("x")
        .send()
        .await
        .unwrap();
    let body = problem(response, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    assert_eq!(body["code"], "unsupported_media_type", "{body}");
}
