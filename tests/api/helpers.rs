use std::sync::Arc;

use kernel::{
    auth::{JwtKeys, Role},
    bus::Subscriber,
    config::{AppEnv, Settings},
    db::Backend,
    testing::TestDatabase,
};
use reqwest::{Client, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};

use crate::spec::SpecCheck;

/// A running app on its own database. Every response it gives is checked against the OpenAPI
/// document: a mismatch fails the test when the app is dropped (see `spec.rs`).
pub struct TestApp {
    pub base: String,
    pub client: Client,
    pub settings: Settings,
    pub spec: Arc<SpecCheck>,
    keys: JwtKeys,
    _db: TestDatabase,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.spec.assert_truthful();
        }
    }
}

impl TestApp {
    /// Starts the app on `backend`; `None` when that backend is not configured.
    pub async fn spawn(backend: Backend) -> Option<Self> {
        Self::spawn_with(backend, |_| {}).await
    }

    pub async fn spawn_with(backend: Backend, adjust: impl FnOnce(&mut Settings)) -> Option<Self> {
        Self::spawn_full(backend, adjust, Vec::new()).await
    }

    /// Starts the app with changed settings and extra bus subscribers.
    pub async fn spawn_full(
        backend: Backend,
        adjust: impl FnOnce(&mut Settings),
        subscribers: Vec<Arc<dyn Subscriber>>,
    ) -> Option<Self> {
        let db = TestDatabase::new(backend)?;
        let mut settings = Settings::defaults(AppEnv::Test).unwrap();
        settings.server.port = 0;
        settings.server.workers = 2;
        settings.server.shutdown_timeout_secs = 1;
        // Tests fire hundreds of requests from one address; the rate-limit tests turn it on.
        settings.http.rate_limit_per_second = 0;
        settings.database = db.settings();
        adjust(&mut settings);
        let spec = SpecCheck::new();
        let extras = tessera::Extras {
            subscribers,
            inspector: Some(spec.clone()),
        };
        let app = tessera::Application::build_with(&settings, extras)
            .await
            .unwrap();
        let base = format!("http://127.0.0.1:{}", app.port());
        tokio::spawn(app.run_until_stopped());
        Some(Self {
            base,
            client: Client::new(),
            keys: JwtKeys::new(&settings.auth),
            settings,
            spec,
            _db: db,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The SQLite database file, when the app runs on SQLite.
    pub fn sqlite_path(&self) -> Option<std::path::PathBuf> {
        self._db
            .url()
            .strip_prefix("sqlite://")
            .map(std::path::PathBuf::from)
    }

    pub fn keys(&self) -> &JwtKeys {
        &self.keys
    }

    pub fn token(&self, role: Role) -> String {
        self.keys
            .issue(&format!("test-{role}"), role, None)
            .unwrap()
    }

    pub fn get(&self, path: &str) -> RequestBuilder {
        self.client.get(self.url(path))
    }

    /// GET `path` without a token, expecting 200 and a JSON body.
    pub async fn get_json(&self, path: &str) -> Value {
        let response = self.get(path).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "GET {path}");
        response.json().await.unwrap()
    }

    /// GET `path` with an admin token, expecting 200 and a JSON body.
    pub async fn admin_json(&self, path: &str) -> Value {
        let response = self.admin(reqwest::Method::GET, path).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "GET {path}");
        response.json().await.unwrap()
    }

    /// A request with an admin token.
    pub fn admin(&self, method: reqwest::Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(self.token(Role::Admin))
    }

    pub async fn create_product(&self, sku: &str, name: &str, amount: i64, stock: i64) -> Value {
        let response = self
            .admin(reqwest::Method::POST, "/api/v1/products")
            .json(&json!({
                "sku": sku,
                "name": name,
                "price": {"amount": amount, "currency": "EUR"},
                "stock": stock,
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED, "creating {sku}");
        response.json().await.unwrap()
    }
}

/// Reads a problem+json response, checking its shape.
pub async fn problem(response: Response, status: StatusCode) -> Value {
    assert_eq!(response.status(), status);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(content_type, "application/problem+json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], status.as_u16());
    assert!(
        body["type"]
            .as_str()
            .unwrap()
            .starts_with("urn:tessera:problem:")
    );
    assert!(body["title"].is_string() && body["detail"].is_string());
    // Every problem names its kind in a stable, machine-readable code.
    assert!(
        body["code"].as_str().is_some_and(|c| !c.is_empty()),
        "no code: {body}"
    );
    body
}

/// The `field` names of a 422 problem, sorted.
pub fn fields(problem: &Value) -> Vec<String> {
    let mut fields: Vec<String> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_owned())
        .collect();
    fields.sort();
    fields
}

/// Generates one `#[tokio::test]` per backend for each listed `async fn(TestApp)`.
/// PostgreSQL tests return early (after a notice on stderr) when it is not configured.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let app = crate::helpers::TestApp::spawn(kernel::db::Backend::Sqlite)
                        .await
                        .unwrap();
                    super::$name(app).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    if let Some(app) =
                        crate::helpers::TestApp::spawn(kernel::db::Backend::Postgres).await
                    {
                        super::$name(app).await;
                    }
                }
            )*
        }
    };
}
pub(crate) use on_both_backends;

/// Like `on_both_backends!`, with a custom async setup `fn(Backend) -> Option<T>` whose value
/// each test receives.
macro_rules! on_both_backends_with {
    ($setup:ident, $($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let fixture = super::$setup(kernel::db::Backend::Sqlite).await.unwrap();
                    super::$name(fixture).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    if let Some(fixture) = super::$setup(kernel::db::Backend::Postgres).await {
                        super::$name(fixture).await;
                    }
                }
            )*
        }
    };
}
pub(crate) use on_both_backends_with;

/// Items compiled only in the full (default) feature set, where the committed generated
/// documents are compared: single-module builds generate a subset on purpose.
macro_rules! full_build {
    ($($item:item)*) => {
        $(
            #[cfg(all(
                feature = "product",
                feature = "order",
                feature = "payment",
                feature = "patient",
                feature = "contract"
            ))]
            $item
        )*
    };
}
pub(crate) use full_build;

/// CI's drift check of a generated document: the file `committed` (from the repository
/// root) holds exactly `generated`; with `UPDATE_DOCS` set it is rewritten first.
/// `regenerate` is the command that prints it.
pub fn assert_committed(committed: &str, generated: &str, regenerate: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(committed);
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(&path, generated).unwrap();
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == generated,
        "{committed} is out of date: regenerate it with `{regenerate} > {committed}` \
         (or UPDATE_DOCS=1 cargo test)"
    );
}
