use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::TestApp;

const COMMITTED: &str = "openapi/openapi.json";

/// CI's drift check: the committed spec is exactly what this build generates. Only the full
/// (default) feature set is compared; single-module builds generate a subset on purpose.
#[cfg(all(
    feature = "product",
    feature = "order",
    feature = "payment",
    feature = "patient",
    feature = "contract"
))]
#[test]
fn the_committed_spec_matches_the_code() {
    let generated = tessera::openapi_json().unwrap();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(COMMITTED);
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{COMMITTED} is out of date: regenerate it with \
         `cargo run -- openapi > {COMMITTED}` (or UPDATE_OPENAPI=1 cargo test)"
    );
}

/// Operations anyone may call; every other one must declare the bearer scheme.
const PUBLIC: &[&str] = &[
    "list_products",
    "get_product",
    "health_live",
    "health_ready",
];

#[test]
fn operations_declare_bearer_security_unless_public() {
    let spec: Value = serde_json::to_value(tessera::openapi()).unwrap();
    assert_eq!(
        spec["openapi"].as_str().unwrap().split('.').next(),
        Some("3")
    );
    assert_eq!(
        spec["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let paths = spec["paths"].as_object().unwrap();
    assert!(
        paths
            .keys()
            .all(|p| p.starts_with("/api/v1/") || p.starts_with("/health/"))
    );
    let mut operations = 0;
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            operations += 1;
            let secured = op
                .get("security")
                .is_some_and(|s| s.to_string().contains("bearer"));
            let id = op["operationId"].as_str().unwrap();
            assert_eq!(secured, !PUBLIC.contains(&id), "{method} {path} ({id})");
        }
    }
    assert!(operations >= 8);
}

/// The event catalog is committed too, and drift-checked the same way.
#[cfg(all(
    feature = "product",
    feature = "order",
    feature = "payment",
    feature = "patient",
    feature = "contract"
))]
#[test]
fn the_committed_event_catalog_matches_the_code() {
    let generated = tessera::asyncapi_json().unwrap();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi/asyncapi.json");
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "openapi/asyncapi.json is out of date: regenerate it with \
         `cargo run -- events > openapi/asyncapi.json` (or UPDATE_OPENAPI=1 cargo test)"
    );
}

#[test]
fn the_event_catalog_lists_every_product_event_with_its_schema() {
    let doc: Value = serde_json::from_str(&tessera::asyncapi_json().unwrap()).unwrap();
    assert_eq!(doc["asyncapi"], "3.0.0");
    for kind in [
        "product.created",
        "product.updated",
        "product.deleted",
        "product.stock_low",
        "inventory.reserved",
        "inventory.released",
        "inventory.committed",
    ] {
        let key = kind.replace('.', "_");
        let message = &doc["components"]["messages"][&key];
        assert_eq!(
            message["x-producer"],
            kind.split('.').next().map(|_| "product").unwrap()
        );
        assert_eq!(doc["channels"][&key]["address"], format!("tessera.{kind}"));
        let data_ref = message["payload"]["properties"]["data"]["$ref"]
            .as_str()
            .unwrap();
        let schema_name = data_ref.rsplit('/').next().unwrap();
        assert!(
            doc["components"]["schemas"][schema_name].is_object(),
            "{kind}: {schema_name}"
        );
    }
    // Consumers are listed with the events they handle.
    let consumers =
        |kind: &str| doc["components"]["messages"][kind.replace('.', "_")]["x-consumers"].clone();
    assert_eq!(
        consumers("order.paid"),
        serde_json::json!(["product.commit_paid_orders"])
    );
    assert_eq!(
        consumers("payment.succeeded"),
        serde_json::json!(["order.apply_payments"])
    );
    let cancelled = consumers("order.cancelled").to_string();
    assert!(
        cancelled.contains("product.release_cancelled_orders") && cancelled.contains("payment."),
        "{cancelled}"
    );
    // Referenced schemas are included too (Product inside ProductCreated, Money inside Product).
    for nested in ["Product", "Money", "ReservationLine"] {
        assert!(doc["components"]["schemas"][nested].is_object(), "{nested}");
    }
}

#[tokio::test]
async fn swagger_ui_and_the_spec_are_served() {
    let app = TestApp::spawn(kernel::db::Backend::Sqlite).await.unwrap();
    let spec: Value = app
        .get("/api-docs/openapi.json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(spec, serde_json::to_value(tessera::openapi()).unwrap());

    let ui = app.get("/swagger-ui/").send().await.unwrap();
    assert_eq!(ui.status(), StatusCode::OK);
    assert!(ui.text().await.unwrap().contains("swagger-ui"));
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let redirect = no_redirects
        .get(app.url("/swagger-ui"))
        .send()
        .await
        .unwrap();
    assert_eq!(redirect.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(redirect.headers()["location"], "/swagger-ui/");
}

/// Every operation the spec declares secured refuses a request without a token, or with a
/// token signed by another secret, with a 401 problem — before looking at the body or the
/// path parameters — so a new route cannot be left open by mistake.
#[tokio::test]
async fn every_secured_operation_refuses_missing_and_forged_tokens() {
    use kernel::{
        auth::{JwtKeys, Role},
        config::AuthSettings,
    };
    let app = TestApp::spawn(kernel::db::Backend::Sqlite).await.unwrap();
    let forged = JwtKeys::new(&AuthSettings {
        jwt_secret: "not-the-server-secret".into(),
        issuer: app.settings.auth.issuer.clone(),
        token_ttl_secs: 60,
    })
    .issue("mallory", Role::Admin, None)
    .unwrap();
    let spec: Value = serde_json::to_value(tessera::openapi()).unwrap();
    let mut checked = 0;
    for (path, item) in spec["paths"].as_object().unwrap() {
        // Any syntactically valid id will do: authentication comes first.
        let concrete = path
            .split('/')
            .map(|segment| {
                if segment.starts_with('{') {
                    uuid::Uuid::now_v7().to_string()
                } else {
                    segment.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        for (method, op) in item.as_object().unwrap() {
            let secured = op
                .get("security")
                .is_some_and(|s| s.to_string().contains("bearer"));
            if !secured {
                continue;
            }
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            for token in [None, Some(forged.as_str())] {
                let mut request = app
                    .client
                    .request(method.clone(), app.url(&concrete))
                    .header("content-type", "application/json")
                    .body("{}");
                if let Some(token) = token {
                    request = request.bearer_auth(token);
                }
                let response = request.send().await.unwrap();
                assert_eq!(
                    response.status(),
                    StatusCode::UNAUTHORIZED,
                    "{method} {path} with {}",
                    if token.is_some() {
                        "a forged token"
                    } else {
                        "no token"
                    }
                );
                crate::helpers::problem(response, StatusCode::UNAUTHORIZED).await;
            }
            checked += 1;
        }
    }
    assert!(checked >= 40, "only {checked} secured operations found");
}
