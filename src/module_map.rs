//! The module map: which built-in module calls which neighbour's trait, and which events flow
//! from which module to which subscriber. Generated from the module list (`modules::plugs`):
//! the trait calls from each module's declared neighbours, the events from its catalog. One
//! [`ModuleMap`] value, rendered as Markdown with a Mermaid flowchart (printed by `tessera
//! modules`, committed as `docs/modules.md`) and served as JSON to the operator console
//! (`/console/map.json`), which draws it.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Write as _,
};

use serde::Serialize;

use crate::modules;

/// A synchronous dependency: module `from` calls module `to` through its public trait `via`.
#[derive(Debug, Serialize)]
pub(crate) struct TraitCall {
    from: &'static str,
    to: &'static str,
    via: &'static str,
    purpose: String,
}

/// A built-in module: the event types it publishes and its subscribers.
#[derive(Debug, Serialize)]
pub(crate) struct ModuleNode {
    name: &'static str,
    publishes: BTreeSet<&'static str>,
    subscribers: Vec<SubscriberNode>,
}

/// A subscriber of a built-in module; no `event_types` means whatever types deployed
/// contracts name.
#[derive(Debug, Serialize)]
pub(crate) struct SubscriberNode {
    name: &'static str,
    event_types: BTreeSet<&'static str>,
    summary: &'static str,
}

/// Events of these types flow from module `from` (or [`ELSEWHERE`]) to a subscriber of
/// module `to`.
#[derive(Debug, Serialize)]
pub(crate) struct Flow {
    from: &'static str,
    to: &'static str,
    event_types: BTreeSet<&'static str>,
}

/// The module map of this build. Deterministic: modules in start-up order, everything else
/// sorted.
#[derive(Debug, Serialize)]
pub(crate) struct ModuleMap {
    modules: Vec<ModuleNode>,
    /// Neighbours called through their trait that are not built in (split builds).
    remote: BTreeSet<&'static str>,
    calls: Vec<TraitCall>,
    /// Event flows; `from` is `"elsewhere"` for types no built-in module publishes.
    flows: Vec<Flow>,
    /// Modules with a subscriber whose event types are not fixed in code.
    dynamic: BTreeSet<&'static str>,
}

/// The node of a subscriber's events that no built-in module publishes (split builds).
const ELSEWHERE: &str = "elsewhere";
/// The node of "whatever event types" (a subscriber with no fixed types).
const ANY_MODULE: &str = "any_module";

impl ModuleMap {
    /// The map of the modules built into this binary.
    pub(crate) fn of_this_build() -> Self {
        let plugs = modules::plugs();
        let names = modules::names();
        let (events, consumers) = modules::catalog();

        // Producer of each event type this build knows.
        let producer: BTreeMap<&str, &str> = events.iter().map(|e| (e.kind, e.source)).collect();

        // Trait edges from built-in modules; the callee may be a remote neighbour.
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
        let remote = calls
            .iter()
            .map(|c| c.to)
            .filter(|m| !names.contains(m))
            .collect();

        // Event edges: (producer node, consumer module) -> event types.
        let mut flows: BTreeMap<(&'static str, &'static str), BTreeSet<&'static str>> =
            BTreeMap::new();
        let mut dynamic = BTreeSet::new();
        for consumer in &consumers {
            if consumer.event_types.is_empty() {
                dynamic.insert(consumer.module);
            }
            for kind in consumer.event_types {
                let from = producer.get(kind).copied().unwrap_or(ELSEWHERE);
                flows
                    .entry((from, consumer.module))
                    .or_default()
                    .insert(kind);
            }
        }
        let modules = names
            .iter()
            .map(|&name| {
                let mut subscribers: Vec<SubscriberNode> = consumers
                    .iter()
                    .filter(|c| c.module == name)
                    .map(|c| SubscriberNode {
                        name: c.subscriber,
                        event_types: c.event_types.iter().copied().collect(),
                        summary: c.summary,
                    })
                    .collect();
                subscribers.sort_by_key(|s| s.name);
                ModuleNode {
                    name,
                    publishes: events
                        .iter()
                        .filter(|e| e.source == name)
                        .map(|e| e.kind)
                        .collect(),
                    subscribers,
                }
            })
            .collect();
        Self {
            modules,
            remote,
            calls,
            flows: flows
                .into_iter()
                .map(|((from, to), event_types)| Flow {
                    from,
                    to,
                    event_types,
                })
                .collect(),
            dynamic,
        }
    }

    fn built_in(&self, module: &str) -> bool {
        self.modules.iter().any(|m| m.name == module)
    }
}

/// `items` as Markdown code spans joined by `, `.
fn code_list<'a, 'b: 'a>(items: impl IntoIterator<Item = &'a &'b str>) -> String {
    items
        .into_iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The module map of this build as a Markdown document.
pub fn module_map() -> String {
    let map = ModuleMap::of_this_build();
    let names: Vec<&str> = map.modules.iter().map(|m| m.name).collect();
    let elsewhere = map.flows.iter().any(|f| f.from == ELSEWHERE);

    let mut out = String::new();
    out.push_str("# Module map\n\n");
    out.push_str(
        "<!-- Generated from the code by `tessera modules` (src/module_map.rs). Do not edit: \
         regenerate with `cargo run -- modules > docs/modules.md` (or `UPDATE_DOCS=1 cargo test \
         module_map`). -->\n\n",
    );
    let _ = writeln!(out, "Built-in modules: {}.\n", code_list(&names));
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
    for module in &map.remote {
        let _ = writeln!(out, "    {module}[\"{module} (not built in)\"]");
    }
    if elsewhere {
        let _ = writeln!(out, "    {ELSEWHERE}([\"modules not built in\"])");
    }
    if !map.dynamic.is_empty() {
        let _ = writeln!(out, "    {ANY_MODULE}([\"any module\"])");
    }
    for call in &map.calls {
        let _ = writeln!(out, "    {} ==>|\"{}\"| {}", call.from, call.via, call.to);
    }
    for flow in &map.flows {
        let label = flow
            .event_types
            .iter()
            .copied()
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(out, "    {} -->|\"{label}\"| {}", flow.from, flow.to);
    }
    for module in &map.dynamic {
        let _ = writeln!(
            out,
            "    {ANY_MODULE} -.->|\"event types named by deployed contracts\"| {module}"
        );
    }
    out.push_str("```\n\n");

    // ---- trait calls ----
    out.push_str("## Trait calls\n\n");
    if map.calls.is_empty() {
        out.push_str("None in this build.\n\n");
    } else {
        out.push_str("| caller | callee | trait | what for |\n");
        out.push_str("|---|---|---|---|\n");
        for call in &map.calls {
            let _ = writeln!(
                out,
                "| {} | {}{} | `{}` | {} |",
                call.from,
                call.to,
                if map.built_in(call.to) {
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
    for module in &map.modules {
        let published = if module.publishes.is_empty() {
            "—".to_owned()
        } else {
            code_list(&module.publishes)
        };
        let consumed = if module.subscribers.is_empty() {
            "—".to_owned()
        } else {
            module
                .subscribers
                .iter()
                .map(|s| {
                    let kinds = if s.event_types.is_empty() {
                        "any type a deployed contract names".to_owned()
                    } else {
                        code_list(&s.event_types)
                    };
                    format!("`{}`: {kinds}", s.name)
                })
                .collect::<Vec<_>>()
                .join("<br>")
        };
        let _ = writeln!(out, "| {} | {published} | {consumed} |", module.name);
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
