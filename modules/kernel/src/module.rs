//! The module contract: what every Tessera module tells the binary, and how the binary builds
//! it.
//!
//! A module is two crates, `<m>-api` (its trait, DTOs and events) and `<m>` (the
//! implementation), whose `XModule` implements [`Module`]. The binary lists each module once,
//! as `XModule::plug()`: a [`Plug`] answers what can be known without a database or a running
//! module (name, migrations, OpenAPI tags and handlers, events published and consumed, the
//! neighbours it calls) and builds the module when the server starts. Built, a module is a
//! [`Live`]: its routes (with the app data its handlers read), its bus subscribers and its
//! background jobs.
//!
//! Every module is built the same way, `XModule::new(context, neighbours)`: the [`Context`]
//! (bus and settings section) and a struct of the other modules' traits it calls, declared
//! with [`neighbours!`](crate::neighbours) (see [`neighbour`]).

pub mod neighbour;

use std::{
    any::{Any, TypeId},
    sync::Arc,
};

use actix_web::web;
use serde::{Serialize, de::DeserializeOwned};
use tokio::{sync::watch, task::JoinHandle};
use utoipa_actix_web::service_config::ServiceConfig;

pub use neighbour::{Call, Neighbour, Neighbours, Resolve, Wanted};

use crate::{
    bus::{
        Bus, Subscriber,
        catalog::{ConsumerDoc, EventDoc},
    },
    config::{AppEnv, KeyDoc, Settings, keys_of},
    db::Migrations,
};

/// A background job, started when the server starts; it ends when the receiver changes.
pub type Job = Box<dyn FnOnce(watch::Receiver<bool>) -> JoinHandle<()> + Send>;

/// An OpenAPI tag a module's operations use; the binary lists them in module order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tag {
    pub name: &'static str,
    pub description: &'static str,
}

/// What a module is built from, besides its neighbours.
#[derive(Debug, Clone)]
pub struct Context<S> {
    /// The bus its writes publish through (and the database behind it).
    pub bus: Bus,
    /// Its `[modules.<name>]` section.
    pub settings: S,
}

/// A module of Tessera. The associated consts and functions are static facts (the binary
/// prints the OpenAPI document, the event catalog and the module map, and migrates, from them
/// alone); the methods belong to a module built with [`Module::new`].
pub trait Module: Sized + Send + Sync + 'static {
    /// Its name: the cargo feature, the `[modules.<name>]` section, the event source.
    const NAME: &'static str;
    /// Its tables, for both backends.
    const MIGRATIONS: &'static Migrations;
    /// The OpenAPI tags of its operations (name and description), in the order shown.
    const TAGS: &'static [Tag];
    /// Path prefixes whose request and response bodies hold personal data: the idempotency
    /// store (which keeps bodies in plaintext) must not see them.
    const PRIVATE_PATHS: &'static [&'static str] = &[];
    /// Its `[modules.<name>]` section (`url` aside, which is the binary's). Serialize and
    /// `ToSchema` document it: each field's doc comment and its default are its entry in
    /// `docs/configuration.md` (`tessera config-keys`); mark a secret
    /// `#[schema(format = Password)]`.
    type Settings: DeserializeOwned + Serialize + utoipa::ToSchema;
    /// The other modules' traits it calls, declared with [`neighbours!`](crate::neighbours);
    /// `()` for none.
    type Neighbours: Neighbours;
    /// The trait other modules and its own handlers call (`dyn ProductService`).
    type Service: ?Sized + Send + Sync + 'static;

    /// Mounts its handlers (the binary puts them under `/api/v1`). Documentation uses this
    /// alone; a running module mounts through [`Module::routes`].
    fn mount(cfg: &mut ServiceConfig<'_>);

    /// The events it publishes, for the event catalog.
    fn events() -> Vec<EventDoc>;

    /// What its [`Module::subscribers`] consume, for the event catalog.
    fn consumers() -> Vec<ConsumerDoc> {
        Vec::new()
    }

    /// Start-up checks of its settings for `env` (e.g. no development keys in production),
    /// run before it is built and by `tessera doctor`.
    ///
    /// # Errors
    /// Why it must not start, in words an operator can act on.
    fn check(_settings: &Self::Settings, _env: AppEnv) -> anyhow::Result<()> {
        Ok(())
    }

    /// Builds the module (its migrations have run).
    ///
    /// # Errors
    /// Settings it cannot use, or a database it cannot read.
    fn new(context: Context<Self::Settings>, neighbours: Self::Neighbours) -> anyhow::Result<Self>;

    /// Its in-process service.
    fn service(&self) -> Arc<Self::Service>;

    /// Registers the app data its handlers read (at least `web::Data<Self::Service>`) and
    /// mounts them.
    fn routes(&self, cfg: &mut ServiceConfig<'_>) {
        cfg.app_data(web::Data::from(self.service()));
        Self::mount(cfg);
    }

    /// The subscribers to register on the bus before the relay starts.
    fn subscribers(&self) -> Vec<Arc<dyn Subscriber>> {
        Vec::new()
    }

    /// Its background jobs.
    fn jobs(&self) -> Vec<Job> {
        Vec::new()
    }

    /// The binary's handle on this module.
    fn plug() -> Plug {
        Plug::of::<Self>()
    }
}

