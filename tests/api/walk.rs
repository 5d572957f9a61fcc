//! A walk through each module's operations, for the spec tour: every success, and the
//! conflicts and failed preconditions only a real state gives. Each step asserts its status;
//! the app's spec check validates every answer. The walks are tables of steps, one request a
//! line (kept so by `rustfmt::skip`).

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
const ALICE: Who<'static> = Who::Customer("alice");
const NOBODY: Who<'static> = Who::Nobody;
const GET: Method = Method::GET;
const POST: Method = Method::POST;
const PUT: Method = Method::PUT;
const PATCH: Method = Method::PATCH;
const DELETE: Method = Method::DELETE;

/// A request and the status it must get.
type Step<'a> = (u16, Who<'a>, Method, String, Option<Value>);

async fn run(app: &TestApp, steps: Vec<Step<'_>>) {
    for (status, who, method, path, body) in steps {
        app.expect(status, who, method, &path, body.as_ref()).await;
    }
}

/// Each request with an `If-Match` of an ETag that is no longer current: 412.
async fn stale(
    app: &TestApp,
    who: Who<'_>,
    tag: &str,
    requests: Vec<(Method, &str, Option<Value>)>,
) {
    for (method, path, body) in requests {
        let answer = app
            .call(
                who,
                method.clone(),
                path,
                body.as_ref(),
                &[("If-Match", tag)],
            )
            .await;
        assert_eq!(
            answer.status.as_u16(),
            412,
            "{method} {path}: {}",
            answer.body
        );
    }
}

/// The ETag of the resource at `path`, read as `who`.
async fn etag(app: &TestApp, who: Who<'_>, path: &str) -> String {
    let answer = app.call(who, GET, path, None, &[]).await;
    answer.headers["etag"].to_str().unwrap().to_owned()
}

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

fn product(sku: &str, stock: i64) -> Option<Value> {
    Some(
        json!({"sku": sku, "name": "Tea", "price": {"amount": 450, "currency": "EUR"}, "stock": stock}),
    )
}

#[rustfmt::skip]
pub(crate) async fn products_and_reservations(app: &TestApp) {
    let products = "/api/v1/products".to_owned();
    let tea = app.expect(201, ADMIN, POST, &products, product("TOUR-TEA", 10).as_ref()).await;
    let mug = app.create_product("TOUR-MUG", "Mug", 1200, 3).await;
    let path = format!("{products}/{}", id(&tea));
    let old = etag(app, NOBODY, &path).await;
    run(app, vec![
        (409, ADMIN, POST, products.clone(), product("TOUR-TEA", 1)),
        (200, NOBODY, GET, format!("{products}?q=tea&sort=-price"), None),
        (200, NOBODY, GET, path.clone(), None),
        (200, ADMIN, PUT, path.clone(), product("TOUR-TEA", 10)),
        (200, ADMIN, PATCH, path.clone(), Some(json!({"name": "Black tea"}))),
        (409, ADMIN, PUT, path.clone(), product("TOUR-MUG", 10)),
        (409, ADMIN, PATCH, path.clone(), Some(json!({"sku": "TOUR-MUG"}))),
    ]).await;
    stale(app, ADMIN, &old, vec![
        (PUT, &path, product("TOUR-TEA", 10)),
        (PATCH, &path, Some(json!({"name": "x"}))),
        (DELETE, &path, None),
    ]).await;

    // Reservations: all or nothing, then committed or released; a paid order cancelled
    // before shipping releases committed units.
    let reservations = "/api/v1/reservations".to_owned();
    let reserve = |reservation: &str, product: &str, quantity: i64| {
        Some(json!({"id": reservation, "lines": [{"product_id": product, "quantity": quantity}]}))
    };
    let (first, second) = (uuid::Uuid::now_v7().to_string(), uuid::Uuid::now_v7().to_string());
    let nothing = uuid::Uuid::now_v7().to_string();
    run(app, vec![
        (201, SERVICE, POST, reservations.clone(), reserve(&first, &id(&tea), 4)),
        (409, SERVICE, POST, reservations.clone(), reserve(&second, &id(&tea), 100)),
        (404, SERVICE, POST, reservations.clone(), reserve(&second, &nothing, 1)),
        (409, ADMIN, PATCH, path.clone(), Some(json!({"stock": 1}))),
        (409, ADMIN, PUT, path.clone(), product("TOUR-TEA", 1)),
        (409, ADMIN, DELETE, path.clone(), None),
        (200, SERVICE, POST, format!("{reservations}/{first}/commit"), None),
        (200, SERVICE, POST, format!("{reservations}/{first}/release"), None),
        (409, SERVICE, POST, format!("{reservations}/{first}/commit"), None),
        (201, SERVICE, POST, reservations.clone(), reserve(&second, &id(&mug), 1)),
        (200, SERVICE, POST, format!("{reservations}/{second}/release"), None),
        (204, ADMIN, DELETE, format!("{products}/{}", id(&mug)), None),
    ]).await;
}

