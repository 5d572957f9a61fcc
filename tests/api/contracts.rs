//! Contracts through the composed app: a loyalty contract triggered by `order.paid` through a
//! real order and a real payment, its state carried across executions and its ledger valid.

use kernel::auth::Role;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, on_both_backends};

const LOYALTY: &str = r#"{
  "state": {"points": state.points + int(input.total.amount) / 100},
  "output": {"awarded": int(input.total.amount) / 100}
}"#;

on_both_backends!(a_loyalty_contract_awards_points_for_every_paid_order);

async fn a_loyalty_contract_awards_points_for_every_paid_order(app: TestApp) {
    let created = app
        .admin(Method::POST, "/api/v1/contracts")
        .json(&json!({
            "name": "Loyalty points",
            "parties": ["alice", "shop"],
            "code": LOYALTY,
            "state": {"points": 0},
            "triggers": ["order.paid"]
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let contract: Value = created.json().await.unwrap();
    let path = format!("/api/v1/contracts/{}", contract["id"].as_str().unwrap());
    let deployed = app
        .admin(Method::POST, &format!("{path}/deploy"))
        .send()
        .await
        .unwrap();
    assert_eq!(deployed.status(), StatusCode::OK);

    // Two real orders, paid with a real (simulated) card: 30.00 EUR and 12.00 EUR.
    let product = app.create_product("LOYAL", "Loyal tea", 1500, 10).await;
    for quantity in [2, 1] {
        let order: Value = app
            .place_order(
                "alice",
                json!([{"product_id": product["id"], "quantity": quantity}]),
            )
            .await
            .json()
            .await
            .unwrap();
        let paid = app
            .as_customer("alice", Method::POST, "/api/v1/payments")
            .json(&json!({"order_id": order["id"], "card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2035, "cvc": "123"}}))
            .send()
            .await
            .unwrap();
        assert_eq!(paid.status(), StatusCode::CREATED);
    }

    let executions_path = format!("{path}/executions");
    app.eventually("both paid orders ran the contract", || async {
        let page: Value = app
            .admin(Method::GET, &executions_path)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        page["items"]
            .as_array()
            .is_some_and(|items| items.len() == 2)
    })
    .await;
    let page: Value = app
        .admin(Method::GET, &executions_path)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let items = page["items"].as_array().unwrap();
    assert_eq!(items[0]["seq"], 1);
    assert_eq!(items[0]["output"], json!({"awarded": 30}));
    assert_eq!(items[1]["output"], json!({"awarded": 15}));
    assert_eq!(
        items[1]["state"],
        json!({"points": 45}),
        "state carries across executions"
    );
    assert_eq!(items[0]["caller"], json!({"sub": "bus", "role": "service"}));

    let contract: Value = app
        .admin(Method::GET, &path)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(contract["state"], json!({"points": 45}));
    let verify: Value = app
        .admin(Method::GET, &format!("{path}/ledger/verify"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(verify["valid"], true);
    assert_eq!(verify["length"], 2);
    assert_eq!(verify["head"], items[1]["hash"]);

    // A party may execute it by hand; to a stranger it does not exist.
    let by_party = app
        .as_customer("alice", Method::POST, &executions_path)
        .json(&json!({"input": {"total": {"amount": 100, "currency": "EUR"}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(by_party.status(), StatusCode::CREATED);
    let by_stranger = app
        .as_customer("mallory", Method::POST, &executions_path)
        .json(&json!({"input": {"total": {"amount": 100, "currency": "EUR"}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(by_stranger.status(), StatusCode::NOT_FOUND);
    let by_clinician = app
        .client
        .post(app.url(&executions_path))
        .bearer_auth(app.token(Role::Clinician))
        .json(&json!({"input": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(by_clinician.status(), StatusCode::FORBIDDEN);
}
