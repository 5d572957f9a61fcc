//! An input type's JSON Schema (from its `ToSchema` or `IntoParams`) as the reference a 422
//! is written against: what a field should be, in words a person reads ("must be a whole
//! number between 1 and 1000", "must be one of: active, resolved, inactive"), and a value of
//! that shape to stand in for a field that is missing or wrong while the rest of the body is
//! checked. The schema is the one the OpenAPI document publishes, so the message and the
//! documentation say the same thing.

use serde_json::{Map, Value, json};
use utoipa::{
    IntoParams, ToSchema,
    openapi::path::{Parameter, ParameterIn},
};

use super::words;

/// One step of a path into a JSON document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    Key(String),
    Index(usize),
}

/// The field name a path is reported under: `price.currency`, `lines[2].quantity`, `$` for
/// the document itself.
pub(crate) fn field_name(path: &[Step]) -> String {
    let mut name = String::new();
    for step in path {
        match step {
            Step::Key(key) => {
                if !name.is_empty() {
                    name.push('.');
                }
                name.push_str(&super::strict::printable(key));
            }
            Step::Index(i) => name.push_str(&format!("[{i}]")),
        }
    }
    if name.is_empty() {
        "$".to_owned()
    } else {
        name
    }
}

/// A root schema and the component schemas its `$ref`s name.
#[derive(Debug, Default)]
pub(crate) struct Schemas {
    root: Value,
    components: Map<String, Value>,
}

/// How deep a stand-in value or a `$ref` chain may go (schemas may be recursive).
const MAX_NESTING: usize = 16;

impl Schemas {
    /// The schema of a request body type.
    pub(crate) fn of<T: ToSchema>() -> Self {
        let mut dependencies = Vec::new();
        T::schemas(&mut dependencies);
        Self {
            root: serde_json::to_value(T::schema()).unwrap_or_default(),
            components: dependencies
                .into_iter()
                .filter_map(|(name, schema)| Some((name, serde_json::to_value(schema).ok()?)))
                .collect(),
        }
    }

    /// The query parameters of `T` as one object schema.
    pub(crate) fn of_query<T: IntoParams>() -> Self {
        let mut properties = Map::new();
        let mut required = Vec::new();
        for parameter in T::into_params(|| Some(ParameterIn::Query)) {
            let Ok(Value::Object(parameter)) = serde_json::to_value::<Parameter>(parameter) else {
                continue;
            };
            let name = parameter.get("name").and_then(Value::as_str).unwrap_or("");
            if parameter.get("required") == Some(&Value::Bool(true)) {
                required.push(Value::String(name.to_owned()));
            }
            let schema = parameter.get("schema").cloned().unwrap_or_default();
            properties.insert(name.to_owned(), schema);
        }
        Self {
            root: json!({"type": "object", "properties": properties, "required": required}),
            components: Map::new(),
        }
    }

    /// Follows `$ref`s to the schema they name (a `$ref` to a type not listed stays as is).
    fn resolve<'a>(&'a self, mut node: &'a Value) -> &'a Value {
        for _ in 0..MAX_NESTING {
            let Some(name) = node
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix("#/components/schemas/"))
            else {
                break;
            };
            match self.components.get(name) {
                Some(target) => node = target,
                None => break,
            }
        }
        node
    }

    /// The branches of a `oneOf`/`anyOf`/`allOf`, or the schema itself.
    fn branches<'a>(&'a self, node: &'a Value) -> Vec<&'a Value> {
        let node = self.resolve(node);
        let combined: Vec<&Value> = ["allOf", "oneOf", "anyOf"]
            .iter()
            .filter_map(|k| node.get(*k).and_then(Value::as_array))
            .flatten()
            .map(|branch| self.resolve(branch))
            .filter(|branch| !is_null_type(branch))
            .collect();
        if combined.is_empty() {
            vec![node]
        } else {
            combined
        }
    }

    fn child<'a>(&'a self, node: &'a Value, step: &Step) -> Option<&'a Value> {
        self.branches(node).into_iter().find_map(|node| match step {
            Step::Key(key) => node
                .get("properties")
                .and_then(|p| p.get(key))
                .or_else(|| node.get("additionalProperties").filter(|a| a.is_object())),
            Step::Index(i) => node
                .get("prefixItems")
                .and_then(|p| p.get(*i))
                .or_else(|| node.get("items")),
        })
    }

    /// The schema of the value at `path`, if the schema says.
    pub(crate) fn at(&self, path: &[Step]) -> Option<&Value> {
        let mut node = &self.root;
        for step in path {
            node = self.child(node, step)?;
        }
        Some(self.resolve(node))
    }

    /// Whether the field at `path` may be left out (an optional member of an object).
    pub(crate) fn is_optional(&self, path: &[Step]) -> bool {
        let Some((Step::Key(key), parent)) = path.split_last() else {
            return false;
        };
        self.at(parent).is_some_and(|parent| {
            !self.branches(parent).iter().any(|branch| {
                branch
                    .get("required")
                    .and_then(Value::as_array)
                    .is_some_and(|r| r.iter().any(|name| name == key.as_str()))
            })
        })
    }

    /// The names an object at `path` accepts, sorted.
    pub(crate) fn field_names(&self, path: &[Step]) -> Vec<String> {
        let mut names: Vec<String> = self
            .at(path)
            .map(|node| self.branches(node))
            .unwrap_or_default()
            .iter()
            .filter_map(|branch| branch.get("properties").and_then(Value::as_object))
            .flat_map(|properties| properties.keys().cloned())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// A value of the right shape for `path`, to stand in for a missing or wrong one: the
    /// schema's example or default, else the first allowed value, else the simplest value of
    /// its type and format.
    pub(crate) fn stand_in(&self, path: &[Step]) -> Option<Value> {
        self.at(path).map(|node| self.stand_in_for(node, 0))
    }

    fn stand_in_for(&self, node: &Value, depth: usize) -> Value {
        let node = self.resolve(node);
        if let Some(example) = node
            .get("example")
            .or_else(|| node.get("examples").and_then(|e| e.get(0)))
            .or_else(|| node.get("default"))
            .or_else(|| node.get("const"))
            .or_else(|| node.get("enum").and_then(|e| e.get(0)))
        {
            return example.clone();
        }
        let combined = ["oneOf", "anyOf", "allOf"]
            .iter()
            .find_map(|k| node.get(*k).and_then(Value::as_array));
        if let Some(branches) = combined {
            if branches.iter().any(|b| is_null_type(self.resolve(b))) {
                return Value::Null;
            }
            return branches
                .first()
                .map_or(Value::Null, |b| self.stand_in_for(b, depth + 1));
        }
        let types = types(node);
        if types.contains(&"null") || depth > MAX_NESTING {
            return Value::Null;
        }
        let minimum = node.get("minimum").and_then(Value::as_f64).unwrap_or(0.0);
        match types.first().copied() {
            Some("string") => match node.get("format").and_then(Value::as_str) {
                Some("date") => json!("2000-01-01"),
                Some("date-time") => json!("2000-01-01T00:00:00Z"),
                Some("uuid") => json!("00000000-0000-0000-0000-000000000000"),
                _ => json!(""),
            },
            // Truncation is intended: a bound of a whole-number field is whole.
            #[allow(clippy::cast_possible_truncation)]
            Some("integer") => json!(minimum as i64),
            Some("number") => json!(minimum),
            Some("boolean") => json!(false),
            Some("array") => json!([]),
            Some("object") => {
                let mut object = Map::new();
                for name in node
                    .get("required")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                {
                    let member = node.get("properties").and_then(|p| p.get(name));
                    let value = member.map_or(Value::Null, |m| self.stand_in_for(m, depth + 1));
                    object.insert(name.to_owned(), value);
                }
                Value::Object(object)
            }
            _ => Value::Null,
        }
    }

    /// What the value at `path` must be, in words (see [`super::words::describe`]).
    pub(crate) fn describe(
        &self,
        path: &[Step],
        expected: Option<&str>,
        custom: Option<&str>,
    ) -> String {
        let node = self.at(path).map(|node| self.branches(node)[0]);
        words::describe(node, expected, custom)
    }
}

