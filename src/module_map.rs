//! The module map: which built-in module calls which neighbour's trait, and which events flow
//! from which module to which subscriber. Generated from the code (`wiring::MODULES`,
//! `wiring::catalog()` and [`TRAIT_CALLS`]) as Markdown with a Mermaid flowchart; printed by
//! `tessera modules` and committed as `docs/modules.md`.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Write as _,
};

use crate::wiring::{self, MODULES};

/// A synchronous dependency: module `from` calls module `to` through its public trait `via`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TraitCall {
    pub from: &'static str,
    pub to: &'static str,
    /// The trait, as named in `<to>-api`.
    pub via: &'static str,
    /// The trait methods `from` calls.
    pub methods: &'static [&'static str],
    /// What for, in a few words.
    pub purpose: &'static str,
}

/// Every trait call between modules.
///
/// KEEP IN SYNC BY HAND: the compiler cannot see which neighbour a module calls (modules get
/// their neighbours as `Arc<dyn Trait>` from `wiring::wire`). When a module starts (or stops)
/// calling another module's trait, or calls another method of it, change this table; the
/// trait calls are also the neighbours a split service needs an HTTP URL for.
pub(crate) const TRAIT_CALLS: &[TraitCall] = &[
    TraitCall {
        from: "order",
        to: "product",
        via: "ProductService",
        methods: &["get", "reserve"],
        purpose: "prices each line from the catalog, reserves stock all-or-nothing",
    },
    TraitCall {
        from: "payment",
        to: "order",
        via: "OrderService",
        methods: &["get"],
        purpose: "reads the order to charge (its total, its status)",
    },
];

/// The node of a subscriber's events that no built-in module publishes (split builds).
const ELSEWHERE: &str = "elsewhere";
/// The node of "whatever event types" (a subscriber with no fixed types).
const ANY_MODULE: &str = "any_module";

