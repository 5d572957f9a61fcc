//! What a field must be, in words a person reads, from its JSON Schema: "must be a whole
//! number between 1 and 1000", "must be one of: active, resolved, inactive", "must be a date
//! (YYYY-MM-DD)". Never the value sent, never serde's or Rust's names for types.

use serde_json::Value;

use super::schema::types;

/// What a value of schema `node` must be, in words. `expected` is what the deserializer
/// expected (`u32`, `i64`, …) when it said so; `custom` a message a type's own parser wrote
/// for people (such as "\"euro\" is not an ISO 4217 currency code"), used where the schema
/// says no more than "a string".
pub(crate) fn describe(
    node: Option<&Value>,
    expected: Option<&str>,
    custom: Option<&str>,
) -> String {
    let Some(node) = node else {
        return custom.map_or_else(|| from_expected(expected), str::to_owned);
    };
    if let Some(values) = node.get("enum").and_then(Value::as_array) {
        let names: Vec<String> = values
            .iter()
            .filter(|v| !v.is_null())
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
            .collect();
        return one_of(&names);
    }
    match types(node).first().copied() {
        Some("integer") => whole_number(node, expected),
        Some("number") => "must be a number".to_owned(),
        Some("boolean") => "must be true or false".to_owned(),
        Some("array") => "must be an array".to_owned(),
        Some("object") => "must be a JSON object".to_owned(),
        Some("string") => match node.get("format").and_then(Value::as_str) {
            Some("date") => "must be a date (YYYY-MM-DD)".to_owned(),
            Some("date-time") => {
                "must be a date and time in RFC 3339 form (e.g. 2026-01-31T09:30:00Z)".to_owned()
            }
            Some("uuid") => "must be a UUID".to_owned(),
            _ => custom.map_or_else(|| "must be a string".to_owned(), str::to_owned),
        },
        _ => custom.map_or_else(|| from_expected(expected), str::to_owned),
    }
}

/// "must be one of: a, b, c".
pub(crate) fn one_of(names: &[String]) -> String {
    format!("must be one of: {}", names.join(", "))
}

/// The range of a Rust integer type as serde names it.
fn integer_range(name: &str) -> Option<(i128, i128)> {
    Some(match name {
        "u8" => (0, u8::MAX.into()),
        "u16" => (0, u16::MAX.into()),
        "u32" => (0, u32::MAX.into()),
        "u64" | "usize" => (0, u64::MAX.into()),
        "i8" => (i8::MIN.into(), i8::MAX.into()),
        "i16" => (i16::MIN.into(), i16::MAX.into()),
        "i32" => (i32::MIN.into(), i32::MAX.into()),
        "i64" | "isize" => (i64::MIN.into(), i64::MAX.into()),
        _ => return None,
    })
}

/// "must be a whole number between MIN and MAX": the schema's bounds where it states them,
/// else those of the integer type behind the field.
fn whole_number(node: &Value, expected: Option<&str>) -> String {
    let bound = |key: &str| {
        // Truncation is intended: bounds of whole-number fields are whole.
        #[allow(clippy::cast_possible_truncation)]
        node.get(key).and_then(Value::as_f64).map(|b| b as i128)
    };
    let format = node.get("format").and_then(Value::as_str);
    let unsigned = bound("minimum").is_some_and(|m| m >= 0);
    let (type_min, type_max) =
        expected
            .and_then(integer_range)
            .unwrap_or(match (format, unsigned) {
                (Some("int32"), true) => (0, u32::MAX.into()),
                (Some("int32"), false) => (i32::MIN.into(), i32::MAX.into()),
                _ => (i64::MIN.into(), i64::MAX.into()),
            });
    let min = bound("minimum").map_or(type_min, |b| b.max(type_min));
    let max = bound("maximum").map_or(type_max, |b| b.min(type_max));
    format!("must be a whole number between {min} and {max}")
}

/// Words for what serde expected, when the schema does not say.
fn from_expected(expected: Option<&str>) -> String {
    let Some(expected) = expected else {
        return "is not valid".to_owned();
    };
    if let Some((min, max)) = integer_range(expected) {
        return format!("must be a whole number between {min} and {max}");
    }
    match expected {
        "f32" | "f64" => "must be a number",
        "a boolean" => "must be true or false",
        "a string" | "a borrowed string" | "a character" | "char" => "must be a string",
        "a sequence" | "a tuple" => "must be an array",
        e if e.starts_with("struct ") || e == "a map" || e == "a JSON object" => {
            "must be a JSON object"
        }
        _ => "is not valid",
    }
    .to_owned()
}
