//! Rows of the outbox and the inbox, and raw SQL for both databases.

use std::collections::HashSet;

use anyhow::{Context, bail};
use chrono::NaiveDateTime;

use diesel::{
    prelude::*,
    sql_types::{Array, BigInt, Text, Timestamp},
};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    Envelope,
    schema::{bus_events, bus_inbox},
};
use crate::db::{DbConnection, prepared};

/// Records `envelope` as handled by `subscriber`; `false` when it already was. One statement,
/// so concurrent deliveries of the same event cannot both see "first time".
pub(crate) fn record_in_inbox(
    conn: &mut DbConnection,
    subscriber: &str,
    envelope: &Envelope,
) -> anyhow::Result<bool> {
    let row = (
        bus_inbox::subscriber.eq(subscriber),
        bus_inbox::event_id.eq(envelope.id.to_string()),
        bus_inbox::handled_at.eq(crate::time::now()),
    );
    // The query builder, not raw SQL, so each connection prepares the statement once.
    let inserted = match conn {
        DbConnection::Postgresql(c) => diesel::insert_into(bus_inbox::table)
            .values(row)
            .on_conflict_do_nothing()
            .execute(c),
        DbConnection::Sqlite(c) => diesel::insert_into(bus_inbox::table)
            .values(row)
            .on_conflict_do_nothing()
            .execute(c),
    };
    Ok(inserted.context("write inbox")? == 1)
}

/// Records a batch of (subscriber, event) pairs as handled; returns, per pair, whether it
/// is new. One statement for the whole batch.
pub(crate) fn record_many_in_inbox(
    conn: &mut DbConnection,
    pairs: &[(&str, &Envelope)],
) -> anyhow::Result<Vec<bool>> {
    let ids: Vec<String> = pairs
        .iter()
        .map(|(_, envelope)| envelope.id.to_string())
        .collect();
    let now = crate::time::now();
    let new: Vec<InboxKey> = match conn {
        DbConnection::Postgresql(pg) => {
            let subscribers: Vec<&str> = pairs.iter().map(|(s, _)| *s).collect();
            prepared(PG_INBOX_MANY)
                .replanned()
                .bind::<Timestamp, _>(now)
                .bind::<Array<Text>, _>(subscribers)
                .bind::<Array<Text>, _>(&ids)
                .load(pg)
        }
        DbConnection::Sqlite(sqlite) => {
            let keys: Vec<(&str, &str)> = pairs
                .iter()
                .zip(&ids)
                .map(|((s, _), id)| (*s, id.as_str()))
                .collect();
            prepared(SQLITE_INBOX_MANY)
                .bind::<Timestamp, _>(now)
                .bind::<Text, _>(serde_json::to_string(&keys)?)
                .load(sqlite)
        }
    }
    .context("write inbox")?;
    let new: HashSet<(&str, &str)> = new
        .iter()
        .map(|k| (k.subscriber.as_str(), k.event_id.as_str()))
        .collect();
    Ok(pairs
        .iter()
        .zip(&ids)
        .map(|((subscriber, _), id)| new.contains(&(*subscriber, id.as_str())))
        .collect())
}

const PG_INBOX_MANY: &str = "INSERT INTO bus_inbox (subscriber, event_id, handled_at) \
    SELECT s, e, ? FROM unnest(?::text[], ?::text[]) AS t(s, e) \
    ON CONFLICT DO NOTHING RETURNING subscriber, event_id";

/// The same with a JSON array of `[subscriber, event id]` (`WHERE true` tells SQLite's parser
/// that `ON CONFLICT` belongs to the insert).
const SQLITE_INBOX_MANY: &str = "INSERT INTO bus_inbox (subscriber, event_id, handled_at) \
    SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), ? FROM json_each(?) \
    WHERE true ON CONFLICT DO NOTHING RETURNING subscriber, event_id";

#[derive(QueryableByName)]
struct InboxKey {
    #[diesel(sql_type = Text)]
    subscriber: String,
    #[diesel(sql_type = Text)]
    event_id: String,
}

/// Who holds the deliveries being recorded: a relay, by its lease, or the recording
/// transaction itself ([`super::locked`]: by row locks on PostgreSQL, by the write lock on
/// SQLite).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Holder<'a> {
    Lease(&'a str),
    Lock,
}

