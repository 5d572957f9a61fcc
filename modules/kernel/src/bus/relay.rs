//! The relay: claims due deliveries with a lease, hands each to its subscriber inside a
//! transaction with the inbox record, and records the outcome.
//!
//! Claims are leases (`lease_owner`, `lease_until`) taken with a conditional `UPDATE`, so two
//! relays on one database never hold the same delivery, and a delivery claimed by a process
//! that died is taken over when its lease runs out. A delivery is only claimed when no
//! earlier delivery of the same subject to the same subscriber is still pending, which keeps
//! per-subject order.

use std::{panic::AssertUnwindSafe, time::Duration};

use anyhow::{Context, anyhow};
use chrono::NaiveDateTime;
use diesel::{
    prelude::*,
    sql_types::{BigInt, Text, Timestamp},
};
use tokio::{sync::watch, task::JoinHandle};
use uuid::Uuid;

use super::{
    Bus, DeliveryStatus, Envelope, Tx,
    schema::{bus_deliveries, bus_events, bus_inbox},
};
use crate::db::{DbConnection, write_tx};

/// A running relay; [`Relay::stop`] lets it finish its batch and returns.
#[derive(Debug)]
pub struct Relay {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Relay {
    /// Signals the relay to stop after the batch in hand and waits for it.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

impl Bus {
    /// Starts delivering in the background on the current tokio runtime.
    pub fn start_relay(&self) -> Relay {
        let (stop, mut stopped) = watch::channel(false);
        let bus = self.clone();
        let owner = Uuid::now_v7().to_string();
        let task = tokio::spawn(async move {
            let poll = Duration::from_millis(bus.settings().poll_interval_ms.max(1));
            tracing::info!(relay = %owner, subscribers = ?bus.subscriber_names(), "event relay started");
            loop {
                if *stopped.borrow() {
                    break;
                }
                let batch = bus.clone();
                let me = owner.clone();
                match bus.db().run(move |conn| batch.relay_batch(conn, &me)).await {
                    // A full batch means there may be more: go again at once.
                    Ok(n) if n > 0 => continue,
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = ?e, "event relay batch failed"),
                }
                tokio::select! {
                    () = bus.inner.wake.notified() => {}
                    () = tokio::time::sleep(poll) => {}
                    _ = stopped.changed() => {}
                }
            }
            tracing::info!(relay = %owner, "event relay stopped");
        });
        Relay { stop, task }
    }

    /// Claims up to `batch_size` due deliveries for `owner` and delivers them, returning how
    /// many were attempted. Public so tests and tools can drive the relay step by step.
    ///
    /// # Errors
    /// Database errors while claiming; a failing handler is not an error here (it is
    /// recorded on its delivery).
    pub fn relay_batch(&self, conn: &mut DbConnection, owner: &str) -> anyhow::Result<usize> {
        let claimed = self.claim(conn, owner)?;
        for (seq, subscriber) in &claimed {
            self.deliver(conn, owner, *seq, subscriber)?;
        }
        Ok(claimed.len())
    }

