//! Writing the outbox: an event row and one delivery row per subscriber, in the publishing
//! transaction.
//!
//! On PostgreSQL both go in with one statement ([`PG_OUTBOX`]); inside a unit of work every
//! event of the unit waits for the unit's end and goes in with one statement just before it
//! commits ([`crate::db::before_commit`]), or is forgotten when it rolls back. On SQLite each
//! row is an in-process call, so batching would save nothing: they go in at once.

use anyhow::{Context, bail};
use chrono::NaiveDateTime;
use diesel::{
    pg::PgConnection,
    prelude::*,
    sql_types::{Array, Text, Timestamp},
    sqlite::SqliteConnection,
};

use super::{
    DeliveryStatus, Envelope,
    schema::{bus_deliveries, bus_events},
};
use crate::db::{DbConnection, prepared};

/// Writes `row` in the transaction of `conn` (see the module docs).
pub(super) fn write(conn: &mut DbConnection, row: Outgoing) -> anyhow::Result<()> {
    // Only PostgreSQL holds back: on SQLite a unit would gain nothing from it.
    if matches!(conn, DbConnection::Postgresql(_))
        && crate::db::before_commit(conn, &UNIT_OUTBOX_FLUSH)
    {
        hold_for_unit(row);
        return Ok(());
    }
    match conn {
        DbConnection::Postgresql(pg) => write_outbox_pg(pg, vec![row]),
        DbConnection::Sqlite(sqlite) => write_sqlite(sqlite, row),
    }
}

/// The event row, then one delivery row per subscriber.
fn write_sqlite(conn: &mut SqliteConnection, row: Outgoing) -> anyhow::Result<()> {
    let seq: i64 = diesel::insert_into(bus_events::table)
        .values((
            bus_events::id.eq(&row.id),
            bus_events::source.eq(&row.source),
            bus_events::kind.eq(&row.kind),
            bus_events::subject.eq(&row.subject),
            bus_events::time.eq(row.time),
            bus_events::data.eq(&row.data),
        ))
        .returning(bus_events::seq)
        .get_result(conn)
        .context("write event to the outbox")?;
    for subscriber in row.subscribers {
        diesel::insert_into(bus_deliveries::table)
            .values((
                bus_deliveries::seq.eq(seq),
                bus_deliveries::subscriber.eq(subscriber),
                bus_deliveries::subject.eq(&row.subject),
                bus_deliveries::status.eq(DeliveryStatus::Pending.as_str()),
                bus_deliveries::attempts.eq(0),
                bus_deliveries::next_attempt_at.eq(row.time),
            ))
            .execute(conn)
            .context("write delivery to the outbox")?;
    }
    Ok(())
}

/// An event on its way to the outbox, with the subscribers that get a delivery of it.
pub(crate) struct Outgoing {
    pub id: String,
    pub source: String,
    pub kind: String,
    pub subject: String,
    pub time: NaiveDateTime,
    pub data: String,
    pub subscribers: Vec<String>,
}

impl Outgoing {
    pub(crate) fn of(envelope: &Envelope, subscribers: Vec<String>) -> anyhow::Result<Self> {
        Ok(Self {
            id: envelope.id.to_string(),
            source: envelope.source.clone(),
            kind: envelope.kind.clone(),
            subject: envelope.subject.clone(),
            time: envelope.time.naive_utc(),
            data: serde_json::to_string(&envelope.data).context("serialize event data")?,
            subscribers,
        })
    }
}

thread_local! {
    /// The events published so far by the unit of work running on this thread (PostgreSQL),
    /// written by [`flush_unit_outbox`] just before it commits.
    static UNIT_OUTBOX: std::cell::RefCell<Vec<Outgoing>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// How a unit of work writes (or forgets) the events it held back.
static UNIT_OUTBOX_FLUSH: crate::db::BeforeCommit = crate::db::BeforeCommit {
    flush: flush_unit_outbox,
    discard: discard_unit_outbox,
};

/// Keeps `row` for the unit of work running on this thread (see [`UNIT_OUTBOX`]).
fn hold_for_unit(row: Outgoing) {
    UNIT_OUTBOX.with_borrow_mut(|rows| rows.push(row));
}

/// Writes what the unit running on this thread published, in its transaction.
fn flush_unit_outbox(conn: &mut DbConnection) -> anyhow::Result<()> {
    let rows = UNIT_OUTBOX.with_borrow_mut(std::mem::take);
    match conn {
        DbConnection::Postgresql(pg) => write_outbox_pg(pg, rows),
        DbConnection::Sqlite(_) if rows.is_empty() => Ok(()),
        DbConnection::Sqlite(_) => bail!("a unit of work on SQLite held events back"),
    }
}

/// Forgets what the unit running on this thread published (it rolled back).
fn discard_unit_outbox() {
    UNIT_OUTBOX.with_borrow_mut(Vec::clear);
}

/// Events and their deliveries in one statement. The events take their `seq` in the order
/// given (the `SELECT` is ordered, and the sequence is drawn row by row as it is read);
/// the deliveries name their event by id. The foreign keys of the deliveries are checked at
/// the end of the statement, when the events are in.
const PG_OUTBOX: &str = "\
WITH e AS ( \
  INSERT INTO bus_events (id, source, type, subject, time, data) \
  SELECT t.id, t.source, t.type, t.subject, t.time, t.data \
  FROM unnest(?::text[], ?::text[], ?::text[], ?::text[], ?::timestamp[], ?::text[]) \
    WITH ORDINALITY AS t(id, source, type, subject, time, data, n) \
  ORDER BY t.n \
  RETURNING seq, id, subject, time), \
d AS ( \
  INSERT INTO bus_deliveries (seq, subscriber, subject, status, attempts, next_attempt_at) \
  SELECT e.seq, s.subscriber, e.subject, 'pending', 0, e.time \
  FROM unnest(?::text[], ?::text[]) AS s(id, subscriber) JOIN e ON e.id = s.id) \
SELECT 1";

/// Writes `rows` with [`PG_OUTBOX`]: one round trip, however many events and deliveries.
fn write_outbox_pg(pg: &mut PgConnection, rows: Vec<Outgoing>) -> anyhow::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let (mut ids, mut sources, mut kinds, mut subjects, mut times, mut data) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    let (mut delivered, mut subscribers) = (vec![], vec![]);
    for row in rows {
        for subscriber in row.subscribers {
            delivered.push(row.id.clone());
            subscribers.push(subscriber);
        }
        ids.push(row.id);
        sources.push(row.source);
        kinds.push(row.kind);
        subjects.push(row.subject);
        times.push(row.time);
        data.push(row.data);
    }
    prepared(PG_OUTBOX)
        .bind::<Array<Text>, _>(ids)
        .bind::<Array<Text>, _>(sources)
        .bind::<Array<Text>, _>(kinds)
        .bind::<Array<Text>, _>(subjects)
        .bind::<Array<Timestamp>, _>(times)
        .bind::<Array<Text>, _>(data)
        .bind::<Array<Text>, _>(delivered)
        .bind::<Array<Text>, _>(subscribers)
        .execute(pg)
        .context("write events to the outbox")?;
    Ok(())
}
