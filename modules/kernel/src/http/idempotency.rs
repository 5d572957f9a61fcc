//! `Idempotency-Key` for POST requests, with Stripe's semantics:
//!
//! - the first response (status, body, `Content-Type`, `Location`, `ETag`) to a key is kept
//!   for `ttl` (24 h) and replayed, with `Idempotent-Replayed: true`, for the same caller and
//!   the same request (method, path, query and body — a JSON body by meaning, so its
//!   whitespace and key order do not matter);
//! - the same key with a different request → 422; while the first is still running → 409;
//! - keys are scoped per caller (the token's `sub`); unauthenticated requests pass through
//!   untouched (the handler answers 401);
//! - 5xx responses are not kept, so the client can retry them; a record left `running` by a
//!   crashed process is taken over after `stale_after` (a little longer than the request
//!   timeout, past which no request still owns its record: so a client that retries a write
//!   a crash cut off gets it done, not a 409, once that much time has passed).
//!
//! The middleware is here; the record store (`store`), the request fingerprint
//! (`fingerprint`) and the replay of a kept response (`replay`) live in their own files.

use std::sync::Arc;

use actix_web::{
    Error,
    body::{BoxBody, MessageBody, to_bytes},
    dev::{ServiceRequest, ServiceResponse},
    http::Method,
    middleware::Next,
    web,
};

use crate::{
    auth::Principal,
    error::{ApiError, ErrorKind, FieldError},
    http::JsonLimit,
};

mod fingerprint;
mod replay;
mod store;

use fingerprint::{body_meaning, payload_of, read_body, request_hash};
use replay::{Stored, replay};
pub use store::IdempotencyStore;
use store::{Begun, record};

pub const HEADER: &str = "idempotency-key";

/// Problem code of a 422: the key was already used for a different request.
pub const IDEMPOTENCY_KEY_REUSED: &str = "idempotency_key_reused";
/// Problem code of a 409: a request with the same key is still running; retry later.
pub const IDEMPOTENCY_KEY_IN_FLIGHT: &str = "idempotency_key_in_flight";

/// Install on the API scope with `from_fn(idempotency)`.
///
/// # Errors
/// Problems for a malformed key (422), a reused key (422), a key in flight (409); otherwise
/// whatever the wrapped service returns.
pub async fn idempotency(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let Some(raw_key) = req.headers().get(HEADER).cloned() else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_boxed_body);
    };
    if req.method() != Method::POST {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_boxed_body);
    }
    let Some(store) = req
        .app_data::<web::Data<IdempotencyStore>>()
        .filter(|store| store.covers(req.path()))
        .cloned()
    else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_boxed_body);
    };
    let Ok(caller) = Principal::from_http(req.request()) else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_boxed_body);
    };
    let key = raw_key
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| {
            ApiError::validation(vec![FieldError::new(
                "Idempotency-Key",
                "must be 1 to 255 visible ASCII characters",
            )])
        })?
        .to_owned();

    let limit = req
        .app_data::<web::Data<JsonLimit>>()
        .map_or(1024 * 1024, |l| l.0);
    let body = read_body(&mut req, limit).await?;
    let method = req.method().to_string();
    let path = req.path().to_owned();
    let hash = request_hash(
        &store.hash_key,
        &method,
        req.uri().path_and_query().map_or("", |p| p.as_str()),
        &body_meaning(req.headers(), &body),
    );
    req.set_payload(payload_of(body));

    let begun = {
        let store = store.clone();
        let (caller, key, method, path, hash) =
            (caller.sub.clone(), key.clone(), method, path, hash.clone());
        store
            .db
            .clone()
            .run(move |conn| store.begin(conn, &caller, &key, &method, &path, &hash))
            .await
            .map_err(ApiError::internal)?
    };
    match begun {
        Begun::Existing(record) if record.request_hash != hash => {
            Err(ApiError::validation(vec![FieldError::new(
                "Idempotency-Key",
                format!(
                    "was already used for a different request ({} {})",
                    record.method, record.path
                ),
            )])
            .with_code(IDEMPOTENCY_KEY_REUSED)
            .into())
        }
        Begun::Existing(record) if record.state == "running" => Err(ApiError::new(
            ErrorKind::Conflict,
            "A request with this Idempotency-Key is still being processed; retry later.",
        )
        .with_code(IDEMPOTENCY_KEY_IN_FLIGHT)
        .into()),
        Begun::Existing(record) => Ok(req.into_response(replay(&record))),
        Begun::New => {
            let res = next.call(req).await?.map_into_boxed_body();
            let status = res.status();
            let (http_req, response) = res.into_parts();
            let (head, body) = response.into_parts();
            let bytes = to_bytes(body).await.map_err(|e| {
                ApiError::internal(anyhow::anyhow!("cannot buffer the response: {e}"))
            })?;
            // A server error is forgotten, so the client may simply try again.
            let stored = (!status.is_server_error()).then(|| Stored::of(&head, bytes.to_vec()));
            record(&store, caller.sub, key, stored.map(Arc::new)).await;
            Ok(ServiceResponse::new(
                http_req,
                head.set_body(BoxBody::new(bytes)),
            ))
        }
    }
}
