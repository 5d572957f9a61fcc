//! A walk through each module's operations, for the spec tour: every success, and the
//! conflicts and failed preconditions only a real state gives. Each step asserts its status;
//! the app's spec check validates every answer.

use kernel::auth::Role;
use reqwest::Method;
use serde_json::{Value, json};

use crate::{
    helpers::TestApp,
    spec_tour::{Who, body_for, id},
};

const ADMIN: Who<'static> = Who::Role(Role::Admin);
const SERVICE: Who<'static> = Who::Role(Role::Service);
const CLINICIAN: Who<'static> = Who::Role(Role::Clinician);

pub(crate) fn card(number: &str) -> Value {
    json!({"number": number, "exp_month": 12, "exp_year": 2035, "cvc": "123"})
}

pub(crate) fn patient(mrn: &str) -> Value {
    json!({
        "identifier": mrn,
        "name": {"family": "Quixotic", "given": ["Zebulon"]},
        "gender": "male",
        "birth_date": "1961-07-14",
        "telecom": [{"system": "phone", "value": "+44 20 7946 0958"}],
        "address": {"line": ["221B Baker Street"], "city": "London", "country": "GB"}
    })
}

/// The ETag of the resource at `path`, read as `who`.
async fn etag(app: &TestApp, who: Who<'_>, path: &str) -> String {
    let answer = app.call(who, Method::GET, path, None, &[]).await;
    answer.headers["etag"].to_str().unwrap().to_owned()
}

/// Sends with `If-Match: stale`, expecting 412.
async fn stale(
    app: &TestApp,
    who: Who<'_>,
    method: Method,
    path: &str,
    body: Option<&Value>,
    tag: &str,
) {
    let answer = app
        .call(who, method.clone(), path, body, &[("If-Match", tag)])
        .await;
    assert_eq!(
        answer.status.as_u16(),
        412,
        "{method} {path}: {}",
        answer.body
    );
}

