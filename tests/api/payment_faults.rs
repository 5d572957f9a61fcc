//! Payments under faults, over HTTP: concurrent refunds never give back more than the gateway
//! captured (read from the gateway's own record), and payments a crash left `processing` are
//! settled by reconciliation, the saga going on. Also the storage scan the card tests use.

use diesel::{
    QueryableByName, RunQueryDsl,
    sql_types::{BigInt, Nullable, Text, Timestamp},
};
use futures_util::future::join_all;
use kernel::db::{Backend, Db};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{
    helpers::{TestApp, on_both_backends, on_both_backends_with, problem},
    payments::{VISA_OK, id},
};

on_both_backends!(concurrent_refunds_never_give_back_more_than_was_captured);

mod reconciled {
    use super::*;
    on_both_backends_with!(
        reconciling,
        payments_a_crash_left_processing_are_settled_and_the_saga_goes_on,
    );
}

async fn concurrent_refunds_never_give_back_more_than_was_captured(app: TestApp) {
    let product = app.create_product("PAY-9", "Thing", 1000, 5).await;
    let order: Value = app
        .place_order("hank", json!([{"product_id": id(&product), "quantity": 1}]))
        .await
        .json()
        .await
        .unwrap();
    let payment: Value = app
        .pay("hank", &id(&order), VISA_OK)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(payment["status"], "succeeded");
    let path = format!("/api/v1/payments/{}/refunds", id(&payment));
    // Fifteen refunds of 100 on a payment of 1,000.
    let calls = (0..15).map(|_| {
        app.admin(Method::POST, &path)
            .json(&json!({"amount": 100}))
            .send()
    });
    let mut statuses = Vec::new();
    for response in join_all(calls).await {
        let response = response.unwrap();
        let status = response.status();
        if status != StatusCode::OK {
            problem(response, StatusCode::CONFLICT).await;
        }
        statuses.push(status);
    }
    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    assert_eq!(ok, 10, "{statuses:?}");
    assert_eq!(
        statuses.len() - ok,
        5,
        "the rest are refused with 409: {statuses:?}"
    );
    // The gateway's own record: it gave back exactly what it captured, no more.
    assert_eq!(gateway_totals(&app.db(), &id(&payment)), (1000, 1000));
    let after: Value = app
        .admin(Method::GET, &format!("/api/v1/payments/{}", id(&payment)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (after["status"].as_str(), after["refunded"].as_i64()),
        (Some("refunded"), Some(1000))
    );
}

/// The app with reconciliation settling anything open for more than a second.
async fn reconciling(backend: Backend) -> Option<TestApp> {
    TestApp::spawn_with(backend, |s| {
        s.modules
            .insert("payment".into(), json!({"reconcile_after_secs": 1}));
    })
    .await
}

async fn payments_a_crash_left_processing_are_settled_and_the_saga_goes_on(app: TestApp) {
    let db = app.db();
    // Charged at the gateway, then the process died before recording it.
    let (_, charged_order) = app.ordered("PAY-10", "ivan", 5, 1).await;
    let charged = crashed_payment(&db, &charged_order, "ivan", 1500);
    record_capture(&db, &charged, 1500);
    // Recorded, and the process died before calling the gateway.
    let (_, lost_order) = app.ordered("PAY-11", "ivan", 5, 1).await;
    let lost = crashed_payment(&db, &lost_order, "ivan", 1500);

    app.eventually(
        "the charged payment's order is paid through the saga",
        || async { app.order_as("ivan", &charged_order).await["status"] == "paid" },
    )
    .await;
    let payment = |id: String| {
        let app = &app;
        async move {
            app.admin(Method::GET, &format!("/api/v1/payments/{id}"))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    assert_eq!(payment(charged.clone()).await["status"], "succeeded");
    app.eventually("the lost charge is failed", || async {
        payment(lost.clone()).await["status"] == "failed"
    })
    .await;
    assert_eq!(payment(lost).await["failure_code"], "interrupted");
    assert_eq!(
        app.order_as("ivan", &lost_order).await["status"],
        "pending_payment"
    );
    let again = app.pay("ivan", &lost_order, VISA_OK).await;
    assert_eq!(
        again.status(),
        StatusCode::CREATED,
        "the order can be paid again"
    );
    app.eventually("the order is paid", || async {
        app.order_as("ivan", &lost_order).await["status"] == "paid"
    })
    .await;
}

/// The CVC every test card carries.
pub(crate) const CVC: &str = "314";

impl TestApp {
    /// A connection pool on the app's database, for looking at what it stored.
    pub(crate) fn db(&self) -> Db {
        Db::connect(&self.settings.database).unwrap()
    }
}

fn sql(db: &Db, query: &str) -> String {
    match db.backend() {
        Backend::Sqlite => query.to_owned(),
        Backend::Postgres => {
            let mut n = 0;
            query
                .chars()
                .map(|c| {
                    if c == '?' {
                        n += 1;
                        format!("${n}")
                    } else {
                        c.to_string()
                    }
                })
                .collect()
        }
    }
}

/// A `processing` payment of `order` as a crash leaves it (recorded a minute ago, never
/// settled); its id.
fn crashed_payment(db: &Db, order: &str, customer: &str, amount: i64) -> String {
    let id = uuid::Uuid::now_v7().to_string();
    let at = kernel::time::now() - chrono::Duration::minutes(1);
    diesel::sql_query(sql(
        db,
        "INSERT INTO payments (id, order_id, customer, amount, currency, refunded, status, \
         brand, last4, failure_code, created_at, updated_at) \
         VALUES (?, ?, ?, ?, 'EUR', 0, 'processing', 'visa', '4242', NULL, ?, ?)",
    ))
    .bind::<Text, _>(&id)
    .bind::<Text, _>(order)
    .bind::<Text, _>(customer)
    .bind::<BigInt, _>(amount)
    .bind::<Timestamp, _>(at)
    .bind::<Timestamp, _>(at)
    .execute(&mut *db.get().unwrap())
    .unwrap();
    id
}

/// What the simulated gateway keeps after capturing `payment`'s charge.
fn record_capture(db: &Db, payment: &str, amount: i64) {
    diesel::sql_query(sql(
        db,
        "INSERT INTO payment_gateway_sim_operations (idempotency_key, kind, payment_id, amount, \
         currency, outcome, decline_code, created_at) \
         VALUES (?, 'charge', ?, ?, 'EUR', 'captured', NULL, ?)",
    ))
    .bind::<Text, _>(format!("charge:{payment}"))
    .bind::<Text, _>(payment)
    .bind::<BigInt, _>(amount)
    .bind::<Timestamp, _>(kernel::time::now())
    .execute(&mut *db.get().unwrap())
    .unwrap();
}

#[derive(QueryableByName)]
struct Total {
    #[diesel(sql_type = Nullable<BigInt>)]
    total: Option<i64>,
}

/// What the simulated gateway itself records as captured and as refunded for `payment`.
fn gateway_totals(db: &Db, payment: &str) -> (i64, i64) {
    let total = |kind: &str, outcome: &str| {
        diesel::sql_query(sql(
            db,
            "SELECT CAST(SUM(amount) AS BIGINT) AS total FROM payment_gateway_sim_operations \
             WHERE kind = ? AND outcome = ? AND payment_id = ?",
        ))
        .bind::<Text, _>(kind)
        .bind::<Text, _>(outcome)
        .bind::<Text, _>(payment)
        .get_result::<Total>(&mut *db.get().unwrap())
        .unwrap()
        .total
        .unwrap_or(0)
    };
    (total("charge", "captured"), total("refund", "refunded"))
}

#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = Text)]
    name: String,
}

#[derive(QueryableByName)]
struct Stored {
    #[diesel(sql_type = Nullable<Text>)]
    value: Option<String>,
}

/// Every value of every text column of every table, one per line. Timestamps and numbers are
/// not text columns, so their digits cannot pass for a CVC.
pub(crate) fn stored_text(db: &Db) -> String {
    let mut conn = db.get().unwrap();
    let columns = match db.backend() {
        Backend::Sqlite => {
            "SELECT m.name || '.' || p.name AS name FROM sqlite_master m \
             JOIN pragma_table_info(m.name) p WHERE m.type = 'table' AND p.type = 'TEXT'"
        }
        Backend::Postgres => {
            "SELECT table_name || '.' || column_name AS name FROM information_schema.columns \
             WHERE table_schema = 'public' \
             AND data_type IN ('text', 'character varying', 'json', 'jsonb', 'bytea')"
        }
    };
    let columns: Vec<Name> = diesel::sql_query(columns).load(&mut *conn).unwrap();
    assert!(
        columns.iter().any(|c| c.name == "payments.last4"),
        "the scan sees the tables"
    );
    let mut text = String::new();
    for column in columns {
        let (table, name) = column.name.split_once('.').unwrap();
        let values: Vec<Stored> = diesel::sql_query(format!(
            "SELECT CAST(\"{name}\" AS TEXT) AS value FROM \"{table}\""
        ))
        .load(&mut *conn)
        .unwrap();
        for value in values.into_iter().filter_map(|v| v.value) {
            text.push_str(&value);
            text.push('\n');
        }
    }
    text
}

pub(crate) fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !c.is_ascii_alphanumeric())
}
