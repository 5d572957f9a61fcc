//! The request's fingerprint: its body is read whole (within the JSON limit), hashed with
//! method, path and query under a secret key, and put back for the handler.
//!
//! A JSON body is fingerprinted by meaning, as canonical JSON ([`crate::canonical`]): a
//! client that re-serialises its body for a retry (other whitespace, other key order) sends
//! the same request. Any other body, and JSON that does not parse, is compared byte for byte.

use actix_web::http::header::{CONTENT_TYPE, HeaderMap};
use actix_web::{
    HttpMessage,
    dev::{Payload, ServiceRequest},
    web,
};
use futures_util::StreamExt;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::{ApiError, ErrorKind};

/// HMAC-SHA256 over method, path, query and body.
pub(super) fn request_hash(key: &[u8], method: &str, path_and_query: &str, body: &[u8]) -> String {
    // HMAC takes keys of any length: this cannot fail.
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(key) else {
        return String::new();
    };
    mac.update(method.as_bytes());
    mac.update(b" ");
    mac.update(path_and_query.as_bytes());
    mac.update(b"\n");
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What of `body` the fingerprint covers: its canonical JSON when `headers` declare JSON
/// (`application/json` or `application/<x>+json`) and it parses, else its bytes.
pub(super) fn body_meaning(headers: &HeaderMap, body: &[u8]) -> Vec<u8> {
    let declared_json = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|essence| essence.trim().to_ascii_lowercase())
        .is_some_and(|essence| {
            essence == "application/json"
                || (essence.starts_with("application/") && essence.ends_with("+json"))
        });
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(value) if declared_json => crate::canonical::to_string(&value).into_bytes(),
        _ => body.to_vec(),
    }
}

pub(super) async fn read_body(
    req: &mut ServiceRequest,
    limit: usize,
) -> Result<web::Bytes, ApiError> {
    let mut payload = req.take_payload();
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::new(ErrorKind::BadRequest, format!("cannot read the body: {e}"))
        })?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::new(
                ErrorKind::PayloadTooLarge,
                format!("The request body is larger than {limit} bytes."),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

pub(super) fn payload_of(bytes: web::Bytes) -> Payload {
    let (_, mut payload) = actix_http::h1::Payload::create(true);
    payload.unread_data(bytes);
    Payload::from(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_covers_method_path_and_body_under_a_key() {
        let a = request_hash(b"k", "POST", "/api/v1/orders", b"{}");
        assert_eq!(a.len(), 64);
        assert_ne!(a, request_hash(b"k", "POST", "/api/v1/orders", b"{ }"));
        assert_ne!(a, request_hash(b"k", "POST", "/api/v1/payments", b"{}"));
        assert_ne!(a, request_hash(b"other", "POST", "/api/v1/orders", b"{}"));
        assert_eq!(a, request_hash(b"k", "POST", "/api/v1/orders", b"{}"));
    }

    fn headers(content_type: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, content_type.parse().unwrap());
        headers
    }

    #[test]
    fn a_json_body_counts_by_meaning_not_formatting() {
        let json = headers("application/json; charset=utf-8");
        let compact = body_meaning(&json, br#"{"items":[{"product_id":"p","quantity":2}]}"#);
        let spread = body_meaning(
            &json,
            b"{\n  \"items\" : [ { \"quantity\" : 2, \"product_id\" : \"p\" } ]\n}\n",
        );
        assert_eq!(compact, spread);
        assert_eq!(
            compact,
            body_meaning(&headers("application/merge-patch+json"), &compact)
        );
        let other = body_meaning(&json, br#"{"items":[{"product_id":"p","quantity":3}]}"#);
        assert_ne!(compact, other);
    }

    #[test]
    fn other_bodies_count_byte_for_byte() {
        let text = headers("text/plain");
        assert_eq!(body_meaning(&text, br#"{ "a": 1 }"#), br#"{ "a": 1 }"#);
        assert_eq!(body_meaning(&HeaderMap::new(), b"{ }"), b"{ }");
        let json = headers("application/json");
        assert_eq!(body_meaning(&json, b"{ not json"), b"{ not json");
        assert_ne!(body_meaning(&json, b"{ }"), body_meaning(&json, b"{ } x"));
    }
}