pub(crate) async fn products_and_reservations(app: &TestApp) {
    let tea = app
        .expect(201, ADMIN, Method::POST, "/api/v1/products", Some(&json!({
            "sku": "TOUR-TEA", "name": "Tea", "price": {"amount": 450, "currency": "EUR"}, "stock": 10
        })))
        .await;
    let path = format!("/api/v1/products/{}", id(&tea));
    let duplicate = json!({"sku": "TOUR-TEA", "name": "Tea", "price": {"amount": 1, "currency": "EUR"}, "stock": 1});
    app.expect(
        409,
        ADMIN,
        Method::POST,
        "/api/v1/products",
        Some(&duplicate),
    )
    .await;
    app.expect(
        200,
        Who::Nobody,
        Method::GET,
        "/api/v1/products?q=tea&sort=-price",
        None,
    )
    .await;
    app.expect(200, Who::Nobody, Method::GET, &path, None).await;
    let old = etag(app, Who::Nobody, &path).await;
    let replacement = json!({"sku": "TOUR-TEA", "name": "Green tea", "price": {"amount": 500, "currency": "EUR"}, "stock": 10});
    app.expect(200, ADMIN, Method::PUT, &path, Some(&replacement))
        .await;
    app.expect(
        200,
        ADMIN,
        Method::PATCH,
        &path,
        Some(&json!({"name": "Black tea"})),
    )
    .await;
    stale(app, ADMIN, Method::PUT, &path, Some(&replacement), &old).await;
    stale(
        app,
        ADMIN,
        Method::PATCH,
        &path,
        Some(&json!({"name": "x"})),
        &old,
    )
    .await;
    stale(app, ADMIN, Method::DELETE, &path, None, &old).await;
    let other = app.create_product("TOUR-MUG", "Mug", 1200, 3).await;
    let taken = json!({"sku": "TOUR-MUG", "name": "Tea", "price": {"amount": 450, "currency": "EUR"}, "stock": 10});
    app.expect(409, ADMIN, Method::PUT, &path, Some(&taken))
        .await;
    app.expect(
        409,
        ADMIN,
        Method::PATCH,
        &path,
        Some(&json!({"sku": "TOUR-MUG"})),
    )
    .await;

    // Reservations: all or nothing, then committed or released once.
    let line =
        |product: &Value, quantity: i64| json!([{"product_id": id(product), "quantity": quantity}]);
    let first = uuid::Uuid::now_v7().to_string();
    let reserve = json!({"id": first, "lines": line(&tea, 4)});
    app.expect(
        201,
        SERVICE,
        Method::POST,
        "/api/v1/reservations",
        Some(&reserve),
    )
    .await;
    let too_many = json!({"id": uuid::Uuid::now_v7(), "lines": line(&tea, 100)});
    app.expect(
        409,
        SERVICE,
        Method::POST,
        "/api/v1/reservations",
        Some(&too_many),
    )
    .await;
    let unknown = json!({"id": uuid::Uuid::now_v7(), "lines": [{"product_id": uuid::Uuid::now_v7(), "quantity": 1}]});
    app.expect(
        404,
        SERVICE,
        Method::POST,
        "/api/v1/reservations",
        Some(&unknown),
    )
    .await;
    app.expect(409, ADMIN, Method::PATCH, &path, Some(&json!({"stock": 1})))
        .await;
    app.expect(409, ADMIN, Method::PUT, &path, Some(&json!({"sku": "TOUR-TEA", "name": "Tea", "price": {"amount": 450, "currency": "EUR"}, "stock": 1}))).await;
    app.expect(409, ADMIN, Method::DELETE, &path, None).await;
    app.expect(
        200,
        SERVICE,
        Method::POST,
        &format!("/api/v1/reservations/{first}/commit"),
        None,
    )
    .await;
    // A paid order cancelled before shipping: committed units come back.
    app.expect(
        200,
        SERVICE,
        Method::POST,
        &format!("/api/v1/reservations/{first}/release"),
        None,
    )
    .await;
    app.expect(
        409,
        SERVICE,
        Method::POST,
        &format!("/api/v1/reservations/{first}/commit"),
        None,
    )
    .await;
    let second = uuid::Uuid::now_v7().to_string();
    let reserve = json!({"id": second, "lines": line(&other, 1)});
    app.expect(
        201,
        SERVICE,
        Method::POST,
        "/api/v1/reservations",
        Some(&reserve),
    )
    .await;
    app.expect(
        200,
        SERVICE,
        Method::POST,
        &format!("/api/v1/reservations/{second}/release"),
        None,
    )
    .await;
    app.expect(
        204,
        ADMIN,
        Method::DELETE,
        &format!("/api/v1/products/{}", id(&other)),
        None,
    )
    .await;
}

pub(crate) async fn orders_and_payments(app: &TestApp) {
    let tea = app.create_product("TOUR-ORDER", "Tea", 1500, 5).await;
    let items = |quantity: i64| json!({"items": [{"product_id": id(&tea), "quantity": quantity}]});
    let alice = Who::Customer("alice");
    app.expect(409, alice, Method::POST, "/api/v1/orders", Some(&items(50)))
        .await;
    let order = app
        .expect(201, alice, Method::POST, "/api/v1/orders", Some(&items(2)))
        .await;
    let path = format!("/api/v1/orders/{}", id(&order));
    app.expect(
        200,
        alice,
        Method::GET,
        "/api/v1/orders?status=pending_payment",
        None,
    )
    .await;
    app.expect(200, alice, Method::GET, &path, None).await;
    app.expect(409, ADMIN, Method::POST, &format!("{path}/ship"), None)
        .await;
    app.expect(409, ADMIN, Method::POST, &format!("{path}/deliver"), None)
        .await;

    let pay = json!({"order_id": id(&order), "card": card("4242424242424242")});
    let payment = app
        .expect(201, alice, Method::POST, "/api/v1/payments", Some(&pay))
        .await;
    app.expect(409, alice, Method::POST, "/api/v1/payments", Some(&pay))
        .await;
    let nowhere = json!({"order_id": uuid::Uuid::now_v7(), "card": card("4242424242424242")});
    app.expect(404, alice, Method::POST, "/api/v1/payments", Some(&nowhere))
        .await;
    let paid = format!("/api/v1/payments/{}", id(&payment));
    app.expect(200, alice, Method::GET, &paid, None).await;
    let query = format!("/api/v1/payments?order_id={}", id(&order));
    app.expect(200, alice, Method::GET, &query, None).await;
    app.eventually("the order is paid", || async {
        app.call(alice, Method::GET, &path, None, &[]).await.body["status"] == "paid"
    })
    .await;
    app.expect(
        200,
        ADMIN,
        Method::POST,
        &format!("{paid}/refunds"),
        Some(&json!({"amount": 100})),
    )
    .await;
    app.expect(
        409,
        ADMIN,
        Method::POST,
        &format!("{paid}/refunds"),
        Some(&json!({"amount": 1_000_000})),
    )
    .await;
    app.expect(200, ADMIN, Method::POST, &format!("{path}/ship"), None)
        .await;
    app.expect(409, alice, Method::POST, &format!("{path}/cancel"), None)
        .await;
    app.expect(200, ADMIN, Method::POST, &format!("{path}/deliver"), None)
        .await;

    let other = app
        .expect(201, alice, Method::POST, "/api/v1/orders", Some(&items(1)))
        .await;
    app.expect(
        200,
        alice,
        Method::POST,
        &format!("/api/v1/orders/{}/cancel", id(&other)),
        None,
    )
    .await;
}

