//! The order module: orders and their state machine. It owns the `orders` and
//! `order_items` tables; it prices and reserves through [`product_api::ProductService`] and
//! learns about payments from `payment.*` events.
//!
//! [`OrderModule`] is what the binary plugs in (see [`kernel::module::Module`]).

mod domain;
mod expiry;
mod http;
mod placing;
mod schema;
mod service;
mod store;
mod subscribers;

use std::sync::Arc;

use diesel_migrations::{EmbeddedMigrations, embed_migrations};
use kernel::{
    bus::{
        Subscriber,
        catalog::{ConsumerDoc, EventDoc},
    },
    db::Migrations,
    module::{Context, Job, Module, Tag},
};
use order_api::OrderService;
use product_api::ProductService;
use serde::{Deserialize, Serialize};
use utoipa_actix_web::service_config::ServiceConfig;

pub use order_api as api;

const SQLITE: EmbeddedMigrations = embed_migrations!("../../migrations/order/sqlite");
const POSTGRES: EmbeddedMigrations = embed_migrations!("../../migrations/order/postgres");

/// The order module's tables, for both backends.
pub static MIGRATIONS: Migrations = Migrations {
    module: "order",
    sqlite: &SQLITE,
    postgres: &POSTGRES,
};

/// `[modules.order]` settings.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct OrderSettings {
    /// Seconds an unpaid order waits for payment; then the expiry sweep cancels it and its
    /// stock is released.
    pub payment_timeout_secs: u64,
    /// Seconds between two runs of the expiry sweep.
    pub expiry_check_secs: u64,
    /// Seconds after which the sweep treats a placement that never finished reserving as
    /// abandoned by a crash.
    pub stuck_placement_secs: u64,
}

impl Default for OrderSettings {
    fn default() -> Self {
        Self {
            payment_timeout_secs: 15 * 60,
            expiry_check_secs: 30,
            stuck_placement_secs: 60,
        }
    }
}

kernel::neighbours! {
    /// The other modules' traits the order module calls.
    pub struct OrderNeighbours {
        /// Prices each line from the catalog and reserves its stock, all lines or none.
        pub products: dyn ProductService,
    }
}

/// The order module, built: its store, its neighbours and its settings.
#[derive(Clone)]
pub struct OrderModule {
    store: store::Store,
    neighbours: OrderNeighbours,
    settings: OrderSettings,
}

impl std::fmt::Debug for OrderModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrderModule")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Module for OrderModule {
    const NAME: &'static str = "order";
    const MIGRATIONS: &'static Migrations = &MIGRATIONS;
    const TAGS: &'static [Tag] = &[Tag {
        name: http::TAG,
        description: "Orders: place, pay (see payment), ship, deliver, cancel",
    }];
    type Settings = OrderSettings;
    type Neighbours = OrderNeighbours;
    type Service = dyn OrderService;

    fn mount(cfg: &mut ServiceConfig<'_>) {
        http::configure(cfg);
    }

    fn events() -> Vec<EventDoc> {
        api::events::catalog()
    }

    fn consumers() -> Vec<ConsumerDoc> {
        subscribers::consumers()
    }

    fn new(context: Context<OrderSettings>, neighbours: OrderNeighbours) -> anyhow::Result<Self> {
        Ok(Self {
            store: store::Store { bus: context.bus },
            neighbours,
            settings: context.settings,
        })
    }

    fn service(&self) -> Arc<dyn OrderService> {
        Arc::new(service::LocalOrders {
            store: self.store.clone(),
            products: self.neighbours.products.clone(),
            payment_timeout: chrono::Duration::seconds(
                i64::try_from(self.settings.payment_timeout_secs).unwrap_or(i64::MAX / 1000),
            ),
        })
    }

    fn subscribers(&self) -> Vec<Arc<dyn Subscriber>> {
        subscribers::subscribers(self.store.clone())
    }

    /// The expiry sweep.
    fn jobs(&self) -> Vec<Job> {
        let (store, settings) = (self.store.clone(), self.settings.clone());
        vec![Box::new(move |stop| expiry::start(store, &settings, stop))]
    }
}