/// A built module, as the binary holds it.
pub trait Live: Send + Sync {
    fn name(&self) -> &'static str;
    /// See [`Module::routes`].
    fn routes(&self, cfg: &mut ServiceConfig<'_>);
    /// See [`Module::subscribers`].
    fn subscribers(&self) -> Vec<Arc<dyn Subscriber>>;
    /// See [`Module::jobs`].
    fn jobs(&self) -> Vec<Job>;
    /// Its service for the modules built after it: the `TypeId` of [`Module::Service`] and an
    /// `Arc<Module::Service>` as `Any`.
    fn provides(&self) -> (TypeId, Arc<dyn Any + Send + Sync>);
}

impl<M: Module> Live for M {
    fn name(&self) -> &'static str {
        M::NAME
    }

    fn routes(&self, cfg: &mut ServiceConfig<'_>) {
        Module::routes(self, cfg);
    }

    fn subscribers(&self) -> Vec<Arc<dyn Subscriber>> {
        Module::subscribers(self)
    }

    fn jobs(&self) -> Vec<Job> {
        Module::jobs(self)
    }

    fn provides(&self) -> (TypeId, Arc<dyn Any + Send + Sync>) {
        (TypeId::of::<M::Service>(), Arc::new(self.service()))
    }
}

/// How a [`Plug`] builds its module.
type BuildFn = fn(&Settings, &Bus, &mut dyn Resolve) -> anyhow::Result<Arc<dyn Live>>;

/// One module in the binary's list: its static facts, and how to build it.
#[derive(Clone, Copy)]
pub struct Plug {
    name: &'static str,
    migrations: &'static Migrations,
    tags: &'static [Tag],
    mount: fn(&mut ServiceConfig<'_>),
    events: fn() -> Vec<EventDoc>,
    consumers: fn() -> Vec<ConsumerDoc>,
    calls: fn() -> Vec<Call>,
    wanted: fn(&'static str) -> Vec<Wanted>,
    private_paths: &'static [&'static str],
    check: fn(&Settings) -> anyhow::Result<()>,
    config_keys: fn(&Settings) -> anyhow::Result<Vec<KeyDoc>>,
    build: BuildFn,
}

impl std::fmt::Debug for Plug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plug")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Plug {
    pub fn of<M: Module>() -> Self {
        Self {
            name: M::NAME,
            migrations: M::MIGRATIONS,
            tags: M::TAGS,
            mount: M::mount,
            events: M::events,
            consumers: M::consumers,
            calls: <M::Neighbours as Neighbours>::calls,
            wanted: <M::Neighbours as Neighbours>::wanted,
            private_paths: M::PRIVATE_PATHS,
            check: check::<M>,
            config_keys: config_keys::<M>,
            build: build::<M>,
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn migrations(&self) -> &'static Migrations {
        self.migrations
    }

    pub fn tags(&self) -> &'static [Tag] {
        self.tags
    }

    /// Mounts its handlers without app data (for documentation).
    pub fn mount(&self, cfg: &mut ServiceConfig<'_>) {
        (self.mount)(cfg);
    }

    pub fn events(&self) -> Vec<EventDoc> {
        (self.events)()
    }

    pub fn consumers(&self) -> Vec<ConsumerDoc> {
        (self.consumers)()
    }

    /// The neighbours it calls, from the types of its neighbour struct.
    pub fn calls(&self) -> Vec<Call> {
        (self.calls)()
    }

    /// The neighbours it asks the binary for, checked before the database is touched.
    pub fn wanted(&self) -> Vec<Wanted> {
        (self.wanted)(self.name)
    }

    pub fn private_paths(&self) -> &'static [&'static str] {
        self.private_paths
    }

    /// Reads its settings section and runs its start-up checks for `settings.env`.
    ///
    /// # Errors
    /// An invalid section (named), or a failed check.
    pub fn check(&self, settings: &Settings) -> anyhow::Result<()> {
        (self.check)(settings)
    }

    /// Its configuration keys (`modules.<name>.*`, `url` aside), with their values in
    /// `settings` as defaults.
    ///
    /// # Errors
    /// An invalid section (named).
    pub fn config_keys(&self, settings: &Settings) -> anyhow::Result<Vec<KeyDoc>> {
        (self.config_keys)(settings)
    }

    /// Checks and builds it, its neighbours found through `resolver`.
    ///
    /// # Errors
    /// As [`Plug::check`], a neighbour that cannot be found, or [`Module::new`]'s.
    pub fn build(
        &self,
        settings: &Settings,
        bus: &Bus,
        resolver: &mut dyn Resolve,
    ) -> anyhow::Result<Arc<dyn Live>> {
        (self.build)(settings, bus, resolver)
    }
}

fn check<M: Module>(settings: &Settings) -> anyhow::Result<()> {
    M::check(&settings.module(M::NAME)?, settings.env)
}

fn config_keys<M: Module>(settings: &Settings) -> anyhow::Result<Vec<KeyDoc>> {
    let section: M::Settings = settings.module(M::NAME)?;
    let defaults = serde_json::to_value(&section)?;
    Ok(keys_of(
        &format!("modules.{}", M::NAME),
        &<M::Settings as utoipa::PartialSchema>::schema(),
        &defaults,
    ))
}

fn build<M: Module>(
    settings: &Settings,
    bus: &Bus,
    resolver: &mut dyn Resolve,
) -> anyhow::Result<Arc<dyn Live>> {
    let section: M::Settings = settings.module(M::NAME)?;
    M::check(&section, settings.env)?;
    let neighbours = <M::Neighbours as Neighbours>::resolve(M::NAME, resolver)?;
    let context = Context {
        bus: bus.clone(),
        settings: section,
    };
    Ok(Arc::new(M::new(context, neighbours)?))
}
