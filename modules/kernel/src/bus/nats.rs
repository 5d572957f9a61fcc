//! Events between processes over NATS JetStream, for split deployments.
//!
//! - **Out:** with NATS configured, the outbox fans every event out to one delivery, the
//!   [`NatsPublisher`], a [`Forwarder`]: the relay hands the event to JetStream on subject
//!   `<prefix>.<type>` with the event id as `Nats-Msg-Id` (JetStream drops duplicates within
//!   its window, which makes a re-publish after a crash safe), outside any database
//!   transaction, and counts it delivered only after JetStream's acknowledgement. The outbox
//!   guarantees are unchanged: nothing leaves before the commit, nothing is lost while NATS
//!   is down (the events wait in the outbox, see [`super::forward`]).
//! - **In:** each local subscriber consumes through a durable pull consumer per event type
//!   (`max_ack_pending = 1`, so events of a type arrive in order). A message is acknowledged
//!   only after the handler and its inbox record committed together; a redelivery finds the
//!   inbox record and has no second effect. Failures are negatively acknowledged with backoff
//!   and given up after `bus.max_attempts` (JetStream's `max_deliver`), with an error log.
//!
//! NATS 2.9 (this machine's server) allows one filter subject per consumer, hence one
//! consumer per (subscriber, event type); a subscriber whose types are decided at run time
//! (no fixed list) consumes everything and filters with [`Subscriber::accepts`].

use std::{sync::Arc, time::Duration};

use anyhow::{Context, anyhow};
use async_nats::jetstream::{
    self, AckKind,
    consumer::{AckPolicy, DeliverPolicy, pull},
    stream,
};
use futures_util::StreamExt;
use tokio::{sync::watch, task::JoinHandle};

use super::{Bus, Envelope, ForwardError, Forwarder, Subscriber, Tx};
use crate::db::write_tx;

/// The connection to JetStream and where events go.
#[derive(Clone)]
pub struct Nats {
    client: async_nats::Client,
    js: jetstream::Context,
    /// Bound on one publish and its acknowledgement.
    publish_timeout: Duration,
    prefix: String,
    stream: String,
}

impl std::fmt::Debug for Nats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nats")
            .field("prefix", &self.prefix)
            .field("stream", &self.stream)
            .finish_non_exhaustive()
    }
}

/// The subscriber name the outbox uses for "hand it to NATS".
pub const PUBLISHER: &str = "kernel.nats_publisher";

impl Nats {
    /// Connects (within `timeout`) and makes sure the stream for `<prefix>.>` exists. A
    /// publish waits for its acknowledgement at most `timeout`, and never more than three
    /// seconds, so a relay waiting for a silent broker still reports itself alive.
    ///
    /// # Errors
    /// The server cannot be reached, or JetStream is not enabled on it.
    pub async fn connect(url: &str, prefix: &str, timeout: Duration) -> anyhow::Result<Self> {
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(timeout)
            .connect(url)
            .await
            .with_context(|| format!("cannot connect to NATS at {url}"))?;
        let js = jetstream::new(client.clone());
        let stream: String = prefix
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect();
        let nats = Self {
            client,
            js,
            publish_timeout: timeout.min(Duration::from_secs(3)),
            prefix: prefix.to_owned(),
            stream,
        };
        nats.ensure_stream().await?;
        Ok(nats)
    }

    async fn ensure_stream(&self) -> anyhow::Result<()> {
        self.js
            .get_or_create_stream(stream::Config {
                name: self.stream.clone(),
                subjects: vec![format!("{}.>", self.prefix)],
                storage: stream::StorageType::File,
                duplicate_window: Duration::from_secs(120),
                ..Default::default()
            })
            .await
            .map_err(|e| anyhow!("cannot create the JetStream stream {}: {e}", self.stream))?;
        Ok(())
    }

    /// Removes the stream and its consumers (for tests and tear-downs).
    ///
    /// # Errors
    /// The server refused.
    pub async fn delete_stream(&self) -> anyhow::Result<()> {
        self.js
            .delete_stream(&self.stream)
            .await
            .map_err(|e| anyhow!("cannot delete stream {}: {e}", self.stream))?;
        Ok(())
    }

    fn subject(&self, event_type: &str) -> String {
        format!("{}.{event_type}", self.prefix)
    }

    /// The outbox subscriber that hands every event to JetStream.
    pub fn publisher(&self) -> Arc<dyn Subscriber> {
        Arc::new(NatsPublisher { nats: self.clone() })
    }

