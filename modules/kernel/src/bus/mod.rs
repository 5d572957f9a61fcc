//! The event bus: a transactional outbox, a relay that delivers after commit, and an inbox.
//!
//! - **Publishing** is only possible through a [`Tx`], the transaction that changes the
//!   module's state ([`Bus::write`]): the event row and one delivery row per interested
//!   subscriber are written in that same transaction, so a rolled-back change publishes
//!   nothing and a committed one cannot lose its events.
//! - **Delivery** is at-least-once, by the [`relay`], woken by the commit (in other processes
//!   too, on PostgreSQL; polling is the fallback). Each (event, subscriber) pair has its own state, so one failing subscriber
//!   neither blocks nor repeats the others. Events with the same `subject` reach a subscriber
//!   in publication order.
//! - **Handling** runs inside a transaction that also writes the inbox record and marks the
//!   delivery done, so a redelivery after a crash has no second effect. A batch of deliveries
//!   shares one transaction; one failing handler sends the batch down a savepoint-per-delivery
//!   path, so only it is retried.
//! - **Failures** retry with exponential backoff and jitter, then the delivery is `failed`
//!   (a dead letter) until an operator replays it ([`admin`]).
//! - **Forwarding** to a broker (NATS, [`nats`]) happens outside any transaction, and a broker
//!   that is away costs no attempt: the events wait in the outbox ([`forward`]).

pub mod admin;
mod claim;
mod deliver;
pub mod forward;
mod locked;
pub mod nats;
mod outbox;
pub mod relay;
mod rows;
pub use rows::DeliveryStatus;
pub(crate) mod schema;
pub mod subscribers;
mod wake;

use std::{
    marker::PhantomData,
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
};

use anyhow::bail;
/// The event trait, envelope and catalog are [`kernel_api::event`](mod@kernel_api::event)'s: modules declare their
/// events in their `-api` crates.
pub use kernel_api::event::{Envelope, Event, catalog};
use tokio::sync::Notify;

use crate::{
    config::BusSettings,
    db::{Db, DbConnection, Migrations, write_tx},
};
pub use forward::{BrokerHealth, ForwardError, Forwarder};

const SQLITE: diesel_migrations::EmbeddedMigrations =
    diesel_migrations::embed_migrations!("../../migrations/kernel/sqlite");
const POSTGRES: diesel_migrations::EmbeddedMigrations =
    diesel_migrations::embed_migrations!("../../migrations/kernel/postgres");

/// The kernel's own tables (the bus). Every deployment runs these first.
pub static MIGRATIONS: Migrations = Migrations {
    module: "kernel",
    sqlite: &SQLITE,
    postgres: &POSTGRES,
};

/// Something that reacts to events. Handlers run inside the transaction that records them as
/// handled; they may change their own module's tables and publish through the same [`Tx`].
pub trait Subscriber: Send + Sync + 'static {
    /// Stable name (`<module>.<purpose>`); delivery state and the inbox are keyed by it.
    fn name(&self) -> &str;
    /// The event types it handles.
    fn event_types(&self) -> Vec<String>;
    /// Whether an event of `event_type` should be delivered to it.
    fn accepts(&self, event_type: &str) -> bool {
        self.event_types().iter().any(|t| t == event_type)
    }
    /// Applies the event.
    ///
    /// # Errors
    /// Any error (or panic) rolls back the handling transaction and schedules a retry.
    fn handle(&self, tx: &mut Tx<'_>, event: &Envelope) -> anyhow::Result<()>;
    /// Set for a subscriber that hands events to a broker: the relay then forwards them
    /// outside any transaction instead of calling [`Subscriber::handle`].
    fn forwarder(&self) -> Option<&dyn Forwarder> {
        None
    }
}

