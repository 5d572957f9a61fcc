//! The fast path for local subscribers: deliveries held by the transaction, not by leases.
//!
//! One transaction takes the oldest due deliveries of this process's local subscribers (with
//! their events, in the same statement), keeps per-subject order, runs the handlers and marks
//! the deliveries done: one commit per batch and no lease written or cleared. On PostgreSQL
//! the deliveries are row-locked (`FOR UPDATE SKIP LOCKED`): another relay skips the rows, and
//! a relay that dies gives them up with its connection, at once instead of when a lease runs
//! out. On SQLite the write transaction itself holds them: no other writer can run meanwhile,
//! so the choice made inside it stands until the commit.
//!
//! Anything unusual goes the leased way ([`super::claim`], [`super::deliver`]) in the same
//! turn: when a handler fails, the transaction rolls back and the leased path records the
//! failure (its retry, or the dead letter) without running that handler again; deliveries to
//! a broker are always leased, since they are sent outside any transaction, so a process that
//! forwards to one keeps the leased path for everything.

use std::{
    collections::{HashMap, hash_map::Entry},
    sync::Arc,
};

use chrono::NaiveDateTime;
use diesel::{
    connection::SimpleConnection,
    pg::PgConnection,
    prelude::*,
    sql_types::{Array, BigInt, Text, Timestamp},
    sqlite::SqliteConnection,
};

use super::{
    Bus, Subscriber,
    claim::{Claimed, pg_due, sqlite_due},
    deliver::{Applied, Together},
    rows::{EventRow, Holder},
};
use crate::{
    db::{DbConnection, prepared, write_tx},
    metrics::Delivery,
};

/// The oldest due deliveries of the subscribers in `$1`, locked, with their events: the same
/// choice as the leased path's ([`pg_due`]), here with `$2` the limit and `$3` now.
const PG_LOCK_DUE: &str = concat!(
    pg_due!(
        now: "$3",
        limit: "$2",
        columns: "c.seq, c.subscriber",
        filter: "AND c.subscriber = ANY($1)"
    ),
    "SELECT due.seq AS seq, due.subscriber AS subscriber, e.id AS id, e.source AS source, \
    e.type AS kind, e.subject AS subject, e.time AS time, e.data AS data \
    FROM due JOIN bus_events e ON e.seq = due.seq"
);

/// The same choice on SQLite ([`sqlite_due`]), filtered by the subscribers as a JSON array. The
/// outbox is joined after the deliveries (`CROSS JOIN` fixes the order), so the scan runs
/// down the pending index and stops at the limit.
const SQLITE_DUE: &str = sqlite_due!(
    columns: "d.seq AS seq, d.subscriber AS subscriber, e.id AS id, e.source AS source, \
        e.type AS kind, e.subject AS subject, e.time AS time, e.data AS data",
    join: "CROSS JOIN bus_events e ON e.seq = d.seq",
    filter: "AND d.subscriber IN (SELECT value FROM json_each(?))"
);

/// In a fresh snapshot, per (subscriber, subject) of the batch: the first pending delivery
/// that is not in the batch (another relay holds it, or it was skipped). Later deliveries of
/// that key must wait for it.
const PG_EARLIER: &str = "\
SELECT k.subscriber AS subscriber, k.subject AS subject, f.seq AS seq \
FROM (SELECT DISTINCT s AS subscriber, j AS subject FROM unnest($1::text[], $2::text[]) AS t(s, j)) k \
CROSS JOIN LATERAL ( \
  SELECT p.seq FROM bus_deliveries p WHERE p.subscriber = k.subscriber \
  AND p.subject = k.subject AND p.status = 'pending' \
  AND (p.seq, p.subscriber) NOT IN (SELECT * FROM unnest($3::bigint[], $1::text[])) \
  ORDER BY p.seq LIMIT 1) f";

#[derive(QueryableByName)]
struct LockedRow {
    #[diesel(sql_type = BigInt)]
    seq: i64,
    #[diesel(sql_type = Text)]
    subscriber: String,
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = Text)]
    source: String,
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Text)]
    subject: String,
    #[diesel(sql_type = Timestamp)]
    time: NaiveDateTime,
    #[diesel(sql_type = Text)]
    data: String,
}

