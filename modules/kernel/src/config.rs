//! Layered settings: the embedded `config/default.toml`, then `config/{TESSERA_ENV}.toml`
//! from the working directory, then `TESSERA__SECTION__KEY` environment variables.
//!
//! Loading never panics: a bad value becomes an error naming the key, and rules that only
//! production enforces (no development JWT secret) are checked in [`Settings::validate`].
//!
//! One concern a file: the environment (`env`), the sections (`sections`), and loading with
//! its cross-key rules (`load`); this file holds [`Settings`] and the module sections.

use std::collections::BTreeMap;

use anyhow::Context;
use serde::{Deserialize, de::DeserializeOwned};
use utoipa::ToSchema;

mod doc;
mod env;
mod load;
mod sections;

pub use doc::{KeyDoc, keys_of};
pub use env::AppEnv;
pub use load::DEFAULT_CONFIG;
pub use sections::{
    AuthSettings, BusSettings, DatabaseSettings, HttpSettings, LogFormat, LogSettings,
    ServerSettings,
};

/// Everything the process reads from configuration. Its schema (the sections' doc comments)
/// documents the kernel's keys: [`Settings::kernel_keys`].
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(skip)]
    pub env: AppEnv,
    #[schema(inline)]
    pub server: ServerSettings,
    #[schema(inline)]
    pub database: DatabaseSettings,
    #[schema(inline)]
    pub auth: AuthSettings,
    #[schema(inline)]
    pub http: HttpSettings,
    #[schema(inline)]
    pub log: LogSettings,
    #[schema(inline)]
    pub bus: BusSettings,
    /// `[modules.<name>]` sections, read by each module with [`Settings::module`] (each
    /// module documents its own keys).
    #[serde(default)]
    #[schema(ignore)]
    pub modules: BTreeMap<String, serde_json::Value>,
}

impl Settings {
    /// The `[modules.<name>]` section as the module's own settings type (absent → `{}`, so
    /// a type with defaults needs no section at all).
    ///
    /// # Errors
    /// A message naming `modules.<name>` when the section does not fit `T`.
    pub fn module<T: DeserializeOwned>(&self, name: &str) -> anyhow::Result<T> {
        let mut section = self
            .modules
            .get(name)
            .cloned()
            .unwrap_or_else(|| serde_json::Value::Object(Default::default()));
        // `url` belongs to the binary's wiring (see `neighbour_url`), not to the module.
        if let Some(map) = section.as_object_mut() {
            map.remove("url");
        }
        serde_json::from_value(section)
            .with_context(|| format!("invalid configuration: modules.{name}"))
    }

    /// `modules.<name>.url`: where a module that is not built into this binary is served
    /// (`TESSERA__MODULES__<NAME>__URL`), for split deployments.
    pub fn neighbour_url(&self, name: &str) -> Option<String> {
        self.modules
            .get(name)
            .and_then(|section| section.get("url"))
            .and_then(|url| url.as_str())
            .map(|url| url.trim_end_matches('/').to_owned())
            .filter(|url| !url.is_empty())
    }
}