    /// Starts consuming for `subscriber`; the tasks end when `stop` changes.
    ///
    /// # Errors
    /// A consumer cannot be created.
    pub async fn consume(
        &self,
        bus: &Bus,
        subscriber: Arc<dyn Subscriber>,
        stop: watch::Receiver<bool>,
    ) -> anyhow::Result<Vec<JoinHandle<()>>> {
        let types = subscriber.event_types();
        let filters: Vec<(String, String)> = if types.is_empty() {
            vec![("all".into(), format!("{}.>", self.prefix))]
        } else {
            types
                .iter()
                .map(|t| (t.replace('.', "_"), self.subject(t)))
                .collect()
        };
        let stream = self
            .js
            .get_stream(&self.stream)
            .await
            .map_err(|e| anyhow!("cannot open stream {}: {e}", self.stream))?;
        let mut tasks = Vec::new();
        for (suffix, filter) in filters {
            let durable = format!("{}__{suffix}", subscriber.name().replace('.', "_"));
            let consumer: jetstream::consumer::Consumer<pull::Config> = stream
                .get_or_create_consumer(
                    &durable,
                    pull::Config {
                        durable_name: Some(durable.clone()),
                        filter_subject: filter,
                        ack_policy: AckPolicy::Explicit,
                        deliver_policy: DeliverPolicy::All,
                        max_ack_pending: 1,
                        max_deliver: i64::from(bus.settings().max_attempts),
                        ack_wait: Duration::from_secs(bus.settings().lease_secs.max(1)),
                        ..Default::default()
                    },
                )
                .await
                .map_err(|e| anyhow!("cannot create consumer {durable}: {e}"))?;
            tasks.push(tokio::spawn(run_consumer(
                bus.clone(),
                subscriber.clone(),
                consumer,
                stop.clone(),
            )));
        }
        Ok(tasks)
    }
}

async fn run_consumer(
    bus: Bus,
    subscriber: Arc<dyn Subscriber>,
    consumer: jetstream::consumer::Consumer<pull::Config>,
    mut stop: watch::Receiver<bool>,
) {
    let name = subscriber.name().to_owned();
    // The message stream may end (a broker restart the client could not ride out): open it
    // again rather than stop consuming until the process restarts.
    let mut messages = None;
    loop {
        let stream = match &mut messages {
            Some(stream) => stream,
            None => match consumer.messages().await {
                Ok(stream) => messages.insert(stream),
                Err(e) => {
                    tracing::warn!(subscriber = %name, error = %e, "cannot consume from NATS yet; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                        _ = stop.changed() => break,
                    }
                }
            },
        };
        let next = tokio::select! {
            next = stream.next() => next,
            _ = stop.changed() => break,
        };
        let Some(message) = next else {
            tracing::warn!(subscriber = %name, "the NATS message stream ended; consuming again");
            messages = None;
            continue;
        };
        let message = match message {
            Ok(message) => message,
            Err(e) => {
                tracing::warn!(subscriber = %name, error = %e, "NATS consumer error");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let attempt = message.info().map(|i| i.delivered).unwrap_or(1);
        let outcome = match serde_json::from_slice::<Envelope>(&message.payload) {
            Ok(envelope) if !subscriber.accepts(&envelope.kind) => Ok(()),
            Ok(envelope) => {
                let (b, s) = (bus.clone(), subscriber.clone());
                bus.db()
                    .run(move |conn| b.handle_external(conn, s.as_ref(), &envelope))
                    .await
            }
            Err(e) => Err(anyhow!("not an event envelope: {e}")),
        };
        let acked = match outcome {
            Ok(()) => message.ack().await,
            Err(error) => {
                let settings = bus.settings();
                let delay = super::relay::backoff(
                    settings.backoff_base_ms,
                    settings.backoff_max_ms,
                    i32::try_from(attempt).unwrap_or(i32::MAX),
                );
                if attempt >= i64::from(settings.max_attempts) {
                    tracing::error!(subscriber = %name, attempt, error = %format!("{error:#}"), "event from NATS failed for good");
                } else {
                    tracing::warn!(subscriber = %name, attempt, error = %format!("{error:#}"), "event from NATS failed; will retry");
                }
                message.ack_with(AckKind::Nak(delay.to_std().ok())).await
            }
        };
        if let Err(e) = acked {
            tracing::warn!(subscriber = %name, error = %e, "cannot acknowledge a NATS message");
        }
    }
}

/// Hands outbox events to JetStream; registered as the only outbox subscriber when NATS is
/// configured.
struct NatsPublisher {
    nats: Nats,
}

impl Subscriber for NatsPublisher {
    fn name(&self) -> &str {
        PUBLISHER
    }

    fn event_types(&self) -> Vec<String> {
        Vec::new()
    }

    fn accepts(&self, _event_type: &str) -> bool {
        true
    }

    fn handle(&self, _tx: &mut Tx<'_>, _envelope: &Envelope) -> anyhow::Result<()> {
        // A publish inside the handler's transaction would hold the database's write lock
        // until JetStream answers; the relay forwards through `forwarder` instead.
        Err(anyhow!(
            "{PUBLISHER} forwards through the relay, never inside a transaction"
        ))
    }

    fn forwarder(&self) -> Option<&dyn Forwarder> {
        Some(self)
    }
}

impl Forwarder for NatsPublisher {
    fn forward<'a>(
        &'a self,
        envelope: &'a Envelope,
    ) -> futures_util::future::BoxFuture<'a, Result<(), ForwardError>> {
        Box::pin(async move {
            if !self.connected() {
                // Fail at once: a publish would only wait in the client's buffer until the
                // timeout, and the relay would spend that time on every batch.
                return Err(ForwardError::Unavailable(anyhow!("not connected to NATS")));
            }
            let subject = self.nats.subject(&envelope.kind);
            let payload = serde_json::to_vec(envelope)
                .map_err(|e| ForwardError::Rejected(anyhow!("cannot serialize the event: {e}")))?;
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("Nats-Msg-Id", envelope.id.to_string().as_str());
            let publish = async {
                self.nats
                    .js
                    .publish_with_headers(subject, headers, payload.into())
                    .await?
                    .await
            };
            match tokio::time::timeout(self.nats.publish_timeout, publish).await {
                Ok(Ok(_ack)) => Ok(()),
                Ok(Err(e)) => Err(self.classify(e).await),
                Err(_) => Err(ForwardError::Unavailable(anyhow!(
                    "JetStream did not acknowledge within {:?}",
                    self.nats.publish_timeout
                ))),
            }
        })
    }

    fn connected(&self) -> bool {
        self.nats.client.connection_state() == async_nats::connection::State::Connected
    }
}