#[derive(QueryableByName)]
struct Earlier {
    #[diesel(sql_type = Text)]
    subscriber: String,
    #[diesel(sql_type = Text)]
    subject: String,
    #[diesel(sql_type = BigInt)]
    seq: i64,
}

/// What the fast path did in one turn.
pub(super) enum Locked {
    /// Applied this many deliveries, committed.
    Applied(usize, Applied),
    /// Nothing it could take: the leased path has the turn.
    Nothing,
    /// A handler failed: everything was rolled back, and the leased path records this
    /// delivery's failure (`(seq, subscriber)`) without running its handler again.
    Failed((i64, String), anyhow::Error),
}

/// Why the fast path's transaction rolled back.
enum Abort {
    Handler((i64, String), anyhow::Error),
    Other(anyhow::Error),
}

impl From<diesel::result::Error> for Abort {
    fn from(e: diesel::result::Error) -> Self {
        Self::Other(e.into())
    }
}

impl From<anyhow::Error> for Abort {
    fn from(e: anyhow::Error) -> Self {
        Self::Other(e)
    }
}

impl Bus {
    /// The local subscribers the fast path may serve: `None` when this process forwards to a
    /// broker (see the module docs) or has no subscriber.
    fn lock_path_subscribers(&self) -> Option<Vec<Arc<dyn Subscriber>>> {
        let subscribers = self.inner.subscribers.read().ok()?;
        if subscribers.is_empty() || subscribers.iter().any(|s| s.forwarder().is_some()) {
            return None;
        }
        Some(subscribers.clone())
    }

    /// One turn of the fast path (see the module docs). A database error rolls back and
    /// leaves the turn to the leased path, which reports it if it persists.
    pub(super) fn relay_locked(&self, conn: &mut DbConnection) -> Locked {
        let Some(subscribers) = self.lock_path_subscribers() else {
            return Locked::Nothing;
        };
        let names: Vec<&str> = subscribers.iter().map(|s| s.name()).collect();
        let limit = i64::from(self.settings().batch_size);
        let turn = match conn {
            DbConnection::Postgresql(_) => {
                conn.transaction(|conn| self.apply_locked(conn, &subscribers, &names, limit))
            }
            DbConnection::Sqlite(sqlite) => {
                // A look first, outside any transaction: an idle relay must not take the write
                // lock (and this process's writer turn) every poll.
                match due_on_sqlite(sqlite, &names, 1) {
                    Ok(due) if due.is_empty() => return Locked::Nothing,
                    Ok(_) => {}
                    Err(error) => {
                        tracing::debug!(error = %error, "the batch goes the leased way");
                        return Locked::Nothing;
                    }
                }
                write_tx(conn, |conn| {
                    self.apply_locked(conn, &subscribers, &names, limit)
                })
            }
        };
        match turn {
            Ok(Some((n, applied))) => Locked::Applied(n, applied),
            Ok(None) => Locked::Nothing,
            Err(Abort::Handler(key, error)) => Locked::Failed(key, error),
            Err(Abort::Other(error)) => {
                tracing::debug!(error = %format!("{error:#}"), "the batch goes the leased way");
                Locked::Nothing
            }
        }
    }

