//! The relay: claims due deliveries with a lease, hands a batch to its subscribers inside
//! one transaction with the inbox records ([`super::deliver`]), and records the outcome.
//!
//! Claims are leases (`lease_owner`, `lease_until`) taken with a conditional `UPDATE`
//! ([`super::claim`]), so two relays on one database never hold the same delivery, and a
//! delivery claimed by a process that died is taken over when its lease runs out. A delivery
//! is only kept when no earlier delivery of the same subject to the same subscriber is still
//! pending elsewhere, which keeps per-subject order. The relay wakes on this process's commits
//! and, on PostgreSQL, on other processes' ([`super::wake`]); the poll is the fallback.
//!
//! A process that forwards to no broker first tries each batch in one transaction that holds
//! it ([`super::locked`]: row locks on PostgreSQL, the write lock on SQLite): the same choice
//! of deliveries, applied and recorded there, with no lease written; the leased path takes
//! what it leaves.

use std::time::Duration;

use anyhow::Context;
use chrono::NaiveDateTime;
use diesel::prelude::*;
use tokio::{sync::watch, task::JoinHandle};
use uuid::Uuid;

pub use super::claim::Claimed;
pub(crate) use super::rows::{EventRow, placeholders, record_in_inbox};
use super::{
    Bus, DeliveryStatus, Envelope, claim::release_lease, deliver::Applied, locked::Locked,
    rows::load_envelopes, schema::bus_deliveries,
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
        // Alive from now, so readiness does not flap before the task's first turn.
        self.relay_beat(true);
        self.listen_for_other_processes();
        let task = tokio::spawn(async move {
            let poll = Duration::from_millis(bus.settings().poll_interval_ms.max(1));
            tracing::info!(relay = %owner, subscribers = ?bus.subscriber_names(), "event relay started");
            loop {
                bus.relay_beat(true);
                if *stopped.borrow() {
                    break;
                }
                match bus.relay_once(&owner).await {
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
            bus.relay_beat(false);
            tracing::info!(relay = %owner, "event relay stopped");
        });
        Relay { stop, task }
    }

    /// One turn of the relay: claims due deliveries, applies the local ones in a transaction
    /// and forwards the rest to the broker outside any transaction ([`super::forward`]).
    /// Returns how many deliveries it claimed.
    ///
    /// # Errors
    /// Database errors while claiming or recording; failing handlers and an unavailable
    /// broker are not errors here (they are recorded on their deliveries).
    pub async fn relay_once(&self, owner: &str) -> anyhow::Result<usize> {
        let (bus, me) = (self.clone(), owner.to_owned());
        let batch = self
            .db()
            .run(move |conn| bus.relay_local(conn, &me))
            .await?;
        let claimed = batch.local + batch.forwards.len();
        if !batch.forwards.is_empty() {
            self.forward(owner, batch.forwards).await?;
        }
        Ok(claimed)
    }

    /// Claims up to `batch_size` due deliveries for `owner` (one relay's own name, see
    /// [`Bus::claim`]) and applies those of local subscribers, returning how many it applied
    /// or recorded as failed. Public so tests and
    /// tools can drive the relay step by step. Deliveries to a broker need the executor
    /// ([`Bus::relay_once`]); here they are given back untouched.
    ///
    /// # Errors
    /// Database errors while claiming or committing; a failing handler is not an error here
    /// (it is recorded on its delivery).
    pub fn relay_batch(&self, conn: &mut DbConnection, owner: &str) -> anyhow::Result<usize> {
        let batch = self.relay_local(conn, owner)?;
        if !batch.forwards.is_empty() {
            write_tx(conn, |conn| {
                for (c, _) in &batch.forwards {
                    release_lease(conn, owner, c.seq, &c.subscriber)?;
                }
                Ok::<_, anyhow::Error>(())
            })?;
        }
        Ok(batch.local)
    }

    /// Claims due deliveries and applies the local ones in one transaction
    /// ([`super::deliver`]). Deliveries to a forwarder stay leased and are returned with
    /// their events.
    fn relay_local(&self, conn: &mut DbConnection, owner: &str) -> anyhow::Result<Batch> {
        // Without a broker: the batch held by one transaction, applied and recorded there.
        let failed = match self.relay_locked(conn) {
            Locked::Applied(local, applied) => {
                self.count(&applied);
                return Ok(Batch {
                    local,
                    forwards: Vec::new(),
                });
            }
            Locked::Nothing => None,
            Locked::Failed(delivery, error) => Some((delivery, error)),
        };
        let claimed = self.claim(conn, owner)?;
        if claimed.is_empty() {
            return Ok(Batch::default());
        }
        let seqs: Vec<i64> = claimed.iter().map(|c| c.seq).collect();
        let envelopes = load_envelopes(conn, &seqs)?;
        let (forwards, claimed): (Vec<Claimed>, Vec<Claimed>) = claimed
            .into_iter()
            .partition(|c| self.is_forwarder(&c.subscriber) && envelopes.contains_key(&c.seq));
        let forwards: Vec<(Claimed, Envelope)> = forwards
            .into_iter()
            .filter_map(|c| {
                let envelope = envelopes.get(&c.seq).cloned()?;
                Some((c, envelope))
            })
            .collect();
        if claimed.is_empty() {
            return Ok(Batch { local: 0, forwards });
        }
        let applied = self.apply(conn, owner, &claimed, &envelopes, failed)?;
        self.count(&applied);
        Ok(Batch {
            local: claimed.len(),
            forwards,
        })
    }

    /// Counts a committed batch in the metrics (one counter update per subscriber and
    /// outcome, not per delivery) and wakes the relays for what its handlers published.
    fn count(&self, applied: &Applied) {
        let mut counts: Vec<(&str, crate::metrics::Delivery, u64)> = Vec::new();
        for (subscriber, outcome) in &applied.outcomes {
            match counts
                .iter_mut()
                .find(|(s, o, _)| s == subscriber && o == outcome)
            {
                Some(count) => count.2 += 1,
                None => counts.push((subscriber, *outcome, 1)),
            }
        }
        for (subscriber, outcome, n) in counts {
            crate::metrics::deliveries(subscriber, outcome, n);
        }
        if !applied.published.is_empty() {
            crate::metrics::events_published(&applied.published);
            self.wake_relay_for(&applied.published);
        }
    }

    pub(crate) fn record_failure(
        &self,
        conn: &mut DbConnection,
        owner: &str,
        seq: i64,
        subscriber: &str,
        error: &anyhow::Error,
    ) -> anyhow::Result<crate::metrics::Delivery> {
        let attempts = attempts_of(conn, seq, subscriber)? + 1;
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
        reschedule(
            conn,
            owner,
            (seq, subscriber),
            status,
            attempts,
            delay,
            message,
        )
        .context("record failed delivery")?;
        Ok(if give_up {
            crate::metrics::Delivery::DeadLettered
        } else {
            crate::metrics::Delivery::Failed
        })
    }
}

/// The attempts counted so far on a delivery.
pub(crate) fn attempts_of(
    conn: &mut DbConnection,
    seq: i64,
    subscriber: &str,
) -> anyhow::Result<i32> {
    bus_deliveries::table
        .find((seq, subscriber))
        .select(bus_deliveries::attempts)
        .first(conn)
        .context("read attempts")
}

/// Gives a leased delivery back to wait `delay` from now, with its status, attempts and the
/// error that sent it back (a waiting delivery always carries one: the claim finds them so).
pub(crate) fn reschedule(
    conn: &mut DbConnection,
    owner: &str,
    (seq, subscriber): (i64, &str),
    status: DeliveryStatus,
    attempts: i32,
    delay: chrono::Duration,
    message: String,
) -> anyhow::Result<()> {
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
    .execute(conn)?;
    Ok(())
}

/// What one relay turn claimed: how many local deliveries it handled, and the deliveries to
/// forward (still leased), with their events.
#[derive(Default)]
struct Batch {
    local: usize,
    forwards: Vec<(Claimed, Envelope)>,
}

/// `base · 2^(attempt-1)`, capped, with jitter in [½, 1] of that so retries spread out.
pub(crate) fn backoff(base_ms: u64, max_ms: u64, attempt: i32) -> chrono::Duration {
    let exp = u32::try_from(attempt.saturating_sub(1))
        .unwrap_or(0)
        .min(30);
    let ceiling = base_ms.saturating_mul(1u64 << exp).min(max_ms).max(1);
    // Jitter from a random UUID: no extra dependency for one random number.
    let random = (Uuid::new_v4().as_u128() % 1_000_000) as u64;
    let ms = ceiling / 2 + ceiling / 2 * random / 1_000_000;
    chrono::Duration::milliseconds(i64::try_from(ms).unwrap_or(i64::MAX))
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
