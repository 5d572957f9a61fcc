//! Canonical JSON and the ledger hash.
//!
//! Canonical JSON is the kernel's ([`kernel::canonical`]: object keys sorted, no whitespace),
//! with times as RFC 3339 UTC with microseconds (`2026-01-02T03:04:05.000006Z`).
//!
//! The ledger stores `input`, `output` and `state` as canonical JSON text, and the record is
//! assembled from those stored fragments rather than from re-parsed values: a float does not
//! have to survive a parse/print round trip for the chain to verify, and any edit of the
//! stored text — even one that means the same JSON — breaks it.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
pub(crate) use kernel::canonical::to_string;
use kernel::canonical::write_string;
use sha2::{Digest, Sha256};

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
    use serde_json::Value;

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
