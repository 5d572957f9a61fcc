//! Forwarding outbox events to a broker (NATS JetStream) without holding a transaction.
//!
//! A [`Forwarder`] is a subscriber whose work is network I/O, not a change to our tables. The
//! relay leases its deliveries in a short transaction, forwards them on the async executor
//! with no transaction open, and records the outcome in another short transaction. Holding a
//! write transaction across a publish would stall every other writer (on SQLite, the whole
//! database) for as long as the broker takes to answer, or to time out.
//!
//! A broker that cannot be reached or does not acknowledge is not the event's fault: the
//! delivery goes back to the outbox without counting an attempt, and the relay waits for the
//! broker with a capped, jittered backoff (readiness reports it `degraded`). Only a broker's
//! refusal of the message itself counts towards `bus.max_attempts`.

use std::collections::HashSet;

use anyhow::Context;
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use futures_util::future::BoxFuture;
use serde::Serialize;
use utoipa::ToSchema;

use super::{Bus, DeliveryStatus, Envelope, relay::Claimed, schema::bus_deliveries};
use crate::db::write_tx;

/// Marks `last_error` of a delivery held back while the broker is away, so the relay can
/// send those (and not the ones backing off after a real failure) as soon as it is back.
const WAITING: &str = "waiting for the broker: ";

/// However long the configured backoff, a relay waiting for the broker looks again at least
/// this often, so events flow within seconds of its return.
const BROKER_WAIT_CAP_MS: u64 = 5_000;

/// Hands events to another system (a broker). See the module documentation.
pub trait Forwarder: Send + Sync {
    /// Forwards the event; resolves once the broker has it for good (acknowledged), or with
    /// an error within a bounded time.
    fn forward<'a>(&'a self, envelope: &'a Envelope) -> BoxFuture<'a, Result<(), ForwardError>>;
    /// Whether the connection to the broker is up now.
    fn connected(&self) -> bool;
}

/// Why a forward failed.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// The broker cannot be reached or did not acknowledge: wait for it, count no attempt.
    #[error("the broker is unavailable: {0:#}")]
    Unavailable(anyhow::Error),
    /// The broker refused this message: an attempt that counts.
    #[error("the broker refused the event: {0:#}")]
    Rejected(anyhow::Error),
}

/// What readiness says about the broker.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BrokerHealth {
    /// `ok`, or `degraded` while the broker is unreachable (events wait in the outbox).
    pub status: &'static str,
    /// The last forwarding error while degraded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Since when forwarding fails.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
}

/// The relay's memory of the broker: consecutive failed forwards and the last error.
#[derive(Debug, Default)]
pub(crate) struct BrokerState {
    failures: u32,
    last_error: Option<String>,
    since: Option<DateTime<Utc>>,
}

/// How a batch of forwards went, recorded in one short transaction.
#[derive(Default)]
struct Outcome {
    delivered: Vec<Claimed>,
    rejected: Vec<(Claimed, anyhow::Error)>,
    /// Not attempted (the broker is away, or an earlier event of its subject was refused).
    held: Vec<Claimed>,
}

impl Bus {
    /// Whether `subscriber` forwards to a broker (its deliveries go through [`Bus::forward`]).
    pub(crate) fn is_forwarder(&self, subscriber: &str) -> bool {
        self.subscriber(subscriber)
            .is_some_and(|s| s.forwarder().is_some())
    }

    /// The broker's state for readiness; `None` when nothing here forwards to one.
    pub fn broker_health(&self) -> Option<BrokerHealth> {
        let subscribers = self.inner.subscribers.read().ok()?;
        let forwarder = subscribers.iter().find_map(|s| s.forwarder())?;
        let connected = forwarder.connected();
        let state = self.inner.broker.lock().ok()?;
        if state.failures == 0 && connected {
            return Some(BrokerHealth {
                status: "ok",
                last_error: None,
                since: None,
            });
        }
        Some(BrokerHealth {
            status: "degraded",
            last_error: state
                .last_error
                .clone()
                .or_else(|| Some("not connected to the broker".into())),
            since: state.since,
        })
    }

