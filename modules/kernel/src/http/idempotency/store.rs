//! Where idempotency records live: the `idempotency_keys` table, claiming a key for a
//! request (or finding the earlier one), recording the answer, forgetting it, and purging
//! expired records.

use std::sync::Arc;

use actix_web::web;
use anyhow::Context;
use chrono::NaiveDateTime;
use diesel::{prelude::*, result::Error as DieselError};

use super::replay::Stored;
use crate::db::{Db, DbConnection, is_unique_violation, write_tx};

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
    pub(super) db: Db,
    /// Key of the request fingerprint: bodies may hold card numbers, and an unkeyed hash of
    /// a 16-digit number is easy to reverse.
    pub(super) hash_key: Vec<u8>,
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

    pub(super) fn covers(&self, path: &str) -> bool {
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
pub(super) struct Record {
    _caller: String,
    _key: String,
    pub(super) method: String,
    pub(super) path: String,
    pub(super) request_hash: String,
    pub(super) state: String,
    pub(super) status: Option<i32>,
    pub(super) content_type: Option<String>,
    pub(super) location: Option<String>,
    pub(super) etag: Option<String>,
    pub(super) body: Option<Vec<u8>>,
    created_at: NaiveDateTime,
    expires_at: NaiveDateTime,
}

pub(super) enum Begun {
    New,
    Existing(Box<Record>),
}

/// Tries to record an answer this often, with doubling pauses from [`RECORD_PAUSE_MS`].
const RECORD_ATTEMPTS: u32 = 6;
const RECORD_PAUSE_MS: u64 = 50;

/// Records the answer to a request (or forgets the key after a server error). The client
/// has its answer already: if the record were lost, its retry with the same key would find
/// the key `running` and get 409 instead of the replay. So a busy database (SQLite's lock
/// held by another writer, a PostgreSQL conflict) is retried a few times before giving up.
pub(super) async fn record(
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
    pub(super) fn begin(
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
