//! Leasing due deliveries: the relay's claim on work, safe with several relays on one
//! database.
//!
//! PostgreSQL takes a batch in one statement (`FOR UPDATE SKIP LOCKED`: relays skip each
//! other's rows instead of queueing behind them), then gives back in one more statement any
//! delivery that would overtake an earlier one of its subscriber and subject held by another
//! relay or waiting for a retry. SQLite has one writer at a time, so there a plain select
//! and a conditional `UPDATE` inside its write transaction do the same.

use std::collections::{BTreeMap, HashSet};

use anyhow::Context;
use chrono::NaiveDateTime;
use diesel::{
    connection::SimpleConnection,
    pg::PgConnection,
    prelude::*,
    sql_types::{Array, BigInt, Text, Timestamp},
};

use super::{Bus, DeliveryStatus, schema::bus_deliveries};
use crate::db::{DbConnection, prepared, write_tx};

impl Bus {
    /// Leases due deliveries to `owner`; returns what it won, oldest first. `owner` names one
    /// relay: two relays must never share a name (a started relay uses a fresh UUID), since
    /// leases held under the same name count as one relay's.
    ///
    /// Several events of one subject may be in a batch, in order. A delivery is only kept if
    /// no earlier pending delivery of its (subscriber, subject) is held by someone else or
    /// waiting for a retry, so a delivery never overtakes an earlier one.
    ///
    /// # Errors
    /// Database errors.
    pub fn claim(&self, conn: &mut DbConnection, owner: &str) -> anyhow::Result<Vec<Claimed>> {
        let now = crate::time::now();
        let lease = now
            + chrono::Duration::seconds(i64::try_from(self.settings().lease_secs).unwrap_or(30));
        let limit = i64::from(self.settings().batch_size);
        match conn {
            DbConnection::Postgresql(pg) => claim_pg(pg, owner, now, lease, limit),
            DbConnection::Sqlite(_) => claim_serialized(conn, owner, now, lease, limit),
        }
    }
}

/// The oldest due deliveries on SQLite, as both its batches choose them (this module's
/// lease, [`super::locked`]'s path under the write lock): due, unleased and pending, oldest
/// first, leaving out any whose subject has an earlier pending delivery to the same
/// subscriber that cannot go now (waiting for a retry, or leased by another relay):
/// per-subject order. `$columns`, a `$join` and a `$filter` complete it; the parameters
/// are now, now, those of `$filter`, now, now and the limit. The indexes are named: without statistics SQLite would probe each
/// candidate's history through the status index. The held-back check reads only deliveries
/// that are leased or have failed (`bus_deliveries_held_idx`, partial; a future
/// `next_attempt_at` always comes with `last_error`), not every pending one of the key, so
/// it costs the same at 20,000 pending as at 20.
macro_rules! sqlite_due {
    (columns: $columns:literal, join: $join:literal, filter: $filter:literal) => {
        concat!(
            "SELECT ",
            $columns,
            " FROM bus_deliveries d INDEXED BY bus_deliveries_pending_idx ",
            $join,
            " WHERE d.status = 'pending' AND d.next_attempt_at <= ? \
            AND (d.lease_until IS NULL OR d.lease_until < ?) ",
            $filter,
            " AND NOT EXISTS (SELECT 1 FROM bus_deliveries p INDEXED BY bus_deliveries_held_idx \
              WHERE p.subscriber = d.subscriber AND p.subject = d.subject \
              AND p.status = 'pending' AND (p.lease_until IS NOT NULL OR p.last_error IS NOT NULL) \
              AND p.seq < d.seq \
              AND (p.next_attempt_at > ? OR (p.lease_until IS NOT NULL AND p.lease_until >= ?))) \
            ORDER BY d.seq, d.subscriber LIMIT ?"
        )
    };
}
pub(super) use sqlite_due;

/// The choice above, for the lease.
const CANDIDATES: &str = sqlite_due!(
    columns: "d.seq AS seq, d.subscriber AS subscriber, d.subject AS subject",
    join: "",
    filter: ""
);