pub(super) fn is_null_type(node: &Value) -> bool {
    node.get("type").and_then(Value::as_str) == Some("null")
}

/// The JSON types a schema allows (`"type": "string"` or `"type": ["string", "null"]`).
pub(super) fn types(node: &Value) -> Vec<&str> {
    match node.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => {
            let mut ts: Vec<&str> = ts.iter().filter_map(Value::as_str).collect();
            // The non-null type first: it is what a value must be.
            ts.sort_by_key(|t| *t == "null");
            ts
        }
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, ToSchema)]
    #[allow(dead_code)]
    enum Colour {
        #[serde(rename = "red")]
        Red,
        #[serde(rename = "blue")]
        Blue,
    }

    #[derive(serde::Deserialize, ToSchema)]
    #[allow(dead_code)]
    struct Line {
        #[schema(minimum = 1, maximum = 1000)]
        quantity: i64,
        colour: Colour,
        note: Option<String>,
    }

    #[derive(serde::Deserialize, ToSchema)]
    #[allow(dead_code)]
    struct Order {
        lines: Vec<Line>,
        on: chrono::NaiveDate,
        count: u32,
    }

    fn path(steps: &[&str]) -> Vec<Step> {
        steps
            .iter()
            .map(|s| {
                s.parse()
                    .map_or_else(|_| Step::Key((*s).to_owned()), Step::Index)
            })
            .collect()
    }

    #[test]
    fn paths_read_as_fields() {
        assert_eq!(
            field_name(&path(&["lines", "2", "quantity"])),
            "lines[2].quantity"
        );
        assert_eq!(field_name(&[]), "$");
    }

    #[test]
    fn messages_come_from_the_schema_through_refs() {
        let s = Schemas::of::<Order>();
        let quantity = path(&["lines", "0", "quantity"]);
        assert_eq!(
            s.describe(&quantity, Some("i64"), None),
            "must be a whole number between 1 and 1000"
        );
        assert_eq!(
            s.describe(&path(&["lines", "3", "colour"]), None, None),
            "must be one of: red, blue"
        );
        assert_eq!(
            s.describe(&path(&["on"]), None, Some("premature end of input")),
            "must be a date (YYYY-MM-DD)"
        );
        assert_eq!(
            s.describe(&path(&["count"]), Some("u32"), None),
            "must be a whole number between 0 and 4294967295"
        );
        assert_eq!(
            s.describe(&path(&["lines"]), None, None),
            "must be an array"
        );
    }

    #[test]
    fn stand_ins_have_the_right_shape() {
        let s = Schemas::of::<Order>();
        assert_eq!(s.stand_in(&path(&["on"])), Some(json!("2000-01-01")));
        assert_eq!(
            s.stand_in(&path(&["lines", "0"])),
            Some(json!({"quantity": 1, "colour": "red"}))
        );
        assert!(s.is_optional(&path(&["lines", "0", "note"])));
        assert!(!s.is_optional(&path(&["lines", "0", "quantity"])));
        assert!(!s.is_optional(&path(&["lines", "0"])));
        assert_eq!(s.field_names(&[]), ["count", "lines", "on"]);
    }
}
