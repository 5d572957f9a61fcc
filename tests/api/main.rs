//! Black-box tests of the composed application over HTTP: each test starts the real app on
//! port 0 with a fresh database (SQLite always; PostgreSQL too when
//! `TESSERA_TEST_DATABASE_URL` is set).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;

mod auth;
mod broker_outage;
mod browser;
mod cli;
mod contracts;
mod errors;
mod events;
mod health;
mod limits;
mod metrics;
mod module_map;
mod openapi;
mod orders;
mod patients;
mod payments;
mod products;
mod split;
