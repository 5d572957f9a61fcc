//! Canonical JSON and the ledger hash.
//!
//! Canonical JSON here: object keys sorted (by their UTF-8 bytes), no whitespace, strings
//! escaped as `serde_json` escapes them, numbers as `serde_json` prints them, times as
//! RFC 3339 UTC with microseconds (`2026-01-02T03:04:05.000006Z`).
//!
//! The ledger stores `input`, `output` and `state` as canonical JSON text, and the record is
//! assembled from those stored fragments rather than from re-parsed values: a float does not
//! have to survive a parse/print round trip for the chain to verify, and any edit of the
//! stored text — even one that means the same JSON — breaks it.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// `value` as canonical JSON.
pub(crate) fn to_string(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value);
    out
}

fn write_string(out: &mut String, s: &str) {
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

/// A time as the ledger writes it: RFC 3339, UTC, microseconds.
pub(crate) fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// What one ledger entry commits to. `input`, `output` and `state` are canonical JSON text.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Record<'a> {
    pub contract_id: &'a str,
    pub version: i64,
    pub seq: i64,
    pub input: &'a str,
    pub output: &'a str,
    pub state: &'a str,
    pub caller_sub: &'a str,
    pub caller_role: &'a str,
    pub time: DateTime<Utc>,
}

impl Record<'_> {
    /// The record's canonical JSON (keys in sorted order).
    pub(crate) fn canonical(&self) -> String {
        let mut caller = String::new();
        caller.push_str("{\"role\":");
        write_string(&mut caller, self.caller_role);
        caller.push_str(",\"sub\":");
        write_string(&mut caller, self.caller_sub);
        caller.push('}');
        let mut out =
            String::with_capacity(self.input.len() + self.output.len() + self.state.len() + 256);
        out.push_str("{\"caller\":");
        out.push_str(&caller);
        out.push_str(",\"contract_id\":");
        write_string(&mut out, self.contract_id);
        out.push_str(",\"input\":");
        out.push_str(self.input);
        out.push_str(",\"output\":");
        out.push_str(self.output);
        let _ = write!(out, ",\"seq\":{}", self.seq);
        out.push_str(",\"state\":");
        out.push_str(self.state);
        out.push_str(",\"time\":");
        write_string(&mut out, &time(self.time));
        let _ = write!(out, ",\"version\":{}}}", self.version);
        out
    }

    /// SHA-256 (lowercase hex) of `prev_hash` (its 64 hex characters) followed by the
    /// record's canonical JSON.
    pub(crate) fn hash(&self, prev_hash: &str) -> String {
        let mut hasher = Sha256::new();
        hasher.update(prev_hash.as_bytes());
        hasher.update(self.canonical().as_bytes());
        hex(&hasher.finalize())
    }
}

/// SHA-256 of `text`, lowercase hex.
pub(crate) fn sha256_hex(text: &str) -> String {
    hex(&Sha256::digest(text.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

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
        let a: Value = serde_json::from_str(r#"{ "x" : 1.5, "y" : [ 1 , 2 ] }"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"y":[1,2],"x":1.5}"#).unwrap();
        assert_eq!(to_string(&a), to_string(&b));
        assert_eq!(to_string(&a), r#"{"x":1.5,"y":[1,2]}"#);
    }

    #[test]
    fn times_are_utc_with_microseconds() {
        let t =
            Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap() + chrono::Duration::microseconds(6);
        assert_eq!(time(t), "2026-01-02T03:04:05.000006Z");
    }

    #[test]
    fn a_record_is_canonical_json_of_its_fields() {
        let t = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        let record = Record {
            contract_id: "c1",
            version: 1,
            seq: 2,
            input: r#"{"a":1}"#,
            output: "null",
            state: r#"{"n":2}"#,
            caller_sub: "alice",
            caller_role: "customer",
            time: t,
        };
        let canonical = record.canonical();
        let reparsed: Value = serde_json::from_str(&canonical).unwrap();
        assert_eq!(to_string(&reparsed), canonical);
        assert_eq!(
            canonical,
            r#"{"caller":{"role":"customer","sub":"alice"},"contract_id":"c1","input":{"a":1},"output":null,"seq":2,"state":{"n":2},"time":"2026-01-02T03:04:05.000000Z","version":1}"#
        );
        let hash = record.hash(api_genesis());
        assert_eq!(hash.len(), 64);
        assert_ne!(hash, record.hash(&hash));
    }

    #[test]
    fn sha256_is_lowercase_hex() {
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    fn api_genesis() -> &'static str {
        contract_api::GENESIS_HASH
    }
}