    fn apply_locked(
        &self,
        conn: &mut DbConnection,
        subscribers: &[Arc<dyn Subscriber>],
        names: &[&str],
        limit: i64,
    ) -> Result<Option<(usize, Applied)>, Abort> {
        let rows = match conn {
            DbConnection::Postgresql(pg) => due_on_postgres(pg, names, limit)?,
            DbConnection::Sqlite(sqlite) => due_on_sqlite(sqlite, names, limit)?,
        };
        if rows.is_empty() {
            return Ok(None);
        }
        let mut claimed = Vec::with_capacity(rows.len());
        let mut handlers = Vec::with_capacity(rows.len());
        let mut envelopes = HashMap::with_capacity(rows.len());
        for row in rows {
            let Some(handler) = subscribers.iter().find(|s| s.name() == row.subscriber) else {
                continue;
            };
            handlers.push(handler.clone());
            claimed.push(Claimed {
                seq: row.seq,
                subscriber: row.subscriber,
                subject: row.subject.clone(),
            });
            if let Entry::Vacant(slot) = envelopes.entry(row.seq) {
                let event = EventRow {
                    seq: row.seq,
                    id: row.id,
                    source: row.source,
                    kind: row.kind,
                    subject: row.subject,
                    time: row.time,
                    data: row.data,
                };
                slot.insert(event.into_envelope().map_err(Abort::Other)?);
            }
        }
        if claimed.is_empty() {
            return Ok(None);
        }
        let published = self
            .apply_together(conn, Holder::Lock, &claimed, &envelopes, &handlers)
            .map_err(|e| match e {
                Together::Failed(n, error) => {
                    let c = &claimed[n];
                    Abort::Handler((c.seq, c.subscriber.clone()), error)
                }
                Together::Other(error) => Abort::Other(error),
            })?;
        let outcomes = claimed
            .iter()
            .map(|c| (c.subscriber.clone(), Delivery::Delivered))
            .collect();
        Ok(Some((
            claimed.len(),
            Applied {
                published,
                outcomes,
            },
        )))
    }
}

/// [`PG_LOCK_DUE`], oldest first, less what must wait for an earlier delivery another relay
/// holds ([`earlier_elsewhere`]). In the caller's transaction.
fn due_on_postgres(
    pg: &mut PgConnection,
    names: &[&str],
    limit: i64,
) -> Result<Vec<LockedRow>, Abort> {
    pg.batch_execute("SET LOCAL enable_sort = off")?;
    let mut rows: Vec<LockedRow> = diesel::sql_query(PG_LOCK_DUE)
        .bind::<Array<Text>, _>(names)
        .bind::<BigInt, _>(limit)
        .bind::<Timestamp, _>(crate::time::now())
        .load(pg)?;
    if rows.is_empty() {
        return Ok(rows);
    }
    rows.sort_unstable_by(|a, b| (a.seq, &a.subscriber).cmp(&(b.seq, &b.subscriber)));
    let earlier = earlier_elsewhere(pg, &rows)?;
    // Usually empty: no key to look up for each row then.
    if !earlier.is_empty() {
        rows.retain(|r| {
            earlier
                .get(&(r.subscriber.clone(), r.subject.clone()))
                .is_none_or(|first| r.seq < *first)
        });
    }
    Ok(rows)
}

/// [`SQLITE_DUE`], oldest first. Under the write lock nobody else holds a delivery except by
/// a lease, which the choice already respects.
fn due_on_sqlite(
    sqlite: &mut SqliteConnection,
    names: &[&str],
    limit: i64,
) -> anyhow::Result<Vec<LockedRow>> {
    let names = serde_json::to_string(names)?;
    let now = crate::time::now();
    Ok(prepared(SQLITE_DUE)
        .bind::<Timestamp, _>(now)
        .bind::<Timestamp, _>(now)
        .bind::<Text, _>(names)
        .bind::<Timestamp, _>(now)
        .bind::<Timestamp, _>(now)
        .bind::<BigInt, _>(limit)
        .load(sqlite)?)
}

/// Per (subscriber, subject) of `rows`, the first pending delivery not among them
/// ([`PG_EARLIER`]).
fn earlier_elsewhere(
    pg: &mut PgConnection,
    rows: &[LockedRow],
) -> Result<HashMap<(String, String), i64>, Abort> {
    let subscribers: Vec<&str> = rows.iter().map(|r| r.subscriber.as_str()).collect();
    let subjects: Vec<&str> = rows.iter().map(|r| r.subject.as_str()).collect();
    let seqs: Vec<i64> = rows.iter().map(|r| r.seq).collect();
    let earlier: Vec<Earlier> = diesel::sql_query(PG_EARLIER)
        .bind::<Array<Text>, _>(&subscribers)
        .bind::<Array<Text>, _>(&subjects)
        .bind::<Array<BigInt>, _>(&seqs)
        .load(pg)?;
    Ok(earlier
        .into_iter()
        .map(|e| ((e.subscriber, e.subject), e.seq))
        .collect())
}
