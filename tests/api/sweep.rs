//! Bad input over every operation of the generated spec, on SQLite and PostgreSQL: NUL
//! characters in every string of every body, query parameter and path parameter; arrays where
//! objects are expected; out-of-range numbers. Nothing may answer 5xx; NUL and array cases are
//! 422 problems naming the field. The spec drives the sweep, so a new operation is covered
//! without being listed here.

use std::collections::HashMap;

use kernel::{auth::Role, db::Backend};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::TestApp;

const NUL: &str = "nul\u{0}here";

/// Huge, negative and fractional numbers, each valid JSON.
const NUMBERS: [&str; 6] = [
    "100000000000000000000",
    "9223372036854775807",
    "-9223372036854775808",
    "-1",
    "0.5",
    "1e300",
];

#[tokio::test]
async fn bad_input_never_gets_a_5xx_on_sqlite() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    sweep(&app, "SQLite").await;
}

#[tokio::test]
async fn bad_input_never_gets_a_5xx_on_postgres() {
    let Some(app) = TestApp::spawn(Backend::Postgres).await else {
        eprintln!("sweep on PostgreSQL SKIPPED: TESSERA_TEST_DATABASE_URL is not set");
        return;
    };
    sweep(&app, "PostgreSQL").await;
}

/// One bad request and what it must get.
struct Case {
    method: Method,
    path: String,
    content_type: Option<String>,
    body: Option<String>,
    what: String,
    /// `Some(field)`: a 422 problem naming `field`; `None`: anything but 5xx.
    named: Option<String>,
}

async fn sweep(app: &TestApp, backend: &str) {
    let spec: Value = app.get_json("/api-docs/openapi.json").await;
    let ids = fixtures(app, &spec).await;
    let cases = cases(&spec, &ids);
    let token = app.token(Role::Admin);
    let (mut server_errors, mut wrong) = (Vec::new(), Vec::new());
    for case in &cases {
        let mut request = app
            .client
            .request(case.method.clone(), app.url(&case.path))
            .bearer_auth(&token);
        if let Some(content_type) = &case.content_type {
            request = request.header("content-type", content_type);
        }
        if let Some(body) = &case.body {
            request = request.body(body.clone());
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let problem_json = response
            .headers()
            .get("content-type")
            .is_some_and(|v| v == "application/problem+json");
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let line = format!(
            "{} {} ({}) → {status} {body}",
            case.method, case.path, case.what
        );
        if status.is_server_error() {
            server_errors.push(line);
            continue;
        }
        if let Some(field) = &case.named {
            let names_it = body["errors"]
                .as_array()
                .is_some_and(|errors| errors.iter().any(|e| e["field"] == field.as_str()));
            if status != StatusCode::UNPROCESSABLE_ENTITY || !problem_json || !names_it {
                wrong.push(format!("{line}: expected a 422 problem naming {field}"));
            }
        }
    }
    eprintln!(
        "sweep on {backend}: {} requests, {} answered 5xx, {} NUL/array cases not a 422 naming the field",
        cases.len(),
        server_errors.len(),
        wrong.len()
    );
    assert!(cases.len() >= 200, "only {} cases generated", cases.len());
    assert!(
        server_errors.is_empty(),
        "{} answers were 5xx:\n{}",
        server_errors.len(),
        server_errors.join("\n")
    );
    assert!(
        wrong.is_empty(),
        "{} answers were not a 422 naming the field:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

/// Real resources for the path parameters, so handlers get past "not found" to storage:
/// schema name of an id (`ProductId`) → an existing one. Created from the spec's own examples.
async fn fixtures(app: &TestApp, spec: &Value) -> HashMap<String, String> {
    let mut ids = HashMap::new();
    for (operation, id_schema) in [
        ("create_product", "ProductId"),
        ("create_order", "OrderId"),
        ("create_payment", "PaymentId"),
        ("create_patient", "PatientId"),
        ("create_diagnosis", "DiagnosisId"),
        ("create_treatment", "TreatmentId"),
        ("create_contract", "ContractId"),
    ] {
        let Some((path, method, op)) =
            operations(spec).find(|(_, _, op)| op["operationId"] == operation)
        else {
            continue; // not built in
        };
        let schema = &op["requestBody"]["content"]["application/json"]["schema"];
        let body = example(spec, schema, &ids, false);
        let response = app
            .admin(method, &concrete(&path, &ids, None))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED, "{operation} {body}");
        let created: Value = response.json().await.unwrap();
        ids.insert(
            id_schema.to_owned(),
            created["id"].as_str().unwrap().to_owned(),
        );
    }
    // The order's reservation has the order's id.
    if let Some(order) = ids.get("OrderId").cloned() {
        ids.insert("ReservationId".into(), order);
    }
    ids
}

fn operations(spec: &Value) -> impl Iterator<Item = (String, Method, &Value)> {
    spec["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object().unwrap().iter().map(move |(method, op)| {
                let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
                (path.clone(), method, op)
            })
        })
}

