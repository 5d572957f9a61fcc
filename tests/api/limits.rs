//! What an operator relies on at the edge: per-client rate limits (429 + Retry-After), the
//! request timeout (503), security headers on every response, and CORS from config.

use std::time::Duration;

use kernel::{auth::Role, db::Backend};
use reqwest::{StatusCode, header};

use crate::helpers::{TestApp, problem};

async fn limited(per_second: u32, burst: u32) -> TestApp {
    TestApp::spawn_with(Backend::Sqlite, |s| {
        s.http.rate_limit_per_second = per_second;
        s.http.rate_limit_burst = burst;
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn a_client_over_its_burst_gets_429_with_retry_after_then_recovers() {
    let app = limited(2, 3).await;
    for _ in 0..3 {
        let response = app.get("/api/v1/products").send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    let refused = app.get("/api/v1/products").send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = refused.headers()[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "Retry-After: {retry_after}");
    assert!(refused.headers().contains_key("x-request-id"));
    let body = problem(refused, StatusCode::TOO_MANY_REQUESTS).await;
    assert!(body["detail"].as_str().unwrap().contains("retry in"));

    // Waiting as long as the server said is enough.
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    let again = app.get("/api/v1/products").send().await.unwrap();
    assert_eq!(again.status(), StatusCode::OK);
}

/// However briefly a client must wait, it is told at least one whole second: a fast rate
/// refills within microseconds, and `Retry-After: 0` would invite an immediate retry.
#[tokio::test]
async fn every_429_of_a_burst_says_retry_after_at_least_one_second() {
    let app = limited(10_000, 1).await;
    let mut refused = 0;
    for _ in 0..5 {
        let burst = (0..100).map(|_| app.get("/api/v1/products").send());
        for response in futures_util::future::join_all(burst).await {
            let response = response.unwrap();
            if response.status() != StatusCode::TOO_MANY_REQUESTS {
                continue;
            }
            refused += 1;
            let retry_after = response.headers()[header::RETRY_AFTER].to_str().unwrap();
            let seconds: u64 = retry_after.parse().unwrap();
            assert!(seconds >= 1, "Retry-After: {retry_after}");
        }
    }
    assert!(refused > 0, "the burst was never limited");
}

/// A liveness or readiness probe behind a proxy shares its address with clients; a limited
/// client must not make the probe fail (and the orchestrator restart the pod).
#[tokio::test]
async fn health_probes_answer_while_their_address_is_limited() {
    let app = limited(1, 2).await;
    while app.get("/api/v1/products").send().await.unwrap().status() == StatusCode::OK {}
    for _ in 0..10 {
        for path in ["/health/live", "/health/ready"] {
            let response = app.get(path).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::OK, "{path}");
        }
    }
    let still = app.get("/api/v1/products").send().await.unwrap();
    assert_eq!(
        still.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "the client is still limited"
    );
}

#[tokio::test]
async fn authenticated_callers_have_their_own_budget_and_services_are_not_limited() {
    let app = limited(1, 2).await;
    // Exhaust the anonymous budget of this address.
    while app.get("/api/v1/products").send().await.unwrap().status() == StatusCode::OK {}

    // A customer on the same address still has its own budget; a forged token does not buy one.
    let customer = app.token(Role::Customer);
    let ok = app
        .get("/api/v1/products")
        .bearer_auth(&customer)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let forged = app
        .get("/api/v1/products")
        .bearer_auth(format!("{customer}x"))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::TOO_MANY_REQUESTS);

    // Another module of a split deployment (role service) carries many users' traffic.
    let service = app.token(Role::Service);
    for _ in 0..20 {
        let response = app
            .get("/api/v1/products")
            .bearer_auth(&service)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
}

#[tokio::test]
async fn a_request_still_running_after_the_timeout_gets_a_503_problem() {
    let app = TestApp::spawn_with(Backend::Sqlite, |s| {
        s.http.request_timeout_secs = 1;
        s.database.sqlite_busy_timeout_ms = 3000;
    })
    .await
    .unwrap();
    // Another writer holds SQLite's write lock until told to let go, so the write waits past
    // the timeout.
    let path = app.sqlite_path().unwrap();
    let (held_tx, held_rx) = tokio::sync::oneshot::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let locker = std::thread::spawn(move || {
        use diesel::{Connection, RunQueryDsl, sqlite::SqliteConnection};
        let mut conn = SqliteConnection::establish(path.to_str().unwrap()).unwrap();
        diesel::sql_query("BEGIN IMMEDIATE")
            .execute(&mut conn)
            .unwrap();
        held_tx.send(()).unwrap();
        let _ = release_rx.recv();
        diesel::sql_query("ROLLBACK").execute(&mut conn).unwrap();
    });
    held_rx.await.unwrap();
    let response = app
        .admin(reqwest::Method::POST, "/api/v1/products")
        .json(&serde_json::json!({
            "sku": "SLOW-1", "name": "Slow", "price": {"amount": 100, "currency": "EUR"}, "stock": 1
        }))
        .send()
        .await
        .unwrap();
    // Rendered from the timeout's error, outside every middleware: still finished as every
    // response is.
    assert!(response.headers().contains_key("x-request-id"));
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    let body = problem(response, StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("outcome is unknown")
    );
    assert!(body["request_id"].is_string());
    release_tx.send(()).unwrap();
    locker.join().unwrap();
    // The server is fine afterwards.
    let health = app.get("/health/ready").send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
}

#[tokio::test]
async fn every_response_carries_the_security_headers_and_hsts_only_when_configured() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    for path in [
        "/health/live",
        "/api/v1/products",
        "/swagger-ui/",
        "/no/such/path",
    ] {
        let response = app.get(path).send().await.unwrap();
        let headers = response.headers();
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["referrer-policy"], "no-referrer", "{path}");
        assert_eq!(headers["x-frame-options"], "DENY", "{path}");
        // HTML gets the policy Swagger UI works under; JSON one that lets nothing load.
        let html = headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html");
        let csp = headers["content-security-policy"].to_str().unwrap();
        let sources = if html {
            "default-src 'self'"
        } else {
            "default-src 'none'"
        };
        assert!(csp.contains(sources), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert_eq!(html, path == "/swagger-ui/", "{path}");
        assert!(!headers.contains_key("strict-transport-security"), "{path}");
    }
    let production_like = TestApp::spawn_with(Backend::Sqlite, |s| s.http.hsts = true)
        .await
        .unwrap();
    let response = production_like.get("/health/live").send().await.unwrap();
    assert!(
        response.headers()["strict-transport-security"]
            .to_str()
            .unwrap()
            .starts_with("max-age=")
    );
}

#[tokio::test]
async fn cors_allows_only_the_configured_origins() {
    let app = TestApp::spawn_with(Backend::Sqlite, |s| {
        s.http.cors_origins = vec!["https://shop.example".into()];
    })
    .await
    .unwrap();
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/api/v1/orders"))
            .header(header::ORIGIN, origin)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .header(
                header::ACCESS_CONTROL_REQUEST_HEADERS,
                "authorization, content-type, idempotency-key",
            )
            .send()
    };
    let allowed = preflight("https://shop.example").await.unwrap();
    assert!(allowed.status().is_success(), "{}", allowed.status());
    assert_eq!(
        allowed.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://shop.example"
    );
    let methods = allowed.headers()[header::ACCESS_CONTROL_ALLOW_METHODS]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(methods.contains("POST"), "{methods}");

    let refused = preflight("https://evil.example").await.unwrap();
    assert!(
        !refused
            .headers()
            .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
    );

    // A simple cross-origin read from the allowed origin is readable by its page; the server's
    // own pages (Swagger UI: same origin) keep working.
    let read = app
        .get("/api/v1/products")
        .header(header::ORIGIN, "https://shop.example")
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), StatusCode::OK);
    assert_eq!(
        read.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://shop.example"
    );
    let same_origin = app
        .admin(reqwest::Method::POST, "/api/v1/products")
        .header(header::ORIGIN, app.base.clone())
        .json(&serde_json::json!({
            "sku": "CORS-1", "name": "Same origin", "price": {"amount": 100, "currency": "EUR"}, "stock": 1
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(same_origin.status(), StatusCode::CREATED);

    // Without configured origins no CORS header is sent at all: browsers keep the same-origin rule.
    let plain = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let response = plain
        .get("/api/v1/products")
        .header(header::ORIGIN, "https://shop.example")
        .send()
        .await
        .unwrap();
    assert!(
        !response
            .headers()
            .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
    );
}
