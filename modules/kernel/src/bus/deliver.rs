//! Applying a claimed batch to local subscribers.
//!
//! The fast path runs every handler of the batch in one transaction with no savepoints: the
//! inbox rows go in with one statement (PostgreSQL), then the handlers run in order, then one
//! statement marks the deliveries done and proves the leases still held. A batch costs a
//! handful of round trips and one commit, whatever its size.
//!
//! When a handler fails (or a lease was lost), that transaction rolls back and the batch goes
//! again one delivery at a time, each in its own savepoint: the others commit, the failing
//! one gets its retry with backoff (its handler is not run a second time for the same
//! attempt), and later events of its subject wait for it.

use std::{collections::HashMap, collections::HashSet, panic::AssertUnwindSafe, sync::Arc};

use anyhow::{Context, anyhow};
use diesel::prelude::*;

use super::{
    Bus, Envelope, Published, Subscriber, Tx,
    claim::{Claimed, release_lease},
    rows::{Holder, mark_delivered, record_in_inbox, record_many_in_inbox},
};
use crate::{
    db::{DbConnection, write_tx},
    metrics::Delivery,
};

/// What a batch did, counted in the metrics once committed.
#[derive(Default)]
pub(super) struct Applied {
    /// Events the handlers published.
    pub published: Vec<Published>,
    /// (subscriber, outcome) per delivery that was attempted.
    pub outcomes: Vec<(String, Delivery)>,
}

/// Why the all-in-one transaction gave up.
pub(super) enum Together {
    /// The handler of the `n`th delivery failed (its error is reused, not reproduced).
    Failed(usize, anyhow::Error),
    /// Anything else (a lease lost, a database error): go one by one.
    Other(anyhow::Error),
}

impl From<anyhow::Error> for Together {
    fn from(e: anyhow::Error) -> Self {
        Self::Other(e)
    }
}

impl Bus {
    /// Applies `claimed` (all to local subscribers), see the module documentation. `failed`
    /// is a delivery whose handler has just failed in this turn ([`super::locked`]): it is
    /// recorded as failed, and the batch goes one by one, without running that handler again.
    pub(super) fn apply(
        &self,
        conn: &mut DbConnection,
        owner: &str,
        claimed: &[Claimed],
        envelopes: &HashMap<i64, Envelope>,
        failed: Option<((i64, String), anyhow::Error)>,
    ) -> anyhow::Result<Applied> {
        if let Some(((seq, subscriber), error)) = failed
            && let Some(n) = claimed
                .iter()
                .position(|c| c.seq == seq && c.subscriber == subscriber)
        {
            return write_tx(conn, |conn| {
                self.apply_one_by_one(conn, owner, claimed, envelopes, Some((n, error)))
            });
        }
        let subscribers: Option<Vec<Arc<dyn Subscriber>>> = claimed
            .iter()
            .map(|c| self.subscriber(&c.subscriber))
            .collect();
        let complete = claimed.iter().all(|c| envelopes.contains_key(&c.seq));
        let mut known = None;
        if let (Some(subscribers), true) = (subscribers, complete) {
            match write_tx(conn, |conn| {
                self.apply_together(conn, Holder::Lease(owner), claimed, envelopes, &subscribers)
            }) {
                Ok(published) => {
                    let outcomes = claimed
                        .iter()
                        .map(|c| (c.subscriber.clone(), Delivery::Delivered))
                        .collect();
                    return Ok(Applied {
                        published,
                        outcomes,
                    });
                }
                Err(Together::Failed(n, error)) => known = Some((n, error)),
                Err(Together::Other(error)) => {
                    tracing::debug!(error = %format!("{error:#}"), "batch goes one delivery at a time");
                }
            }
        }
        write_tx(conn, |conn| {
            self.apply_one_by_one(conn, owner, claimed, envelopes, known)
        })
    }

    /// Every handler of the batch in the caller's transaction, then one statement that marks
    /// the deliveries done (held by `holder`); returns what the handlers published.
    pub(super) fn apply_together(
        &self,
        conn: &mut DbConnection,
        holder: Holder<'_>,
        claimed: &[Claimed],
        envelopes: &HashMap<i64, Envelope>,
        subscribers: &[Arc<dyn Subscriber>],
    ) -> Result<Vec<Published>, Together> {
        let pairs: Vec<(&str, &Envelope)> = claimed
            .iter()
            .filter_map(|c| Some((c.subscriber.as_str(), envelopes.get(&c.seq)?)))
            .collect();
        let first_time = record_many_in_inbox(conn, &pairs)?;
        let mut published = Vec::new();
        for (n, ((subscriber, envelope), first)) in pairs.iter().zip(first_time).enumerate() {
            if !first {
                continue;
            }
            let Some(handler) = subscribers.get(n) else {
                continue;
            };
            let mut more = self
                .run_handler(conn, handler.as_ref(), subscriber, envelope)
                .map_err(|e| Together::Failed(n, e))?;
            published.append(&mut more);
        }
        let keys: Vec<(i64, &str)> = claimed
            .iter()
            .map(|c| (c.seq, c.subscriber.as_str()))
            .collect();
        if mark_delivered(conn, holder, &keys)? != keys.len() {
            return Err(Together::Other(LeaseLost.into()));
        }
        Ok(published)
    }

