//! Leasing due deliveries: the relay's claim on work, safe with several relays on one
//! database.

use std::collections::{BTreeMap, HashSet};

use anyhow::Context;
use chrono::NaiveDateTime;
use diesel::{
    prelude::*,
    sql_types::{BigInt, Text, Timestamp},
};

use super::{Bus, DeliveryStatus, rows::placeholders, schema::bus_deliveries};
use crate::db::{DbConnection, write_tx};

impl Bus {
    /// Leases due deliveries to `owner`; returns what it won, oldest first.
    ///
    /// Several events of one subject may be in a batch, in order. A delivery is only kept if
    /// every earlier candidate of its (subscriber, subject) was won too, so a delivery never
    /// overtakes an earlier one that another relay holds.
    ///
    /// # Errors
    /// Database errors.
    pub fn claim(&self, conn: &mut DbConnection, owner: &str) -> anyhow::Result<Vec<Claimed>> {
        let now = crate::time::now();
        let lease = now
            + chrono::Duration::seconds(i64::try_from(self.settings().lease_secs).unwrap_or(30));
        let candidates: Vec<Candidate> = diesel::sql_query(placeholders(conn, CANDIDATES))
            .bind::<Timestamp, _>(now)
            .bind::<Timestamp, _>(now)
            .bind::<Timestamp, _>(now)
            .bind::<Timestamp, _>(now)
            .bind::<BigInt, _>(i64::from(self.settings().batch_size))
            .load(conn)
            .context("find due deliveries")?;
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let mut by_subscriber: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
        for c in &candidates {
            by_subscriber.entry(&c.subscriber).or_default().push(c.seq);
        }
        write_tx(conn, |conn| {
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
                kept.push(Claimed {
                    seq: c.seq,
                    subscriber: c.subscriber.clone(),
                    subject: c.subject.clone(),
                });
            }
            Ok::<_, anyhow::Error>(kept)
        })
    }
}

/// Due, unleased, pending deliveries, oldest first, leaving out any whose subject has an
/// earlier pending delivery to the same subscriber that cannot go now (waiting for a retry,
/// or leased by another relay): per-subject order.
const CANDIDATES: &str = "\
SELECT d.seq AS seq, d.subscriber AS subscriber, d.subject AS subject FROM bus_deliveries d \
WHERE d.status = 'pending' AND d.next_attempt_at <= ? \
AND (d.lease_until IS NULL OR d.lease_until < ?) \
AND NOT EXISTS (SELECT 1 FROM bus_deliveries p WHERE p.subscriber = d.subscriber \
    AND p.subject = d.subject AND p.status = 'pending' AND p.seq < d.seq \
    AND (p.next_attempt_at > ? OR (p.lease_until IS NOT NULL AND p.lease_until >= ?))) \
ORDER BY d.seq, d.subscriber LIMIT ?";

#[derive(Debug, QueryableByName)]
struct Candidate {
    #[diesel(sql_type = BigInt)]
    seq: i64,
    #[diesel(sql_type = Text)]
    subscriber: String,
    #[diesel(sql_type = Text)]
    subject: String,
}

/// A delivery leased to this relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    pub seq: i64,
    pub subscriber: String,
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
