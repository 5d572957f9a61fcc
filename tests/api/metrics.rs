//! `/metrics` as Prometheus scrapes it: HTTP requests by route template and status, the
//! bus's traffic, backlog and dead letters per subscriber, and the database pool.
//!
//! The recorder is process-wide and every test of this binary feeds it, so each test here
//! runs its checks in a process of its own (the test binary again, filtered to that test),
//! where the counts are exactly what the test did.

use std::{process::Command, sync::Arc, time::Duration};

use kernel::{
    bus::{self, Subscriber},
    db::Backend,
};
use product::api::events::ProductCreated;
use reqwest::{StatusCode, header};

use crate::helpers::TestApp;

async fn scrape(app: &TestApp) -> String {
    let response = app.get("/metrics").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    response.text().await.unwrap()
}

/// Set in the process `alone` starts.
const ALONE: &str = "TESSERA_METRICS_TEST_ALONE";

/// `true` in a process that runs `test` (its path in this binary) alone: the caller then does
/// its checks. Otherwise runs `test` in such a process, asserts that it ran and passed, and
/// returns `false`.
fn alone(test: &str) -> bool {
    if std::env::var_os(ALONE).is_some() {
        return true;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(ALONE, "1")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{test}, run alone, failed:\n{text}");
    assert!(
        text.contains("test result: ok. 1 passed"),
        "{test} did not run alone:\n{text}"
    );
    false
}

/// The value of the sample whose line starts with `series` (name and labels, as printed).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|line| line.starts_with(series) && line[series.len()..].starts_with(' '))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

#[tokio::test]
async fn requests_are_counted_by_route_template_and_status_with_latency_histograms() {
    if !alone("metrics::requests_are_counted_by_route_template_and_status_with_latency_histograms")
    {
        return;
    }
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let product = app.create_product("MET-1", "Metered", 500, 3).await;
    let id = product["id"].as_str().unwrap();
    let series = r#"http_requests_total{method="GET",route="/api/v1/products/{id}",status="200"}"#;
    assert_eq!(sample(&scrape(&app).await, series), None);
    for _ in 0..3 {
        let response = app
            .get(&format!("/api/v1/products/{id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    let missing = app
        .get(&format!("/api/v1/products/{}", uuid::Uuid::now_v7()))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    app.get("/definitely/not/a/route").send().await.unwrap();

    let text = scrape(&app).await;
    assert_eq!(sample(&text, series), Some(3.0), "{text}");
    assert_eq!(
        sample(
            &text,
            r#"http_requests_total{method="GET",route="/api/v1/products/{id}",status="404"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"http_requests_total{method="POST",route="/api/v1/products",status="201"}"#
        ),
        Some(1.0),
        "{text}"
    );
    // Ids and unknown paths never become label values.
    assert!(!text.contains(id));
    assert!(!text.contains("/definitely/not"));
    assert_eq!(
        sample(
            &text,
            r#"http_requests_total{method="GET",route="unmatched",status="404"}"#
        ),
        Some(1.0),
        "{text}"
    );
    let count = sample(
        &text,
        r#"http_request_duration_seconds_count{method="GET",route="/api/v1/products/{id}",status="200"}"#,
    )
    .unwrap();
    let le_10s = sample(
        &text,
        r#"http_request_duration_seconds_bucket{method="GET",route="/api/v1/products/{id}",status="200",le="10"}"#,
    )
    .unwrap();
    assert!((count - 3.0).abs() < f64::EPSILON, "{count}");
    assert!((le_10s - count).abs() < f64::EPSILON, "{le_10s} vs {count}");
    assert_eq!(
        sample(&text, r#"db_pool_connections{state="max"}"#),
        Some(f64::from(app.settings.database.pool_size))
    );
    assert!(text.contains("# TYPE http_request_duration_seconds histogram"));
}

#[tokio::test]
async fn the_bus_reports_published_delivered_dead_lettered_and_backlog_per_subscriber() {
    if !alone(
        "metrics::the_bus_reports_published_delivered_dead_lettered_and_backlog_per_subscriber",
    ) {
        return;
    }
    let ok: Arc<dyn Subscriber> =
        bus::on::<ProductCreated, _>("test.metrics_ok", |_tx, _event, _envelope| Ok(()));
    let broken: Arc<dyn Subscriber> =
        bus::on::<ProductCreated, _>("test.metrics_broken", |_tx, _event, _envelope| {
            anyhow::bail!("always fails")
        });
    let app = TestApp::spawn_full(
        Backend::Sqlite,
        |s| {
            s.bus.max_attempts = 2;
            s.bus.backoff_base_ms = 1;
            s.bus.backoff_max_ms = 2;
            s.bus.poll_interval_ms = 20;
        },
        vec![ok, broken],
    )
    .await
    .unwrap();
    let published = r#"bus_events_published_total{module="product",type="product.created"}"#;
    assert_eq!(sample(&scrape(&app).await, published), None);
    app.create_product("MET-2", "Bus one", 100, 1).await;
    app.create_product("MET-3", "Bus two", 100, 1).await;

    let delivered =
        r#"bus_deliveries_total{module="test",subscriber="test.metrics_ok",outcome="delivered"}"#;
    let dead = r#"bus_deliveries_total{module="test",subscriber="test.metrics_broken",outcome="dead_lettered"}"#;
    // The dead-letter gauge is read from the outbox when the scrape begins, the counters
    // when it renders: a relay batch committing in between shows in the counters only, so
    // wait for both to settle.
    let dead_now = r#"bus_deliveries_dead_lettered{subscriber="test.metrics_broken"}"#;
    let pending_now = r#"bus_deliveries_pending{subscriber="test.metrics_ok"}"#;
    let mut text = String::new();
    for _ in 0..100 {
        text = scrape(&app).await;
        if sample(&text, delivered) == Some(2.0)
            && sample(&text, dead) == Some(2.0)
            && sample(&text, dead_now) == Some(2.0)
            && sample(&text, pending_now) == Some(0.0)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(sample(&text, published), Some(2.0), "{text}");
    assert_eq!(sample(&text, delivered), Some(2.0), "{text}");
    assert_eq!(sample(&text, dead), Some(2.0), "{text}");
    assert_eq!(
        sample(
            &text,
            r#"bus_deliveries_total{module="test",subscriber="test.metrics_broken",outcome="failed"}"#
        ),
        Some(2.0),
        "one retry each before giving up: {text}"
    );
    assert_eq!(sample(&text, dead_now), Some(2.0), "{text}");
    assert_eq!(sample(&text, pending_now), Some(0.0), "{text}");
    assert!(sample(&text, "bus_relay_lag_seconds").is_some());
}
