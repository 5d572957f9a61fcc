//! Orders over HTTP: placing (priced, reserved, all or nothing), visibility between
//! customers, the state machine, expiry, concurrency and Idempotency-Key.

use std::time::Duration;

use futures_util::future::join_all;
use kernel::{auth::Role, db::Backend};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, fields, on_both_backends, on_both_backends_with, problem};

impl TestApp {
    pub fn as_customer(&self, name: &str, method: Method, path: &str) -> reqwest::RequestBuilder {
        let token = self.keys().issue(name, Role::Customer, None).unwrap();
        self.client
            .request(method, self.url(path))
            .bearer_auth(token)
    }

    pub async fn place_order(&self, customer: &str, items: Value) -> reqwest::Response {
        self.as_customer(customer, Method::POST, "/api/v1/orders")
            .json(&json!({ "items": items }))
            .send()
            .await
            .unwrap()
    }

    pub async fn product(&self, id: &str) -> Value {
        self.get_json(&format!("/api/v1/products/{id}")).await
    }

    /// Polls `check` until it holds: saga steps run in the background after the commit.
    pub async fn eventually<F, Fut>(&self, what: &str, check: F)
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        for _ in 0..200 {
            if check().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("never happened: {what}");
    }
}

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

on_both_backends!(
    an_order_is_priced_reserved_and_pending_payment,
    an_order_reserves_all_lines_or_none,
    bad_orders_are_named,
    customers_see_only_their_own_orders,
    illegal_transitions_conflict_and_cancel_releases_stock,
    two_hundred_concurrent_orders_never_oversell,
    idempotency_keys_replay_the_first_response,
);

async fn an_order_is_priced_reserved_and_pending_payment(app: TestApp) {
    let tea = app.create_product("TEA", "Tea", 450, 10).await;
    let mug = app.create_product("MUG", "Mug", 1200, 3).await;
    let response = app
        .place_order(
            "alice",
            json!([{"product_id": id(&tea), "quantity": 2}, {"product_id": id(&mug), "quantity": 1}, {"product_id": id(&tea), "quantity": 1}]),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let order: Value = response.json().await.unwrap();
    assert_eq!(location, format!("/api/v1/orders/{}", id(&order)));
    assert_eq!(order["status"], "pending_payment");
    assert_eq!(order["customer"], "alice");
    assert_eq!(
        order["total"],
        json!({"amount": 3 * 450 + 1200, "currency": "EUR"})
    );
    assert_eq!(
        order["items"].as_array().unwrap().len(),
        2,
        "repeated products are merged"
    );
    assert_eq!(app.product(&id(&tea)).await["available"], 7);
    assert_eq!(app.product(&id(&mug)).await["available"], 2);

    // The price is a snapshot: changing the catalog later does not change the order.
    app.admin(Method::PATCH, &format!("/api/v1/products/{}", id(&tea)))
        .json(&json!({"price": {"amount": 999, "currency": "EUR"}}))
        .send()
        .await
        .unwrap();
    let again: Value = app
        .as_customer("alice", Method::GET, &location)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["total"]["amount"], 3 * 450 + 1200);
}

async fn an_order_reserves_all_lines_or_none(app: TestApp) {
    let plenty = app.create_product("PLENTY", "Plenty", 100, 10).await;
    let scarce = app.create_product("SCARCE", "Scarce", 100, 1).await;
    let response = app
        .place_order("bob", json!([{"product_id": id(&plenty), "quantity": 3}, {"product_id": id(&scarce), "quantity": 2}]))
        .await;
    let body = problem(response, StatusCode::CONFLICT).await;
    assert!(
        body["detail"].as_str().unwrap().contains(&id(&scarce)),
        "{body}"
    );
    assert_eq!(app.product(&id(&plenty)).await["available"], 10);
    let listed: Value = app
        .as_customer("bob", Method::GET, "/api/v1/orders")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        listed["items"].as_array().unwrap().len(),
        0,
        "a refused order does not exist"
    );
}

