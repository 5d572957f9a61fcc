//! Canonical JSON: one text for every way of writing the same JSON value, so that two
//! documents can be compared (or hashed) by meaning. Object keys are sorted by their UTF-8
//! bytes at every depth, there is no whitespace, strings are escaped as `serde_json` escapes
//! them and numbers are printed as `serde_json` parsed them (`1` and `1.0` stay different:
//! a handler expecting a whole number tells them apart too).
//!
//! Used for the fingerprint of an `Idempotency-Key` request and for the contract module's
//! ledger.

use std::fmt::Write as _;

use serde_json::Value;

/// `value` as canonical JSON.
pub fn to_string(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value);
    out
}

/// Appends `s` as a JSON string.
pub fn write_string(out: &mut String, s: &str) {
    // Serializing a string cannot fail.
    out.push_str(&serde_json::to_string(s).unwrap_or_default());
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, key);
                out.push(':');
                write_value(out, item);
            }
            out.push('}');
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn object_keys_are_sorted_at_every_depth_without_whitespace() {
        let value = json!({"b": 1, "a": {"z": [3, {"y": null, "x": true}], "c": "é\"\n"}});
        assert_eq!(
            to_string(&value),
            r#"{"a":{"c":"é\"\n","z":[3,{"x":true,"y":null}]},"b":1}"#
        );
    }

    #[test]
    fn equal_values_written_differently_have_one_canonical_form() {
        let a: Value =
            serde_json::from_str(r#"{ "x" : 1.5, "y" : [ 1 , 2 ], "s": "\u00e9" }"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"s":"é","y":[1,2],"x":1.5}"#).unwrap();
        assert_eq!(to_string(&a), to_string(&b));
        assert_eq!(to_string(&a), r#"{"s":"é","x":1.5,"y":[1,2]}"#);
    }

    #[test]
    fn numbers_stay_as_they_were_parsed() {
        let int: Value = serde_json::from_str("[1, -2]").unwrap();
        let float: Value = serde_json::from_str("[1.0, -2.0]").unwrap();
        assert_eq!(to_string(&int), "[1,-2]");
        assert_ne!(to_string(&int), to_string(&float));
    }
}
