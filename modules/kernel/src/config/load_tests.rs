//! Loading the layers from a scratch directory and a given set of environment variables.

use std::collections::HashMap;

use serde::Deserialize;

use super::*;

fn vars(pairs: &[(&str, &str)]) -> Environment {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Environment::with_prefix("TESSERA").source(Some(map))
}

fn empty_dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[test]
fn cors_origins_come_as_a_comma_separated_list_and_bad_ones_are_named() {
    let dir = empty_dir();
    let s = Settings::load_from(
        AppEnv::Development,
        dir.path(),
        vars(&[(
            "TESSERA__HTTP__CORS_ORIGINS",
            "https://shop.example,http://localhost:3000",
        )]),
    )
    .unwrap();
    assert_eq!(
        s.http.cors_origins,
        ["https://shop.example", "http://localhost:3000"]
    );
    let err = Settings::load_from(
        AppEnv::Development,
        dir.path(),
        vars(&[("TESSERA__HTTP__CORS_ORIGINS", "shop.example/app")]),
    )
    .unwrap_err();
    assert!(format!("{err:#}").contains("http.cors_origins"), "{err:#}");
}

#[test]
fn embedded_defaults_give_the_documented_keys() {
    let dir = empty_dir();
    let s = Settings::load_from(AppEnv::Development, dir.path(), vars(&[])).unwrap();
    assert_eq!(s.server.host, "127.0.0.1");
    assert_eq!(s.server.port, 8080);
    assert_eq!(s.database.url, "sqlite://./data/tessera.db");
    assert_eq!(s.http.json_limit_bytes, 1024 * 1024);
}

#[test]
fn environment_variables_override_files() {
    let dir = empty_dir();
    std::fs::write(dir.path().join("test.toml"), "[server]\nport = 7000\n").unwrap();
    let s = Settings::load_from(AppEnv::Test, dir.path(), vars(&[])).unwrap();
    assert_eq!(s.server.port, 7000);
    let s = Settings::load_from(
        AppEnv::Test,
        dir.path(),
        vars(&[("TESSERA__SERVER__PORT", "9999")]),
    )
    .unwrap();
    assert_eq!(s.server.port, 9999);
}

#[test]
fn a_bad_value_names_the_key() {
    let dir = empty_dir();
    let err = Settings::load_from(
        AppEnv::Development,
        dir.path(),
        vars(&[("TESSERA__SERVER__PORT", "eighty")]),
    )
    .unwrap_err();
    assert!(format!("{err:#}").contains("server.port"), "{err:#}");
}

#[test]
fn an_unknown_key_is_rejected() {
    let dir = empty_dir();
    let err = Settings::load_from(
        AppEnv::Development,
        dir.path(),
        vars(&[("TESSERA__SERVER__PROT", "1")]),
    )
    .unwrap_err();
    assert!(format!("{err:#}").contains("prot"), "{err:#}");
}

#[test]
fn production_refuses_the_development_secret() {
    let dir = empty_dir();
    let err = Settings::load_from(AppEnv::Production, dir.path(), vars(&[])).unwrap_err();
    assert!(err.to_string().contains("JWT secret"), "{err:#}");
    let secret = "0123456789abcdef0123456789abcdef";
    let ok = Settings::load_from(
        AppEnv::Production,
        dir.path(),
        vars(&[("TESSERA__AUTH__JWT_SECRET", secret)]),
    );
    assert!(ok.is_ok());
}

#[test]
fn module_sections_reach_their_module_and_bad_ones_are_named() {
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Product {
        stock_low_threshold: i64,
        #[allow(dead_code)]
        cache_ttl_ms: u64,
        #[allow(dead_code)]
        cache_capacity: usize,
    }
    let dir = empty_dir();
    let s = Settings::load_from(
        AppEnv::Development,
        dir.path(),
        vars(&[("TESSERA__MODULES__PRODUCT__STOCK_LOW_THRESHOLD", "9")]),
    )
    .unwrap();
    assert_eq!(
        s.module::<Product>("product").unwrap().stock_low_threshold,
        9
    );
    let s = Settings::load_from(
        AppEnv::Development,
        dir.path(),
        vars(&[("TESSERA__MODULES__PRODUCT__STOCK_LOW_THRESHOLD", "lots")]),
    )
    .unwrap();
    let err = s.module::<Product>("product").unwrap_err();
    assert!(format!("{err:#}").contains("modules.product"), "{err:#}");
}

#[test]
fn debug_output_hides_secrets() {
    let mut s = Settings::defaults(AppEnv::Development).unwrap();
    s.database.url = "postgres://app:hunter2@db/tessera".into();
    let printed = format!("{s:?}");
    assert!(!printed.contains("hunter2"));
    assert!(!printed.contains(DEVELOPMENT_JWT_SECRET));
}
