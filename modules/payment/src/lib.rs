//! The payment module: charges an order's total to a card through a [`api::PaymentGateway`],
//! refunds, and refunds cancelled orders. It owns the `payments` table (brand and last four
//! digits only, never a card number or CVC); other modules reach it only through
//! [`api::PaymentService`] and its events. It reads orders through
//! [`order_api::OrderService`], never the order module's tables.
//!
//! What it exposes to the binary: its [`MIGRATIONS`], a constructor for the trait object
//! ([`service`]), the [`simulated_gateway`], its bus [`subscribers`] (with [`consumers`]
//! and [`events`] for the event catalog) and [`configure`], which mounts its HTTP handlers.

mod domain;
mod gateway;
mod http;
mod schema;
mod service;
mod store;
mod subscribers;

use std::sync::Arc;

use diesel_migrations::{EmbeddedMigrations, embed_migrations};
use kernel::{
    bus::{
        Bus, Subscriber,
        catalog::{ConsumerDoc, EventDoc},
    },
    db::Migrations,
};
use order_api::OrderService;

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

/// The in-process [`api::PaymentService`]: orders are read through `orders`, cards charged
/// through `gateway`, and its writes publish through `bus`.
pub fn service(
    bus: Bus,
    orders: Arc<dyn OrderService>,
    gateway: Arc<dyn api::PaymentGateway>,
) -> Arc<dyn api::PaymentService> {
    Arc::new(service::LocalPayments::new(
        store::Store { bus },
        orders,
        gateway,
    ))
}

/// The deterministic gateway of development and tests: `4000000000000002` is declined
/// (`card_declined`), `4000000000009995` has `insufficient_funds`, every other valid card is
/// captured; refunds always succeed.
pub fn simulated_gateway() -> Arc<dyn api::PaymentGateway> {
    Arc::new(gateway::SimulatedGateway)
}

/// The module's bus subscribers, to register before the relay starts. Give them the same
/// gateway as [`service`]: they refund through it.
pub fn subscribers(gateway: Arc<dyn api::PaymentGateway>) -> Vec<Arc<dyn Subscriber>> {
    vec![subscribers::refund_cancelled_orders(gateway)]
}

/// What [`subscribers`] consume, for the event catalog.
pub fn consumers() -> Vec<ConsumerDoc> {
    subscribers::consumer_docs()
}

/// The events this module publishes, for the event catalog.
pub fn events() -> Vec<EventDoc> {
    api::events::catalog()
}
