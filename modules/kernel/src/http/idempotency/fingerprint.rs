//! The request's fingerprint: its body is read whole (within the JSON limit), hashed with
//! method, path and query under a secret key, and put back for the handler.

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
}