fn cases(spec: &Value, ids: &HashMap<String, String>) -> Vec<Case> {
    let mut cases = Vec::new();
    for (template, method, op) in operations(spec) {
        let id = op["operationId"].as_str().unwrap();
        let params = op["parameters"].as_array().cloned().unwrap_or_default();
        let path = concrete(&template, ids, None);
        let case = |path: String, query: String, body: Option<(&str, String)>, what, named| Case {
            method: method.clone(),
            path: if query.is_empty() {
                path
            } else {
                format!("{path}?{query}")
            },
            content_type: body.as_ref().map(|(ct, _)| (*ct).to_owned()),
            body: body.map(|(_, b)| b),
            what: format!("{id}: {what}"),
            named,
        };
        let (content_type, schema) = op["requestBody"]["content"]
            .as_object()
            .and_then(|c| c.iter().next())
            .map_or(("application/json", Value::Null), |(ct, c)| {
                (ct.as_str(), c["schema"].clone())
            });
        let base = (!schema.is_null()).then(|| example(spec, &schema, ids, true));
        let base_text = base.as_ref().map(Value::to_string);
        let with_base = || base_text.clone().map(|b| (content_type, b));

        for param in &params {
            let name = param["name"].as_str().unwrap();
            match param["in"].as_str().unwrap() {
                "path" => cases.push(case(
                    concrete(&template, ids, Some(name)),
                    String::new(),
                    with_base(),
                    format!("NUL in path parameter {name}"),
                    Some(name.to_owned()),
                )),
                "query" => {
                    let kind = resolve(spec, &param["schema"])["type"].clone();
                    if kind == "integer" || kind == "number" {
                        for n in NUMBERS {
                            cases.push(case(
                                path.clone(),
                                format!("{name}={n}"),
                                with_base(),
                                format!("{n} in query parameter {name}"),
                                None,
                            ));
                        }
                    } else if kind == "string" {
                        cases.push(case(
                            path.clone(),
                            format!("{name}=nul%00here"),
                            with_base(),
                            format!("NUL in query parameter {name}"),
                            Some(name.to_owned()),
                        ));
                    }
                }
                _ => {}
            }
        }
        let Some(base) = base else { continue };
        for (field, leaf, free_form) in leaves(spec, &schema, &base) {
            let mutated = |replacement: Value| replace(&base, &field, replacement).to_string();
            let label = if field.is_empty() {
                "$"
            } else {
                field.as_str()
            };
            match leaf {
                Value::String(_) => cases.push(case(
                    path.clone(),
                    String::new(),
                    Some((content_type, mutated(json!(NUL)))),
                    format!("NUL in {label}"),
                    Some(label.to_owned()),
                )),
                Value::Number(_) => {
                    for n in NUMBERS {
                        let text = mutated(json!("__number__")).replace("\"__number__\"", n);
                        cases.push(case(
                            path.clone(),
                            String::new(),
                            Some((content_type, text)),
                            format!("{n} in {label}"),
                            None,
                        ));
                    }
                }
                Value::Object(_) if !free_form => cases.push(case(
                    path.clone(),
                    String::new(),
                    Some((content_type, mutated(json!([])))),
                    format!("an array for the object {label}"),
                    Some(label.to_owned()),
                )),
                _ => {}
            }
        }
        cases.push(case(
            path.clone(),
            String::new(),
            Some((content_type, json!([base]).to_string())),
            "the body inside an array".into(),
            Some("$".into()),
        ));
    }
    cases
}