async fn bad_orders_are_named(app: TestApp) {
    let eur = app.create_product("EUR-1", "Euro thing", 100, 10).await;
    let response = app
        .place_order(
            "carol",
            json!([{"product_id": uuid::Uuid::now_v7(), "quantity": 1}]),
        )
        .await;
    assert_eq!(
        fields(&problem(response, StatusCode::UNPROCESSABLE_ENTITY).await),
        ["items[0].product_id"]
    );
    let response = app
        .place_order("carol", json!([{"product_id": id(&eur), "quantity": 0}, {"product_id": id(&eur), "quantity": "two"}]))
        .await;
    let body = problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
    // The wrongly typed line and the line that breaks the rule, in one answer.
    assert_eq!(fields(&body), ["items[0].quantity", "items[1].quantity"]);
    let response = app.place_order("carol", json!([])).await;
    assert_eq!(
        fields(&problem(response, StatusCode::UNPROCESSABLE_ENTITY).await),
        ["items"]
    );

    let usd = app
        .admin(Method::POST, "/api/v1/products")
        .json(&json!({"sku": "USD-1", "name": "Dollar thing", "price": {"amount": 100, "currency": "USD"}, "stock": 5}))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let response = app
        .place_order("carol", json!([{"product_id": id(&eur), "quantity": 1}, {"product_id": id(&usd), "quantity": 1}]))
        .await;
    assert_eq!(
        fields(&problem(response, StatusCode::UNPROCESSABLE_ENTITY).await),
        ["items"]
    );

    let clinician = app
        .client
        .post(app.url("/api/v1/orders"))
        .bearer_auth(app.token(Role::Clinician))
        .json(&json!({"items": []}))
        .send()
        .await
        .unwrap();
    problem(clinician, StatusCode::FORBIDDEN).await;
    let anonymous = app
        .client
        .post(app.url("/api/v1/orders"))
        .json(&json!({"items": []}))
        .send()
        .await
        .unwrap();
    problem(anonymous, StatusCode::UNAUTHORIZED).await;
}

async fn customers_see_only_their_own_orders(app: TestApp) {
    let p = app.create_product("SHARED", "Shared", 100, 10).await;
    let line = json!([{"product_id": id(&p), "quantity": 1}]);
    let alices: Value = app
        .place_order("alice", line.clone())
        .await
        .json()
        .await
        .unwrap();
    app.place_order("bob", line.clone()).await;
    app.place_order("bob", line).await;

    let path = format!("/api/v1/orders/{}", id(&alices));
    let theft = app
        .as_customer("bob", Method::GET, &path)
        .send()
        .await
        .unwrap();
    problem(theft, StatusCode::NOT_FOUND).await;
    let cancel = app
        .as_customer("bob", Method::POST, &format!("{path}/cancel"))
        .send()
        .await
        .unwrap();
    problem(cancel, StatusCode::NOT_FOUND).await;

    let bobs: Value = app
        .as_customer("bob", Method::GET, "/api/v1/orders?customer=alice")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        bobs["items"].as_array().unwrap().len(),
        2,
        "a customer's filter cannot widen the view"
    );
    assert!(
        bobs["items"].as_array().unwrap().iter().all(|o| {
            let lines = o["items"].as_array().unwrap();
            lines.len() == 1 && lines[0]["product_id"] == p["id"] && o["total"]["amount"] == 100
        }),
        "listed orders carry their own lines: {bobs}"
    );
    assert!(
        bobs["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["customer"] == "bob")
    );

    let all: Value = app
        .admin(Method::GET, "/api/v1/orders?limit=2")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(all["items"].as_array().unwrap().len(), 2);
    let next = all["next"].as_str().unwrap();
    let rest: Value = app
        .admin(
            Method::GET,
            &format!("/api/v1/orders?limit=2&cursor={next}"),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rest["items"].as_array().unwrap().len(), 1);
    let alice_only: Value = app
        .admin(
            Method::GET,
            "/api/v1/orders?customer=alice&status=pending_payment",
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(alice_only["items"].as_array().unwrap().len(), 1);
    let bad = app
        .admin(Method::GET, "/api/v1/orders?status=lost")
        .send()
        .await
        .unwrap();
    assert_eq!(
        fields(&problem(bad, StatusCode::UNPROCESSABLE_ENTITY).await),
        ["status"]
    );
}

async fn illegal_transitions_conflict_and_cancel_releases_stock(app: TestApp) {
    let p = app.create_product("FLOW", "Flow", 100, 5).await;
    let order: Value = app
        .place_order("dave", json!([{"product_id": id(&p), "quantity": 2}]))
        .await
        .json()
        .await
        .unwrap();
    let path = format!("/api/v1/orders/{}", id(&order));

    problem(
        app.admin(Method::POST, &format!("{path}/ship"))
            .send()
            .await
            .unwrap(),
        StatusCode::CONFLICT,
    )
    .await;
    problem(
        app.admin(Method::POST, &format!("{path}/deliver"))
            .send()
            .await
            .unwrap(),
        StatusCode::CONFLICT,
    )
    .await;
    let by_customer = app
        .as_customer("dave", Method::POST, &format!("{path}/ship"))
        .send()
        .await
        .unwrap();
    problem(by_customer, StatusCode::FORBIDDEN).await;

    let cancelled = app
        .as_customer("dave", Method::POST, &format!("{path}/cancel"))
        .send()
        .await
        .unwrap();
    assert_eq!(cancelled.status(), StatusCode::OK);
    let cancelled: Value = cancelled.json().await.unwrap();
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["cancel_reason"], "cancelled by dave");
    problem(
        app.as_customer("dave", Method::POST, &format!("{path}/cancel"))
            .send()
            .await
            .unwrap(),
        StatusCode::CONFLICT,
    )
    .await;

    let product = id(&p);
    app.eventually("the cancelled order's stock is released", || async {
        app.product(&product).await["available"] == 5
    })
    .await;
}

