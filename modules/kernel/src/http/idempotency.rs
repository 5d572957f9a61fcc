//! `Idempotency-Key` for POST requests, with Stripe's semantics:
//!
//! - the first response (status, body, `Content-Type`, `Location`, `ETag`) to a key is kept
//!   for `ttl` (24 h) and replayed, with `Idempotent-Replayed: true`, for the same caller and
//!   the same request (method, path, query and body);
//! - the same key with a different request → 422; while the first is still running → 409;
//! - keys are scoped per caller (the token's `sub`); unauthenticated requests pass through
//!   untouched (the handler answers 401);
//! - 5xx responses are not kept, so the client can retry them; a record left `running` by a
//!   crashed process is taken over after `stale_after` (a little longer than the request
//!   timeout, past which no request still owns its record: so a client that retries a write
//!   a crash cut off gets it done, not a 409, once that much time has passed).

use std::sync::Arc;

use actix_web::{
    Error, HttpMessage, HttpResponse,
    body::{BoxBody, MessageBody, to_bytes},
    dev::{Payload, ServiceRequest, ServiceResponse},
    http::{Method, StatusCode, header},
    middleware::Next,
    web,
};
use anyhow::Context;
use chrono::NaiveDateTime;
use diesel::{
    prelude::*,
    result::{DatabaseErrorKind, Error as DieselError},
};
use futures_util::StreamExt;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::{
    auth::Principal,
    db::{Db, DbConnection, write_tx},
    error::{ApiError, ErrorKind, FieldError},
    http::JsonLimit,
};

pub const HEADER: &str = "idempotency-key";

/// Problem code of a 422: the key was already used for a different request.
pub const IDEMPOTENCY_KEY_REUSED: &str = "idempotency_key_reused";
/// Problem code of a 409: a request with the same key is still running; retry later.
pub const IDEMPOTENCY_KEY_IN_FLIGHT: &str = "idempotency_key_in_flight";

