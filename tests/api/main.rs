//! Black-box tests of the composed application over HTTP: each test starts the real app on
//! port 0 with a fresh database (SQLite always; PostgreSQL too when
//! `TESSERA_TEST_DATABASE_URL` is set).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;
mod load;
mod probes;
mod process;
mod spec;
mod spec_tour;
mod walk;

mod auth;
mod books;
mod broker_outage;
mod browser;
mod cli;
mod config_keys;
mod console;
mod contention;
mod contracts;
mod crash;
mod errors;
mod events;
mod health;
mod idempotency;
mod idempotency_meaning;
mod limits;
mod metrics;
mod migrations;
mod module_map;
mod not_yours;
mod openapi;
mod orders;
mod otlp;
mod patients;
mod payment_faults;
mod payments;
mod problem_codes;
mod products;
mod readme;
mod replicas;
mod shortage;
mod small_truths;
mod split;
mod split_hygiene;
mod sweep;
mod validation_report;
