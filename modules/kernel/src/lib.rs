//! Tessera's shared kernel: configuration, the database pool and migrations runner,
//! problem+json errors, JWT auth, HTTP helpers, telemetry and the module contract
//! ([`module::Module`]). It holds no business rules;
//! modules depend on it and on each other's `-api` crates only.

pub mod auth;
pub mod bus;
#[cfg(feature = "client")]
pub mod client;
pub mod config;
pub mod db;
pub mod error;
pub mod http;
pub mod ids;
pub mod jobs;
pub mod metrics;
pub mod module;
pub mod money;
pub mod telemetry;
#[doc(hidden)]
pub mod testing;

/// Formats a UTC timestamp as RFC 3339 with microseconds, the precision both databases keep.
pub mod time {
    use chrono::{DateTime, NaiveDateTime, SubsecRound, Utc};

    /// Now, truncated to microseconds so a value reads back equal from either database.
    pub fn now() -> NaiveDateTime {
        Utc::now().naive_utc().trunc_subsecs(6)
    }

    pub fn to_utc(t: NaiveDateTime) -> DateTime<Utc> {
        t.and_utc()
    }
}
