//! How the built-in modules are connected. Each is built in list order (`modules::plugs`);
//! a neighbour it calls is the in-process service of a module built before it, else the
//! trait's HTTP client when the neighbour's URL is configured
//! (`TESSERA__MODULES__<NAME>__URL`), else start-up stops with a message saying so.

use std::{
    any::{Any, TypeId},
    collections::HashMap,
    sync::Arc,
};

use anyhow::bail;
use kernel::{
    auth::JwtKeys,
    bus::{Bus, Subscriber},
    config::Settings,
    module::{Job, Live, Plug, Resolve, Wanted},
};

use crate::modules;

/// The built-in modules, built and connected.
#[derive(Default)]
pub(crate) struct Wiring {
    pub modules: Vec<Arc<dyn Live>>,
    pub subscribers: Vec<Arc<dyn Subscriber>>,
    pub jobs: Vec<Job>,
    /// Path prefixes whose request and response bodies hold personal data: the
    /// idempotency store (which keeps bodies in plaintext) must not see them.
    pub private_paths: Vec<&'static str>,
}

/// Builds every built-in module, each with its neighbours.
pub(crate) fn wire(bus: &Bus, settings: &Settings) -> anyhow::Result<Wiring> {
    let plugs = modules::plugs();
    let mut neighbourhood = Neighbourhood::new(settings, plugs.iter().map(Plug::name).collect());
    let mut wiring = Wiring::default();
    for plug in &plugs {
        let module = plug.build(settings, bus, &mut neighbourhood)?;
        let (id, service) = module.provides();
        neighbourhood.services.insert(id, service);
        wiring.subscribers.extend(module.subscribers());
        wiring.jobs.extend(module.jobs());
        wiring.private_paths.extend(plug.private_paths());
        wiring.modules.push(module);
    }
    Ok(wiring)
}

/// What the modules built so far provide, and how to reach the others.
struct Neighbourhood<'a> {
    settings: &'a Settings,
    keys: JwtKeys,
    built_in: Vec<&'static str>,
    /// Each built module's service (`Arc<dyn XService>` as `Any`), by the trait's `TypeId`.
    services: HashMap<TypeId, Arc<dyn Any + Send + Sync>>,
}

impl<'a> Neighbourhood<'a> {
    fn new(settings: &'a Settings, built_in: Vec<&'static str>) -> Self {
        Self {
            settings,
            keys: JwtKeys::new(&settings.auth),
            built_in,
            services: HashMap::new(),
        }
    }
}

impl Neighbourhood<'_> {
    /// A neighbour no module built so far provides: its HTTP client, or why there is none.
    fn reach(&self, wanted: &Wanted) -> anyhow::Result<Arc<dyn Any + Send + Sync>> {
        let (caller, module) = (wanted.caller, wanted.module);
        if self.built_in.contains(&module) {
            bail!(
                "the {caller} module calls the {module} module, which is built in but listed \
                 after it: list {module} first (src/modules.rs)"
            );
        }
        let Some(url) = self.settings.neighbour_url(module) else {
            let article = if module.starts_with(['a', 'e', 'i', 'o', 'u']) {
                "an"
            } else {
                "a"
            };
            bail!(
                "the {caller} module needs the {module} module: build with the `{module}` \
                 feature or set TESSERA__MODULES__{}__URL to {article} {module} service",
                module.to_uppercase()
            );
        };
        (wanted.remote)(&url, caller, &self.keys)
    }
}

impl Resolve for Neighbourhood<'_> {
    fn resolve(&mut self, wanted: &Wanted) -> anyhow::Result<Arc<dyn Any + Send + Sync>> {
        match self.services.get(&wanted.id) {
            Some(service) => Ok(service.clone()),
            None => self.reach(wanted),
        }
    }
}

/// What the built-in modules need from the settings, checked without a database (so `tessera
/// serve` and `tessera doctor` say what is missing before they touch it): each module's
/// section and start-up checks (`Err` only), then how each neighbour it calls is reached —
/// in-process when it is built in and listed before, else through the client for its URL;
/// `Err` says which feature to build or which variable to set.
pub(crate) fn settings_checks(settings: &Settings) -> Vec<Result<String, String>> {
    let plugs = modules::plugs();
    let neighbourhood = Neighbourhood::new(settings, plugs.iter().map(Plug::name).collect());
    let mut built: Vec<&'static str> = Vec::new();
    let mut found: Vec<Result<String, String>> = plugs
        .iter()
        .filter_map(|plug| {
            let checked = plug.check(settings);
            checked
                .err()
                .map(|e| Err(format!("{} module: {e:#}", plug.name())))
        })
        .collect();
    for plug in &plugs {
        for wanted in plug.wanted() {
            let (caller, module) = (wanted.caller, wanted.module);
            found.push(if built.contains(&module) {
                Ok(format!(
                    "the {caller} module calls the {module} module in-process"
                ))
            } else {
                neighbourhood
                    .reach(&wanted)
                    .map(|_| {
                        let url = settings.neighbour_url(module).unwrap_or_default();
                        format!("the {caller} module calls the {module} module at {url}")
                    })
                    .map_err(|e| format!("{e:#}"))
            });
        }
        built.push(plug.name());
    }
    found
}

