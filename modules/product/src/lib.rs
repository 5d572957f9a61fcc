//! The product module: catalog and inventory. It owns the `products`,
//! `product_reservations` and `product_reservation_lines` tables; other modules reach it only
//! through [`product_api::ProductService`].
//!
//! What it exposes to the binary: its [`MIGRATIONS`], a constructor for the trait object
//! ([`service`]) and [`configure`], which mounts its HTTP handlers.

mod domain;
mod http;
mod saga;
mod schema;
mod service;
mod store;

use std::sync::Arc;

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
}

impl Default for ProductSettings {
    fn default() -> Self {
        Self {
            stock_low_threshold: 5,
        }
    }
}

fn store(bus: Bus, settings: &ProductSettings) -> store::Store {
    store::Store {
        bus,
        stock_low_threshold: settings.stock_low_threshold,
    }
}

/// The in-process [`api::ProductService`]; its writes publish through `bus`.
pub fn service(bus: Bus, settings: &ProductSettings) -> Arc<dyn api::ProductService> {
    Arc::new(service::LocalProducts::new(store(bus, settings)))
}

/// The subscribers to register on the bus: order events move reservations.
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
