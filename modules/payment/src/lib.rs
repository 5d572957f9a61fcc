//! The payment module: charges an order's total to a card through a [`api::PaymentGateway`],
//! refunds, and refunds cancelled orders. It owns the `payments` and `payment_refunds` tables (brand and
//! last four digits only, never a card number or CVC) and the simulated gateway's table; other modules reach it only through
//! [`api::PaymentService`] and its events. It reads orders through
//! [`order_api::OrderService`], never the order module's tables.
//!
//! What it exposes to the binary: its [`MIGRATIONS`], the [`PaymentModule`] (the trait
//! object, its bus subscribers and its reconciliation job), the [`simulated_gateway`],
//! [`consumers`] and [`events`] for the event catalog, and [`configure`], which mounts its
//! HTTP handlers.

mod domain;
mod gateway;
mod http;
mod reconcile;
mod refunder;
mod refunds;
mod schema;
mod service;
mod store;
mod subscribers;

use std::{num::NonZeroU64, sync::Arc, time::Duration};

use diesel_migrations::{EmbeddedMigrations, embed_migrations};
use kernel::{
    bus::{
        Bus, Subscriber,
        catalog::{ConsumerDoc, EventDoc},
    },
    db::{Db, Migrations},
};
use order_api::OrderService;
use serde::Deserialize;

pub use http::configure;
pub use payment_api as api;

const SQLITE: EmbeddedMigrations = embed_migrations!("../../migrations/payment/sqlite");
const POSTGRES: EmbeddedMigrations = embed_migrations!("../../migrations/payment/postgres");

/// The payment module's tables, for both backends.
pub static MIGRATIONS: Migrations = Migrations {
    module: "payment",
    sqlite: &SQLITE,
    postgres: &POSTGRES,
};

/// `[modules.payment]` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PaymentSettings {
    /// How long a charge may stay `processing` (or a refund `pending`) before reconciliation
    /// asks the gateway and settles it. Keep it well above the gateway's slowest answer; 0 is
    /// refused, since it would close the idempotency keys of charges still in flight.
    pub reconcile_after_secs: NonZeroU64,
}

impl Default for PaymentSettings {
    fn default() -> Self {
        Self {
            reconcile_after_secs: NonZeroU64::new(120).unwrap_or(NonZeroU64::MIN),
        }
    }
}

impl PaymentSettings {
    /// How old an open operation must be before reconciliation settles it.
    pub fn reconcile_after(&self) -> Duration {
        Duration::from_secs(self.reconcile_after_secs.get())
    }

    /// How often reconciliation runs: a quarter of the age, between half a second and 30 s.
    pub fn reconcile_every(&self) -> Duration {
        (self.reconcile_after() / 4).clamp(Duration::from_millis(500), Duration::from_secs(30))
    }
}

/// The payment module wired to its neighbours.
#[derive(Clone)]
pub struct PaymentModule {
    store: store::Store,
    orders: Arc<dyn OrderService>,
    gateway: Arc<dyn api::PaymentGateway>,
    refunder: refunder::Refunder,
    settings: PaymentSettings,
}

impl std::fmt::Debug for PaymentModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PaymentModule")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl PaymentModule {
    /// With the [`simulated_gateway`] on the bus's database.
    pub fn new(bus: Bus, orders: Arc<dyn OrderService>, settings: PaymentSettings) -> Self {
        let gateway = simulated_gateway(bus.db().clone());
        Self::with_gateway(bus, orders, gateway, settings)
    }

    /// Orders are read through `orders`, cards charged through `gateway`, and writes publish
    /// through `bus`.
    pub fn with_gateway(
        bus: Bus,
        orders: Arc<dyn OrderService>,
        gateway: Arc<dyn api::PaymentGateway>,
        settings: PaymentSettings,
    ) -> Self {
        let store = store::Store { bus };
        Self {
            refunder: refunder::Refunder::new(store.clone(), gateway.clone()),
            store,
            orders,
            gateway,
            settings,
        }
    }

    /// The in-process [`api::PaymentService`].
    pub fn service(&self) -> Arc<dyn api::PaymentService> {
        Arc::new(service::LocalPayments::new(
            self.store.clone(),
            self.orders.clone(),
            self.gateway.clone(),
            self.refunder.clone(),
        ))
    }

    /// The subscribers to register on the bus before the relay starts.
    pub fn subscribers(&self) -> Vec<Arc<dyn Subscriber>> {
        vec![subscribers::refund_cancelled_orders(self.refunder.clone())]
    }

    /// Starts reconciliation: once now, then every [`PaymentSettings::reconcile_every`],
    /// until `stop` changes.
    pub fn start_jobs(
        &self,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        self.reconciler().start(
            self.settings.reconcile_after(),
            self.settings.reconcile_every(),
            stop,
        )
    }

    /// One reconciliation pass over what has been open for longer than `age` (tests and
    /// tools; the job runs it with the configured age).
    ///
    /// # Errors
    /// The database could not be read.
    pub async fn reconcile(&self, age: Duration) -> Result<Reconciled, api::PaymentError> {
        self.reconciler().run(age, age).await
    }

    fn reconciler(&self) -> reconcile::Reconciler {
        reconcile::Reconciler {
            store: self.store.clone(),
            gateway: self.gateway.clone(),
            refunder: self.refunder.clone(),
        }
    }
}

pub use reconcile::Reconciled;

/// The deterministic gateway of development and tests, remembering what it did in its own
/// table of `db`: `4000000000000002` is declined (`card_declined`), `4000000000009995` has
/// `insufficient_funds`, every other valid card is captured; refunds always succeed.
pub fn simulated_gateway(db: Db) -> Arc<dyn api::PaymentGateway> {
    Arc::new(gateway::SimulatedGateway::new(db))
}

/// What [`PaymentModule::subscribers`] consume, for the event catalog.
pub fn consumers() -> Vec<ConsumerDoc> {
    subscribers::consumer_docs()
}

/// The events this module publishes, for the event catalog.
pub fn events() -> Vec<EventDoc> {
    api::events::catalog()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kernel::config::{AppEnv, Settings};

    #[test]
    fn reconciliation_age_comes_from_config_and_sets_the_pace() {
        let settings = Settings::defaults(AppEnv::Test).unwrap();
        let payment: PaymentSettings = settings.module("payment").unwrap();
        assert_eq!(payment.reconcile_after_secs.get(), 120);
        assert_eq!(payment.reconcile_every(), Duration::from_secs(30));
        let quick = PaymentSettings {
            reconcile_after_secs: NonZeroU64::new(2).unwrap(),
        };
        assert_eq!(quick.reconcile_every(), Duration::from_millis(500));
    }

    #[test]
    fn a_zero_reconciliation_age_is_refused_naming_the_section() {
        let mut settings = Settings::defaults(AppEnv::Test).unwrap();
        settings.modules.insert(
            "payment".into(),
            serde_json::json!({"reconcile_after_secs": 0}),
        );
        let error = settings.module::<PaymentSettings>("payment").unwrap_err();
        assert!(
            format!("{error:#}").contains("modules.payment"),
            "{error:#}"
        );
    }
}
