//! Black-box tests of the composed application over HTTP: each test starts the real app on
//! port 0 with a fresh database (SQLite always; PostgreSQL too when
//! `TESSERA_TEST_DATABASE_URL` is set).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;
mod load;
mod process;

mod auth;
mod books;
mod broker_outage;
mod browser;
mod cli;
mod contention;
mod contracts;
mod crash;
mod errors;
mod events;
mod health;
mod idempotency;
mod limits;
mod metrics;
mod migrations;
mod module_map;
mod openapi;
mod orders;
mod patients;
mod payment_faults;
mod payments;
mod problem_codes;
mod products;
mod replicas;
mod shortage;
mod split;
mod sweep;
mod validation_report;
