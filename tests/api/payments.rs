//! Payments and the saga over HTTP: pay → paid → stock committed → ship → deliver; declines
//! and retries; cancellation with refund; refunds; idempotent charges; and no card number
//! anywhere it could leak.

use futures_util::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use diesel::{
    QueryableByName, RunQueryDsl,
    sql_types::{BigInt, Nullable, Text, Timestamp},
};
use kernel::db::{Backend, Db};

use crate::helpers::{TestApp, fields, on_both_backends, on_both_backends_with, problem};

const VISA_OK: &str = "4242424242424242";
const DECLINED: &str = "4000000000000002";
const NO_FUNDS: &str = "4000000000009995";

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

fn card(number: &str) -> Value {
    json!({"number": number, "exp_month": 12, "exp_year": 2035, "cvc": "314"})
}

impl TestApp {
    async fn pay(&self, customer: &str, order: &str, number: &str) -> reqwest::Response {
        self.as_customer(customer, Method::POST, "/api/v1/payments")
            .json(&json!({"order_id": order, "card": card(number)}))
            .send()
            .await
            .unwrap()
    }

    async fn order_as(&self, customer: &str, order: &str) -> Value {
        self.as_customer(customer, Method::GET, &format!("/api/v1/orders/{order}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// A product with `stock` units and a pending order of `quantity` by `customer`.
    async fn ordered(
        &self,
        sku: &str,
        customer: &str,
        stock: i64,
        quantity: i64,
    ) -> (String, String) {
        let product = self.create_product(sku, "Thing", 1500, stock).await;
        let order: Value = self
            .place_order(
                customer,
                json!([{"product_id": id(&product), "quantity": quantity}]),
            )
            .await
            .json()
            .await
            .unwrap();
        (id(&product), id(&order))
    }
}

on_both_backends!(
    a_paid_order_commits_its_stock_and_ships,
    a_declined_card_leaves_the_order_payable,
    cancelling_a_paid_order_refunds_it_and_restocks,
    payments_check_owner_order_state_and_card,
    refunds_are_partial_or_full_and_never_more,
    one_idempotency_key_charges_once,
    no_card_number_or_cvc_reaches_the_outbox_or_the_database,
    concurrent_refunds_never_give_back_more_than_was_captured,
);

mod reconciled {
    use super::*;
    on_both_backends_with!(
        reconciling,
        payments_a_crash_left_processing_are_settled_and_the_saga_goes_on,
    );
}

async fn a_paid_order_commits_its_stock_and_ships(app: TestApp) {
    let (product, order) = app.ordered("PAY-1", "alice", 10, 2).await;
    let response = app.pay("alice", &order, VISA_OK).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let payment: Value = response.json().await.unwrap();
    assert_eq!(payment["status"], "succeeded");
    assert_eq!(
        payment["amount"],
        json!({"amount": 3000, "currency": "EUR"}),
        "the amount is the order's"
    );
    assert_eq!(
        (payment["brand"].as_str(), payment["last4"].as_str()),
        (Some("visa"), Some("4242"))
    );
    assert!(!payment.to_string().contains(VISA_OK));

    app.eventually("the order is paid", || async {
        app.order_as("alice", &order).await["status"] == "paid"
    })
    .await;
    app.eventually("the stock is committed", || async {
        let p = app.product(&product).await;
        p["stock"] == 8 && p["reserved"] == 0 && p["available"] == 8
    })
    .await;
    let path = format!("/api/v1/orders/{order}");
    let shipped: Value = app
        .admin(Method::POST, &format!("{path}/ship"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(shipped["status"], "shipped");
    let delivered: Value = app
        .admin(Method::POST, &format!("{path}/deliver"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(delivered["status"], "delivered");
    let cancel = app
        .as_customer("alice", Method::POST, &format!("{path}/cancel"))
        .send()
        .await
        .unwrap();
    problem(cancel, StatusCode::CONFLICT).await;

    let listed: Value = app
        .as_customer(
            "alice",
            Method::GET,
            &format!("/api/v1/payments?order_id={order}"),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    assert!(listed["next"].is_null());
}

async fn a_declined_card_leaves_the_order_payable(app: TestApp) {
    let (_, order) = app.ordered("PAY-2", "bob", 5, 1).await;
    for (number, code) in [
        (DECLINED, "card_declined"),
        (NO_FUNDS, "insufficient_funds"),
    ] {
        let payment: Value = app.pay("bob", &order, number).await.json().await.unwrap();
        assert_eq!(payment["status"], "failed");
        assert_eq!(payment["failure_code"], code);
    }
    assert_eq!(
        app.order_as("bob", &order).await["status"],
        "pending_payment"
    );
    let retry: Value = app.pay("bob", &order, VISA_OK).await.json().await.unwrap();
    assert_eq!(retry["status"], "succeeded");
    app.eventually("the order is paid", || async {
        app.order_as("bob", &order).await["status"] == "paid"
    })
    .await;
}

async fn cancelling_a_paid_order_refunds_it_and_restocks(app: TestApp) {
    let (product, order) = app.ordered("PAY-3", "carol", 6, 4).await;
    let payment: Value = app
        .pay("carol", &order, VISA_OK)
        .await
        .json()
        .await
        .unwrap();
    app.eventually("the order is paid", || async {
        app.order_as("carol", &order).await["status"] == "paid"
    })
    .await;
    app.eventually("the stock is committed", || async {
        app.product(&product).await["stock"] == 2
    })
    .await;

    let cancelled = app
        .as_customer(
            "carol",
            Method::POST,
            &format!("/api/v1/orders/{order}/cancel"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(cancelled.status(), StatusCode::OK);
    let payment_path = format!("/api/v1/payments/{}", id(&payment));
    app.eventually("the payment is refunded in full", || async {
        let p: Value = app
            .as_customer("carol", Method::GET, &payment_path)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        p["status"] == "refunded" && p["refunded"] == 6000
    })
    .await;
    app.eventually("the units are back in stock", || async {
        let p = app.product(&product).await;
        p["stock"] == 6 && p["available"] == 6
    })
    .await;
}

async fn payments_check_owner_order_state_and_card(app: TestApp) {
    let (_, order) = app.ordered("PAY-4", "dave", 5, 1).await;
    problem(
        app.pay("mallory", &order, VISA_OK).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    problem(
        app.pay("dave", &uuid::Uuid::now_v7().to_string(), VISA_OK)
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;

    let bad = app
        .as_customer("dave", Method::POST, "/api/v1/payments")
        .json(&json!({"order_id": order, "card": {"number": "4242424242424241", "exp_month": 13, "exp_year": 2020, "cvc": "1"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        fields(&problem(bad, StatusCode::UNPROCESSABLE_ENTITY).await),
        ["card.cvc", "card.exp_month", "card.number"]
    );
    let expired = app
        .as_customer("dave", Method::POST, "/api/v1/payments")
        .json(&json!({"order_id": order, "card": {"number": VISA_OK, "exp_month": 1, "exp_year": 2020, "cvc": "123"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        fields(&problem(expired, StatusCode::UNPROCESSABLE_ENTITY).await),
        ["card.exp_year"]
    );
    let with_amount = app
        .as_customer("dave", Method::POST, "/api/v1/payments")
        .json(&json!({"order_id": order, "card": card(VISA_OK), "amount": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        fields(&problem(with_amount, StatusCode::UNPROCESSABLE_ENTITY).await),
        ["amount"],
        "the client cannot set the amount"
    );

    let paid: Value = app.pay("dave", &order, VISA_OK).await.json().await.unwrap();
    assert_eq!(paid["status"], "succeeded");
    problem(app.pay("dave", &order, VISA_OK).await, StatusCode::CONFLICT).await;
    let peek = app
        .as_customer(
            "mallory",
            Method::GET,
            &format!("/api/v1/payments/{}", id(&paid)),
        )
        .send()
        .await
        .unwrap();
    problem(peek, StatusCode::NOT_FOUND).await;
}

async fn refunds_are_partial_or_full_and_never_more(app: TestApp) {
    let (_, order) = app.ordered("PAY-5", "erin", 5, 2).await;
    let payment: Value = app.pay("erin", &order, VISA_OK).await.json().await.unwrap();
    let path = format!("/api/v1/payments/{}/refunds", id(&payment));
    let by_customer = app
        .as_customer("erin", Method::POST, &path)
        .json(&json!({"amount": 100}))
        .send()
        .await
        .unwrap();
    problem(by_customer, StatusCode::FORBIDDEN).await;

    let partial: Value = app
        .admin(Method::POST, &path)
        .json(&json!({"amount": 1000}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (partial["status"].as_str(), partial["refunded"].as_i64()),
        (Some("partially_refunded"), Some(1000))
    );
    problem(
        app.admin(Method::POST, &path)
            .json(&json!({"amount": 2001}))
            .send()
            .await
            .unwrap(),
        StatusCode::CONFLICT,
    )
    .await;
    let zero = app
        .admin(Method::POST, &path)
        .json(&json!({"amount": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        fields(&problem(zero, StatusCode::UNPROCESSABLE_ENTITY).await),
        ["amount"]
    );
    let full: Value = app
        .admin(Method::POST, &path)
        .json(&json!({"amount": 2000}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (full["status"].as_str(), full["refunded"].as_i64()),
        (Some("refunded"), Some(3000))
    );
    problem(
        app.admin(Method::POST, &path)
            .json(&json!({"amount": 1}))
            .send()
            .await
            .unwrap(),
        StatusCode::CONFLICT,
    )
    .await;

    let (_, other) = app.ordered("PAY-6", "erin", 5, 1).await;
    let failed: Value = app
        .pay("erin", &other, DECLINED)
        .await
        .json()
        .await
        .unwrap();
    let path = format!("/api/v1/payments/{}/refunds", id(&failed));
    problem(
        app.admin(Method::POST, &path)
            .json(&json!({"amount": 1}))
            .send()
            .await
            .unwrap(),
        StatusCode::CONFLICT,
    )
    .await;
}

async fn one_idempotency_key_charges_once(app: TestApp) {
    let (_, order) = app.ordered("PAY-7", "frank", 5, 1).await;
    let body = json!({"order_id": order, "card": card(VISA_OK)});
    let attempts = (0..50).map(|_| {
        app.as_customer("frank", Method::POST, "/api/v1/payments")
            .header("Idempotency-Key", "pay-once")
            .json(&body)
            .send()
    });
    let mut created = std::collections::HashSet::new();
    for response in join_all(attempts).await {
        let response = response.unwrap();
        match response.status() {
            StatusCode::CREATED => {
                created.insert(id(&response.json::<Value>().await.unwrap()));
            }
            StatusCode::CONFLICT => {}
            other => panic!("unexpected {other}: {}", response.text().await.unwrap()),
        }
    }
    assert_eq!(created.len(), 1, "every success is the same payment");
    let listed: Value = app
        .admin(Method::GET, &format!("/api/v1/payments?order_id={order}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        listed["items"].as_array().unwrap().len(),
        1,
        "exactly one charge"
    );
}

async fn no_card_number_or_cvc_reaches_the_outbox_or_the_database(app: TestApp) {
    let (_, order) = app.ordered("PAY-8", "gina", 5, 1).await;
    app.pay("gina", &order, DECLINED).await;
    let payment: Value = app.pay("gina", &order, VISA_OK).await.json().await.unwrap();
    app.eventually("the order is paid", || async {
        app.order_as("gina", &order).await["status"] == "paid"
    })
    .await;
    let refund = app
        .admin(
            Method::POST,
            &format!("/api/v1/payments/{}/refunds", id(&payment)),
        )
        .json(&json!({"amount": 100}))
        .send()
        .await
        .unwrap();
    assert_eq!(refund.status(), StatusCode::OK);
    let events: Value = app
        .admin(Method::GET, "/api/v1/admin/events?limit=100")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let text = events.to_string();
    assert!(text.contains("payment.succeeded") && text.contains("payment.failed"));
    for secret in [VISA_OK, DECLINED, "\"cvc\""] {
        assert!(!text.contains(secret), "{secret} in the outbox");
    }
    // Every text column of every table, on either backend: payments, refunds, the gateway's
    // record, the outbox, the idempotency store.
    let stored = stored_text(&app.db());
    assert!(
        words(&stored).any(|w| w == "4242"),
        "the scan sees stored text (last4)"
    );
    for secret in [VISA_OK, DECLINED, &VISA_OK[..12], &DECLINED[..12]] {
        assert!(!stored.contains(secret), "{secret} in the database");
    }
    assert!(
        !words(&stored).any(|w| w == CVC),
        "the CVC is in the database"
    );
    assert!(!stored.contains("cvc"), "a CVC field is in the database");
    // On SQLite the file itself too (free pages and the WAL included).
    if let Some(path) = app.sqlite_path() {
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend(std::fs::read(path.with_extension("db-wal")).unwrap_or_default());
        for secret in [VISA_OK, DECLINED] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{secret} in the database file"
            );
        }
    }
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

const CVC: &str = "314";

impl TestApp {
    /// A connection pool on the app's database, for looking at what it stored.
    fn db(&self) -> Db {
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
fn stored_text(db: &Db) -> String {
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

fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !c.is_ascii_alphanumeric())
}
