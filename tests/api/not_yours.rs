//! A resource a caller may not see is a 404 for every operation on it, the same answer (code
//! and all) as for an id that does not exist: orders and payments belong to their customer,
//! contracts (and their executions and ledger) to their parties, diagnoses and treatments to
//! their patient. A role that may not use an endpoint at all still gets 403 — "not for your
//! role" is not "not yours". Lists filter instead: what is not yours is not in them.

use kernel::auth::Role;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{
    helpers::{TestApp, on_both_backends, problem},
    spec_tour::{Who, body_for, id},
    walk::card,
};

on_both_backends!(what_a_caller_may_not_see_is_a_404_on_every_operation);

const ALICE: Who<'static> = Who::Customer("alice");
const MALLORY: Who<'static> = Who::Customer("mallory");
const ADMIN: Who<'static> = Who::Role(Role::Admin);
const CLINICIAN: Who<'static> = Who::Role(Role::Clinician);

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

/// A row for something of Alice's that Mallory asks for.
fn alices(
    what: &'static str,
    method: Method,
    path: String,
    body: Option<Value>,
    unknown: (String, Option<Value>),
) -> Row {
    Row {
        what,
        method,
        body,
        owner: (ALICE, path.clone()),
        stranger: (MALLORY, path),
        unknown,
    }
}

#[rustfmt::skip]
async fn what_a_caller_may_not_see_is_a_404_on_every_operation(app: TestApp) {
    let nobody = uuid::Uuid::now_v7().to_string();
    let create = |who, path: &str, body: Value| {
        let path = path.to_owned();
        let app = &app;
        async move { app.expect(201, who, Method::POST, &path, Some(&body)).await }
    };
    // Alice's orders (one paid, two pending) and payment; a contract whose party she is.
    let tea = app.create_product("MINE-1", "Tea", 1500, 10).await;
    let items = json!({"items": [{"product_id": id(&tea), "quantity": 1}]});
    let paid = create(ALICE, "/api/v1/orders", items.clone()).await;
    let pending = create(ALICE, "/api/v1/orders", items.clone()).await;
    let payable = create(ALICE, "/api/v1/orders", items).await;
    let pay = |order: &str| Some(json!({"order_id": order, "card": card("4242424242424242")}));
    let payment = create(ALICE, "/api/v1/payments", pay(&id(&paid)).unwrap()).await;
    let contract = create(ADMIN, "/api/v1/contracts", body_for("create_contract")).await;
    let contract = format!("/api/v1/contracts/{}", id(&contract));
    app.expect(200, ADMIN, Method::POST, &format!("{contract}/deploy"), None).await;
    let execution = create(ALICE, &format!("{contract}/executions"), json!({})).await;
    // Two patients: a clinician reaches a diagnosis or a treatment only through its own.
    let first = create(CLINICIAN, "/api/v1/patients", body_for("create_patient")).await;
    let second = create(CLINICIAN, "/api/v1/patients", body_for("create_patient")).await;
    let (first, second) = (format!("/api/v1/patients/{}", id(&first)), format!("/api/v1/patients/{}", id(&second)));
    let diagnosis = create(CLINICIAN, &format!("{first}/diagnoses"), body_for("create_diagnosis")).await;
    let treatment = create(CLINICIAN, &format!("{first}/treatments"), body_for("create_treatment")).await;

    let order = |o: &Value| format!("/api/v1/orders/{}", id(o));
    let mut rows = vec![
        alices("read an order", Method::GET, order(&paid), None, (format!("/api/v1/orders/{nobody}"), None)),
        alices("cancel an order", Method::POST, format!("{}/cancel", order(&pending)), None, (format!("/api/v1/orders/{nobody}/cancel"), None)),
        alices("pay an order", Method::POST, "/api/v1/payments".into(), pay(&id(&payable)), ("/api/v1/payments".into(), pay(&nobody))),
        alices("read a payment", Method::GET, format!("/api/v1/payments/{}", id(&payment)), None, (format!("/api/v1/payments/{nobody}"), None)),
    ];
    let on_contract = [
        ("read a contract", Method::GET, String::new(), None),
        ("list its executions", Method::GET, "/executions".to_owned(), None),
        ("read an execution", Method::GET, format!("/executions/{}", id(&execution)), None),
        ("verify its ledger", Method::GET, "/ledger/verify".to_owned(), None),
        ("execute a contract", Method::POST, "/executions".to_owned(), Some(json!({"input": 1}))),
    ];
    for (what, method, rest, body) in on_contract {
        let unknown = (format!("/api/v1/contracts/{nobody}{rest}"), body.clone());
        rows.push(alices(what, method, format!("{contract}{rest}"), body, unknown));
    }
    // Under the wrong parent, a child does not exist either.
    for (what, kind, child) in [("read a diagnosis", "diagnoses", id(&diagnosis)), ("read a treatment", "treatments", id(&treatment))] {
        rows.push(Row {
            what, method: Method::GET, body: None,
            owner: (CLINICIAN, format!("{first}/{kind}/{child}")),
            stranger: (CLINICIAN, format!("{second}/{kind}/{child}")),
            unknown: (format!("{first}/{kind}/{nobody}"), None),
        });
    }

    for row in rows {
        let (stranger, path) = &row.stranger;
        let refused = app.call(*stranger, row.method.clone(), path, row.body.as_ref(), &[]).await;
        assert_eq!(refused.status, 404, "{}: a stranger got {}: {}", row.what, refused.status, refused.body);
        let (owner, path) = &row.owner;
        let unknown = app.call(*owner, row.method.clone(), &row.unknown.0, row.unknown.1.as_ref(), &[]).await;
        assert_eq!(unknown.status, 404, "{}: an unknown id got {}", row.what, unknown.status);
        assert_eq!(refused.body["code"], unknown.body["code"], "{}: the stranger can tell it exists", row.what);
        let allowed = app.call(*owner, row.method.clone(), path, row.body.as_ref(), &[]).await;
        assert!(allowed.status.is_success(), "{}: the owner got {}: {}", row.what, allowed.status, allowed.body);
    }

    // Lists filter: Mallory's lists do not show Alice's things.
    let lists = ["/api/v1/orders", "/api/v1/payments", "/api/v1/contracts", &format!("/api/v1/payments?order_id={}", id(&paid))];
    for list in lists {
        let page = app.expect(200, MALLORY, Method::GET, list, None).await;
        assert_eq!(page["items"], json!([]), "{list}");
    }
    // A role that may not use an endpoint at all keeps its 403, on her own order as on any.
    let ship = app.call(ALICE, Method::POST, &format!("{}/ship", order(&paid)), None, &[]).await;
    assert_eq!(ship.status, 403, "{}", ship.body);
    let refund = app
        .as_customer("alice", Method::POST, &format!("/api/v1/payments/{}/refunds", id(&payment)))
        .json(&json!({"amount": 1}))
        .send()
        .await
        .unwrap();
    problem(refund, StatusCode::FORBIDDEN).await;
}
