//! The modules built into this binary: the one list. Adding a module is one line here, behind
//! its cargo feature; everything else in `src/` iterates this list.

use kernel::{
    bus::{
        self,
        catalog::{ConsumerDoc, EventDoc},
    },
    db::Migrations,
    module::{Module as _, Plug},
};

/// The built-in modules, in start-up order: a module comes after the neighbours it calls.
pub(crate) fn plugs() -> Vec<Plug> {
    vec![
        #[cfg(feature = "product")]
        product::ProductModule::plug(),
        #[cfg(feature = "order")]
        order::OrderModule::plug(),
        #[cfg(feature = "payment")]
        payment::PaymentModule::plug(),
        #[cfg(feature = "patient")]
        patient::PatientModule::plug(),
        #[cfg(feature = "contract")]
        contract::ContractModule::plug(),
    ]
}

/// The names of the built-in modules, in start-up order.
pub(crate) fn names() -> Vec<&'static str> {
    plugs().iter().map(Plug::name).collect()
}

/// The kernel's and the built-in modules' migrations, kernel first.
pub(crate) fn migrations() -> Vec<Migrations> {
    std::iter::once(bus::MIGRATIONS)
        .chain(plugs().iter().map(|plug| *plug.migrations()))
        .collect()
}

/// The event types the built-in modules publish, and who consumes them.
pub(crate) fn catalog() -> (Vec<EventDoc>, Vec<ConsumerDoc>) {
    let plugs = plugs();
    let events = plugs.iter().flat_map(Plug::events).collect();
    let consumers = plugs.iter().flat_map(Plug::consumers).collect();
    (events, consumers)
}