/// Every node of `value` by its field path (`items[0].name`; "" for the root), and whether
/// it lies in a free-form object (any JSON allowed, so an array there is no error).
fn leaves(spec: &Value, schema: &Value, value: &Value) -> Vec<(String, Value, bool)> {
    fn walk(
        spec: &Value,
        schema: Option<&Value>,
        value: &Value,
        path: String,
        out: &mut Vec<(String, Value, bool)>,
    ) {
        let schema = schema.map(|s| described(spec, s));
        let properties = schema.and_then(|s| s["properties"].as_object());
        out.push((path.clone(), value.clone(), properties.is_none()));
        match value {
            Value::Object(map) => {
                for (key, item) in map {
                    let path = if path.is_empty() {
                        key.clone()
                    } else {
                        format!("{path}.{key}")
                    };
                    walk(spec, properties.and_then(|p| p.get(key)), item, path, out);
                }
            }
            Value::Array(items) => {
                let item_schema = schema.map(|s| &s["items"]).filter(|s| !s.is_null());
                for (i, item) in items.iter().enumerate() {
                    walk(spec, item_schema, item, format!("{path}[{i}]"), out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(spec, Some(schema), value, String::new(), &mut out);
    out
}

/// The schema behind references and nullable `oneOf`s.
fn described<'a>(spec: &'a Value, schema: &'a Value) -> &'a Value {
    let schema = resolve(spec, schema);
    match schema["oneOf"].as_array() {
        Some(options) => options
            .iter()
            .find(|o| o["type"] != "null")
            .map_or(schema, |o| described(spec, o)),
        None => schema,
    }
}

/// `value` with the node at `path` (as produced by [`leaves`]) replaced.
fn replace(value: &Value, path: &str, replacement: Value) -> Value {
    let mut value = value.clone();
    let pointer: String = path
        .replace('[', ".")
        .replace(']', "")
        .split('.')
        .filter(|s| !s.is_empty())
        .map(|s| format!("/{}", s.replace('~', "~0").replace('/', "~1")))
        .collect();
    *value.pointer_mut(&pointer).unwrap() = replacement;
    value
}

fn resolve<'a>(spec: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(r) => resolve(
            spec,
            &spec["components"]["schemas"][r.rsplit('/').next().unwrap()],
        ),
        None => schema,
    }
}

/// A valid-looking value for `schema`: its example, an existing id, the first enum value…
/// `all`: every property (for mutation); else only required ones and those with an example
/// (a valid body for creating fixtures).
fn example(spec: &Value, schema: &Value, ids: &HashMap<String, String>, all: bool) -> Value {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.rsplit('/').next().unwrap();
        if let Some(id) = ids.get(name) {
            return json!(id);
        }
        return example(spec, &spec["components"]["schemas"][name], ids, all);
    }
    if let Some(example) = schema.get("example") {
        return example.clone();
    }
    if let Some(options) = schema["oneOf"].as_array() {
        let option = options.iter().find(|o| o["type"] != "null").unwrap();
        return example(spec, option, ids, all);
    }
    if let Some(values) = schema["enum"].as_array() {
        return values[0].clone();
    }
    let kind = match &schema["type"] {
        Value::String(kind) => kind.as_str(),
        Value::Array(kinds) => kinds
            .iter()
            .find_map(|k| k.as_str().filter(|k| *k != "null"))
            .unwrap(),
        _ => "object",
    };
    match kind {
        "object" => {
            let required: Vec<&str> = schema["required"]
                .as_array()
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let Some(properties) = schema["properties"].as_object() else {
                return json!({"note": "sweep"});
            };
            properties
                .iter()
                .filter(|(name, p)| {
                    all || required.contains(&name.as_str()) || p.get("example").is_some()
                })
                .map(|(name, p)| (name.clone(), example(spec, p, ids, all)))
                .collect::<serde_json::Map<_, _>>()
                .into()
        }
        "array" => json!([example(spec, &schema["items"], ids, all)]),
        "integer" => schema["minimum"]
            .as_i64()
            .map_or(json!(1), |m| json!(m.max(1))),
        "number" => json!(1.5),
        "boolean" => json!(false),
        "string" => match schema["format"].as_str() {
            Some("uuid") => json!(uuid::Uuid::now_v7().to_string()),
            Some("date") => json!("2020-01-02"),
            Some("date-time") => json!("2020-01-02T03:04:05Z"),
            _ => json!("sweep"),
        },
        _ => Value::Null,
    }
}

/// `template` with every `{param}` replaced by an existing id of its schema (a fresh UUID when
/// none exists), and the parameter `nul` (if any) by an encoded NUL.
fn concrete(template: &str, ids: &HashMap<String, String>, nul: Option<&str>) -> String {
    // The parameter's schema is not at hand here: ids are looked up by the parameter's
    // conventional names.
    let by_param = |param: &str, previous: Option<&str>| -> String {
        let schema = match (param, previous) {
            ("did", _) => "DiagnosisId",
            ("tid", _) => "TreatmentId",
            ("eid", _) => "ExecutionId",
            (_, Some("products")) => "ProductId",
            (_, Some("orders")) => "OrderId",
            (_, Some("payments")) => "PaymentId",
            (_, Some("patients" | "Patient")) => "PatientId",
            (_, Some("contracts")) => "ContractId",
            (_, Some("reservations")) => "ReservationId",
            _ => "",
        };
        ids.get(schema)
            .cloned()
            .unwrap_or_else(|| uuid::Uuid::now_v7().to_string())
    };
    let mut previous = None;
    template
        .split('/')
        .map(|segment| {
            let out = match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(param) if Some(param) == nul => "nul%00here".to_owned(),
                Some(param) => by_param(param, previous),
                None => segment.to_owned(),
            };
            previous = Some(segment);
            out
        })
        .collect::<Vec<_>>()
        .join("/")
}
