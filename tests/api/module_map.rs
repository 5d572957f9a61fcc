//! The module map (`tessera modules`, committed as `docs/modules.md`).

use crate::helpers::{assert_committed, full_build};

full_build! {
    /// The committed map is exactly what this build generates.
    #[test]
    fn the_committed_module_map_matches_the_code() {
        assert_committed(
            "docs/modules.md",
            &tessera::module_map_markdown(),
            "cargo run -- modules",
        );
    }
}

#[cfg(all(feature = "product", feature = "order", feature = "payment"))]
#[test]
fn the_map_shows_the_trait_calls_and_the_saga_events() {
    let map = tessera::module_map_markdown();
    let chart = map
        .split("```mermaid\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .unwrap();
    assert!(chart.starts_with("flowchart "), "{chart}");
    let edges: Vec<&str> = chart.lines().map(str::trim).collect();
    // Trait calls.
    assert!(
        edges.contains(&r#"order ==>|"ProductService"| product"#),
        "{chart}"
    );
    assert!(
        edges.contains(&r#"payment ==>|"OrderService"| order"#),
        "{chart}"
    );
    // Events, from the publisher to the subscriber's module.
    let event_edge = |from: &str, to: &str| {
        edges
            .iter()
            .find(|e| e.starts_with(&format!("{from} -->|")) && e.ends_with(&format!("| {to}")))
            .copied()
            .unwrap_or_else(|| panic!("no event edge {from} -> {to} in\n{chart}"))
    };
    assert!(event_edge("order", "product").contains("order.paid"));
    assert!(event_edge("order", "product").contains("order.cancelled"));
    assert!(event_edge("payment", "order").contains("payment.succeeded"));
    assert!(event_edge("order", "payment").contains("order.cancelled"));
    // The table lists the subscriber with what it consumes.
    assert!(
        map.contains("`product.commit_paid_orders`: `order.paid`"),
        "{map}"
    );
}

#[cfg(feature = "contract")]
#[test]
fn the_contract_triggers_are_drawn_from_any_module() {
    let map = tessera::module_map_markdown();
    assert!(
        map.contains(r#"any_module -.->|"event types named by deployed contracts"| contract"#),
        "{map}"
    );
}
