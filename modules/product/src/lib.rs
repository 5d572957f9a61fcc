//! The product module: catalog and inventory. It owns the `products`,
//! `product_reservations` and `product_reservation_lines` tables; other modules reach it only
//! through [`product_api::ProductService`].
//!
//! What it exposes to the binary: its [`MIGRATIONS`], a constructor for the trait object
//! ([`service`]) and [`configure`], which mounts its HTTP handlers.

mod cache;
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
use serde::Deserialize;

pub use http::configure;
pub use product_api as api;

const SQLITE: EmbeddedMigrations = embed_migrations!("../../migrations/product/sqlite");
const POSTGRES: EmbeddedMigrations = embed_migrations!("../../migrations/product/postgres");

/// The product module's tables, for both backends.
pub static MIGRATIONS: Migrations = Migrations {
    module: "product",
    sqlite: &SQLITE,
    postgres: &POSTGRES,
};

/// `[modules.product]` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProductSettings {
    /// `product.stock_low` is published when available stock falls to or below this.
    pub stock_low_threshold: i64,
    /// How long `GET /products/{id}` answers from memory, in milliseconds; 0 turns the read
    /// cache off. This process's own writes show at once; writes of other processes on the
    /// same database (replicas, split deployments) after at most this long.
    pub cache_ttl_ms: u64,
    /// At most this many products are held in the read cache.
    pub cache_capacity: usize,
}

impl Default for ProductSettings {
    fn default() -> Self {
        Self {
            stock_low_threshold: 5,
            cache_ttl_ms: 1000,
            cache_capacity: 10_000,
        }
    }
}

fn store(bus: Bus, settings: &ProductSettings) -> store::Store {
    let cache = cache::ReadCache::shared(
        &bus,
        Duration::from_millis(settings.cache_ttl_ms),
        settings.cache_capacity,
    );
    store::Store {
        bus,
        stock_low_threshold: settings.stock_low_threshold,
        cache,
    }
}

/// The in-process [`api::ProductService`]; its writes publish through `bus`. It shares the
/// read cache of `GET /products/{id}` with the [`subscribers`] made for the same `bus`.
pub fn service(bus: Bus, settings: &ProductSettings) -> Arc<dyn api::ProductService> {
    Arc::new(service::LocalProducts::new(store(bus, settings)))
}

/// The subscribers to register on the bus: order events move reservations (and invalidate
/// the read cache of the [`service`] made for the same `bus`).
pub fn subscribers(bus: Bus, settings: &ProductSettings) -> Vec<Arc<dyn Subscriber>> {
    saga::subscribers(store(bus, settings))
}

/// The events this module consumes.
pub fn consumers() -> Vec<ConsumerDoc> {
    saga::consumers()
}

/// The events this module publishes, for the event catalog.
pub fn events() -> Vec<EventDoc> {
    api::events::catalog()
}