impl NatsPublisher {
    /// Only a refusal of the message itself counts as the event's failure; everything else
    /// is the broker being away (or not ready) and is waited out.
    async fn classify(&self, error: jetstream::context::PublishError) -> ForwardError {
        use jetstream::context::PublishErrorKind as Kind;
        match error.kind() {
            Kind::MaxPayloadExceeded | Kind::WrongLastMessageId | Kind::WrongLastSequence => {
                ForwardError::Rejected(anyhow!("JetStream refused the event: {error}"))
            }
            Kind::StreamNotFound => {
                // A broker restarted without its store: make the stream again, then retry.
                if let Err(e) = self.nats.ensure_stream().await {
                    tracing::debug!(error = %e, "cannot re-create the stream yet");
                }
                ForwardError::Unavailable(anyhow!("JetStream has no stream for the event: {error}"))
            }
            _ => ForwardError::Unavailable(anyhow!("JetStream did not acknowledge: {error}")),
        }
    }
}

impl Bus {
    /// Applies an event that came from another process: the handler and the inbox record
    /// commit together, and an event already in the inbox is not applied again.
    ///
    /// # Errors
    /// The handler's error (nothing committed), or database errors.
    pub fn handle_external(
        &self,
        conn: &mut crate::db::DbConnection,
        subscriber: &dyn Subscriber,
        envelope: &Envelope,
    ) -> anyhow::Result<()> {
        let mut published = Vec::new();
        write_tx(conn, |conn| {
            if super::relay::record_in_inbox(conn, subscriber.name(), envelope)? {
                let mut tx = Tx {
                    conn,
                    bus: self,
                    published: Vec::new(),
                };
                subscriber.handle(&mut tx, envelope)?;
                published = std::mem::take(&mut tx.published);
            }
            Ok::<_, anyhow::Error>(())
        })?;
        crate::metrics::deliveries(subscriber.name(), crate::metrics::Delivery::Delivered, 1);
        if !published.is_empty() {
            crate::metrics::events_published(&published);
            self.wake_relay_for(&published);
        }
        Ok(())
    }
}