/// Marks held deliveries handled; returns how many were still held (fewer than given means
/// another relay took some over a lease that ran out). One statement.
pub(crate) fn mark_delivered(
    conn: &mut DbConnection,
    holder: Holder<'_>,
    deliveries: &[(i64, &str)],
) -> anyhow::Result<usize> {
    let now = crate::time::now();
    let marked = match conn {
        DbConnection::Postgresql(pg) => {
            let (seqs, subscribers): (Vec<i64>, Vec<&str>) = deliveries.iter().copied().unzip();
            match holder {
                Holder::Lease(owner) => prepared(PG_MARK_DELIVERED)
                    .replanned()
                    .bind::<Timestamp, _>(now)
                    .bind::<Array<BigInt>, _>(&seqs)
                    .bind::<Text, _>(owner)
                    .bind::<Array<BigInt>, _>(&seqs)
                    .bind::<Array<Text>, _>(&subscribers)
                    .execute(pg),
                // Nobody else can lease a row this transaction holds locked.
                Holder::Lock => prepared(PG_MARK_LOCKED_DELIVERED)
                    .replanned()
                    .bind::<Timestamp, _>(now)
                    .bind::<Array<BigInt>, _>(&seqs)
                    .bind::<Array<BigInt>, _>(&seqs)
                    .bind::<Array<Text>, _>(&subscribers)
                    .execute(pg),
            }
        }
        DbConnection::Sqlite(sqlite) => {
            let keys = serde_json::to_string(deliveries)?;
            match holder {
                Holder::Lease(owner) => prepared(SQLITE_MARK_DELIVERED)
                    .bind::<Timestamp, _>(now)
                    .bind::<Text, _>(keys)
                    .bind::<Text, _>(owner)
                    .execute(sqlite),
                Holder::Lock => prepared(SQLITE_MARK_LOCKED_DELIVERED)
                    .bind::<Timestamp, _>(now)
                    .bind::<Text, _>(keys)
                    .execute(sqlite),
            }
        }
    };
    marked.context("record deliveries")
}

/// What marking a delivery done sets, on either database; the parameter is now.
macro_rules! delivered {
    () => {
        "UPDATE bus_deliveries SET status = 'delivered', attempts = attempts + 1, \
        delivered_at = ?, lease_owner = NULL, lease_until = NULL, last_error = NULL "
    };
}

/// Parameters: now, the seqs, the lease owner, the seqs again and their subscribers.
const PG_MARK_DELIVERED: &str = concat!(
    delivered!(),
    "WHERE seq = ANY(?) AND lease_owner = ? \
    AND (seq, subscriber) IN (SELECT * FROM unnest(?::bigint[], ?::text[]))"
);

/// The same for rows this transaction holds locked, without the owner.
const PG_MARK_LOCKED_DELIVERED: &str = concat!(
    delivered!(),
    "WHERE seq = ANY(?) AND status = 'pending' \
    AND (seq, subscriber) IN (SELECT * FROM unnest(?::bigint[], ?::text[]))"
);

/// SQLite's: now, a JSON array of `[seq, subscriber]`, then what `$holder` adds.
macro_rules! sqlite_mark {
    ($holder:literal) => {
        concat!(
            delivered!(),
            "WHERE status = 'pending' AND (seq, subscriber) IN \
            (SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?))",
            $holder
        )
    };
}

const SQLITE_MARK_DELIVERED: &str = sqlite_mark!(" AND lease_owner = ?");

/// The same under the write lock.
const SQLITE_MARK_LOCKED_DELIVERED: &str = sqlite_mark!("");

/// Raw SQL is written with `?` placeholders; PostgreSQL wants `$1, $2, …`.
pub(crate) fn placeholders(conn: &DbConnection, sql: &str) -> String {
    match conn {
        DbConnection::Sqlite(_) => sql.to_owned(),
        DbConnection::Postgresql(_) => {
            let mut out = String::with_capacity(sql.len() + 8);
            let mut n = 0;
            for c in sql.chars() {
                if c == '?' {
                    n += 1;
                    out.push('$');
                    out.push_str(&n.to_string());
                } else {
                    out.push(c);
                }
            }
            out
        }
    }
}

#[derive(Debug, Queryable)]
pub(crate) struct EventRow {
    pub seq: i64,
    pub id: String,
    pub source: String,
    pub kind: String,
    pub subject: String,
    pub time: NaiveDateTime,
    pub data: String,
}

impl EventRow {
    pub(crate) fn into_envelope(self) -> anyhow::Result<Envelope> {
        Ok(Envelope {
            specversion: "1.0".into(),
            id: self.id.parse().context("corrupt event id")?,
            source: self.source,
            kind: self.kind,
            time: self.time.and_utc(),
            subject: self.subject,
            datacontenttype: "application/json".into(),
            data: serde_json::from_str(&self.data).context("corrupt event data")?,
        })
    }
}

pub(crate) fn load_envelopes(
    conn: &mut DbConnection,
    seqs: &[i64],
) -> anyhow::Result<std::collections::HashMap<i64, Envelope>> {
    bus_events::table
        .filter(bus_events::seq.eq_any(seqs))
        .load::<EventRow>(conn)
        .context("load events")?
        .into_iter()
        .map(|row| Ok((row.seq, row.into_envelope()?)))
        .collect()
}

/// Where a delivery (one event to one subscriber) stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    /// Waiting for (another) attempt.
    Pending,
    /// Handled.
    Delivered,
    /// Gave up after the configured attempts; waits for an operator's replay.
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    /// # Errors
    /// An unknown name.
    pub fn parse(s: &str) -> anyhow::Result<Self> {
        match s {
            "pending" => Ok(Self::Pending),
            "delivered" => Ok(Self::Delivered),
            "failed" => Ok(Self::Failed),
            other => bail!("unknown delivery status {other:?}"),
        }
    }
}
