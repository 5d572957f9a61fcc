//! The product module: catalog and inventory. It owns the `products`,
//! `product_reservations` and `product_reservation_lines` tables; other modules reach it only
//! through [`product_api::ProductService`].
//!
//! [`ProductModule`] is what the binary plugs in (see [`kernel::module::Module`]).

mod cache;
mod domain;
mod http;
mod schema;
mod service;
mod store;
mod subscribers;

use std::{sync::Arc, time::Duration};

use actix_web::web;
use diesel_migrations::{EmbeddedMigrations, embed_migrations};
use kernel::{
    bus::{
        Subscriber,
        catalog::{ConsumerDoc, EventDoc},
    },
    db::Migrations,
    module::{Context, Module, Tag},
};
use product_api::ProductService;
use serde::{Deserialize, Serialize};
use utoipa_actix_web::service_config::ServiceConfig;

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
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
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

/// The product module, built: one read cache of `GET /products/{id}`, shared by its
/// service, its subscribers (a saga's write invalidates it) and its handlers.
#[derive(Debug, Clone)]
pub struct ProductModule {
    store: store::Store,
}

impl Module for ProductModule {
    const NAME: &'static str = "product";
    const MIGRATIONS: &'static Migrations = &MIGRATIONS;
    const TAGS: &'static [Tag] = &[Tag {
        name: http::TAG,
        description: "Catalog and inventory",
    }];
    type Settings = ProductSettings;
    type Neighbours = ();
    type Service = dyn ProductService;

    fn mount(cfg: &mut ServiceConfig<'_>) {
        http::configure(cfg);
    }

    fn events() -> Vec<EventDoc> {
        api::events::catalog()
    }

    fn consumers() -> Vec<ConsumerDoc> {
        subscribers::consumers()
    }

    fn new(context: Context<ProductSettings>, (): ()) -> anyhow::Result<Self> {
        let Context { bus, settings } = context;
        // Its in-process service runs on the bus's database, so it joins the units of work
        // other modules open there (order places an order and its reservation in one commit).
        bus.db().admit(Self::NAME);
        let cache = cache::ReadCache::new(
            Duration::from_millis(settings.cache_ttl_ms),
            settings.cache_capacity,
        );
        Ok(Self {
            store: store::Store {
                bus,
                stock_low_threshold: settings.stock_low_threshold,
                cache,
            },
        })
    }

    fn service(&self) -> Arc<dyn ProductService> {
        Arc::new(service::LocalProducts::new(self.store.clone()))
    }

    /// The service and the read cache, for the handlers.
    fn routes(&self, cfg: &mut ServiceConfig<'_>) {
        cfg.app_data(web::Data::from(self.service()))
            .app_data(web::Data::new(self.store.cache.clone()));
        http::configure(cfg);
    }

    /// Order events move reservations (and invalidate the read cache).
    fn subscribers(&self) -> Vec<Arc<dyn Subscriber>> {
        subscribers::subscribers(self.store.clone())
    }
}
