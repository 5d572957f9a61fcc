//! Rows of the outbox and the inbox, and raw SQL for both databases.

use anyhow::Context;
use chrono::NaiveDateTime;
use diesel::{
    prelude::*,
    sql_types::{Text, Timestamp},
};

use super::{Envelope, schema::bus_events};
use crate::db::DbConnection;

/// Records `envelope` as handled by `subscriber`; `false` when it already was. One statement,
/// so concurrent deliveries of the same event cannot both see "first time".
pub(crate) fn record_in_inbox(
    conn: &mut DbConnection,
    subscriber: &str,
    envelope: &Envelope,
) -> anyhow::Result<bool> {
    Ok(diesel::sql_query(placeholders(conn, INBOX_INSERT))
        .bind::<Text, _>(subscriber)
        .bind::<Text, _>(envelope.id.to_string())
        .bind::<Timestamp, _>(crate::time::now())
        .execute(conn)
        .context("write inbox")?
        == 1)
}

const INBOX_INSERT: &str = "INSERT INTO bus_inbox (subscriber, event_id, handled_at) \
    VALUES (?, ?, ?) ON CONFLICT DO NOTHING";

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