diesel::table! {
    idempotency_keys (caller, key) {
        caller -> Text,
        key -> Text,
        method -> Text,
        path -> Text,
        request_hash -> Text,
        state -> Text,
        status -> Nullable<Integer>,
        content_type -> Nullable<Text>,
        location -> Nullable<Text>,
        etag -> Nullable<Text>,
        body -> Nullable<Binary>,
        created_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

/// Where idempotency records live and how long; registered as app data.
#[derive(Clone)]
pub struct IdempotencyStore {
    db: Db,
    /// Key of the request fingerprint: bodies may hold card numbers, and an unkeyed hash of
    /// a 16-digit number is easy to reverse.
    hash_key: Vec<u8>,
    ttl: chrono::Duration,
    stale_after: chrono::Duration,
    excluded: Vec<&'static str>,
}

impl std::fmt::Debug for IdempotencyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdempotencyStore")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl IdempotencyStore {
    /// `secret` keys the request fingerprints (the JWT secret serves: it never leaves the
    /// server).
    pub fn new(db: Db, secret: &[u8]) -> Self {
        Self {
            db,
            hash_key: secret.to_vec(),
            ttl: chrono::Duration::hours(24),
            stale_after: chrono::Duration::minutes(5),
            excluded: Vec::new(),
        }
    }

    /// A `running` record older than this was left by a process that died mid-request (no
    /// request runs longer than the request timeout) and is taken over by the next request
    /// with its key. Default 5 minutes.
    pub fn abandoned_after(mut self, after: std::time::Duration) -> Self {
        self.stale_after = chrono::Duration::from_std(after).unwrap_or(self.stale_after);
        self
    }

    /// Requests under these path prefixes pass through untouched (their `Idempotency-Key` is
    /// ignored): their bodies hold personal data, and the store keeps bodies in plaintext.
    pub fn excluding(mut self, prefixes: Vec<&'static str>) -> Self {
        self.excluded = prefixes;
        self
    }

    fn covers(&self, path: &str) -> bool {
        !self.excluded.iter().any(|prefix| path.starts_with(prefix))
    }

    /// Deletes expired records; returns how many.
    ///
    /// # Errors
    /// Database errors.
    pub async fn purge_expired(&self) -> anyhow::Result<usize> {
        self.db
            .run(|conn| {
                diesel::delete(
                    idempotency_keys::table
                        .filter(idempotency_keys::expires_at.lt(crate::time::now())),
                )
                .execute(conn)
                .context("purge idempotency keys")
            })
            .await
    }
}

#[derive(Debug, Clone, Queryable)]
struct Record {
    _caller: String,
    _key: String,
    method: String,
    path: String,
    request_hash: String,
    state: String,
    status: Option<i32>,
    content_type: Option<String>,
    location: Option<String>,
    etag: Option<String>,
    body: Option<Vec<u8>>,
    created_at: NaiveDateTime,
    expires_at: NaiveDateTime,
}

enum Begun {
    New,
    Existing(Box<Record>),
}

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
        &body,
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

/// Tries to record an answer this often, with doubling pauses from [`RECORD_PAUSE_MS`].
const RECORD_ATTEMPTS: u32 = 6;
const RECORD_PAUSE_MS: u64 = 50;

/// Records the answer to a request (or forgets the key after a server error). The client
/// has its answer already: if the record were lost, its retry with the same key would find
/// the key `running` and get 409 instead of the replay. So a busy database (SQLite's lock
/// held by another writer, a PostgreSQL conflict) is retried a few times before giving up.
async fn record(
    store: &web::Data<IdempotencyStore>,
    caller: String,
    key: String,
    stored: Option<Arc<Stored>>,
) {
    let mut pause = std::time::Duration::from_millis(RECORD_PAUSE_MS);
    for attempt in 1..=RECORD_ATTEMPTS {
        let (store2, caller, key, stored) =
            (store.clone(), caller.clone(), key.clone(), stored.clone());
        let outcome = store
            .db
            .run(move |conn| match &stored {
                Some(stored) => store2.finish(conn, &caller, &key, stored),
                None => forget(conn, &caller, &key),
            })
            .await;
        match outcome {
            Ok(()) => return,
            Err(e) if attempt < RECORD_ATTEMPTS => {
                tracing::warn!(attempt, error = ?e, "cannot record the idempotent response yet; retrying");
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
            Err(e) => {
                tracing::error!(attempts = attempt, error = ?e, "cannot record the idempotent response");
            }
        }
    }
}

impl IdempotencyStore {
    fn begin(
        &self,
        conn: &mut DbConnection,
        caller: &str,
        key: &str,
        method: &str,
        path: &str,
        hash: &str,
    ) -> anyhow::Result<Begun> {
        let now = crate::time::now();
        let attempt = write_tx(conn, |conn| {
            let existing = idempotency_keys::table
                .find((caller, key))
                .first::<Record>(conn)
                .optional()?;
            if let Some(record) = existing {
                let expired = record.expires_at < now;
                let abandoned =
                    record.state == "running" && record.created_at < now - self.stale_after;
                if !expired && !abandoned {
                    return Ok(Begun::Existing(Box::new(record)));
                }
                diesel::delete(idempotency_keys::table.find((caller, key))).execute(conn)?;
            }
            diesel::insert_into(idempotency_keys::table)
                .values((
                    idempotency_keys::caller.eq(caller),
                    idempotency_keys::key.eq(key),
                    idempotency_keys::method.eq(method),
                    idempotency_keys::path.eq(path),
                    idempotency_keys::request_hash.eq(hash),
                    idempotency_keys::state.eq("running"),
                    idempotency_keys::created_at.eq(now),
                    idempotency_keys::expires_at.eq(now + self.ttl),
                ))
                .execute(conn)?;
            Ok::<_, TxError>(Begun::New)
        });
        match attempt {
            Ok(begun) => Ok(begun),
            // Another request inserted the same key first (PostgreSQL): it is in flight.
            Err(TxError::Db(e)) if is_unique_violation(&e) => idempotency_keys::table
                .find((caller, key))
                .first::<Record>(conn)
                .map(|r| Begun::Existing(Box::new(r)))
                .context("read idempotency key"),
            Err(TxError::Db(e)) => Err(anyhow::Error::new(e).context("begin idempotent request")),
            Err(TxError::Other(e)) => Err(e),
        }
    }

    fn finish(
        &self,
        conn: &mut DbConnection,
        caller: &str,
        key: &str,
        stored: &Stored,
    ) -> anyhow::Result<()> {
        diesel::update(idempotency_keys::table.find((caller, key)))
            .set((
                idempotency_keys::state.eq("done"),
                idempotency_keys::status.eq(Some(i32::from(stored.status))),
                idempotency_keys::content_type.eq(&stored.content_type),
                idempotency_keys::location.eq(&stored.location),
                idempotency_keys::etag.eq(&stored.etag),
                idempotency_keys::body.eq(Some(&stored.body)),
            ))
            .execute(conn)
            .context("record idempotent response")?;
        Ok(())
    }
}

fn forget(conn: &mut DbConnection, caller: &str, key: &str) -> anyhow::Result<()> {
    diesel::delete(idempotency_keys::table.find((caller, key)))
        .execute(conn)
        .context("forget idempotency key")?;
    Ok(())
}

#[derive(Debug)]
enum TxError {
    Db(DieselError),
    Other(anyhow::Error),
}

impl From<DieselError> for TxError {
    fn from(e: DieselError) -> Self {
        Self::Db(e)
    }
}

impl From<anyhow::Error> for TxError {
    fn from(e: anyhow::Error) -> Self {
        Self::Other(e)
    }
}

fn is_unique_violation(e: &DieselError) -> bool {
    matches!(
        e,
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)
    )
}

/// What is kept of a response.
struct Stored {
    status: u16,
    content_type: Option<String>,
    location: Option<String>,
    etag: Option<String>,
    body: Vec<u8>,
}

impl Stored {
    fn of(head: &HttpResponse<()>, body: Vec<u8>) -> Self {
        let header = |name| {
            head.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        Self {
            status: head.status().as_u16(),
            content_type: header(header::CONTENT_TYPE),
            location: header(header::LOCATION),
            etag: header(header::ETAG),
            body,
        }
    }
}

fn replay(record: &Record) -> HttpResponse {
    let status = record
        .status
        .and_then(|s| u16::try_from(s).ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    let mut response = HttpResponse::build(status);
    response.insert_header(("Idempotent-Replayed", "true"));
    for (name, value) in [
        (header::CONTENT_TYPE, &record.content_type),
        (header::LOCATION, &record.location),
        (header::ETAG, &record.etag),
    ] {
        if let Some(value) = value {
            response.insert_header((name, value.as_str()));
        }
    }
    response.body(record.body.clone().unwrap_or_default())
}

/// HMAC-SHA256 over method, path, query and body.
fn request_hash(key: &[u8], method: &str, path_and_query: &str, body: &[u8]) -> String {
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

async fn read_body(req: &mut ServiceRequest, limit: usize) -> Result<web::Bytes, ApiError> {
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

fn payload_of(bytes: web::Bytes) -> Payload {
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
