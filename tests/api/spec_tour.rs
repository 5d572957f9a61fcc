//! Every operation of the OpenAPI document, exercised with its success status and the error
//! statuses it documents, each answer checked against the document by the app's
//! [`SpecCheck`](crate::spec::SpecCheck). The walk per module ([`walk`]) gives the successes
//! and the conflicts only a real state can give; [`probes`] gives what any operation of a
//! kind answers (401, 403, 404, 400, 413, 415, 422); a rate-limited app gives the 429s. The
//! test ends with the coverage: documented statuses seen, per operation, and fails on a
//! documented status nobody produced unless it is listed in [`UNPRACTICAL`] with the reason.

use std::collections::{BTreeMap, BTreeSet};

use kernel::{auth::Role, db::Backend};
use reqwest::{Method, StatusCode, header::HeaderMap};
use serde_json::{Value, json};

use crate::{helpers::TestApp, spec::Spec};

/// Statuses the test does not produce, with why: `(operation id or "*", status, reason)`.
const UNPRACTICAL: &[(&str, u16, &str)] = &[
    (
        "*",
        503,
        "needs a request slower than http.request_timeout_secs, a database short of \
         connections or (for the modules that call a neighbour) a split deployment with the \
         neighbour down: see split_hygiene.rs",
    ),
    (
        "*",
        500,
        "an unexpected failure: a bug or a broken database",
    ),
];

/// Who calls.
#[derive(Clone, Copy)]
pub(crate) enum Who<'a> {
    Nobody,
    Role(Role),
    Customer(&'a str),
}

pub(crate) struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl TestApp {
    /// Sends a request as `who` with an optional JSON body and extra headers.
    pub(crate) async fn call(
        &self,
        who: Who<'_>,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut request = self.client.request(method, self.url(path));
        request = match who {
            Who::Nobody => request,
            Who::Role(role) => request.bearer_auth(self.token(role)),
            Who::Customer(name) => {
                request.bearer_auth(self.keys().issue(name, Role::Customer, None).unwrap())
            }
        };
        if let Some(body) = body {
            request = request.json(body);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        let (status, headers) = (response.status(), response.headers().clone());
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            body,
        }
    }

    /// [`TestApp::call`], asserting the status; the body.
    pub(crate) async fn expect(
        &self,
        status: u16,
        who: Who<'_>,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Value {
        let answer = self.call(who, method.clone(), path, body, &[]).await;
        assert_eq!(
            answer.status.as_u16(),
            status,
            "{method} {path}: {}",
            answer.body
        );
        answer.body
    }
}

pub(crate) fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

/// A valid body for each operation that takes one, for the generic probes.
pub(crate) fn body_for(operation: &str) -> Value {
    let uuid = uuid::Uuid::now_v7().to_string();
    match operation {
        "create_product" | "replace_product" => json!({
            "sku": format!("SKU-{}", &uuid[30..]), "name": "Tea",
            "price": {"amount": 450, "currency": "EUR"}, "stock": 10
        }),
        "patch_product" | "patch_contract" => json!({"name": "Renamed"}),
        "reserve_stock" => json!({"id": uuid, "lines": [{"product_id": uuid, "quantity": 1}]}),
        "create_order" => json!({"items": [{"product_id": uuid, "quantity": 1}]}),
        "create_payment" => {
            json!({"order_id": uuid, "card": crate::walk::card("4242424242424242")})
        }
        "create_refund" => json!({"amount": 100}),
        "create_patient" | "replace_patient" => {
            crate::walk::patient(&format!("MRN-{}", &uuid[24..]))
        }
        "patch_patient" => json!({"gender": "female"}),
        "create_diagnosis" => json!({
            "code": "E11.9", "description": "Type 2 diabetes mellitus",
            "onset": "2024-03-01", "status": "active"
        }),
        "create_treatment" => json!({
            "plan": "Metformin, review in 3 months", "medication": "Metformin",
            "dosage": "500 mg twice daily", "period": {"start": "2026-01-01"}, "status": "planned"
        }),
        "create_contract" => json!({
            "name": "Counter", "parties": ["alice"],
            "code": r#"{"state": {"n": state.n + 1}}"#, "state": {"n": 0}
        }),
        "execute_contract" => json!({"input": {"amount": 1}}),
        _ => json!({}),
    }
}

#[tokio::test]
async fn every_operation_answers_as_documented() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    crate::walk::products_and_reservations(&app).await;
    crate::walk::orders_and_payments(&app).await;
    crate::walk::patients(&app).await;
    crate::walk::contracts(&app).await;
    crate::walk::operators(&app).await;
    crate::probes::every_kind_of_refusal(&app).await;
    let limited = TestApp::spawn_with(Backend::Sqlite, |s| {
        s.http.rate_limit_per_second = 1;
        s.http.rate_limit_burst = 1;
    })
    .await
    .unwrap();
    crate::probes::too_many_requests(&limited).await;

    app.spec.assert_truthful();
    limited.spec.assert_truthful();
    let mut seen: BTreeMap<String, BTreeSet<u16>> = app.spec.seen();
    for (op, statuses) in limited.spec.seen() {
        seen.entry(op).or_default().extend(statuses);
    }
    let (report, missing) = coverage(Spec::served(), &seen);
    let _ = std::io::Write::write_all(&mut std::io::stderr(), report.as_bytes());
    assert!(
        missing.is_empty(),
        "documented statuses never produced (produce them, or list them in UNPRACTICAL with \
         the reason):\n{}",
        missing.join("\n")
    );
}

/// The coverage table, and the documented statuses neither seen nor excused.
fn coverage(spec: &Spec, seen: &BTreeMap<String, BTreeSet<u16>>) -> (String, Vec<String>) {
    let excused = |op: &str, status: u16| {
        UNPRACTICAL
            .iter()
            .any(|(o, s, _)| (*o == "*" || *o == op) && *s == status)
    };
    let (mut documented, mut covered, mut excused_count) = (0, 0, 0);
    let mut missing = Vec::new();
    let mut lines = Vec::new();
    let mut succeeded = 0;
    for op in &spec.operations {
        let seen_here = seen.get(&op.id).cloned().unwrap_or_default();
        if seen_here.iter().any(|s| (200..300).contains(s)) {
            succeeded += 1;
        }
        let mut marks = Vec::new();
        for status in &op.statuses {
            let code: u16 = status.parse().unwrap();
            documented += 1;
            if seen_here.contains(&code) {
                covered += 1;
                marks.push(format!("{code}"));
            } else if excused(&op.id, code) {
                excused_count += 1;
                marks.push(format!("({code})"));
            } else {
                marks.push(format!("!{code}"));
                missing.push(format!(
                    "  {} {} ({}): {code}",
                    op.method, op.template, op.id
                ));
            }
        }
        lines.push(format!("  {:<22} {}", op.id, marks.join(" ")));
    }
    let report = format!(
        "spec coverage: {} operations, {succeeded} answered with a success status; \
         {covered} of {documented} documented (operation, status) pairs seen, {excused_count} \
         excused (in parentheses), {} missing (!)\n{}\n",
        spec.operations.len(),
        missing.len(),
        lines.join("\n")
    );
    (report, missing)
}
