//! Tessera's shared kernel: configuration, the database pool and migrations runner,
//! problem+json errors, JWT auth, HTTP helpers, telemetry and the module contract
//! ([`module::Module`]). It holds no business rules;
//! modules depend on it and on each other's `-api` crates only.
//!
//! The data types a module's contract needs (typed ids, money, pagination, the event trait,
//! the error and caller types) live in the light [`kernel_api`] crate, so `-api` crates build
//! without the runtime; they are re-exported here at the paths the modules use.

pub mod auth;
pub mod bus;
pub mod canonical;
#[cfg(feature = "client")]
pub mod client;
pub mod config;
pub mod db;
pub mod error;
pub mod http;
pub mod jobs;
pub mod metrics;
pub mod module;
pub mod telemetry;
#[doc(hidden)]
pub mod testing;

pub use kernel_api as api;
pub use kernel_api::{event, money, time, typed_id, version};

#[cfg(test)]
mod tests {
    crate::typed_id!(
        /// The macro through the kernel's re-export, as implementation crates reach it.
        WidgetId
    );

    #[test]
    fn a_typed_id_made_through_the_kernel_reads_back() {
        let id = WidgetId::new();
        assert_eq!(id.to_string().parse::<WidgetId>().unwrap(), id);
        assert_eq!(serde_json::to_value(id).unwrap(), id.0.to_string());
    }
}
