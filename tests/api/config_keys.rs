//! The configuration reference (`tessera config-keys`, committed as `docs/configuration.md`).

const COMMITTED: &str = "docs/configuration.md";

/// The committed reference is exactly what this build generates. Only the full (default)
/// feature set is compared; single-module builds list only their own modules on purpose.
#[cfg(all(
    feature = "product",
    feature = "order",
    feature = "payment",
    feature = "patient",
    feature = "contract"
))]
#[test]
fn the_committed_configuration_reference_matches_the_settings_types() {
    let generated = tessera::configuration_markdown().unwrap();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(COMMITTED);
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{COMMITTED} is out of date: regenerate it with \
         `cargo run -- config-keys > {COMMITTED}` (or UPDATE_DOCS=1 cargo test config_keys)"
    );
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
