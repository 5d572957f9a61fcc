//! The spec is true: every response of every test app ([`TestApp`](crate::helpers::TestApp)
//! installs a [`SpecCheck`]) is checked against the OpenAPI document the server serves (the
//! one committed as `openapi/openapi.json`; the drift test keeps the two equal). The
//! operation is found by method and path template, the response by status and content type,
//! and a JSON body is validated against its schema as JSON Schema 2020-12 (OpenAPI 3.1), with
//! `$ref`s resolved inside the document and formats checked. A mismatch fails the test when
//! its app is dropped, naming the operation, the status and the JSON pointer of each error.
//! Paths the document does not describe (Swagger UI, the document itself, unknown routes)
//! are not checked.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::{Arc, Mutex, OnceLock},
};

use jsonschema::{Draft, Validator};
use serde_json::Value;
use tessera::{Exchange, Inspector};

/// One operation of the document.
pub struct Operation {
    pub method: String,
    pub template: String,
    pub id: String,
    /// The documented statuses (`"200"`, `"404"`, …).
    pub statuses: Vec<String>,
    /// JSON pointer of the operation in the document.
    pub pointer: String,
}

impl Operation {
    fn matches(&self, method: &str, path: &str) -> bool {
        if self.method != method {
            return false;
        }
        let (mut template, mut path) = (self.template.split('/'), path.split('/'));
        loop {
            match (template.next(), path.next()) {
                (None, None) => return true,
                (Some(t), Some(p)) if t.starts_with('{') && t.ends_with('}') && !p.is_empty() => {}
                (Some(t), Some(p)) if t == p => {}
                _ => return false,
            }
        }
    }
}

/// The served document, its operations and the validators compiled so far.
pub struct Spec {
    pub doc: Value,
    pub operations: Vec<Operation>,
    validators: Mutex<HashMap<String, Arc<Validator>>>,
}

/// `~` and `/` escaped for a JSON pointer.
fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// The content type without its parameters.
fn essence(content_type: &str) -> &str {
    content_type.split(';').next().unwrap_or("").trim()
}