/// The oldest due deliveries, locked, as both PostgreSQL batches choose them (this module's
/// lease, [`super::locked`]'s row-lock path), with `$columns` and an extra `$filter`, `$now`
/// and `$limit` naming the parameters. The keys held up are found first, through small
/// partial indexes (live leases; failed deliveries waiting for their retry, which always
/// carry `last_error`), instead of probing each candidate's history. Rows another relay is
/// locking right now are skipped, not waited for; PostgreSQL re-checks a locked row's own
/// conditions, so a row leased and committed meanwhile is left out. Run it with sorting
/// disabled ([`claim_pg`]), so the oldest due rows are read in index order and the scan stops
/// at the limit, whatever the statistics say about `status`.
macro_rules! pg_due {
    (now: $now:literal, limit: $limit:literal, columns: $columns:literal, filter: $filter:literal) => {
        concat!(
            "WITH held AS MATERIALIZED ( \
              SELECT h.subscriber, h.subject, MIN(h.seq) AS seq FROM bus_deliveries h \
              WHERE h.status = 'pending' AND ((h.lease_until IS NOT NULL AND h.lease_until >= ",
            $now,
            ") OR (h.last_error IS NOT NULL AND h.next_attempt_at > ",
            $now,
            ")) GROUP BY h.subscriber, h.subject), \
            due AS MATERIALIZED ( SELECT ",
            $columns,
            " FROM bus_deliveries c WHERE c.status = 'pending' AND c.next_attempt_at <= ",
            $now,
            " AND (c.lease_until IS NULL OR c.lease_until < ",
            $now,
            ") ",
            $filter,
            " AND NOT EXISTS (SELECT 1 FROM held p WHERE p.subscriber = c.subscriber \
              AND p.subject = c.subject AND p.seq < c.seq) \
            ORDER BY c.seq, c.subscriber LIMIT ",
            $limit,
            " FOR UPDATE OF c SKIP LOCKED) "
        )
    };
}
pub(super) use pg_due;

/// The choice above, leased in the same statement. The rows are updated by their physical
/// address (`ctid`, stable while this statement holds their lock): joined on the key, the
/// planner would rather hash the whole table.
const PG_CLAIM: &str = concat!(
    pg_due!(now: "$3", limit: "$4", columns: "c.ctid AS row", filter: ""),
    "UPDATE bus_deliveries d SET lease_owner = $1, lease_until = $2 \
    WHERE d.ctid = ANY(ARRAY(SELECT row FROM due)) \
    RETURNING d.seq AS seq, d.subscriber AS subscriber, d.subject AS subject"
);

/// After the claim, in a fresh snapshot: gives back every delivery just won that has an
/// earlier pending delivery of its subscriber and subject not leased to us (another relay
/// skipped-and-claimed it, or it waits for a retry); the first such one per key is one
/// ordered index probe. Conservative on purpose: whatever the timing of the other relay's
/// commit, a delivery is only kept when every earlier pending one of its key is ours.
const PG_GIVE_BACK: &str = "\
UPDATE bus_deliveries d SET lease_owner = NULL, lease_until = NULL FROM ( \
  SELECT k.subscriber, k.subject, f.seq FROM ( \
    SELECT DISTINCT w.subscriber, w.subject FROM bus_deliveries w \
    WHERE w.seq = ANY($2) AND w.lease_owner = $1) k \
  CROSS JOIN LATERAL ( \
    SELECT p.seq FROM bus_deliveries p WHERE p.subscriber = k.subscriber \
    AND p.subject = k.subject AND p.status = 'pending' AND p.lease_owner IS DISTINCT FROM $1 \
    ORDER BY p.seq LIMIT 1) f) other \
WHERE d.seq = ANY($2) AND d.lease_owner = $1 AND d.subscriber = other.subscriber \
AND d.subject = other.subject AND d.seq > other.seq \
RETURNING d.seq AS seq, d.subscriber AS subscriber, d.subject AS subject";

fn claim_pg(
    conn: &mut PgConnection,
    owner: &str,
    now: NaiveDateTime,
    lease: NaiveDateTime,
    limit: i64,
) -> anyhow::Result<Vec<Claimed>> {
    conn.transaction(|conn| {
        // Without statistics on `status` (a new table, or one analysed while nothing was
        // pending) the planner expects a handful of pending rows and sorts the whole backlog
        // for each batch: 30 ms per batch at 20,000 pending. Forbidding the sort leaves it the
        // index, which is already in order (0.8 ms). For this transaction only.
        conn.batch_execute("SET LOCAL enable_sort = off")
            .context("lease due deliveries")?;
        give_back_overtaking(conn, owner, now, lease, limit)
    })
}