async fn two_hundred_concurrent_orders_never_oversell(app: TestApp) {
    let p = app.create_product("HOT", "Hot item", 100, 50).await;
    let line = json!([{"product_id": id(&p), "quantity": 1}]);
    let attempts = (0..200).map(|n| {
        let request = app
            .as_customer(&format!("c{n}"), Method::POST, "/api/v1/orders")
            .json(&json!({"items": line}));
        async move { request.send().await.unwrap().status() }
    });
    let statuses = join_all(attempts).await;
    let created = statuses
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::CONFLICT)
        .count();
    assert_eq!((created, refused), (50, 150), "{statuses:?}");
    let product = app.product(&id(&p)).await;
    assert_eq!(
        (
            product["stock"].as_i64(),
            product["reserved"].as_i64(),
            product["available"].as_i64()
        ),
        (Some(50), Some(50), Some(0))
    );
}

async fn idempotency_keys_replay_the_first_response(app: TestApp) {
    let p = app.create_product("IDEM", "Idem", 100, 10).await;
    let body = json!({"items": [{"product_id": id(&p), "quantity": 1}]});
    let send = |customer: &str, key: &str, body: &Value| {
        app.as_customer(customer, Method::POST, "/api/v1/orders")
            .header("Idempotency-Key", key)
            .json(body)
            .send()
    };
    let first = send("erin", "key-1", &body).await.unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    let location = first.headers()["location"].clone();
    let first: Value = first.json().await.unwrap();

    let again = send("erin", "key-1", &body).await.unwrap();
    assert_eq!(again.status(), StatusCode::CREATED);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.headers()["location"], location);
    assert_eq!(
        again.json::<Value>().await.unwrap(),
        first,
        "the same response, not a second order"
    );
    assert_eq!(app.product(&id(&p)).await["available"], 9);

    let other_body = json!({"items": [{"product_id": id(&p), "quantity": 2}]});
    let reused = send("erin", "key-1", &other_body).await.unwrap();
    assert_eq!(
        fields(&problem(reused, StatusCode::UNPROCESSABLE_ENTITY).await),
        ["Idempotency-Key"]
    );

    // Keys belong to their caller: another customer's identical key is another request.
    let franks = send("frank", "key-1", &body).await.unwrap();
    assert_eq!(franks.status(), StatusCode::CREATED);
    assert_ne!(id(&franks.json::<Value>().await.unwrap()), id(&first));

    // Concurrent first uses: one order, the others wait (409) or replay it.
    let racers = (0..20).map(|_| send("gina", "race", &body));
    let responses = join_all(racers).await;
    let mut ids = std::collections::HashSet::new();
    for response in responses {
        let response = response.unwrap();
        match response.status() {
            StatusCode::CREATED => {
                ids.insert(id(&response.json::<Value>().await.unwrap()));
            }
            StatusCode::CONFLICT => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(ids.len(), 1);
    assert_eq!(app.product(&id(&p)).await["available"], 7);

    let bad_key = send("erin", "", &body).await.unwrap();
    assert_eq!(
        fields(&problem(bad_key, StatusCode::UNPROCESSABLE_ENTITY).await),
        ["Idempotency-Key"]
    );
}

mod expiry {
    use super::*;

    async fn short_expiry(backend: Backend) -> Option<TestApp> {
        TestApp::spawn_with(backend, |s| {
            s.modules.insert(
                "order".into(),
                json!({"payment_timeout_secs": 1, "expiry_check_secs": 1}),
            );
            s.bus.poll_interval_ms = 50;
        })
        .await
    }

    on_both_backends_with!(short_expiry, unpaid_orders_expire_and_release_their_stock);

    async fn unpaid_orders_expire_and_release_their_stock(app: TestApp) {
        let p = app.create_product("EXP", "Expiring", 100, 4).await;
        let order: Value = app
            .place_order("hank", json!([{"product_id": id(&p), "quantity": 3}]))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(app.product(&id(&p)).await["available"], 1);
        let path = format!("/api/v1/orders/{}", id(&order));
        app.eventually("the order expires", || async {
            let order: Value = app
                .as_customer("hank", Method::GET, &path)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            order["status"] == "cancelled" && order["cancel_reason"] == "expired"
        })
        .await;
        let product = id(&p);
        app.eventually("its stock is released", || async {
            app.product(&product).await["available"] == 4
        })
        .await;
    }
}
