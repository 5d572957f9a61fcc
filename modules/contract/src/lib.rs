//! The contract module: deterministic "smart contracts" in CEL with a hash-chained ledger.
//! It owns the `contracts`, `contract_parties`, `contract_triggers` and
//! `contract_executions` tables; other modules reach it only through
//! [`api::ContractService`], its events, and the events its deployed contracts name as
//! triggers.
//!
//! [`ContractModule`] is what the binary plugs in (see [`kernel::module::Module`]).

mod canonical;
mod domain;
mod eval;
mod http;
mod schema;
mod service;
mod store;
mod subscribers;

use std::{sync::Arc, time::Duration};

use actix_web::web;
use anyhow::Context as _;
use chrono::{DateTime, Utc};
use contract_api::ContractService;
use diesel_migrations::{EmbeddedMigrations, embed_migrations};
use kernel::{
    bus::{
        Subscriber,
        catalog::{ConsumerDoc, EventDoc},
    },
    db::Migrations,
    module::{Context, Module, Tag},
};
use serde::{Deserialize, Serialize};
use utoipa_actix_web::service_config::ServiceConfig;

pub use contract_api as api;

const SQLITE: EmbeddedMigrations = embed_migrations!("../../migrations/contract/sqlite");
const POSTGRES: EmbeddedMigrations = embed_migrations!("../../migrations/contract/postgres");

/// The contract module's tables, for both backends.
pub static MIGRATIONS: Migrations = Migrations {
    module: "contract",
    sqlite: &SQLITE,
    postgres: &POSTGRES,
};

/// `[modules.contract]` settings.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
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

/// The contract module, built: its service and its trigger subscriber share the set of
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

impl Module for ContractModule {
    const NAME: &'static str = "contract";
    const MIGRATIONS: &'static Migrations = &MIGRATIONS;
    const TAGS: &'static [Tag] = &[Tag {
        name: http::TAG,
        description: "Deterministic contracts in CEL with a hash-chained ledger",
    }];
    type Settings = ContractSettings;
    type Neighbours = ();
    type Service = dyn ContractService;

    fn mount(cfg: &mut ServiceConfig<'_>) {
        http::configure(cfg);
    }

    fn events() -> Vec<EventDoc> {
        api::events::catalog()
    }

    /// The service, and the settings the handlers check bodies against (so one 422 names
    /// the fields of the wrong type and those that break a rule).
    fn routes(&self, cfg: &mut ServiceConfig<'_>) {
        cfg.app_data(web::Data::from(self.service()))
            .app_data(web::Data::new(self.settings.clone()));
        Self::mount(cfg);
    }

    fn consumers() -> Vec<ConsumerDoc> {
        subscribers::consumers()
    }

    /// Loads the trigger event types of the deployed contracts (the migrations must have run).
    ///
    /// # Errors
    /// When the database cannot be read.
    fn new(context: Context<ContractSettings>, (): ()) -> anyhow::Result<Self> {
        let Context { bus, settings } = context;
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
            settings,
            clock: Arc::new(Utc::now),
        })
    }

    fn service(&self) -> Arc<dyn ContractService> {
        Arc::new(service::LocalContracts {
            store: self.store.clone(),
            settings: self.settings.clone(),
            clock: self.clock.clone(),
        })
    }

    /// `contract.triggers`, sharing the set of trigger event types with the service.
    fn subscribers(&self) -> Vec<Arc<dyn Subscriber>> {
        vec![Arc::new(subscribers::Triggers {
            store: self.store.clone(),
            set: self.store.triggers.clone(),
            clock: self.clock.clone(),
            max_eval: Duration::from_millis(self.settings.max_eval_ms),
            max_input_bytes: self.settings.max_input_bytes,
        })]
    }
}

impl ContractModule {
    /// Replaces the clock that gives executions their `now` (for tests: the same inputs,
    /// state and `now` give the same output and hash).
    #[must_use]
    pub fn with_clock(mut self, clock: impl Fn() -> DateTime<Utc> + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }
}