/// [`PG_CLAIM`], then [`PG_GIVE_BACK`].
fn give_back_overtaking(
    conn: &mut PgConnection,
    owner: &str,
    now: NaiveDateTime,
    lease: NaiveDateTime,
    limit: i64,
) -> anyhow::Result<Vec<Claimed>> {
    let mut won: Vec<Claimed> = diesel::sql_query(PG_CLAIM)
        .bind::<Text, _>(owner)
        .bind::<Timestamp, _>(lease)
        .bind::<Timestamp, _>(now)
        .bind::<BigInt, _>(limit)
        .load(conn)
        .context("lease due deliveries")?;
    if won.is_empty() {
        return Ok(won);
    }
    won.sort_unstable_by(|a, b| (a.seq, &a.subscriber).cmp(&(b.seq, &b.subscriber)));
    // Every lease this relay holds now is one it just won: `owner` names one relay, and
    // its earlier batches are recorded before it claims again.
    let seqs: Vec<i64> = won.iter().map(|c| c.seq).collect();
    let given_back: Vec<Claimed> = diesel::sql_query(PG_GIVE_BACK)
        .bind::<Text, _>(owner)
        .bind::<Array<BigInt>, _>(&seqs)
        .load(conn)
        .context("give back deliveries that would overtake")?;
    if !given_back.is_empty() {
        let back: HashSet<(i64, &str)> = given_back
            .iter()
            .map(|c| (c.seq, c.subscriber.as_str()))
            .collect();
        let kept: Vec<Claimed> = won
            .iter()
            .filter(|c| !back.contains(&(c.seq, c.subscriber.as_str())))
            .cloned()
            .collect();
        return Ok(kept);
    }
    Ok(won)
}

/// The select-then-lease claim, for SQLite (one writer at a time).
fn claim_serialized(
    conn: &mut DbConnection,
    owner: &str,
    now: NaiveDateTime,
    lease: NaiveDateTime,
    limit: i64,
) -> anyhow::Result<Vec<Claimed>> {
    let due = |conn: &mut DbConnection| -> anyhow::Result<Vec<Claimed>> {
        let DbConnection::Sqlite(conn) = conn else {
            anyhow::bail!("the serialized claim is SQLite's");
        };
        prepared(CANDIDATES)
            .bind::<Timestamp, _>(now)
            .bind::<Timestamp, _>(now)
            .bind::<Timestamp, _>(now)
            .bind::<Timestamp, _>(now)
            .bind::<BigInt, _>(limit)
            .load(conn)
            .context("find due deliveries")
    };
    // A look first, outside any transaction: an idle relay must not take the write lock
    // (and this process's writer turn) every poll, which would make writers wait for it.
    if due(conn)?.is_empty() {
        return Ok(Vec::new());
    }
    write_tx(conn, |conn| {
        // Inside the write transaction: no other writer can lease between the select and
        // the update, but the update stays conditional all the same.
        let candidates = due(conn)?;
        if candidates.is_empty() {
            return Ok(candidates);
        }
        let mut by_subscriber: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
        for c in &candidates {
            by_subscriber.entry(&c.subscriber).or_default().push(c.seq);
        }
        let mut won: HashSet<(i64, &str)> = HashSet::new();
        for (subscriber, seqs) in &by_subscriber {
            let taken: Vec<i64> = diesel::update(
                bus_deliveries::table
                    .filter(bus_deliveries::subscriber.eq(*subscriber))
                    .filter(bus_deliveries::seq.eq_any(seqs))
                    .filter(bus_deliveries::status.eq(DeliveryStatus::Pending.as_str()))
                    .filter(
                        bus_deliveries::lease_until
                            .is_null()
                            .or(bus_deliveries::lease_until.lt(now)),
                    ),
            )
            .set((
                bus_deliveries::lease_owner.eq(owner),
                bus_deliveries::lease_until.eq(lease),
            ))
            .returning(bus_deliveries::seq)
            .get_results(conn)
            .context("lease deliveries")?;
            won.extend(taken.into_iter().map(|seq| (seq, *subscriber)));
        }
        let mut blocked: HashSet<(&str, &str)> = HashSet::new();
        let mut kept = Vec::with_capacity(won.len());
        for c in &candidates {
            let key = (c.subscriber.as_str(), c.subject.as_str());
            let is_won = won.contains(&(c.seq, c.subscriber.as_str()));
            if !is_won || blocked.contains(&key) {
                blocked.insert(key);
                if is_won {
                    release_lease(conn, owner, c.seq, &c.subscriber)?;
                }
                continue;
            }
            kept.push(c.clone());
        }
        Ok::<_, anyhow::Error>(kept)
    })
}

/// A delivery leased to this relay.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct Claimed {
    #[diesel(sql_type = BigInt)]
    pub seq: i64,
    #[diesel(sql_type = Text)]
    pub subscriber: String,
    #[diesel(sql_type = Text)]
    pub subject: String,
}

/// Gives a leased delivery back untouched (no attempt counted).
pub(crate) fn release_lease(
    conn: &mut DbConnection,
    owner: &str,
    seq: i64,
    subscriber: &str,
) -> anyhow::Result<()> {
    diesel::update(
        bus_deliveries::table
            .find((seq, subscriber))
            .filter(bus_deliveries::lease_owner.eq(owner)),
    )
    .set((
        bus_deliveries::lease_owner.eq(None::<String>),
        bus_deliveries::lease_until.eq(None::<NaiveDateTime>),
    ))
    .execute(conn)
    .context("release lease")?;
    Ok(())
}