    /// Runs one handler inside the caller's transaction; returns what it published.
    fn run_handler(
        &self,
        conn: &mut DbConnection,
        subscriber: &dyn Subscriber,
        name: &str,
        envelope: &Envelope,
    ) -> anyhow::Result<Vec<Published>> {
        let span = tracing::debug_span!(
            "bus.deliver",
            event.id = %envelope.id,
            event.type = %envelope.kind,
            subscriber = name,
        );
        let _entered = span.enter();
        let mut tx = Tx {
            conn,
            bus: self,
            published: Vec::new(),
        };
        std::panic::catch_unwind(AssertUnwindSafe(|| subscriber.handle(&mut tx, envelope)))
            .map_err(|panic| anyhow!("handler panicked: {}", panic_message(&panic)))??;
        Ok(tx.published)
    }

    /// Each delivery in its own savepoint; `known` is a failure the fast path already saw.
    fn apply_one_by_one(
        &self,
        conn: &mut DbConnection,
        owner: &str,
        claimed: &[Claimed],
        envelopes: &HashMap<i64, Envelope>,
        mut known: Option<(usize, anyhow::Error)>,
    ) -> anyhow::Result<Applied> {
        let mut applied = Applied::default();
        // After a failure, later events of the same subject wait for the failed one.
        let mut blocked: HashSet<(&str, &str)> = HashSet::new();
        for (n, c) in claimed.iter().enumerate() {
            let (seq, subscriber) = (c.seq, c.subscriber.as_str());
            let key = (subscriber, c.subject.as_str());
            if blocked.contains(&key) {
                release_lease(conn, owner, seq, subscriber)?;
                continue;
            }
            let outcome = match (known.take_if(|(at, _)| *at == n), envelopes.get(&seq)) {
                (Some((_, error)), _) => Err(error),
                (None, Some(envelope)) => {
                    conn.transaction(|conn| self.handle_one(conn, owner, seq, subscriber, envelope))
                }
                (None, None) => Err(anyhow!("event #{seq} is missing from the outbox")),
            };
            match outcome {
                Ok(mut more) => {
                    applied.published.append(&mut more);
                    applied
                        .outcomes
                        .push((subscriber.to_owned(), Delivery::Delivered));
                }
                Err(e) if e.is::<LeaseLost>() => {
                    tracing::warn!(
                        seq,
                        subscriber,
                        "lease lost before the delivery was recorded"
                    );
                    blocked.insert(key);
                }
                Err(error) if crate::db::is_retryable(&error) => {
                    // A deadlock or serialization conflict with a concurrent writer is
                    // no fault of the event: go again soon, without counting an attempt.
                    tracing::info!(seq, subscriber, error = %format!("{error:#}"), "delivery hit a transient database conflict; retrying");
                    self.retry_soon(conn, owner, seq, subscriber, &error)?;
                    blocked.insert(key);
                }
                Err(error) => {
                    let outcome = self.record_failure(conn, owner, seq, subscriber, &error)?;
                    applied.outcomes.push((subscriber.to_owned(), outcome));
                    blocked.insert(key);
                }
            }
        }
        Ok(applied)
    }

    /// Gives a delivery back with a short, jittered delay and no attempt counted. Like every
    /// delivery set to wait, it carries `last_error` (the claim finds waiting ones by it).
    fn retry_soon(
        &self,
        conn: &mut DbConnection,
        owner: &str,
        seq: i64,
        subscriber: &str,
        error: &anyhow::Error,
    ) -> anyhow::Result<()> {
        let message: String = format!("transient database conflict: {error:#}")
            .chars()
            .take(2000)
            .collect();
        let settings = self.settings();
        let delay = super::relay::backoff(settings.backoff_base_ms, settings.backoff_max_ms, 1);
        let attempts = super::relay::attempts_of(conn, seq, subscriber)?;
        super::relay::reschedule(
            conn,
            owner,
            (seq, subscriber),
            super::DeliveryStatus::Pending,
            attempts,
            delay,
            message,
        )
        .context("give back a delivery after a transient conflict")?;
        Ok(())
    }

    /// Inside a savepoint: applies one delivery (unless the inbox says it was applied
    /// before) and records it, returning the events the handler published.
    fn handle_one(
        &self,
        conn: &mut DbConnection,
        owner: &str,
        seq: i64,
        name: &str,
        envelope: &Envelope,
    ) -> anyhow::Result<Vec<Published>> {
        let subscriber = self
            .subscriber(name)
            .ok_or_else(|| anyhow!("no subscriber named {name:?} is registered in this process"))?;
        let mut published = Vec::new();
        if record_in_inbox(conn, name, envelope)? {
            published = self.run_handler(conn, subscriber.as_ref(), name, envelope)?;
        }
        if mark_delivered(conn, Holder::Lease(owner), &[(seq, name)])? == 0 {
            // Someone else owns it now; undo the handling so it happens exactly once.
            return Err(LeaseLost.into());
        }
        Ok(published)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the delivery's lease was lost")]
struct LeaseLost;

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".into())
}