    /// Leases due deliveries to `owner`; returns what it won.
    ///
    /// # Errors
    /// Database errors.
    pub fn claim(
        &self,
        conn: &mut DbConnection,
        owner: &str,
    ) -> anyhow::Result<Vec<(i64, String)>> {
        let now = crate::time::now();
        let lease = now
            + chrono::Duration::seconds(i64::try_from(self.settings().lease_secs).unwrap_or(30));
        let candidates: Vec<Candidate> = diesel::sql_query(placeholders(conn, CANDIDATES))
            .bind::<Timestamp, _>(now)
            .bind::<Timestamp, _>(now)
            .bind::<BigInt, _>(i64::from(self.settings().batch_size))
            .load(conn)
            .context("find due deliveries")?;
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        write_tx(conn, |conn| {
            let mut won = Vec::with_capacity(candidates.len());
            for c in candidates {
                let taken = diesel::update(
                    bus_deliveries::table
                        .find((c.seq, &c.subscriber))
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
                .execute(conn)
                .context("lease delivery")?;
                if taken == 1 {
                    won.push((c.seq, c.subscriber));
                }
            }
            Ok::<_, anyhow::Error>(won)
        })
    }

    /// Hands one leased delivery to its subscriber and records the outcome.
    fn deliver(
        &self,
        conn: &mut DbConnection,
        owner: &str,
        seq: i64,
        subscriber_name: &str,
    ) -> anyhow::Result<()> {
        let outcome = self.try_deliver(conn, owner, seq, subscriber_name);
        match outcome {
            Ok(true) => Ok(()),
            Ok(false) => {
                tracing::warn!(
                    seq,
                    subscriber = subscriber_name,
                    "lease lost before the delivery was recorded"
                );
                Ok(())
            }
            Err(error) => self.record_failure(conn, owner, seq, subscriber_name, &error),
        }
    }

    /// `Ok(true)` when handled (or already handled) and recorded; `Ok(false)` when the lease
    /// was lost meanwhile (nothing was committed).
    fn try_deliver(
        &self,
        conn: &mut DbConnection,
        owner: &str,
        seq: i64,
        subscriber_name: &str,
    ) -> anyhow::Result<bool> {
        let subscriber = self.subscriber(subscriber_name).ok_or_else(|| {
            anyhow!("no subscriber named {subscriber_name:?} is registered in this process")
        })?;
        let envelope = load_envelope(conn, seq)?;
        let span = tracing::info_span!(
            "bus.deliver",
            event.id = %envelope.id,
            event.type = %envelope.kind,
            subscriber = subscriber_name,
        );
        let _entered = span.enter();
        let mut published = 0;
        let done = write_tx(conn, |conn| {
            let event_id = envelope.id.to_string();
            let seen: i64 = bus_inbox::table
                .filter(bus_inbox::subscriber.eq(subscriber_name))
                .filter(bus_inbox::event_id.eq(&event_id))
                .count()
                .get_result(conn)
                .context("read inbox")?;
            if seen == 0 {
                diesel::insert_into(bus_inbox::table)
                    .values((
                        bus_inbox::subscriber.eq(subscriber_name),
                        bus_inbox::event_id.eq(&event_id),
                        bus_inbox::handled_at.eq(crate::time::now()),
                    ))
                    .execute(conn)
                    .context("write inbox")?;
                let mut tx = Tx {
                    conn,
                    bus: self,
                    published: 0,
                };
                std::panic::catch_unwind(AssertUnwindSafe(|| {
                    subscriber.handle(&mut tx, &envelope)
                }))
                .map_err(|panic| anyhow!("handler panicked: {}", panic_message(&panic)))??;
                published = tx.published;
            }
            let recorded = diesel::update(
                bus_deliveries::table
                    .find((seq, subscriber_name))
                    .filter(bus_deliveries::lease_owner.eq(owner)),
            )
            .set((
                bus_deliveries::status.eq(DeliveryStatus::Delivered.as_str()),
                bus_deliveries::attempts.eq(bus_deliveries::attempts + 1),
                bus_deliveries::delivered_at.eq(crate::time::now()),
                bus_deliveries::lease_owner.eq(None::<String>),
                bus_deliveries::lease_until.eq(None::<NaiveDateTime>),
                bus_deliveries::last_error.eq(None::<String>),
            ))
            .execute(conn)
            .context("record delivery")?;
            if recorded == 0 {
                // Someone else owns it now; undo the handling so it happens exactly once.
                return Err(LeaseLost.into());
            }
            Ok::<_, anyhow::Error>(())
        });
        match done {
            Ok(()) => {
                if published > 0 {
                    self.wake_relay();
                }
                Ok(true)
            }
            Err(e) if e.is::<LeaseLost>() => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn record_failure(
        &self,
        conn: &mut DbConnection,
        owner: &str,
        seq: i64,
        subscriber: &str,
        error: &anyhow::Error,
    ) -> anyhow::Result<()> {
        let attempts: i32 = bus_deliveries::table
            .find((seq, subscriber))
            .select(bus_deliveries::attempts)
            .first(conn)
            .context("read attempts")?;
        let attempts = attempts + 1;
        let settings = self.settings();
        let give_up = u32::try_from(attempts).unwrap_or(u32::MAX) >= settings.max_attempts;
        let status = if give_up {
            DeliveryStatus::Failed
        } else {
            DeliveryStatus::Pending
        };
        let delay = backoff(settings.backoff_base_ms, settings.backoff_max_ms, attempts);
        let message: String = format!("{error:#}").chars().take(2000).collect();
        if give_up {
            tracing::error!(seq, subscriber, attempts, error = %message, "delivery failed for good; it waits for a replay");
        } else {
            tracing::warn!(seq, subscriber, attempts, retry_in_ms = delay.num_milliseconds(), error = %message, "delivery failed; will retry");
        }
        write_tx(conn, |conn| {
            diesel::update(
                bus_deliveries::table
                    .find((seq, subscriber))
                    .filter(bus_deliveries::lease_owner.eq(owner)),
            )
            .set((
                bus_deliveries::status.eq(status.as_str()),
                bus_deliveries::attempts.eq(attempts),
                bus_deliveries::next_attempt_at.eq(crate::time::now() + delay),
                bus_deliveries::last_error.eq(Some(message)),
                bus_deliveries::lease_owner.eq(None::<String>),
                bus_deliveries::lease_until.eq(None::<NaiveDateTime>),
            ))
            .execute(conn)
            .context("record failed delivery")?;
            Ok::<_, anyhow::Error>(())
        })
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the delivery's lease was lost")]
struct LeaseLost;

/// `base · 2^(attempt-1)`, capped, with jitter in [½, 1] of that so retries spread out.
fn backoff(base_ms: u64, max_ms: u64, attempt: i32) -> chrono::Duration {
    let exp = u32::try_from(attempt.saturating_sub(1))
        .unwrap_or(0)
        .min(30);
    let ceiling = base_ms.saturating_mul(1u64 << exp).min(max_ms).max(1);
    // Jitter from a random UUID: no extra dependency for one random number.
    let random = (Uuid::new_v4().as_u128() % 1_000_000) as u64;
    let ms = ceiling / 2 + ceiling / 2 * random / 1_000_000;
    chrono::Duration::milliseconds(i64::try_from(ms).unwrap_or(i64::MAX))
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".into())
}

/// Due, unleased, pending deliveries with no earlier pending delivery of the same subject to
/// the same subscriber, oldest first.
const CANDIDATES: &str = "\
SELECT d.seq AS seq, d.subscriber AS subscriber FROM bus_deliveries d \
WHERE d.status = 'pending' AND d.next_attempt_at <= ? \
AND (d.lease_until IS NULL OR d.lease_until < ?) \
AND NOT EXISTS (SELECT 1 FROM bus_deliveries p WHERE p.subscriber = d.subscriber \
    AND p.subject = d.subject AND p.status = 'pending' AND p.seq < d.seq) \
ORDER BY d.seq, d.subscriber LIMIT ?";

#[derive(Debug, QueryableByName)]
struct Candidate {
    #[diesel(sql_type = BigInt)]
    seq: i64,
    #[diesel(sql_type = Text)]
    subscriber: String,
}

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
    pub _seq: i64,
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

fn load_envelope(conn: &mut DbConnection, seq: i64) -> anyhow::Result<Envelope> {
    bus_events::table
        .find(seq)
        .first::<EventRow>(conn)
        .with_context(|| format!("load event #{seq}"))?
        .into_envelope()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped_with_jitter() {
        for attempt in 1..=12 {
            let d = backoff(100, 5_000, attempt).num_milliseconds();
            let ceiling = (100_i64 << (attempt - 1)).min(5_000);
            assert!(d >= ceiling / 2 && d <= ceiling, "attempt {attempt}: {d}");
        }
    }
}
