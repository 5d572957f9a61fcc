//! Contention on PostgreSQL: many customers place, pay and cancel orders of a few hot
//! products at once while the relay commits and releases their stock behind them. Lock
//! conflicts (deadlocks, serialization failures) are the database's business: no client sees
//! one, no event is dead-lettered, and the books balance.

use std::collections::HashMap;

use futures_util::future::join_all;
use kernel::db::Backend;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::TestApp;

const CLIENTS: usize = 32;
const ORDERS_PER_CLIENT: usize = 12;
const INITIAL_STOCK: i64 = 100_000;
const VISA_OK: &str = "4242424242424242";

/// A small random number from a fresh UUID (no extra dependency for test noise).
fn random(below: u128) -> u128 {
    uuid::Uuid::new_v4().as_u128() % below
}

/// What one customer did: every answer's status (with the body of any 5xx), and the orders
/// placed with their lines.
#[derive(Default)]
struct Tally {
    answers: Vec<(String, StatusCode, Option<String>)>,
    orders: Vec<(String, Vec<(String, i64)>)>,
}

impl Tally {
    async fn record(&mut self, what: &str, response: reqwest::Response) -> Option<Value> {
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        let server_error = status.is_server_error().then(|| body.clone());
        self.answers.push((what.to_owned(), status, server_error));
        serde_json::from_str(&body).ok()
    }
}

async fn customer(app: &TestApp, name: String, products: Vec<String>) -> Tally {
    let mut tally = Tally::default();
    for _ in 0..ORDERS_PER_CLIENT {
        // One to three hot products, listed in a random order, one to three units each.
        let mut lines: Vec<(String, i64)> = products
            .iter()
            .filter(|_| random(3) > 0)
            .map(|p| (p.clone(), 1 + i64::try_from(random(3)).unwrap()))
            .collect();
        if lines.is_empty() {
            lines.push((products[usize::try_from(random(3)).unwrap()].clone(), 1));
        }
        if random(2) == 0 {
            lines.reverse();
        }
        let items: Vec<Value> = lines
            .iter()
            .map(|(p, q)| json!({"product_id": p, "quantity": q}))
            .collect();
        let placed = app.place_order(&name, json!(items)).await;
        let created = placed.status() == StatusCode::CREATED;
        let Some(order) = tally.record("place", placed).await else {
            continue;
        };
        if !created {
            continue;
        }
        let id = order["id"].as_str().unwrap().to_owned();
        tally.orders.push((id.clone(), lines));
        let (pay, cancel) = match random(4) {
            0 => (false, false),
            1 => (true, false),
            2 => (true, true),
            _ => (false, true),
        };
        if pay {
            let paid = app
                .as_customer(&name, Method::POST, "/api/v1/payments")
                .json(&json!({"order_id": id, "card": {
                    "number": VISA_OK, "exp_month": 12, "exp_year": 2035, "cvc": "314"}}))
                .send()
                .await
                .unwrap();
            tally.record("pay", paid).await;
        }
        if cancel {
            let cancelled = app
                .as_customer(&name, Method::POST, &format!("/api/v1/orders/{id}/cancel"))
                .send()
                .await
                .unwrap();
            tally.record("cancel", cancelled).await;
        }
    }
    tally
}

async fn events(app: &TestApp, status: &str) -> Vec<Value> {
    let response = app
        .admin(
            Method::GET,
            &format!("/api/v1/admin/events?status={status}&limit=100"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let page: Value = response.json().await.unwrap();
    page["items"].as_array().unwrap().clone()
}

/// Waits (bounded) until no delivery is pending: the sagas have caught up.
async fn settle(app: &TestApp) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    while !events(app, "pending").await.is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "deliveries still pending after three minutes"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_place_pay_cancel_on_hot_products_never_fails_a_client() {
    let Some(app) = TestApp::spawn(Backend::Postgres).await else {
        return;
    };
    let mut products = Vec::new();
    for sku in ["HOT-A", "HOT-B", "HOT-C"] {
        let product = app.create_product(sku, "Hot", 500, INITIAL_STOCK).await;
        products.push(product["id"].as_str().unwrap().to_owned());
    }

    let tallies =
        join_all((0..CLIENTS).map(|c| customer(&app, format!("c{c}"), products.clone()))).await;
    settle(&app).await;

    let answers: Vec<_> = tallies.iter().flat_map(|t| &t.answers).collect();
    let failures: Vec<_> = answers
        .iter()
        .filter(|(_, status, _)| status.is_server_error())
        .collect();
    let orders: Vec<_> = tallies.iter().flat_map(|t| &t.orders).collect();
    let mut by_kind: HashMap<&str, usize> = HashMap::new();
    for (what, _, _) in &failures {
        *by_kind.entry(what.as_str()).or_default() += 1;
    }
    eprintln!(
        "contention: {} orders placed, {} requests, {} answered 5xx {by_kind:?}",
        orders.len(),
        answers.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} requests failed with 5xx ({by_kind:?}), e.g. {:?}",
        failures.len(),
        answers.len(),
        failures.first()
    );
    let dead = events(&app, "failed").await;
    assert!(dead.is_empty(), "dead letters: {dead:#?}");

    // The books: units of paid orders left stock; units of unpaid ones are held.
    let mut sold: HashMap<&str, i64> = HashMap::new();
    let mut held: HashMap<&str, i64> = HashMap::new();
    for (id, lines) in &orders {
        let order: Value = app
            .admin(Method::GET, &format!("/api/v1/orders/{id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let bucket = match order["status"].as_str().unwrap() {
            "paid" | "shipped" | "delivered" => &mut sold,
            "pending_payment" => &mut held,
            "cancelled" => continue,
            other => panic!("order {id} is {other}"),
        };
        for (product, quantity) in lines {
            *bucket.entry(product.as_str()).or_default() += quantity;
        }
    }
    for product in &products {
        let p = app.product(product).await;
        let sold = sold.get(product.as_str()).copied().unwrap_or_default();
        let held = held.get(product.as_str()).copied().unwrap_or_default();
        assert_eq!(p["stock"], INITIAL_STOCK - sold, "stock of {product}");
        assert_eq!(p["reserved"], held, "reserved units of {product}");
    }
}