/// What must hold before the server touches the database: [`settings_checks`] all pass.
///
/// # Errors
/// Every problem found.
pub(crate) fn preflight(settings: &Settings) -> anyhow::Result<()> {
    let problems: Vec<String> = settings_checks(settings)
        .into_iter()
        .filter_map(Result::err)
        .collect();
    match problems.as_slice() {
        [] => Ok(()),
        [one] => bail!("{one}"),
        many => bail!("{}", many.join("; ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kernel::{
        config::{AppEnv, Settings},
        db::Db,
        testing::TestDatabase,
    };

    /// The catalog's consumers are declared by hand next to each subscriber; this keeps the
    /// two from drifting apart.
    #[test]
    fn every_subscriber_is_in_the_event_catalog_and_nothing_else_is() {
        let database = TestDatabase::sqlite();
        let db = Db::connect(&database.settings()).unwrap();
        db.migrate(&modules::migrations()).unwrap();
        let settings = Settings::defaults(AppEnv::Test).unwrap();
        let bus = Bus::new(db, settings.bus.clone());
        let wired = wire(&bus, &settings).unwrap();
        let mut registered: Vec<String> = wired
            .subscribers
            .iter()
            .map(|s| s.name().to_owned())
            .collect();
        let (events, consumers) = modules::catalog();
        let mut documented: Vec<String> =
            consumers.iter().map(|c| c.subscriber.to_owned()).collect();
        registered.sort();
        documented.sort();
        assert_eq!(registered, documented);
        for consumer in &consumers {
            let subscriber = wired
                .subscribers
                .iter()
                .find(|s| s.name() == consumer.subscriber)
                .unwrap();
            for kind in consumer.event_types {
                assert!(
                    subscriber.accepts(kind),
                    "{} accepts {kind}",
                    consumer.subscriber
                );
                assert!(
                    events.iter().any(|e| e.kind == *kind),
                    "{kind} is published by someone"
                );
            }
        }
    }

    /// A neighbour trait of a module no build has, so every way of resolving it shows.
    trait Ledger: Send + Sync {
        fn balance(&self) -> i64;
    }

    impl kernel::module::Neighbour for dyn Ledger {
        const MODULE: &'static str = "ledger";
        const TRAIT: &'static str = "Ledger";

        /// A stand-in for the HTTP client: its balance is the length of its URL.
        fn remote(url: &str, caller: &str, _: &JwtKeys) -> anyhow::Result<Arc<Self>> {
            anyhow::ensure!(caller == "audit", "called as {caller}");
            Ok(Arc::new(Fixed(i64::try_from(url.len())?)))
        }
    }

    struct Fixed(i64);

    impl Ledger for Fixed {
        fn balance(&self) -> i64 {
            self.0
        }
    }

    fn resolve(neighbourhood: &mut Neighbourhood<'_>) -> anyhow::Result<Arc<dyn Ledger>> {
        kernel::module::neighbour::resolve::<dyn Ledger>("audit", neighbourhood)
    }

    #[test]
    fn a_neighbour_is_the_built_in_service_else_its_url_is_asked_for() {
        let mut settings = Settings::defaults(AppEnv::Test).unwrap();
        let mut neighbourhood = Neighbourhood::new(&settings, vec!["audit"]);
        let error = resolve(&mut neighbourhood).err().unwrap();
        assert_eq!(
            format!("{error:#}"),
            "the audit module needs the ledger module: build with the `ledger` feature or set \
             TESSERA__MODULES__LEDGER__URL to a ledger service"
        );

        neighbourhood.built_in.push("ledger");
        let error = resolve(&mut neighbourhood).err().unwrap();
        assert!(
            format!("{error:#}").contains("listed after it"),
            "{error:#}"
        );

        let service: Arc<dyn Ledger> = Arc::new(Fixed(7));
        neighbourhood
            .services
            .insert(TypeId::of::<dyn Ledger>(), Arc::new(service));
        assert_eq!(resolve(&mut neighbourhood).unwrap().balance(), 7);

        settings.modules.insert(
            "ledger".into(),
            serde_json::json!({"url": "http://ledger:8080/"}),
        );
        let mut remote = Neighbourhood::new(&settings, vec!["audit"]);
        let client = resolve(&mut remote).unwrap();
        assert_eq!(client.balance(), "http://ledger:8080".len() as i64);
    }
}
