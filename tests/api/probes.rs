//! What any operation of a kind answers, walked over the OpenAPI document for the spec tour:
//! no token (401), a role it does not declare (403), a malformed or unknown id (404), an id
//! holding a NUL (422), a
//! body that is not JSON (400), too large (413), not JSON by type (415) or with an unknown
//! field (422), a malformed query parameter (422); and, on a rate-limited app, 429.

use kernel::auth::Role;
use reqwest::Method;
use serde_json::Value;

use crate::{
    helpers::TestApp,
    spec::{Operation, Spec},
    spec_tour::{Who, body_for},
};

const ROLES: [Role; 4] = [Role::Admin, Role::Clinician, Role::Customer, Role::Service];

/// The roles an operation declares; `None` for a public one.
fn declared(spec: &Spec, op: &Operation) -> Option<Vec<Role>> {
    let pointer = format!("{}/security", op.pointer);
    let roles: Vec<Role> = spec
        .doc
        .pointer(&pointer)?
        .as_array()?
        .iter()
        .filter_map(|requirement| requirement.get("bearer"))
        .flat_map(|roles| roles.as_array().cloned().unwrap_or_default())
        .map(|role| serde_json::from_value(role).unwrap())
        .collect();
    (!roles.is_empty()).then_some(roles)
}

fn has_body(spec: &Spec, op: &Operation) -> bool {
    spec.doc
        .pointer(&format!("{}/requestBody", op.pointer))
        .is_some()
}

fn has_query(spec: &Spec, op: &Operation, name: &str) -> bool {
    spec.doc
        .pointer(&format!("{}/parameters", op.pointer))
        .and_then(Value::as_array)
        .is_some_and(|ps| ps.iter().any(|p| p["in"] == "query" && p["name"] == name))
}

/// The template with each `{param}` replaced by `id`.
fn with_ids(template: &str, id: &str) -> String {
    template
        .split('/')
        .map(|s| if s.starts_with('{') { id } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

pub(crate) async fn every_kind_of_refusal(app: &TestApp) {
    let spec = Spec::served();
    let limit = app.settings.http.json_limit_bytes;
    for op in &spec.operations {
        let method = Method::from_bytes(op.method.to_uppercase().as_bytes()).unwrap();
        let roles = declared(spec, op);
        let who = roles
            .as_ref()
            .map_or(Who::Nobody, |roles| Who::Role(roles[0]));
        let unknown = with_ids(&op.template, &uuid::Uuid::now_v7().to_string());
        let body = has_body(spec, op).then(|| body_for(&op.id));
        let expect = |status: u16, answer: crate::spec_tour::Answer, what: &str| {
            assert_eq!(
                answer.status.as_u16(),
                status,
                "{} {} {what}: {}",
                op.method,
                op.template,
                answer.body
            );
        };
        if let Some(roles) = &roles {
            let answer = app
                .call(Who::Nobody, method.clone(), &unknown, body.as_ref(), &[])
                .await;
            expect(401, answer, "without a token");
            if let Some(other) = ROLES.iter().find(|r| !roles.contains(r)) {
                let answer = app
                    .call(
                        Who::Role(*other),
                        method.clone(),
                        &unknown,
                        body.as_ref(),
                        &[],
                    )
                    .await;
                expect(403, answer, "with an undeclared role");
            }
        }
        if op.template.contains('{') {
            let malformed = with_ids(&op.template, "not-an-id");
            let answer = app
                .call(who, method.clone(), &malformed, body.as_ref(), &[])
                .await;
            expect(404, answer, "with a malformed id");
            let unstorable = with_ids(&op.template, "nul%00here");
            let answer = app
                .call(who, method.clone(), &unstorable, body.as_ref(), &[])
                .await;
            expect(422, answer, "with a NUL in an id");
            let answer = app
                .call(who, method.clone(), &unknown, body.as_ref(), &[])
                .await;
            expect(404, answer, "with an unknown id");
        }
        if has_query(spec, op, "limit") {
            let answer = app
                .call(
                    who,
                    method.clone(),
                    &format!("{unknown}?limit=abc"),
                    None,
                    &[],
                )
                .await;
            expect(422, answer, "with ?limit=abc");
        }
        if body.is_some() {
            let raw = |content_type: &'static str, bytes: Vec<u8>| {
                let mut request = app
                    .client
                    .request(method.clone(), app.url(&unknown))
                    .header("content-type", content_type)
                    .body(bytes);
                if let Who::Role(role) = who {
                    request = request.bearer_auth(app.token(role));
                }
                request.send()
            };
            let answer = raw("application/json", b"not json".to_vec()).await.unwrap();
            assert_eq!(
                answer.status(),
                400,
                "{} {} with a body that is not JSON",
                op.method,
                op.template
            );
            let answer = raw("application/json", vec![b' '; limit + 1])
                .await
                .unwrap();
            assert_eq!(
                answer.status(),
                413,
                "{} {} with a body over the limit",
                op.method,
                op.template
            );
            let answer = raw("text/plain", b"{}".to_vec()).await.unwrap();
            assert_eq!(
                answer.status(),
                415,
                "{} {} with text/plain",
                op.method,
                op.template
            );
            let mut unknown_field = body.clone().unwrap_or(Value::Null);
            unknown_field["surprise"] = Value::Bool(true);
            let answer = app
                .call(who, method.clone(), &unknown, Some(&unknown_field), &[])
                .await;
            expect(422, answer, "with an unknown field");
        }
    }
}

/// Every operation but the probes, until it answers 429 (the limit refills one request a
/// second, so an occasional request gets through).
pub(crate) async fn too_many_requests(app: &TestApp) {
    let spec = Spec::served();
    for op in &spec.operations {
        if kernel::http::limits::PROBE_PATHS.contains(&op.template.as_str()) {
            continue;
        }
        let method = Method::from_bytes(op.method.to_uppercase().as_bytes()).unwrap();
        let path = with_ids(&op.template, &uuid::Uuid::now_v7().to_string());
        let mut refused = false;
        for _ in 0..5 {
            let answer = app
                .call(Who::Nobody, method.clone(), &path, None, &[])
                .await;
            if answer.status == 429 {
                refused = true;
                break;
            }
        }
        assert!(refused, "{} {} never answered 429", op.method, op.template);
    }
}