#[rustfmt::skip]
pub(crate) async fn orders_and_payments(app: &TestApp) {
    let tea = app.create_product("TOUR-ORDER", "Tea", 1500, 5).await;
    let orders = "/api/v1/orders".to_owned();
    let items = |quantity: i64| Some(json!({"items": [{"product_id": id(&tea), "quantity": quantity}]}));
    let order = app.expect(201, ALICE, POST, &orders, items(2).as_ref()).await;
    let other = app.expect(201, ALICE, POST, &orders, items(1).as_ref()).await;
    let path = format!("{orders}/{}", id(&order));
    run(app, vec![
        (409, ALICE, POST, orders.clone(), items(50)),
        (200, ALICE, GET, format!("{orders}?status=pending_payment"), None),
        (200, ALICE, GET, path.clone(), None),
        (409, ADMIN, POST, format!("{path}/ship"), None),
        (409, ADMIN, POST, format!("{path}/deliver"), None),
        (200, ALICE, POST, format!("{orders}/{}/cancel", id(&other)), None),
    ]).await;
    let payments = "/api/v1/payments".to_owned();
    let pay = |order: String| Some(json!({"order_id": order, "card": card("4242424242424242")}));
    let payment = app.expect(201, ALICE, POST, &payments, pay(id(&order)).as_ref()).await;
    let paid = format!("{payments}/{}", id(&payment));
    run(app, vec![
        (409, ALICE, POST, payments.clone(), pay(id(&order))),
        (404, ALICE, POST, payments.clone(), pay(uuid::Uuid::now_v7().to_string())),
        (200, ALICE, GET, paid.clone(), None),
        (200, ALICE, GET, format!("{payments}?order_id={}", id(&order)), None),
    ]).await;
    app.eventually("the order is paid", || async {
        app.call(ALICE, GET, &path, None, &[]).await.body["status"] == "paid"
    }).await;
    run(app, vec![
        (200, ADMIN, POST, format!("{paid}/refunds"), Some(json!({"amount": 100}))),
        (409, ADMIN, POST, format!("{paid}/refunds"), Some(json!({"amount": 1_000_000}))),
        (200, ADMIN, POST, format!("{path}/ship"), None),
        (409, ALICE, POST, format!("{path}/cancel"), None),
        (200, ADMIN, POST, format!("{path}/deliver"), None),
    ]).await;
}

