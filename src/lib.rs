//! Composition of the Tessera binary: which modules are built in (cargo features, each
//! listed once in `modules.rs`), how they are wired to the database and to each other, and
//! the HTTP application around them.
//!
//! Tests start the same [`Application`] on port 0 with a fresh database each.

mod app;
mod config_doc;
mod console;
mod docs;
mod doctor;
mod health;
mod inspect;
mod memory;
mod module_map;
mod modules;
mod wiring;

use kernel::{config::Settings, db::Db};

pub use app::{Application, Extras};
pub use config_doc::configuration_markdown;
pub use docs::{asyncapi_json, openapi, openapi_json};
pub use doctor::doctor;
pub use inspect::{Exchange, Inspector};

/// The module map of this build (Markdown with a Mermaid flowchart: trait calls and event
/// flows between the built-in modules), as committed in `docs/modules.md`.
pub fn module_map_markdown() -> String {
    module_map::module_map()
}

/// The modules compiled into this binary, in start-up order.
pub fn module_names() -> Vec<&'static str> {
    modules::names()
}

/// Opens the database and applies the built-in modules' pending migrations.
///
/// # Errors
/// Connection or migration failures, naming the cause.
pub fn connect_and_migrate(settings: &Settings) -> anyhow::Result<(Db, Vec<String>)> {
    let db = Db::connect(&settings.database)?;
    let applied = db.migrate(&modules::migrations())?;
    Ok((db, applied))
}
