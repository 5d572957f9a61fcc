//! The payment module: charges an order's total to a card through a [`api::PaymentGateway`],
//! refunds, and refunds cancelled orders. It owns the `payments` and `payment_refunds` tables (brand and
//! last four digits only, never a card number or CVC) and the simulated gateway's table; other modules reach it only through
//! [`api::PaymentService`] and its events. It reads orders through
//! [`order_api::OrderService`], never the order module's tables.
//!
//! [`PaymentModule`] is what the binary plugs in (see [`kernel::module::Module`]); tests may
//! build it with their own gateway ([`PaymentModule::with_gateway`]).

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
        Subscriber,
        catalog::{ConsumerDoc, EventDoc},
    },
    db::{Db, Migrations},
    module::{Context, Job, Module, Tag},
};
use order_api::OrderService;
use payment_api::PaymentService;
use serde::{Deserialize, Serialize};
use utoipa_actix_web::service_config::ServiceConfig;

pub use payment_api as api;
pub use reconcile::Reconciled;

const SQLITE: EmbeddedMigrations = embed_migrations!("../../migrations/payment/sqlite");
const POSTGRES: EmbeddedMigrations = embed_migrations!("../../migrations/payment/postgres");

/// The payment module's tables, for both backends.
pub static MIGRATIONS: Migrations = Migrations {
    module: "payment",
    sqlite: &SQLITE,
    postgres: &POSTGRES,
};

/// `[modules.payment]` settings.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct PaymentSettings {
    /// How long a charge may stay `processing` (or a refund `pending`) before reconciliation
    /// asks the gateway and settles it. Keep it well above the gateway's slowest answer; 0 is
    /// refused, since it would close the idempotency keys of charges still in flight.
    #[schema(value_type = u64, minimum = 1)]
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

kernel::neighbours! {
    /// The other modules' traits the payment module calls.
    pub struct PaymentNeighbours {
        /// Reads the order to charge: its total and its status.
        pub orders: dyn OrderService,
    }
}

/// The payment module, built: its store, gateway and refunder, and its neighbours.
#[derive(Clone)]
pub struct PaymentModule {
    store: store::Store,
    neighbours: PaymentNeighbours,
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

impl Module for PaymentModule {
    const NAME: &'static str = "payment";
    const MIGRATIONS: &'static Migrations = &MIGRATIONS;
    const TAGS: &'static [Tag] = &[Tag {
        name: http::TAG,
        description: "Card payments and refunds",
    }];
    type Settings = PaymentSettings;
    type Neighbours = PaymentNeighbours;
    type Service = dyn PaymentService;

    fn mount(cfg: &mut ServiceConfig<'_>) {
        http::configure(cfg);
    }

    fn events() -> Vec<EventDoc> {
        api::events::catalog()
    }

    fn consumers() -> Vec<ConsumerDoc> {
        subscribers::consumers()
    }

    /// With the [`simulated_gateway`] on the bus's database.
    fn new(
        context: Context<PaymentSettings>,
        neighbours: PaymentNeighbours,
    ) -> anyhow::Result<Self> {
        let gateway = simulated_gateway(context.bus.db().clone());
        Ok(Self::with_gateway(context, neighbours, gateway))
    }

    fn service(&self) -> Arc<dyn PaymentService> {
        Arc::new(service::LocalPayments::new(
            self.store.clone(),
            self.neighbours.orders.clone(),
            self.gateway.clone(),
            self.refunder.clone(),
        ))
    }

    fn subscribers(&self) -> Vec<Arc<dyn Subscriber>> {
        vec![subscribers::refund_cancelled_orders(self.refunder.clone())]
    }

    /// Reconciliation: once now, then every [`PaymentSettings::reconcile_every`].
    fn jobs(&self) -> Vec<Job> {
        let (reconciler, settings) = (self.reconciler(), self.settings.clone());
        vec![Box::new(move |stop| {
            reconciler.start(settings.reconcile_after(), settings.reconcile_every(), stop)
        })]
    }
}

impl PaymentModule {
    /// [`Module::new`] with cards charged through `gateway`.
    pub fn with_gateway(
        context: Context<PaymentSettings>,
        neighbours: PaymentNeighbours,
        gateway: Arc<dyn api::PaymentGateway>,
    ) -> Self {
        let store = store::Store { bus: context.bus };
        Self {
            refunder: refunder::Refunder::new(store.clone(), gateway.clone()),
            store,
            neighbours,
            gateway,
            settings: context.settings,
        }
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

/// The deterministic gateway of development and tests, remembering what it did in its own
/// table of `db`: `4000000000000002` is declined (`card_declined`), `4000000000009995` has
/// `insufficient_funds`, every other valid card is captured; refunds always succeed.
pub fn simulated_gateway(db: Db) -> Arc<dyn api::PaymentGateway> {
    Arc::new(gateway::SimulatedGateway::new(db))
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
