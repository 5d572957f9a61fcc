use std::net::TcpListener;

use actix_web::{App, HttpResponse, HttpServer, middleware::from_fn, web};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{TestApp, fields, on_both_backends, problem};

on_both_backends!(
    a_body_that_is_not_json_is_a_bad_request,
    a_body_of_another_media_type_is_unsupported,
    a_body_over_the_limit_is_too_large,
    unknown_routes_are_problems,
    request_ids_are_echoed_or_generated,
);

async fn a_body_that_is_not_json_is_a_bad_request(app: TestApp) {
    for body in ["{\"sku\": ", "not json", ""] {
        let response = app
            .admin(Method::POST, "/api/v1/products")
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        problem(response, StatusCode::BAD_REQUEST).await;
    }
    // Valid JSON of the wrong shape is not a 400 but a 422.
    let response = app
        .admin(Method::POST, "/api/v1/products")
        .json(&json!([1, 2]))
        .send()
        .await
        .unwrap();
    let body = problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(fields(&body), ["$"]);
}

async fn a_body_of_another_media_type_is_unsupported(app: TestApp) {
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let mut request = app
            .admin(Method::POST, "/api/v1/products")
            .body(r#"{"sku":"X"}"#);
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        problem(
            request.send().await.unwrap(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        )
        .await;
    }
}

async fn a_body_over_the_limit_is_too_large(app: TestApp) {
    assert_eq!(
        app.settings.http.json_limit_bytes,
        1024 * 1024,
        "default limit is 1 MiB"
    );
    let huge = json!({"sku": "BIG", "name": "x", "description": "y".repeat(1024 * 1024), "price": {"amount": 1, "currency": "EUR"}, "stock": 1});
    let response = app
        .admin(Method::POST, "/api/v1/products")
        .json(&huge)
        .send()
        .await
        .unwrap();
    problem(response, StatusCode::PAYLOAD_TOO_LARGE).await;

    // Chunked bodies without a Content-Length are cut off at the limit too.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        std::iter::once(Ok(b"{\"description\": \"".to_vec()))
            .chain(std::iter::repeat_with(|| Ok(vec![b'z'; 64 * 1024])).take(20))
            .collect();
    let response = app
        .admin(Method::POST, "/api/v1/products")
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    problem(response, StatusCode::PAYLOAD_TOO_LARGE).await;
}

async fn unknown_routes_are_problems(app: TestApp) {
    problem(
        app.get("/api/v1/nothing-here").send().await.unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
}

async fn request_ids_are_echoed_or_generated(app: TestApp) {
    let response = app
        .get("/health/live")
        .header("x-request-id", "trace-me-123")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "trace-me-123");
    let first = app.get("/health/live").send().await.unwrap();
    let second = app.get("/api/v1/nothing-here").send().await.unwrap();
    let a = first.headers()["x-request-id"].to_str().unwrap().to_owned();
    let b = second.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(uuid::Uuid::parse_str(&a).is_ok() && a != b);
    // A header that could inject into logs is replaced, not echoed.
    let response = app
        .get("/health/live")
        .header("x-request-id", "bad id\twith tab")
        .send()
        .await
        .unwrap();
    assert_ne!(response.headers()["x-request-id"], "bad id\twith tab");
}

/// The kernel's request-context middleware turns a panicking handler into a 500 problem with
/// a request id, over a real connection, and the server keeps serving.
#[tokio::test]
async fn a_panicking_handler_becomes_a_500_problem() {
    async fn boom() -> HttpResponse {
        panic!("boom: secret internals");
    }
    async fn fine() -> HttpResponse {
        HttpResponse::Ok().finish()
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = HttpServer::new(|| {
        App::new()
            .route("/boom", web::get().to(boom))
            .route("/fine", web::get().to(fine))
            .wrap(from_fn(kernel::http::middleware::request_context))
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    let client = reqwest::Client::new();
    for _ in 0..3 {
        let response = client
            .get(format!("http://127.0.0.1:{port}/boom"))
            .send()
            .await
            .unwrap();
        let request_id = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        let body = problem(response, StatusCode::INTERNAL_SERVER_ERROR).await;
        assert_eq!(body["request_id"], request_id);
        assert!(!body.to_string().contains("secret internals"));
    }
    let response = client
        .get(format!("http://127.0.0.1:{port}/fine"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}
