//! The order module: orders and their state machine. It owns the `orders` and
//! `order_items` tables; it prices and reserves through [`product_api::ProductService`] and
//! learns about payments from `payment.*` events.

mod domain;
mod http;
mod saga;
mod schema;
mod service;
mod store;

use std::{sync::Arc, time::Duration};

use diesel_migrations::{EmbeddedMigrations, embed_migrations};
use kernel::{
    bus::{
        Bus, Subscriber,
        catalog::{ConsumerDoc, EventDoc},
    },
    db::Migrations,
};
use product_api::ProductService;
use serde::Deserialize;

pub use http::configure;
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
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OrderSettings {
    /// How long an order waits for payment before it is cancelled.
    pub payment_timeout_secs: u64,
    /// How often the expiry sweep runs.
    pub expiry_check_secs: u64,
    /// How old a placement must be before the sweep treats it as abandoned by a crash.
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

/// The order module wired to its neighbours.
#[derive(Clone)]
pub struct OrderModule {
    store: store::Store,
    products: Arc<dyn ProductService>,
    settings: OrderSettings,
}

impl std::fmt::Debug for OrderModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrderModule")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl OrderModule {
    pub fn new(bus: Bus, products: Arc<dyn ProductService>, settings: OrderSettings) -> Self {
        Self {
            store: store::Store { bus },
            products,
            settings,
        }
    }

    /// The in-process [`api::OrderService`].
    pub fn service(&self) -> Arc<dyn api::OrderService> {
        Arc::new(service::LocalOrders {
            store: self.store.clone(),
            products: self.products.clone(),
            payment_timeout: chrono::Duration::seconds(
                i64::try_from(self.settings.payment_timeout_secs).unwrap_or(i64::MAX / 1000),
            ),
        })
    }

    /// The subscribers to register on the bus.
    pub fn subscribers(&self) -> Vec<Arc<dyn Subscriber>> {
        saga::subscribers(self.store.clone())
    }

    /// Starts the expiry sweep; it stops when `stop` changes.
    pub fn start_jobs(
        &self,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let store = self.store.clone();
        let stuck = Duration::from_secs(self.settings.stuck_placement_secs);
        kernel::jobs::every(
            Duration::from_secs(self.settings.expiry_check_secs.max(1)),
            stop,
            move || {
                let store = store.clone();
                async move {
                    if let Err(e) = saga::sweep(&store, stuck).await {
                        tracing::warn!(error = ?e, "order expiry sweep failed");
                    }
                }
            },
        )
    }
}

/// The events this module publishes.
pub fn events() -> Vec<EventDoc> {
    api::events::catalog()
}

/// The events this module consumes.
pub fn consumers() -> Vec<ConsumerDoc> {
    saga::consumers()
}