#[rustfmt::skip]
pub(crate) async fn patients(app: &TestApp) {
    let patients = "/api/v1/patients".to_owned();
    let created = app.expect(201, CLINICIAN, POST, &patients, Some(&patient("MRN-TOUR-1"))).await;
    let path = format!("{patients}/{}", id(&created));
    let old = etag(app, CLINICIAN, &path).await;
    run(app, vec![
        (409, CLINICIAN, POST, patients.clone(), Some(patient("MRN-TOUR-1"))),
        (201, CLINICIAN, POST, patients.clone(), Some(patient("MRN-TOUR-2"))),
        (200, CLINICIAN, GET, format!("{patients}?identifier=MRN-TOUR-1"), None),
        (200, CLINICIAN, GET, path.clone(), None),
        (200, CLINICIAN, PUT, path.clone(), Some(patient("MRN-TOUR-1"))),
        (200, CLINICIAN, PATCH, path.clone(), Some(json!({"gender": "female"}))),
        (409, CLINICIAN, PUT, path.clone(), Some(patient("MRN-TOUR-2"))),
        (409, CLINICIAN, PATCH, path.clone(), Some(json!({"identifier": "MRN-TOUR-2"}))),
    ]).await;
    stale(app, CLINICIAN, &old, vec![
        (PUT, &path, Some(patient("MRN-TOUR-1"))),
        (PATCH, &path, Some(json!({"gender": "male"}))),
        (DELETE, &path, None),
    ]).await;
    let mut steps = Vec::new();
    for (kind, create) in [("diagnoses", "create_diagnosis"), ("treatments", "create_treatment")] {
        let child = app.expect(201, CLINICIAN, POST, &format!("{path}/{kind}"), Some(&body_for(create))).await;
        steps.push((200, CLINICIAN, GET, format!("{path}/{kind}"), None));
        steps.push((200, CLINICIAN, GET, format!("{path}/{kind}/{}", id(&child)), None));
    }
    steps.extend([
        (200, CLINICIAN, GET, format!("/api/v1/fhir/Patient/{}", id(&created)), None),
        (200, ADMIN, GET, format!("{path}/audit"), None),
        (204, CLINICIAN, DELETE, path.clone(), None),
    ]);
    run(app, steps).await;
}

/// Includes the execution of a contract without input whose program returns only state:
/// `input` and `output` are null.
#[rustfmt::skip]
pub(crate) async fn contracts(app: &TestApp) {
    let contracts = "/api/v1/contracts".to_owned();
    let counter = app.expect(201, ADMIN, POST, &contracts, Some(&body_for("create_contract"))).await;
    let path = format!("{contracts}/{}", id(&counter));
    let executions = format!("{path}/executions");
    run(app, vec![
        (200, ALICE, GET, contracts.clone(), None),
        (200, ALICE, GET, path.clone(), None),
        (200, ADMIN, PATCH, path.clone(), Some(json!({"name": "Counter 2"}))),
        (409, ALICE, POST, executions.clone(), Some(json!({}))),
        (200, ADMIN, POST, format!("{path}/deploy"), None),
        (409, ADMIN, POST, format!("{path}/deploy"), None),
        (409, ADMIN, PATCH, path.clone(), Some(json!({"code": "{}"}))),
    ]).await;
    let execution = app.expect(201, ALICE, POST, &executions, Some(&json!({}))).await;
    assert_eq!((&execution["input"], &execution["output"]), (&Value::Null, &Value::Null));
    let failing = json!({"name": "Fails", "parties": ["shop"], "code": r#"{"output": input.missing}"#});
    let failing = app.expect(201, ADMIN, POST, &contracts, Some(&failing)).await;
    let failing = format!("{contracts}/{}", id(&failing));
    let draft = app.expect(201, ADMIN, POST, &contracts, Some(&body_for("create_contract"))).await;
    run(app, vec![
        (413, ALICE, POST, executions.clone(), Some(json!({"input": {"blob": "x".repeat(70_000)}}))),
        (200, ALICE, GET, executions.clone(), None),
        (200, ALICE, GET, format!("{executions}/{}", id(&execution)), None),
        (200, ALICE, GET, format!("{path}/ledger/verify"), None),
        (409, ADMIN, DELETE, path.clone(), None),
        (200, ADMIN, POST, format!("{path}/terminate"), None),
        (409, ADMIN, POST, format!("{path}/terminate"), None),
        (200, ADMIN, POST, format!("{failing}/deploy"), None),
        (422, ADMIN, POST, format!("{failing}/executions"), Some(json!({"input": {}}))),
        (204, ADMIN, DELETE, format!("{contracts}/{}", id(&draft)), None),
    ]).await;
}

#[rustfmt::skip]
pub(crate) async fn operators(app: &TestApp) {
    let page = app.expect(200, ADMIN, GET, "/api/v1/admin/events?type=product.created", None).await;
    let event = id(&page["items"][0]);
    let mut steps = vec![
        (202, ADMIN, POST, format!("/api/v1/admin/events/{event}/replay?all=true"), None),
        (200, ADMIN, GET, "/api/v1/admin/subscribers".to_owned(), None),
    ];
    for path in ["/health/live", "/health/ready", "/metrics"] {
        steps.push((200, NOBODY, GET, path.to_owned(), None));
    }
    run(app, steps).await;
}
