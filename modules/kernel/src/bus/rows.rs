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
    schema::{bus_deliveries, bus_events, bus_inbox},
};
use crate::db::DbConnection;

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
/// is new. On PostgreSQL one statement for the whole batch.
pub(crate) fn record_many_in_inbox(
    conn: &mut DbConnection,
    pairs: &[(&str, &Envelope)],
) -> anyhow::Result<Vec<bool>> {
    let DbConnection::Postgresql(pg) = conn else {
        return pairs
            .iter()
            .map(|(subscriber, envelope)| record_in_inbox(conn, subscriber, envelope))
            .collect();
    };
    let (subscribers, ids): (Vec<&str>, Vec<String>) = pairs
        .iter()
        .map(|(subscriber, envelope)| (*subscriber, envelope.id.to_string()))
        .unzip();
    let new: Vec<InboxKey> = diesel::sql_query(PG_INBOX_MANY)
        .bind::<Array<Text>, _>(&subscribers)
        .bind::<Array<Text>, _>(&ids)
        .bind::<Timestamp, _>(crate::time::now())
        .load(pg)
        .context("write inbox")?;
    let new: HashSet<(&str, &str)> = new
        .iter()
        .map(|k| (k.subscriber.as_str(), k.event_id.as_str()))
        .collect();
    Ok(subscribers
        .iter()
        .zip(&ids)
        .map(|(subscriber, id)| new.contains(&(*subscriber, id.as_str())))
        .collect())
}

const PG_INBOX_MANY: &str = "INSERT INTO bus_inbox (subscriber, event_id, handled_at) \
    SELECT s, e, $3 FROM unnest($1::text[], $2::text[]) AS t(s, e) \
    ON CONFLICT DO NOTHING RETURNING subscriber, event_id";

#[derive(QueryableByName)]
struct InboxKey {
    #[diesel(sql_type = Text)]
    subscriber: String,
    #[diesel(sql_type = Text)]
    event_id: String,
}

/// Who holds the deliveries being recorded: a relay, by its lease, or the recording
/// transaction itself, by row locks ([`super::locked`], PostgreSQL only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Holder<'a> {
    Lease(&'a str),
    Lock,
}

/// Marks held deliveries handled; returns how many were still held (fewer than given means
/// another relay took some over a lease that ran out). On PostgreSQL one statement.
pub(crate) fn mark_delivered(
    conn: &mut DbConnection,
    holder: Holder<'_>,
    deliveries: &[(i64, &str)],
) -> anyhow::Result<usize> {
    let now = crate::time::now();
    if let DbConnection::Postgresql(pg) = conn {
        let (seqs, subscribers): (Vec<i64>, Vec<&str>) = deliveries.iter().copied().unzip();
        let marked = match holder {
            Holder::Lease(owner) => diesel::sql_query(PG_MARK_DELIVERED)
                .bind::<Timestamp, _>(now)
                .bind::<Array<BigInt>, _>(&seqs)
                .bind::<Array<Text>, _>(&subscribers)
                .bind::<Text, _>(owner)
                .execute(pg),
            // Nobody else can lease a row this transaction holds locked.
            Holder::Lock => diesel::sql_query(PG_MARK_LOCKED_DELIVERED)
                .bind::<Timestamp, _>(now)
                .bind::<Array<BigInt>, _>(&seqs)
                .bind::<Array<Text>, _>(&subscribers)
                .execute(pg),
        };
        return marked.context("record deliveries");
    }
    let Holder::Lease(owner) = holder else {
        bail!("deliveries are held by row locks only on PostgreSQL");
    };
    let mut recorded = 0;
    for (seq, subscriber) in deliveries {
        recorded += diesel::update(
            bus_deliveries::table
                .find((seq, subscriber))
                .filter(bus_deliveries::lease_owner.eq(owner)),
        )
        .set((
            bus_deliveries::status.eq(DeliveryStatus::Delivered.as_str()),
            bus_deliveries::attempts.eq(bus_deliveries::attempts + 1),
            bus_deliveries::delivered_at.eq(now),
            bus_deliveries::lease_owner.eq(None::<String>),
            bus_deliveries::lease_until.eq(None::<NaiveDateTime>),
            bus_deliveries::last_error.eq(None::<String>),
        ))
        .execute(conn)
        .context("record delivery")?;
    }
    Ok(recorded)
}

const PG_MARK_DELIVERED: &str = "UPDATE bus_deliveries d SET status = 'delivered', \
    attempts = d.attempts + 1, delivered_at = $1, lease_owner = NULL, lease_until = NULL, \
    last_error = NULL WHERE d.seq = ANY($2) AND d.lease_owner = $4 \
    AND (d.seq, d.subscriber) IN (SELECT * FROM unnest($2::bigint[], $3::text[]))";

/// The same for rows this transaction holds locked.
const PG_MARK_LOCKED_DELIVERED: &str = "UPDATE bus_deliveries d SET status = 'delivered', \
    attempts = d.attempts + 1, delivered_at = $1, lease_owner = NULL, lease_until = NULL, \
    last_error = NULL WHERE d.seq = ANY($2) AND d.status = 'pending' \
    AND (d.seq, d.subscriber) IN (SELECT * FROM unnest($2::bigint[], $3::text[]))";

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
