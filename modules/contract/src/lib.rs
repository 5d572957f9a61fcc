//! The contract module: deterministic "smart contracts" in CEL with a hash-chained ledger.
//! It owns the `contracts`, `contract_parties`, `contract_triggers` and
//! `contract_executions` tables; other modules reach it only through
//! [`api::ContractService`], its events, and the events its deployed contracts name as
//! triggers.
//!
//! What it exposes to the binary: its [`MIGRATIONS`], [`ContractSettings`]
//! (`[modules.contract]`), a [`ContractModule`] whose service and subscriber share the set
//! of trigger event types (the free functions [`service`] and [`subscribers`] are thin
//! wrappers), [`configure`], [`events`] and [`consumers`].

mod canonical;
mod domain;
mod eval;
mod http;
mod schema;
mod service;
mod store;
mod triggers;

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use chrono::{DateTime, Utc};
use diesel_migrations::{EmbeddedMigrations, embed_migrations};
use kernel::{
    bus::{
        Bus, Subscriber,
        catalog::{ConsumerDoc, EventDoc},
    },
    db::Migrations,
};
use serde::Deserialize;

pub use contract_api as api;
pub use http::configure;

const SQLITE: EmbeddedMigrations = embed_migrations!("../../migrations/contract/sqlite");
const POSTGRES: EmbeddedMigrations = embed_migrations!("../../migrations/contract/postgres");

/// The contract module's tables, for both backends.
pub static MIGRATIONS: Migrations = Migrations {
    module: "contract",
    sqlite: &SQLITE,
    postgres: &POSTGRES,
};

/// `[modules.contract]` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ContractSettings {
    /// Largest execution input (canonical JSON bytes); more is a 413.
    pub max_input_bytes: usize,
    /// Longest an evaluation is waited for (milliseconds); longer is a 422, nothing stored.
    pub max_eval_ms: u64,
    /// Largest contract code (bytes); more is a 422.
    pub max_code_bytes: usize,
    /// Largest state (canonical JSON bytes), initial or left by an execution; more is a 422.
    pub max_state_bytes: usize,
}

impl Default for ContractSettings {
    fn default() -> Self {
        Self {
            max_input_bytes: 65_536,
            max_eval_ms: 1_000,
            max_code_bytes: 16_384,
            max_state_bytes: 1024 * 1024,
        }
    }
}

/// The contract module, wired: its service and its trigger subscriber share the set of
/// event types deployed contracts name.
#[derive(Clone)]
pub struct ContractModule {
    store: store::Store,
    settings: ContractSettings,
    clock: service::Clock,
}

impl std::fmt::Debug for ContractModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContractModule")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl ContractModule {
    /// Loads the trigger event types of the deployed contracts (the migrations must have run).
    ///
    /// # Errors
    /// When the database cannot be read.
    pub fn new(bus: Bus, settings: &ContractSettings) -> anyhow::Result<Self> {
        let store = store::Store {
            bus,
            triggers: store::TriggerSet::default(),
            max_state_bytes: settings.max_state_bytes,
        };
        let mut conn = store.bus.db().get()?;
        store
            .triggers
            .reload(&mut conn)
            .context("load the contracts' trigger event types")?;
        Ok(Self {
            store,
            settings: settings.clone(),
            clock: Arc::new(Utc::now),
        })
    }

    /// Replaces the clock that gives executions their `now` (for tests: the same inputs,
    /// state and `now` give the same output and hash).
    #[must_use]
    pub fn with_clock(mut self, clock: impl Fn() -> DateTime<Utc> + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The in-process [`api::ContractService`].
    pub fn service(&self) -> Arc<dyn api::ContractService> {
        Arc::new(service::LocalContracts {
            store: self.store.clone(),
            settings: self.settings.clone(),
            clock: self.clock.clone(),
        })
    }

    /// The bus subscribers to register before the relay starts: `contract.triggers`.
    pub fn subscribers(&self) -> Vec<Arc<dyn Subscriber>> {
        vec![Arc::new(triggers::Triggers {
            store: self.store.clone(),
            set: self.store.triggers.clone(),
            clock: self.clock.clone(),
            max_eval: Duration::from_millis(self.settings.max_eval_ms),
            max_input_bytes: self.settings.max_input_bytes,
        })]
    }
}

/// The in-process [`api::ContractService`] alone. Its deployments reach no trigger
/// subscriber: to run contracts on events, build a [`ContractModule`] and take both its
/// service and its [`subscribers`].
///
/// # Errors
/// As [`ContractModule::new`].
pub fn service(
    bus: Bus,
    settings: &ContractSettings,
) -> anyhow::Result<Arc<dyn api::ContractService>> {
    Ok(ContractModule::new(bus, settings)?.service())
}

/// The module's bus subscribers, sharing `module`'s trigger set with its service.
pub fn subscribers(module: &ContractModule) -> Vec<Arc<dyn Subscriber>> {
    module.subscribers()
}

/// What [`subscribers`] consume, for the event catalog.
pub fn consumers() -> Vec<ConsumerDoc> {
    triggers::consumer_docs()
}

/// The events this module publishes, for the event catalog.
pub fn events() -> Vec<EventDoc> {
    api::events::catalog()
}