pub(crate) async fn patients(app: &TestApp) {
    let created = app
        .expect(
            201,
            CLINICIAN,
            Method::POST,
            "/api/v1/patients",
            Some(&patient("MRN-TOUR-1")),
        )
        .await;
    app.expect(
        409,
        CLINICIAN,
        Method::POST,
        "/api/v1/patients",
        Some(&patient("MRN-TOUR-1")),
    )
    .await;
    app.expect(
        201,
        CLINICIAN,
        Method::POST,
        "/api/v1/patients",
        Some(&patient("MRN-TOUR-2")),
    )
    .await;
    let path = format!("/api/v1/patients/{}", id(&created));
    app.expect(
        200,
        CLINICIAN,
        Method::GET,
        "/api/v1/patients?identifier=MRN-TOUR-1",
        None,
    )
    .await;
    app.expect(200, CLINICIAN, Method::GET, &path, None).await;
    let old = etag(app, CLINICIAN, &path).await;
    app.expect(
        200,
        CLINICIAN,
        Method::PUT,
        &path,
        Some(&patient("MRN-TOUR-1")),
    )
    .await;
    app.expect(
        200,
        CLINICIAN,
        Method::PATCH,
        &path,
        Some(&json!({"gender": "female"})),
    )
    .await;
    stale(
        app,
        CLINICIAN,
        Method::PUT,
        &path,
        Some(&patient("MRN-TOUR-1")),
        &old,
    )
    .await;
    stale(
        app,
        CLINICIAN,
        Method::PATCH,
        &path,
        Some(&json!({"gender": "male"})),
        &old,
    )
    .await;
    stale(app, CLINICIAN, Method::DELETE, &path, None, &old).await;
    app.expect(
        409,
        CLINICIAN,
        Method::PUT,
        &path,
        Some(&patient("MRN-TOUR-2")),
    )
    .await;
    app.expect(
        409,
        CLINICIAN,
        Method::PATCH,
        &path,
        Some(&json!({"identifier": "MRN-TOUR-2"})),
    )
    .await;

    let diagnosis = app
        .expect(
            201,
            CLINICIAN,
            Method::POST,
            &format!("{path}/diagnoses"),
            Some(&body_for("create_diagnosis")),
        )
        .await;
    app.expect(
        200,
        CLINICIAN,
        Method::GET,
        &format!("{path}/diagnoses"),
        None,
    )
    .await;
    app.expect(
        200,
        CLINICIAN,
        Method::GET,
        &format!("{path}/diagnoses/{}", id(&diagnosis)),
        None,
    )
    .await;
    let treatment = app
        .expect(
            201,
            CLINICIAN,
            Method::POST,
            &format!("{path}/treatments"),
            Some(&body_for("create_treatment")),
        )
        .await;
    app.expect(
        200,
        CLINICIAN,
        Method::GET,
        &format!("{path}/treatments"),
        None,
    )
    .await;
    app.expect(
        200,
        CLINICIAN,
        Method::GET,
        &format!("{path}/treatments/{}", id(&treatment)),
        None,
    )
    .await;
    app.expect(
        200,
        CLINICIAN,
        Method::GET,
        &format!("/api/v1/fhir/Patient/{}", id(&created)),
        None,
    )
    .await;
    app.expect(200, ADMIN, Method::GET, &format!("{path}/audit"), None)
        .await;
    app.expect(204, CLINICIAN, Method::DELETE, &path, None)
        .await;
}

