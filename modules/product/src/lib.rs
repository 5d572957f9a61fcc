//! The product module: catalog and inventory. It owns the `products`,
//! `product_reservations` and `product_reservation_lines` tables; other modules reach it only
//! through [`product_api::ProductService`].
//!
//! What it exposes to the binary: its [`MIGRATIONS`], a constructor for the trait object
//! ([`service`]) and [`configure`], which mounts its HTTP handlers.

mod domain;
mod http;
mod schema;
mod service;
mod store;

use std::sync::Arc;

use diesel_migrations::{EmbeddedMigrations, embed_migrations};
use kernel::db::{Db, Migrations};

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

/// The in-process [`api::ProductService`] over `db`.
pub fn service(db: Db) -> Arc<dyn api::ProductService> {
    Arc::new(service::LocalProducts::new(db))
}