    /// Forwards leased deliveries in order, outside any transaction, then records the
    /// outcome in one short transaction.
    ///
    /// # Errors
    /// Database errors while recording (the leases then run out and the events go again;
    /// the broker drops the duplicates by event id).
    pub(crate) async fn forward(
        &self,
        owner: &str,
        forwards: Vec<(Claimed, Envelope)>,
    ) -> anyhow::Result<()> {
        let mut outcome = Outcome::default();
        let mut blocked: HashSet<(String, String)> = HashSet::new();
        let mut down: Option<String> = None;
        for (claimed, envelope) in forwards {
            let key = (claimed.subscriber.clone(), claimed.subject.clone());
            let subscriber = self.subscriber(&claimed.subscriber);
            let forwarder = subscriber.as_deref().and_then(|s| s.forwarder());
            let (Some(forwarder), None) = (forwarder, &down) else {
                outcome.held.push(claimed);
                continue;
            };
            if blocked.contains(&key) {
                outcome.held.push(claimed);
                continue;
            }
            match forwarder.forward(&envelope).await {
                Ok(()) => outcome.delivered.push(claimed),
                Err(ForwardError::Unavailable(e)) => {
                    down = Some(format!("{e:#}"));
                    outcome.held.push(claimed);
                }
                Err(error @ ForwardError::Rejected(_)) => {
                    blocked.insert(key);
                    outcome.rejected.push((claimed, error.into()));
                }
            }
            self.relay_beat(true);
        }
        let (wait, recovered) = self.note_broker(down.as_deref(), !outcome.delivered.is_empty());
        let bus = self.clone();
        let me = owner.to_owned();
        let counts = self
            .db()
            .run(move |conn| {
                write_tx(conn, |conn| {
                    bus.record_forwards(conn, &me, &outcome, wait.as_ref(), recovered)
                })
            })
            .await?;
        for (subscriber, delivery) in counts {
            crate::metrics::deliveries(&subscriber, delivery, 1);
        }
        if recovered {
            self.wake_relay();
        }
        Ok(())
    }

    /// Updates the broker state after a batch; returns how long to hold deliveries back (and
    /// the error to note on them) if the broker is away, and whether it just came back.
    fn note_broker(
        &self,
        down: Option<&str>,
        forwarded: bool,
    ) -> (Option<(chrono::Duration, String)>, bool) {
        let Ok(mut state) = self.inner.broker.lock() else {
            return (None, false);
        };
        match down {
            Some(error) => {
                state.failures = state.failures.saturating_add(1);
                if state.failures == 1 {
                    tracing::warn!(
                        error,
                        "the broker is unavailable; events wait in the outbox"
                    );
                    state.since = Some(Utc::now());
                } else {
                    tracing::debug!(
                        error,
                        failures = state.failures,
                        "the broker is still unavailable"
                    );
                }
                state.last_error = Some(error.to_owned());
                let settings = self.settings();
                let delay = super::relay::backoff(
                    settings.backoff_base_ms,
                    settings.backoff_max_ms.min(BROKER_WAIT_CAP_MS),
                    i32::try_from(state.failures).unwrap_or(i32::MAX),
                );
                let note: String = format!("{WAITING}{error}").chars().take(2000).collect();
                (Some((delay, note)), false)
            }
            None if forwarded && state.failures > 0 => {
                tracing::info!(
                    failures = state.failures,
                    "the broker is back; forwarding the events that waited"
                );
                *state = BrokerState::default();
                (None, true)
            }
            None => (None, false),
        }
    }

    fn record_forwards(
        &self,
        conn: &mut crate::db::DbConnection,
        owner: &str,
        outcome: &Outcome,
        wait: Option<&(chrono::Duration, String)>,
        recovered: bool,
    ) -> anyhow::Result<Vec<(String, crate::metrics::Delivery)>> {
        let now = crate::time::now();
        let mut counts = Vec::new();
        if !outcome.delivered.is_empty() {
            let keys: Vec<(i64, &str)> = outcome
                .delivered
                .iter()
                .map(|c| (c.seq, c.subscriber.as_str()))
                .collect();
            let recorded =
                super::rows::mark_delivered(conn, super::rows::Holder::Lease(owner), &keys)?;
            if recorded < keys.len() {
                // Another relay took them over and forwards them again; the broker drops the
                // duplicates by event id.
                tracing::warn!(lost = keys.len() - recorded, "leases lost after forwarding");
            }
            counts.extend(
                outcome
                    .delivered
                    .iter()
                    .map(|c| (c.subscriber.clone(), crate::metrics::Delivery::Delivered)),
            );
        }
        for (c, error) in &outcome.rejected {
            let delivery = self.record_failure(conn, owner, c.seq, &c.subscriber, error)?;
            counts.push((c.subscriber.clone(), delivery));
        }
        for c in &outcome.held {
            let leased = bus_deliveries::table
                .find((c.seq, &c.subscriber))
                .filter(bus_deliveries::lease_owner.eq(owner));
            let release = (
                bus_deliveries::lease_owner.eq(None::<String>),
                bus_deliveries::lease_until.eq(None::<NaiveDateTime>),
            );
            match wait {
                Some((delay, note)) => diesel::update(leased)
                    .set((
                        release,
                        bus_deliveries::next_attempt_at.eq(now + *delay),
                        bus_deliveries::last_error.eq(Some(note)),
                    ))
                    .execute(conn),
                None => diesel::update(leased).set(release).execute(conn),
            }
            .context("give a held delivery back to the outbox")?;
        }
        if recovered {
            // Everything that waited for the broker may go now, in order.
            diesel::update(
                bus_deliveries::table
                    .filter(bus_deliveries::status.eq(DeliveryStatus::Pending.as_str()))
                    .filter(bus_deliveries::next_attempt_at.gt(now))
                    .filter(bus_deliveries::last_error.like(format!("{WAITING}%"))),
            )
            .set(bus_deliveries::next_attempt_at.eq(now))
            .execute(conn)
            .context("release deliveries that waited for the broker")?;
        }
        Ok(counts)
    }
}
