//! The configuration reference (`tessera config-keys`, committed as `docs/configuration.md`).

use crate::helpers::{assert_committed, full_build};

full_build! {
    #[test]
    fn the_committed_configuration_reference_matches_the_settings_types() {
        assert_committed(
            "docs/configuration.md",
            &tessera::configuration_markdown().unwrap(),
            "cargo run -- config-keys",
        );
    }
}

#[test]
fn the_reference_names_the_keys_the_readme_promises() {
    let doc = tessera::configuration_markdown().unwrap();
    for key in [
        "server.port",
        "database.url",
        "auth.jwt_secret",
        "http.cors_origins",
        "bus.nats_url",
    ] {
        assert!(doc.contains(&format!("| `{key}` |")), "{key} missing");
    }
    #[cfg(feature = "order")]
    assert!(doc.contains(
        "| `modules.order.payment_timeout_secs` | `TESSERA__MODULES__ORDER__PAYMENT_TIMEOUT_SECS` |"
    ));
}
