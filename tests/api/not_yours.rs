//! A resource a caller may not see is a 404 for every operation on it, the same answer (code
//! and all) as for an id that does not exist: orders and payments belong to their customer,
//! contracts (and their executions and ledger) to their parties, diagnoses and treatments to
//! their patient. A role that may not use an endpoint at all still gets 403 — "not for your
//! role" is not "not yours". Lists filter instead: what is not yours is not in them.

use kernel::auth::Role;
use reqwest::Method;
use serde_json::{Value, json};

use crate::{
    helpers::{TestApp, on_both_backends, problem},
    spec_tour::{Who, body_for, id},
    walk::card,
};

on_both_backends!(what_a_caller_may_not_see_is_a_404_on_every_operation);

/// One operation on a resource: the owner's request, the same request by someone who may not
/// see it (or through a parent it does not belong to), and the request for a resource that
/// does not exist.
struct Row {
    what: &'static str,
    method: Method,
    body: Option<Value>,
    owner: (Who<'static>, String),
    stranger: (Who<'static>, String),
    unknown: (String, Option<Value>),
}

async fn what_a_caller_may_not_see_is_a_404_on_every_operation(app: TestApp) {
    let (alice, mallory) = (Who::Customer("alice"), Who::Customer("mallory"));
    let nobody = uuid::Uuid::now_v7().to_string();

    // Alice's orders (one paid, two pending) and payment; a contract whose party she is.
    let tea = app.create_product("MINE-1", "Tea", 1500, 10).await;
    let items = json!({"items": [{"product_id": id(&tea), "quantity": 1}]});
    let paid = app
        .expect(201, alice, Method::POST, "/api/v1/orders", Some(&items))
        .await;
    let pending = app
        .expect(201, alice, Method::POST, "/api/v1/orders", Some(&items))
        .await;
    let payable = app
        .expect(201, alice, Method::POST, "/api/v1/orders", Some(&items))
        .await;
    let pay = |order: &Value| json!({"order_id": id(order), "card": card("4242424242424242")});
    let payment = app
        .expect(
            201,
            alice,
            Method::POST,
            "/api/v1/payments",
            Some(&pay(&paid)),
        )
        .await;
    let admin = Who::Role(Role::Admin);
    let contract = app
        .expect(
            201,
            admin,
            Method::POST,
            "/api/v1/contracts",
            Some(&body_for("create_contract")),
        )
        .await;
    let contract = format!("/api/v1/contracts/{}", id(&contract));
    app.expect(
        200,
        admin,
        Method::POST,
        &format!("{contract}/deploy"),
        None,
    )
    .await;
    let execution = app
        .expect(
            201,
            alice,
            Method::POST,
            &format!("{contract}/executions"),
            Some(&json!({})),
        )
        .await;
    // Two patients: a clinician reaches a diagnosis or a treatment only through its own.
    let clinician = Who::Role(Role::Clinician);
    let first = app
        .expect(
            201,
            clinician,
            Method::POST,
            "/api/v1/patients",
            Some(&body_for("create_patient")),
        )
        .await;
    let second = app
        .expect(
            201,
            clinician,
            Method::POST,
            "/api/v1/patients",
            Some(&body_for("create_patient")),
        )
        .await;
    let (first, second) = (
        format!("/api/v1/patients/{}", id(&first)),
        format!("/api/v1/patients/{}", id(&second)),
    );
    let diagnosis = app
        .expect(
            201,
            clinician,
            Method::POST,
            &format!("{first}/diagnoses"),
            Some(&body_for("create_diagnosis")),
        )
        .await;
    let treatment = app
        .expect(
            201,
            clinician,
            Method::POST,
            &format!("{first}/treatments"),
            Some(&body_for("create_treatment")),
        )
        .await;

    let order = |o: &Value| format!("/api/v1/orders/{}", id(o));
    let mine =
        |what, method, path: String, body: Option<Value>, unknown: String, unknown_body| Row {
            what,
            method,
            body,
            owner: (alice, path.clone()),
            stranger: (mallory, path),
            unknown: (unknown, unknown_body),
        };
    let unknown_payment = json!({"order_id": nobody, "card": card("4242424242424242")});
    let mut rows = vec![
        mine(
            "read an order",
            Method::GET,
            order(&paid),
            None,
            format!("/api/v1/orders/{nobody}"),
            None,
        ),
        mine(
            "cancel an order",
            Method::POST,
            format!("{}/cancel", order(&pending)),
            None,
            format!("/api/v1/orders/{nobody}/cancel"),
            None,
        ),
        mine(
            "pay an order",
            Method::POST,
            "/api/v1/payments".into(),
            Some(pay(&payable)),
            "/api/v1/payments".into(),
            Some(unknown_payment),
        ),
        mine(
            "read a payment",
            Method::GET,
            format!("/api/v1/payments/{}", id(&payment)),
            None,
            format!("/api/v1/payments/{nobody}"),
            None,
        ),
    ];
    let on_contract = [
        ("read a contract", Method::GET, String::new(), None),
        (
            "list its executions",
            Method::GET,
            "/executions".to_owned(),
            None,
        ),
        (
            "read an execution",
            Method::GET,
            format!("/executions/{}", id(&execution)),
            None,
        ),
        (
            "verify its ledger",
            Method::GET,
            "/ledger/verify".to_owned(),
            None,
        ),
        (
            "execute a contract",
            Method::POST,
            "/executions".to_owned(),
            Some(json!({"input": 1})),
        ),
    ];
    for (what, method, rest, body) in on_contract {
        let unknown = format!("/api/v1/contracts/{nobody}{rest}");
        rows.push(mine(
            what,
            method,
            format!("{contract}{rest}"),
            body.clone(),
            unknown,
            body,
        ));
    }
    // Under the wrong parent, a child does not exist either.
    let children = [
        ("read a diagnosis", "diagnoses", id(&diagnosis)),
        ("read a treatment", "treatments", id(&treatment)),
    ];
    for (what, kind, child) in children {
        rows.push(Row {
            what,
            method: Method::GET,
            body: None,
            owner: (clinician, format!("{first}/{kind}/{child}")),
            stranger: (clinician, format!("{second}/{kind}/{child}")),
            unknown: (format!("{first}/{kind}/{nobody}"), None),
        });
    }

    for row in rows {
        let (stranger, path) = &row.stranger;
        let refused = app
            .call(*stranger, row.method.clone(), path, row.body.as_ref(), &[])
            .await;
        assert_eq!(
            refused.status, 404,
            "{}: a stranger got {}: {}",
            row.what, refused.status, refused.body
        );
        let (owner, path) = &row.owner;
        let unknown = app
            .call(
                *owner,
                row.method.clone(),
                &row.unknown.0,
                row.unknown.1.as_ref(),
                &[],
            )
            .await;
        assert_eq!(
            unknown.status, 404,
            "{}: an unknown id got {}",
            row.what, unknown.status
        );
        assert_eq!(
            refused.body["code"], unknown.body["code"],
            "{}: the stranger can tell it exists",
            row.what
        );
        let allowed = app
            .call(*owner, row.method.clone(), path, row.body.as_ref(), &[])
            .await;
        assert!(
            allowed.status.is_success(),
            "{}: the owner got {}: {}",
            row.what,
            allowed.status,
            allowed.body
        );
    }

    // Lists filter: Mallory's lists do not show Alice's things.
    for list in [
        "/api/v1/orders",
        "/api/v1/payments",
        "/api/v1/contracts",
        &format!("/api/v1/payments?order_id={}", id(&paid)),
    ] {
        let page = app.expect(200, mallory, Method::GET, list, None).await;
        assert_eq!(page["items"], json!([]), "{list}");
    }
    // A role that may not use an endpoint at all keeps its 403, on her own order as on any.
    let ship = app
        .call(
            alice,
            Method::POST,
            &format!("{}/ship", order(&paid)),
            None,
            &[],
        )
        .await;
    assert_eq!(ship.status, 403, "{}", ship.body);
    let refund = app
        .as_customer(
            "alice",
            Method::POST,
            &format!("/api/v1/payments/{}/refunds", id(&payment)),
        )
        .json(&json!({"amount": 1}))
        .send()
        .await
        .unwrap();
    problem(refund, reqwest::StatusCode::FORBIDDEN).await;
}
