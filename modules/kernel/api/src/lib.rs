//! The light core every module's contract (`-api` crate) builds on: typed ids, money,
//! pagination, the event trait, and the error and caller types that cross a module's
//! boundary. No database, broker or web framework: an `-api` crate, and anything that only
//! speaks a module's contract, stays small. The kernel re-exports all of it at its own paths
//! (`kernel::error::ApiError`, `kernel::money::Money`, …) and adds the runtime.
//!
//! Feature `actix` (the kernel's): [`error::ApiError`] as an actix-web response and
//! [`auth::Principal`] as an extractor.

pub mod auth;
pub mod error;
pub mod event;
pub mod ids;
pub mod money;
pub mod page;
pub mod text;
pub mod version;

/// Timestamps at the precision both databases keep.
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
