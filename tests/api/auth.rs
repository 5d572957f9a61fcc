use kernel::auth::{JwtKeys, Role};
use kernel::config::AuthSettings;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{TestApp, on_both_backends, problem};

on_both_backends!(writes_need_an_admin_token);

fn body() -> serde_json::Value {
    json!({"sku": "AUTH-1", "name": "Locked", "price": {"amount": 1, "currency": "EUR"}, "stock": 1})
}

async fn writes_need_an_admin_token(app: TestApp) {
    let url = app.url("/api/v1/products");

    let anonymous = app.client.post(&url).json(&body()).send().await.unwrap();
    assert_eq!(anonymous.headers()["www-authenticate"], "Bearer");
    problem(anonymous, StatusCode::UNAUTHORIZED).await;

    let garbage = app
        .client
        .post(&url)
        .bearer_auth("not.a.jwt")
        .json(&body())
        .send()
        .await
        .unwrap();
    problem(garbage, StatusCode::UNAUTHORIZED).await;

    let not_bearer = app
        .client
        .post(&url)
        .basic_auth("admin", Some("admin"))
        .json(&body())
        .send()
        .await
        .unwrap();
    problem(not_bearer, StatusCode::UNAUTHORIZED).await;

    let foreign = JwtKeys::new(&AuthSettings {
        jwt_secret: "someone-elses-secret".into(),
        issuer: app.settings.auth.issuer.clone(),
        token_ttl_secs: 60,
    })
    .issue("mallory", Role::Admin, None)
    .unwrap();
    let tampered = app
        .client
        .post(&url)
        .bearer_auth(foreign)
        .json(&body())
        .send()
        .await
        .unwrap();
    let detail = problem(tampered, StatusCode::UNAUTHORIZED).await;
    assert!(detail["detail"].as_str().unwrap().contains("signature"));

    for role in [Role::Customer, Role::Clinician, Role::Service] {
        let response = app
            .client
            .post(&url)
            .bearer_auth(app.token(role))
            .json(&body())
            .send()
            .await
            .unwrap();
        problem(response, StatusCode::FORBIDDEN).await;
    }

    // Authentication is checked before the body: a customer learns nothing from a 422.
    let response = app
        .client
        .post(&url)
        .bearer_auth(app.token(Role::Customer))
        .json(&json!({"bogus": true}))
        .send()
        .await
        .unwrap();
    problem(response, StatusCode::FORBIDDEN).await;

    let listed = app.get_json("/api/v1/products").await;
    assert_eq!(listed["total"], 0, "no refused write created anything");

    let ok = app
        .admin(Method::POST, "/api/v1/products")
        .json(&body())
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::CREATED);
}
