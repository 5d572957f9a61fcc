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
    "metrics",
];

const ROLES: &[&str] = &["admin", "clinician", "customer", "service"];

/// The roles an operation declares (`security: [{"bearer": [roles…]}]`), or `None` when it
/// is explicitly public (`security: []`, overriding the document's bearer requirement).
/// Panics when an operation declares neither.
fn declared_roles(method: &str, path: &str, op: &Value) -> Option<Vec<String>> {
    let security = op["security"]
        .as_array()
        .unwrap_or_else(|| panic!("{method} {path} declares no security at all"));
    if security.is_empty() {
        return None;
    }
    assert_eq!(security.len(), 1, "{method} {path}: one requirement");
    let requirement = security[0].as_object().unwrap();
    assert!(
        !requirement.is_empty(),
        "{method} {path}: `[{{}}]` makes authentication optional, not absent: public \
         operations say `security: []`"
    );
    let roles: Vec<String> = requirement["bearer"]
        .as_array()
        .unwrap_or_else(|| panic!("{method} {path}: only the bearer scheme is known"))
        .iter()
        .map(|r| r.as_str().unwrap().to_owned())
        .collect();
    assert!(!roles.is_empty(), "{method} {path} lists no role");
    for role in &roles {
        assert!(
            ROLES.contains(&role.as_str()),
            "{method} {path}: unknown role {role}"
        );
    }
    Some(roles)
}

#[test]
fn every_operation_declares_public_or_the_roles_it_needs() {
    let spec: Value = serde_json::to_value(tessera::openapi()).unwrap();
    assert_eq!(
        spec["openapi"].as_str().unwrap().split('.').next(),
        Some("3")
    );
    assert_eq!(
        spec["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    // A token is needed unless an operation says otherwise, and a client generated from the
    // document finds the API on the host that served it.
    assert_eq!(spec["security"], serde_json::json!([{"bearer": []}]));
    assert_eq!(spec["servers"][0]["url"], "/");
    let paths = spec["paths"].as_object().unwrap();
    assert!(
        paths
            .keys()
            .all(|p| p.starts_with("/api/v1/") || p.starts_with("/health/") || p == "/metrics")
    );
    let mut operations = 0;
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            operations += 1;
            let id = op["operationId"].as_str().unwrap();
            let public = declared_roles(method, path, op).is_none();
            assert_eq!(public, PUBLIC.contains(&id), "{method} {path} ({id})");
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

/// Replaces each `{param}` of a path template with a fresh, syntactically valid id.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|segment| {
            if segment.starts_with('{') {
                uuid::Uuid::now_v7().to_string()
            } else {
                segment.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The auth matrix, walked over every operation of the generated spec, so a new route cannot
/// be left open by mistake: a secured operation refuses a request without a token, with a
/// token signed by another secret and with an expired token (401 problem), and a token of
/// every role it does not declare (403 problem) — before looking at the body or the path
/// parameters; a role it declares gets past authorization (neither 401 nor 403). Public
/// operations answer without a token.
#[tokio::test]
async fn every_operation_enforces_the_security_it_declares() {
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
    let expired = expired_token(&app.settings.auth, Role::Admin);
    let tokens: Vec<(&str, String)> = ROLES
        .iter()
        .map(|role| {
            let role_value: Role = serde_json::from_value(Value::from(*role)).unwrap();
            (*role, app.token(role_value))
        })
        .collect();
    let spec: Value = serde_json::to_value(tessera::openapi()).unwrap();
    let (mut secured, mut public, mut forbidden) = (0, 0, 0);
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method_name, op) in item.as_object().unwrap() {
            let method =
                reqwest::Method::from_bytes(method_name.to_uppercase().as_bytes()).unwrap();
            let send = |token: Option<&str>| {
                let mut request = app
                    .client
                    .request(method.clone(), app.url(&concrete(path)))
                    .header("content-type", "application/json")
                    .body("{}");
                if let Some(token) = token {
                    request = request.bearer_auth(token);
                }
                request.send()
            };
            let Some(allowed) = declared_roles(method_name, path, op) else {
                let status = send(None).await.unwrap().status();
                assert!(
                    status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN,
                    "public {method} {path} answered {status} without a token"
                );
                public += 1;
                continue;
            };
            for (what, token) in [
                ("no token", None),
                ("a forged token", Some(forged.as_str())),
                ("an expired token", Some(expired.as_str())),
            ] {
                let response = send(token).await.unwrap();
                assert_eq!(
                    response.status(),
                    StatusCode::UNAUTHORIZED,
                    "{method} {path} with {what}"
                );
                crate::helpers::problem(response, StatusCode::UNAUTHORIZED).await;
            }
            for (role, token) in &tokens {
                let response = send(Some(token)).await.unwrap();
                let status = response.status();
                if allowed.iter().any(|a| a == role) {
                    assert!(
                        status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN,
                        "{method} {path} declares role {role} but refused it with {status}"
                    );
                } else {
                    assert_eq!(
                        status,
                        StatusCode::FORBIDDEN,
                        "{method} {path} does not declare role {role}"
                    );
                    crate::helpers::problem(response, StatusCode::FORBIDDEN).await;
                    forbidden += 1;
                }
            }
            secured += 1;
        }
    }
    assert!(secured >= 40, "only {secured} secured operations found");
    assert!(public >= 5, "only {public} public operations found");
    assert!(forbidden >= 60, "only {forbidden} role refusals checked");
}

/// A token of the server's own secret whose `exp` lies in the past.
fn expired_token(auth: &kernel::config::AuthSettings, role: kernel::auth::Role) -> String {
    use jsonwebtoken::{EncodingKey, Header, encode};
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = kernel::auth::Claims {
        sub: "late".into(),
        role,
        iss: auth.issuer.clone(),
        iat: now - 7200,
        exp: now - 3600,
    };
    encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(auth.jwt_secret.as_bytes()),
    )
    .unwrap()
}