/// The module map of this build as a Markdown document. Deterministic: nodes in start-up
/// order (`MODULES`), edges and lists sorted.
pub fn module_map() -> String {
    let (events, consumers) = wiring::catalog();
    let built_in = |m: &str| MODULES.contains(&m);

    // Producer of each event type this build knows.
    let producer: BTreeMap<&str, &str> = events.iter().map(|e| (e.kind, e.source)).collect();

    // Trait edges from built-in modules; the callee may be a remote (not built-in) neighbour.
    let mut calls: Vec<&TraitCall> = TRAIT_CALLS.iter().filter(|c| built_in(c.from)).collect();
    calls.sort_by_key(|c| (c.from, c.to, c.via));
    let remote: BTreeSet<&str> = calls
        .iter()
        .map(|c| c.to)
        .filter(|m| !built_in(m))
        .collect();

    // Event edges: (producer node, consumer module) -> event types. Subscribers without fixed
    // types get a dashed edge from "any module".
    let mut event_edges: BTreeMap<(&str, &str), BTreeSet<&str>> = BTreeMap::new();
    let mut dynamic: BTreeSet<&str> = BTreeSet::new();
    for consumer in &consumers {
        if consumer.event_types.is_empty() {
            dynamic.insert(consumer.module);
        }
        for kind in consumer.event_types {
            let from = producer.get(kind).copied().unwrap_or(ELSEWHERE);
            event_edges
                .entry((from, consumer.module))
                .or_default()
                .insert(kind);
        }
    }
    let elsewhere = event_edges.keys().any(|(from, _)| *from == ELSEWHERE);

    let mut out = String::new();
    out.push_str("# Module map\n\n");
    out.push_str(
        "<!-- Generated from the code by `tessera modules` (src/module_map.rs). Do not edit: \
         regenerate with `cargo run -- modules > docs/modules.md` (or `UPDATE_DOCS=1 cargo test \
         module_map`). -->\n\n",
    );
    let _ = writeln!(
        out,
        "Built-in modules: {}.\n",
        MODULES
            .iter()
            .map(|m| format!("`{m}`"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    out.push_str(
        "Thick arrows are synchronous calls through the callee's public trait (in a split \
         deployment: HTTP to the neighbour's service). Thin arrows are events on the bus \
         (outbox, at-least-once, idempotent handlers), from the publishing module to the \
         subscriber's module, labelled with the event types. A dashed arrow is a subscriber \
         whose event types are not fixed in code.\n\n",
    );

    // ---- the flowchart ----
    out.push_str("```mermaid\nflowchart LR\n");
    for module in MODULES {
        let _ = writeln!(out, "    {module}[\"{module}\"]");
    }
    for module in &remote {
        let _ = writeln!(out, "    {module}[\"{module} (not built in)\"]");
    }
    if elsewhere {
        let _ = writeln!(out, "    {ELSEWHERE}([\"modules not built in\"])");
    }
    if !dynamic.is_empty() {
        let _ = writeln!(out, "    {ANY_MODULE}([\"any module\"])");
    }
    for call in &calls {
        let _ = writeln!(
            out,
            "    {} ==>|\"{}: {}\"| {}",
            call.from,
            call.via,
            call.methods.join(", "),
            call.to
        );
    }
    for ((from, to), kinds) in &event_edges {
        let label = kinds.iter().copied().collect::<Vec<_>>().join(", ");
        let _ = writeln!(out, "    {from} -->|\"{label}\"| {to}");
    }
    for module in &dynamic {
        let _ = writeln!(
            out,
            "    {ANY_MODULE} -.->|\"event types named by deployed contracts\"| {module}"
        );
    }
    out.push_str("```\n\n");

    // ---- trait calls ----
    out.push_str("## Trait calls\n\n");
    if calls.is_empty() {
        out.push_str("None in this build.\n\n");
    } else {
        out.push_str("| caller | callee | trait | methods | what for |\n");
        out.push_str("|---|---|---|---|---|\n");
        for call in &calls {
            let _ = writeln!(
                out,
                "| {} | {}{} | `{}` | {} | {} |",
                call.from,
                call.to,
                if built_in(call.to) {
                    ""
                } else {
                    " (not built in)"
                },
                call.via,
                call.methods
                    .iter()
                    .map(|m| format!("`{m}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                call.purpose
            );
        }
        out.push('\n');
    }

    // ---- events per module ----
    out.push_str("## Events per module\n\n");
    out.push_str("| module | publishes | consumes (subscriber: event types) |\n");
    out.push_str("|---|---|---|\n");
    for module in MODULES {
        let published: BTreeSet<&str> = events
            .iter()
            .filter(|e| e.source == *module)
            .map(|e| e.kind)
            .collect();
        let published = if published.is_empty() {
            "—".to_owned()
        } else {
            published
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut subscribers: Vec<_> = consumers.iter().filter(|c| c.module == *module).collect();
        subscribers.sort_by_key(|c| c.subscriber);
        let consumed = if subscribers.is_empty() {
            "—".to_owned()
        } else {
            subscribers
                .iter()
                .map(|c| {
                    let kinds = if c.event_types.is_empty() {
                        "any type a deployed contract names".to_owned()
                    } else {
                        let sorted: BTreeSet<&str> = c.event_types.iter().copied().collect();
                        sorted
                            .iter()
                            .map(|k| format!("`{k}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    };
                    format!("`{}`: {kinds}", c.subscriber)
                })
                .collect::<Vec<_>>()
                .join("<br>")
        };
        let _ = writeln!(out, "| {module} | {published} | {consumed} |");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table is kept by hand; at least it must only name real modules, once each.
    #[cfg(all(
        feature = "product",
        feature = "order",
        feature = "payment",
        feature = "patient",
        feature = "contract"
    ))]
    #[test]
    fn the_trait_call_table_names_only_existing_modules() {
        let mut seen = BTreeSet::new();
        for call in TRAIT_CALLS {
            for module in [call.from, call.to] {
                assert!(
                    MODULES.contains(&module),
                    "TRAIT_CALLS names `{module}`, which is not a module (MODULES: {MODULES:?})"
                );
            }
            assert_ne!(call.from, call.to, "{call:?}");
            assert!(!call.methods.is_empty(), "{call:?}");
            assert!(seen.insert((call.from, call.to)), "listed twice: {call:?}");
        }
    }

    /// Renaming a trait breaks this function's compilation: update `TRAIT_CALLS` then.
    #[allow(dead_code)]
    fn the_traits_in_the_table_exist(
        _: &dyn product_api::ProductService,
        _: &dyn order_api::OrderService,
    ) {
    }

    #[test]
    fn the_map_is_deterministic_and_has_a_node_per_module() {
        let map = module_map();
        assert_eq!(map, module_map());
        for module in MODULES {
            assert!(
                map.contains(&format!("    {module}[\"{module}\"]\n")),
                "{module}"
            );
            assert!(map.contains(&format!("\n| {module} | ")), "{module}");
        }
    }
}
