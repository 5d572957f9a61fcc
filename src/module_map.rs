//! The module map: which built-in module calls which neighbour's trait, and which events flow
//! from which module to which subscriber. Generated from the module list (`modules::plugs`):
//! the trait calls from each module's declared neighbours, the events from its catalog; as
//! Markdown with a Mermaid flowchart, printed by `tessera modules` and committed as
//! `docs/modules.md`.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Write as _,
};

use crate::modules;

/// A synchronous dependency: module `from` calls module `to` through its public trait `via`.
struct TraitCall {
    from: &'static str,
    to: &'static str,
    via: &'static str,
    purpose: String,
}

/// The node of a subscriber's events that no built-in module publishes (split builds).
const ELSEWHERE: &str = "elsewhere";
/// The node of "whatever event types" (a subscriber with no fixed types).
const ANY_MODULE: &str = "any_module";

/// The module map of this build as a Markdown document. Deterministic: nodes in start-up
/// order (`modules::plugs`), edges and lists sorted.
pub fn module_map() -> String {
    let plugs = modules::plugs();
    let names = modules::names();
    let (events, consumers) = modules::catalog();
    let built_in = |m: &str| names.contains(&m);

    // Producer of each event type this build knows.
    let producer: BTreeMap<&str, &str> = events.iter().map(|e| (e.kind, e.source)).collect();

    // Trait edges from built-in modules; the callee may be a remote (not built-in) neighbour.
    let mut calls: Vec<TraitCall> = plugs
        .iter()
        .flat_map(|plug| {
            plug.calls().into_iter().map(|call| TraitCall {
                from: plug.name(),
                to: call.module,
                via: call.via,
                purpose: call.purpose,
            })
        })
        .collect();
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
        names
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
    for module in &names {
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
        let _ = writeln!(out, "    {} ==>|\"{}\"| {}", call.from, call.via, call.to);
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
        out.push_str("| caller | callee | trait | what for |\n");
        out.push_str("|---|---|---|---|\n");
        for call in &calls {
            let _ = writeln!(
                out,
                "| {} | {}{} | `{}` | {} |",
                call.from,
                call.to,
                if built_in(call.to) {
                    ""
                } else {
                    " (not built in)"
                },
                call.via,
                call.purpose
            );
        }
        out.push('\n');
    }

    // ---- events per module ----
    out.push_str("## Events per module\n\n");
    out.push_str("| module | publishes | consumes (subscriber: event types) |\n");
    out.push_str("|---|---|---|\n");
    for module in &names {
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

    #[test]
    fn the_map_is_deterministic_and_has_a_node_per_module() {
        let map = module_map();
        assert_eq!(map, module_map());
        for module in modules::names() {
            assert!(
                map.contains(&format!("    {module}[\"{module}\"]\n")),
                "{module}"
            );
            assert!(map.contains(&format!("\n| {module} | ")), "{module}");
        }
    }

    /// The trait calls come from the modules' neighbour declarations: each names another
    /// module, once, with what it is for.
    #[test]
    fn every_declared_neighbour_is_drawn_once_with_its_purpose() {
        let map = module_map();
        for plug in modules::plugs() {
            let mut seen = BTreeSet::new();
            for call in plug.calls() {
                assert_ne!(call.module, plug.name(), "{call:?}");
                assert!(!call.purpose.is_empty(), "{call:?}");
                assert!(seen.insert(call.module), "listed twice: {call:?}");
                let edge = format!(
                    "    {} ==>|\"{}\"| {}\n",
                    plug.name(),
                    call.via,
                    call.module
                );
                assert!(map.contains(&edge), "{edge} in\n{map}");
                assert!(map.contains(&call.purpose), "{call:?}");
            }
        }
    }
}