/// Includes the execution of a contract without input whose program returns only state:
/// `input` and `output` are null.
pub(crate) async fn contracts(app: &TestApp) {
    let counter = app
        .expect(
            201,
            ADMIN,
            Method::POST,
            "/api/v1/contracts",
            Some(&body_for("create_contract")),
        )
        .await;
    let path = format!("/api/v1/contracts/{}", id(&counter));
    let alice = Who::Customer("alice");
    app.expect(200, alice, Method::GET, "/api/v1/contracts", None)
        .await;
    app.expect(200, alice, Method::GET, &path, None).await;
    app.expect(
        200,
        ADMIN,
        Method::PATCH,
        &path,
        Some(&json!({"name": "Counter 2"})),
    )
    .await;
    app.expect(
        409,
        alice,
        Method::POST,
        &format!("{path}/executions"),
        Some(&json!({})),
    )
    .await;
    app.expect(200, ADMIN, Method::POST, &format!("{path}/deploy"), None)
        .await;
    app.expect(409, ADMIN, Method::POST, &format!("{path}/deploy"), None)
        .await;
    app.expect(
        409,
        ADMIN,
        Method::PATCH,
        &path,
        Some(&json!({"code": "{}"})),
    )
    .await;
    let execution = app
        .expect(
            201,
            alice,
            Method::POST,
            &format!("{path}/executions"),
            Some(&json!({})),
        )
        .await;
    assert_eq!(
        (&execution["input"], &execution["output"]),
        (&Value::Null, &Value::Null)
    );
    let huge = json!({"input": {"blob": "x".repeat(70_000)}});
    app.expect(
        413,
        alice,
        Method::POST,
        &format!("{path}/executions"),
        Some(&huge),
    )
    .await;
    app.expect(200, alice, Method::GET, &format!("{path}/executions"), None)
        .await;
    app.expect(
        200,
        alice,
        Method::GET,
        &format!("{path}/executions/{}", id(&execution)),
        None,
    )
    .await;
    app.expect(
        200,
        alice,
        Method::GET,
        &format!("{path}/ledger/verify"),
        None,
    )
    .await;
    app.expect(409, ADMIN, Method::DELETE, &path, None).await;
    app.expect(200, ADMIN, Method::POST, &format!("{path}/terminate"), None)
        .await;
    app.expect(409, ADMIN, Method::POST, &format!("{path}/terminate"), None)
        .await;

    let failing =
        json!({"name": "Fails", "parties": ["shop"], "code": r#"{"output": input.missing}"#});
    let failing = app
        .expect(
            201,
            ADMIN,
            Method::POST,
            "/api/v1/contracts",
            Some(&failing),
        )
        .await;
    let failing_path = format!("/api/v1/contracts/{}", id(&failing));
    app.expect(
        200,
        ADMIN,
        Method::POST,
        &format!("{failing_path}/deploy"),
        None,
    )
    .await;
    app.expect(
        422,
        ADMIN,
        Method::POST,
        &format!("{failing_path}/executions"),
        Some(&json!({"input": {}})),
    )
    .await;
    let draft = app
        .expect(
            201,
            ADMIN,
            Method::POST,
            "/api/v1/contracts",
            Some(&body_for("create_contract")),
        )
        .await;
    app.expect(
        204,
        ADMIN,
        Method::DELETE,
        &format!("/api/v1/contracts/{}", id(&draft)),
        None,
    )
    .await;
}

pub(crate) async fn operators(app: &TestApp) {
    let page = app
        .expect(
            200,
            ADMIN,
            Method::GET,
            "/api/v1/admin/events?type=product.created",
            None,
        )
        .await;
    let event = id(&page["items"][0]);
    app.expect(
        202,
        ADMIN,
        Method::POST,
        &format!("/api/v1/admin/events/{event}/replay?all=true"),
        None,
    )
    .await;
    for path in ["/health/live", "/health/ready", "/metrics"] {
        app.expect(200, Who::Nobody, Method::GET, path, None).await;
    }
}
