//! Idempotency-Key after a crash: a record left `running` by a process that died mid-request
//! must not refuse the client's retry for long — only while a request could still be running.

use diesel::{
    RunQueryDsl,
    sql_types::{Text, Timestamp},
};
use kernel::db::{Backend, Db};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::TestApp;

/// What a process killed in the middle of `POST /orders` with `key` leaves behind: the
/// record it began, still `running`, begun `age_secs` ago.
fn leave_running_record(db: &Db, caller: &str, key: &str, age_secs: i64) {
    let begun = kernel::time::now() - chrono::Duration::seconds(age_secs);
    let query = "INSERT INTO idempotency_keys (caller, key, method, path, request_hash, state, \
                 created_at, expires_at) VALUES (?, ?, 'POST', '/api/v1/orders', 'cut', 'running', ?, ?)";
    let query = match db.backend() {
        Backend::Sqlite => query.to_owned(),
        Backend::Postgres => (1..=4).fold(query.to_owned(), |q, n| {
            q.replacen('?', &format!("${n}"), 1)
        }),
    };
    diesel::sql_query(query)
        .bind::<Text, _>(caller)
        .bind::<Text, _>(key)
        .bind::<Timestamp, _>(begun)
        .bind::<Timestamp, _>(begun + chrono::Duration::hours(24))
        .execute(&mut *db.get().unwrap())
        .unwrap();
}

async fn a_retry_after_a_crash_is_served_once_no_request_can_still_run(backend: Backend) {
    // Requests time out after 1 s, so a record older than that (plus the margin) is orphaned.
    let Some(app) = TestApp::spawn_with(backend, |s| s.http.request_timeout_secs = 1).await else {
        return;
    };
    let product = app.create_product("CUT", "Cut", 100, 5).await;
    let body = json!({"items": [{"product_id": product["id"], "quantity": 1}]});
    let db = app.db();
    leave_running_record(&db, "ivy", "cut-by-a-crash", 60);
    leave_running_record(&db, "ivy", "still-running", 0);
    let send = |key: &'static str| {
        app.as_customer("ivy", Method::POST, "/api/v1/orders")
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
    };

    let retried = send("cut-by-a-crash").await.unwrap();
    assert_eq!(
        retried.status(),
        StatusCode::CREATED,
        "the retry of a request a crash cut off is served: {}",
        retried.text().await.unwrap()
    );
    let replay = send("cut-by-a-crash").await.unwrap();
    assert_eq!(replay.headers()["idempotent-replayed"], "true");

    // A record as young as a request that may still be running keeps its key: it is not
    // taken over (the stand-in record's fingerprint differs, so the refusal is the 422 for a
    // different request rather than the 409 for one in flight).
    let busy = send("still-running").await.unwrap();
    assert_eq!(busy.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let placed: Value = app.product(product["id"].as_str().unwrap()).await;
    assert_eq!(
        placed["reserved"], 1,
        "one order for the retried key, none for the busy one"
    );
}

#[tokio::test]
async fn sqlite_a_retry_after_a_crash_is_served_once_no_request_can_still_run() {
    a_retry_after_a_crash_is_served_once_no_request_can_still_run(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_a_retry_after_a_crash_is_served_once_no_request_can_still_run() {
    a_retry_after_a_crash_is_served_once_no_request_can_still_run(Backend::Postgres).await;
}