/// A subscriber for one event type from a function: `bus::on::<OrderPaid, _>("x.y", f)`.
pub fn on<E, F>(name: &'static str, handler: F) -> Arc<dyn Subscriber>
where
    E: Event,
    F: Fn(&mut Tx<'_>, E, &Envelope) -> anyhow::Result<()> + Send + Sync + 'static,
{
    Arc::new(On {
        name,
        handler,
        _event: PhantomData::<fn(E)>,
    })
}

struct On<E, F> {
    name: &'static str,
    handler: F,
    _event: PhantomData<fn(E)>,
}

impl<E, F> Subscriber for On<E, F>
where
    E: Event,
    F: Fn(&mut Tx<'_>, E, &Envelope) -> anyhow::Result<()> + Send + Sync + 'static,
{
    fn name(&self) -> &str {
        self.name
    }

    fn event_types(&self) -> Vec<String> {
        vec![E::TYPE.to_owned()]
    }

    fn accepts(&self, event_type: &str) -> bool {
        event_type == E::TYPE
    }

    fn handle(&self, tx: &mut Tx<'_>, event: &Envelope) -> anyhow::Result<()> {
        (self.handler)(tx, event.decode()?, event)
    }
}

/// The bus of one process: its database, policy and subscribers, and the relay's wake-up.
#[derive(Clone)]
pub struct Bus {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    settings: BusSettings,
    subscribers: RwLock<Vec<Arc<dyn Subscriber>>>,
    wake: Notify,
    /// Milliseconds since the epoch at the relay's last loop turn; 0 while none runs.
    relay_beat: AtomicU64,
    /// How forwarding to the broker goes (for readiness and the relay's waiting).
    broker: std::sync::Mutex<forward::BrokerState>,
    /// PostgreSQL: signals the thread that notifies other processes' relays ([`wake`]).
    signal: std::sync::OnceLock<std::sync::mpsc::SyncSender<()>>,
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bus")
            .field("subscribers", &self.subscriber_names())
            .finish_non_exhaustive()
    }
}

impl Bus {
    pub fn new(db: Db, settings: BusSettings) -> Self {
        Self {
            inner: Arc::new(Inner {
                db,
                settings,
                subscribers: RwLock::new(Vec::new()),
                wake: Notify::new(),
                relay_beat: AtomicU64::new(0),
                broker: std::sync::Mutex::new(forward::BrokerState::default()),
                signal: std::sync::OnceLock::new(),
            }),
        }
    }

    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    pub fn settings(&self) -> &BusSettings {
        &self.inner.settings
    }

    /// Registers a subscriber; do it at start-up, before anything publishes, or the events
    /// published earlier will not be delivered to it.
    ///
    /// # Errors
    /// When another subscriber already has its name.
    pub fn subscribe(&self, subscriber: Arc<dyn Subscriber>) -> anyhow::Result<()> {
        let mut subscribers = self
            .inner
            .subscribers
            .write()
            .map_err(|_| anyhow::anyhow!("subscriber registry poisoned"))?;
        if subscribers.iter().any(|s| s.name() == subscriber.name()) {
            bail!("two subscribers are named {:?}", subscriber.name());
        }
        subscribers.push(subscriber);
        Ok(())
    }

    /// Names of the subscribers registered in this process.
    pub fn subscriber_names(&self) -> Vec<String> {
        self.inner
            .subscribers
            .read()
            .map(|subscribers| subscribers.iter().map(|s| s.name().to_owned()).collect())
            .unwrap_or_default()
    }

    fn subscriber(&self, name: &str) -> Option<Arc<dyn Subscriber>> {
        self.inner
            .subscribers
            .read()
            .ok()?
            .iter()
            .find(|s| s.name() == name)
            .cloned()
    }

    fn subscribers_for(&self, event_type: &str) -> Vec<String> {
        self.inner
            .subscribers
            .read()
            .map(|s| {
                s.iter()
                    .filter(|s| s.accepts(event_type))
                    .map(|s| s.name().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Runs `work` in a write transaction whose [`Tx`] can publish; after the commit the
    /// relay is woken if anything was published.
    ///
    /// # Errors
    /// Whatever `work` returns (nothing is written, nothing published), or an unexpected
    /// error when the transaction cannot begin or commit.
    pub fn write<T, E, F>(&self, conn: &mut DbConnection, work: F) -> Result<T, E>
    where
        F: FnOnce(&mut Tx<'_>) -> Result<T, E>,
        E: From<anyhow::Error>,
    {
        let mut published = Vec::new();
        let value = write_tx(conn, |conn| {
            let mut tx = Tx {
                conn,
                bus: self,
                published: Vec::new(),
            };
            let result = work(&mut tx);
            published = std::mem::take(&mut tx.published);
            result
        })?;
        if !published.is_empty() {
            let bus = self.clone();
            crate::db::after_commit(move || {
                crate::metrics::events_published(&published);
                bus.wake_relay_for(&published);
            });
        }
        Ok(value)
    }

    /// Whether a relay of this process has turned its loop recently (for readiness): within
    /// three poll intervals, and never less than five seconds.
    pub fn relay_alive(&self) -> bool {
        let beat = self.inner.relay_beat.load(Ordering::Relaxed);
        let window = (self.settings().poll_interval_ms * 3).max(5_000);
        beat > 0 && epoch_ms().saturating_sub(beat) <= window
    }

    fn relay_beat(&self, alive: bool) {
        let value = if alive { epoch_ms() } else { 0 };
        self.inner.relay_beat.store(value, Ordering::Relaxed);
    }

    /// Wakes the relay (after a commit that published, or an operator's replay).
    pub fn wake_relay(&self) {
        self.inner.wake.notify_one();
    }

    /// Wakes the relay after a commit that published these event types, unless none of them
    /// has a subscriber here (then there is nothing to deliver, and a wake-up would only cost
    /// the relay a blocking-pool hop and a query per commit).
    fn wake_relay_for(&self, published: &[Published]) {
        let deliverable = self.inner.subscribers.read().map_or(true, |subscribers| {
            published
                .iter()
                .any(|event| subscribers.iter().any(|s| s.accepts(&event.kind)))
        });
        if deliverable {
            self.wake_relay();
            self.signal_other_processes();
        }
    }
}

fn epoch_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or_default()
}

/// An event committed to the outbox, as the metrics count it: the module that published it
/// (the envelope's `source`) and its type (`inventory.reserved`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Published {
    pub source: String,
    pub kind: String,
}

/// A write transaction that may publish events. Only [`Bus::write`] (and the relay, for
/// handlers) makes one.
pub struct Tx<'c> {
    conn: &'c mut DbConnection,
    bus: &'c Bus,
    /// The events published so far (counted in the metrics once committed).
    published: Vec<Published>,
}

impl std::fmt::Debug for Tx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tx")
            .field("published", &self.published.len())
            .finish_non_exhaustive()
    }
}

impl<'c> Tx<'c> {
    /// The connection the transaction runs on.
    pub fn conn(&mut self) -> &mut DbConnection {
        self.conn
    }

    /// Writes `event` to the outbox, with a pending delivery for every subscriber that
    /// accepts its type. It becomes visible to the relay when the transaction commits.
    ///
    /// # Errors
    /// Database errors; they abort the whole transaction.
    pub fn publish<E: Event>(&mut self, event: &E) -> anyhow::Result<Envelope> {
        let envelope = Envelope::new(event)?;
        self.publish_envelope(&envelope)?;
        Ok(envelope)
    }

    fn publish_envelope(&mut self, envelope: &Envelope) -> anyhow::Result<()> {
        let row = outbox::Outgoing::of(envelope, self.bus.subscribers_for(&envelope.kind))?;
        outbox::write(self.conn, row)?;
        self.published.push(Published {
            source: envelope.source.clone(),
            kind: envelope.kind.clone(),
        });
        Ok(())
    }
}
