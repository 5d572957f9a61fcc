//! Payments and the saga over HTTP: pay → paid → stock committed → ship → deliver; declines
//! and retries; cancellation with refund; refunds; idempotent charges; and no card number
//! anywhere it could leak.

use futures_util::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{
    helpers::{TestApp, fields, on_both_backends, problem},
    payment_faults::{CVC, stored_text, words},
};

pub(crate) const VISA_OK: &str = "4242424242424242";
const DECLINED: &str = "4000000000000002";
const NO_FUNDS: &str = "4000000000009995";

pub(crate) fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

fn card(number: &str) -> Value {
    json!({"number": number, "exp_month": 12, "exp_year": 2035, "cvc": CVC})
}

impl TestApp {
    pub(crate) async fn pay(&self, customer: &str, order: &str, number: &str) -> reqwest::Response {
        self.as_customer(customer, Method::POST, "/api/v1/payments")
            .json(&json!({"order_id": order, "card": card(number)}))
            .send()
            .await
            .unwrap()
    }

    pub(crate) async fn order_as(&self, customer: &str, order: &str) -> Value {
        self.as_customer(customer, Method::GET, &format!("/api/v1/orders/{order}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// A product with `stock` units and a pending order of `quantity` by `customer`.
    pub(crate) async fn ordered(
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
);

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