impl Spec {
    /// The document of this build, parsed once per test binary.
    pub fn served() -> &'static Spec {
        static SPEC: OnceLock<Spec> = OnceLock::new();
        SPEC.get_or_init(|| {
            Spec::new(serde_json::from_str(&tessera::openapi_json().unwrap()).unwrap())
        })
    }

    pub fn new(doc: Value) -> Self {
        let mut operations = Vec::new();
        for (template, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                if !["get", "put", "post", "delete", "patch"].contains(&method.as_str()) {
                    continue;
                }
                operations.push(Operation {
                    method: method.clone(),
                    template: template.clone(),
                    id: op["operationId"].as_str().unwrap_or_default().to_owned(),
                    statuses: op["responses"]
                        .as_object()
                        .map(|r| r.keys().cloned().collect())
                        .unwrap_or_default(),
                    pointer: format!("/paths/{}/{method}", escape(template)),
                });
            }
        }
        // Literal segments before templates: `/a/b` is not `/a/{id}`.
        operations.sort_by_key(|op| op.template.matches('{').count());
        Self {
            doc,
            operations,
            validators: Mutex::new(HashMap::new()),
        }
    }

    pub fn operation(&self, method: &str, path: &str) -> Option<&Operation> {
        let method = method.to_ascii_lowercase();
        self.operations.iter().find(|op| op.matches(&method, path))
    }

    /// Where the value at `pointer` is, following a `$ref` found there; `None` when nothing is.
    fn resolve(&self, pointer: &str) -> Option<String> {
        let value = self.doc.pointer(pointer)?;
        match value.get("$ref").and_then(Value::as_str) {
            Some(target) => self.resolve(target.strip_prefix('#')?),
            None => Some(pointer.to_owned()),
        }
    }

    /// The validator of the schema at `pointer`, whose `$ref`s point into the document's
    /// components.
    fn validator(&self, pointer: &str) -> Result<Arc<Validator>, String> {
        let mut cache = self.validators.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(validator) = cache.get(pointer) {
            return Ok(validator.clone());
        }
        let mut schema = self
            .doc
            .pointer(pointer)
            .cloned()
            .unwrap_or(Value::Bool(true));
        if let Value::Object(map) = &mut schema {
            map.insert("components".into(), self.doc["components"].clone());
        }
        let validator = jsonschema::options()
            .with_draft(Draft::Draft202012)
            .should_validate_formats(true)
            .build(&schema)
            .map_err(|e| format!("the schema at {pointer} does not compile: {e}"))?;
        let validator = Arc::new(validator);
        cache.insert(pointer.to_owned(), validator.clone());
        Ok(validator)
    }

    /// What is wrong with one answer of `op`, if anything.
    pub fn check(&self, op: &Operation, exchange: &Exchange<'_>) -> Vec<String> {
        let status = exchange.status.as_str();
        let Some(at) = self.resolve(&format!("{}/responses/{status}", op.pointer)) else {
            return vec![format!(
                "status {status} is not documented (documented: {})",
                op.statuses.join(", ")
            )];
        };
        let response = self.doc.pointer(&at).unwrap_or(&Value::Null);
        let content_type = exchange
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok());
        let documented = response["content"].as_object();
        let (Some(content_type), Some(documented)) = (content_type, documented) else {
            return match (content_type, documented) {
                (Some(ct), None) => {
                    vec![format!(
                        "status {status} documents no body, yet it has one of type {ct}"
                    )]
                }
                (None, Some(d)) if !d.is_empty() => vec![format!(
                    "status {status} documents a body ({}) and none came",
                    d.keys().cloned().collect::<Vec<_>>().join(", ")
                )],
                _ => Vec::new(),
            };
        };
        let Some(media) = documented
            .keys()
            .find(|key| key.as_str() == content_type || essence(key) == essence(content_type))
        else {
            return vec![format!(
                "status {status} answered {content_type}, documented: {}",
                documented.keys().cloned().collect::<Vec<_>>().join(", ")
            )];
        };
        if !essence(content_type).contains("json") {
            return Vec::new();
        }
        let body: Value = match serde_json::from_slice(exchange.body) {
            Ok(body) => body,
            Err(e) => return vec![format!("status {status}: the body is not JSON: {e}")],
        };
        let pointer = format!("{at}/content/{}/schema", escape(media));
        let validator = match self.validator(&pointer) {
            Ok(validator) => validator,
            Err(e) => return vec![e],
        };
        validator
            .iter_errors(&body)
            .map(|error| {
                format!(
                    "status {status}: at `{}`: {error} (schema: {})",
                    error.instance_path(),
                    error.schema_path()
                )
            })
            .collect()
    }
}

/// One app's record: what did not match the spec, and which statuses each operation gave.
#[derive(Default)]
pub struct SpecCheck {
    violations: Mutex<Vec<String>>,
    seen: Mutex<BTreeMap<String, BTreeSet<u16>>>,
}

impl SpecCheck {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn violations(&self) -> Vec<String> {
        self.violations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The statuses seen per operation id.
    pub fn seen(&self) -> BTreeMap<String, BTreeSet<u16>> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Panics listing every violation (at most the first 20).
    pub fn assert_truthful(&self) {
        let violations = self.violations();
        if violations.is_empty() {
            return;
        }
        let shown: Vec<&String> = violations.iter().take(20).collect();
        panic!(
            "{} response(s) do not match the OpenAPI document:\n{}",
            violations.len(),
            shown
                .iter()
                .map(|v| format!("  - {v}"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

impl Inspector for SpecCheck {
    fn inspect(&self, exchange: &Exchange<'_>) {
        let spec = Spec::served();
        let Some(op) = spec.operation(exchange.method.as_str(), exchange.path) else {
            return;
        };
        self.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(op.id.clone())
            .or_default()
            .insert(exchange.status.as_u16());
        let problems = spec.check(op, exchange);
        if problems.is_empty() {
            return;
        }
        let mut violations = self.violations.lock().unwrap_or_else(|e| e.into_inner());
        for problem in problems {
            violations.push(format!(
                "{} {} (operation `{}`): {problem}",
                exchange.method, exchange.path, op.id
            ));
        }
    }
}
