//! Which modules are built in and how they are connected: each module's in-process service,
//! its subscribers and background jobs. A module that needs a neighbour which is not built
//! in stops start-up with a message saying so.

use std::sync::Arc;

#[cfg(any(feature = "order", feature = "payment"))]
use anyhow::Context;
use kernel::{
    bus::{
        Bus, Subscriber,
        catalog::{ConsumerDoc, EventDoc},
    },
    config::Settings,
    db::Migrations,
};
use tokio::{sync::watch, task::JoinHandle};

/// Modules compiled into this binary, in start-up order.
pub const MODULES: &[&str] = &[
    #[cfg(feature = "product")]
    "product",
    #[cfg(feature = "order")]
    "order",
    #[cfg(feature = "payment")]
    "payment",
    #[cfg(feature = "patient")]
    "patient",
    #[cfg(feature = "contract")]
    "contract",
];

/// The kernel's and the built-in modules' migrations, kernel first.
pub(crate) fn migrations() -> Vec<Migrations> {
    vec![
        kernel::bus::MIGRATIONS,
        #[cfg(feature = "product")]
        product::MIGRATIONS,
        #[cfg(feature = "order")]
        order::MIGRATIONS,
        #[cfg(feature = "payment")]
        payment::MIGRATIONS,
        #[cfg(feature = "patient")]
        patient::MIGRATIONS,
        #[cfg(feature = "contract")]
        contract::MIGRATIONS,
    ]
}

/// The event types the built-in modules publish, and who consumes them.
pub(crate) fn catalog() -> (Vec<EventDoc>, Vec<ConsumerDoc>) {
    let mut events = Vec::new();
    let mut consumers = Vec::new();
    #[cfg(feature = "product")]
    {
        events.extend(product::events());
        consumers.extend(product::consumers());
    }
    #[cfg(feature = "order")]
    {
        events.extend(order::events());
        consumers.extend(order::consumers());
    }
    #[cfg(feature = "payment")]
    {
        events.extend(payment::events());
        consumers.extend(payment::consumers());
    }
    #[cfg(feature = "patient")]
    {
        events.extend(patient::events());
        consumers.extend(patient::consumers());
    }
    #[cfg(feature = "contract")]
    {
        events.extend(contract::events());
        consumers.extend(contract::consumers());
    }
    (events, consumers)
}

/// A background job, started when the server starts and stopped with it.
pub(crate) type Job = Box<dyn FnOnce(watch::Receiver<bool>) -> JoinHandle<()> + Send>;

/// The built-in modules, connected.
#[derive(Default)]
pub(crate) struct Wiring {
    pub subscribers: Vec<Arc<dyn Subscriber>>,
    pub jobs: Vec<Job>,
    #[cfg(feature = "product")]
    pub products: Option<Arc<dyn product_api::ProductService>>,
    #[cfg(feature = "order")]
    pub orders: Option<Arc<dyn order_api::OrderService>>,
    #[cfg(feature = "payment")]
    pub payments: Option<Arc<dyn payment_api::PaymentService>>,
    #[cfg(feature = "patient")]
    pub patients: Option<Arc<dyn patient_api::PatientService>>,
    #[cfg(feature = "contract")]
    pub contracts: Option<Arc<dyn contract_api::ContractService>>,
    /// Path prefixes whose request and response bodies hold personal data: the
    /// idempotency store (which keeps bodies in plaintext) must not see them.
    pub private_paths: Vec<&'static str>,
}

// Which neighbours are used depends on the feature set; single-module builds leave some unused.
#[allow(unused_variables, unused_mut)]
pub(crate) fn wire(bus: &Bus, settings: &Settings) -> anyhow::Result<Wiring> {
    let mut wiring = Wiring::default();
    let keys = kernel::auth::JwtKeys::new(&settings.auth);
    let remote = |name: &str, caller: &str| -> anyhow::Result<Option<kernel::client::Remote>> {
        settings
            .neighbour_url(name)
            .map(|url| {
                kernel::client::Remote::new(
                    name,
                    caller,
                    keys.clone(),
                    &kernel::client::RemoteConfig::new(url),
                )
            })
            .transpose()
    };
    // A neighbour that is not built in is reached over HTTP when its URL is configured.
    let products: Option<Arc<dyn product_api::ProductService>> = remote("product", "order")?
        .map(|r| Arc::new(product_api::client::HttpProductService::from_remote(r)) as _);
    #[cfg(feature = "product")]
    let products = {
        let product_settings: product::ProductSettings = settings.module("product")?;
        wiring
            .subscribers
            .extend(product::subscribers(bus.clone(), &product_settings));
        let service = product::service(bus.clone(), &product_settings);
        wiring.products = Some(service.clone());
        Some(service)
    };
    let orders: Option<Arc<dyn order_api::OrderService>> = remote("order", "payment")?
        .map(|r| Arc::new(order_api::client::HttpOrderService::from_remote(r)) as _);
    #[cfg(feature = "order")]
    let orders = {
        let products = products.clone().context(
            "the order module needs the product module: build with the `product` feature \
             or set TESSERA__MODULES__PRODUCT__URL to a product service",
        )?;
        let module = order::OrderModule::new(bus.clone(), products, settings.module("order")?);
        wiring.subscribers.extend(module.subscribers());
        let service = module.service();
        wiring.orders = Some(service.clone());
        wiring
            .jobs
            .push(Box::new(move |stop| module.start_jobs(stop)));
        Some(service)
    };
    #[cfg(feature = "payment")]
    {
        let orders = orders
            .clone()
            .context("the payment module needs the order module: build with the `order` feature")?;
        let module = payment::PaymentModule::new(bus.clone(), orders, settings.module("payment")?);
        wiring.subscribers.extend(module.subscribers());
        wiring.payments = Some(module.service());
        wiring
            .jobs
            .push(Box::new(move |stop| module.start_jobs(stop)));
    }
    #[cfg(feature = "patient")]
    {
        let patient_settings: patient::PatientSettings = settings.module("patient")?;
        if settings.env == kernel::config::AppEnv::Production {
            patient::check_production(&patient_settings)?;
        }
        wiring.patients = Some(patient::service(bus.clone(), &patient_settings)?);
        wiring.private_paths.extend(patient::PRIVATE_PATHS);
    }
    #[cfg(feature = "contract")]
    {
        let module = contract::ContractModule::new(bus.clone(), &settings.module("contract")?)?;
        wiring.subscribers.extend(module.subscribers());
        wiring.contracts = Some(module.service());
    }
    Ok(wiring)
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
        db.migrate(&migrations()).unwrap();
        let settings = Settings::defaults(AppEnv::Test).unwrap();
        let bus = Bus::new(db, settings.bus.clone());
        let wired = wire(&bus, &settings).unwrap();
        let mut registered: Vec<String> = wired
            .subscribers
            .iter()
            .map(|s| s.name().to_owned())
            .collect();
        let (events, consumers) = catalog();
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
}
