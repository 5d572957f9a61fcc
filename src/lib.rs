//! Composition of the Tessera binary: which modules are built in (cargo features), how they
//! are wired to the database and to each other, and the HTTP application around them.
//!
//! Tests start the same [`Application`] on port 0 with a fresh database each.

use std::{net::TcpListener, sync::Arc};

use actix_web::{
    App, HttpResponse, HttpServer,
    dev::Server,
    get,
    middleware::{DefaultHeaders, from_fn},
    web,
};
use anyhow::Context;
use kernel::{
    auth::JwtKeys,
    bus::{self, Bus, Subscriber, catalog::EventDoc, relay::Relay},
    config::Settings,
    db::{Db, Migrations},
    error::{ApiError, ErrorKind, Problem},
    http::{JsonLimit, middleware},
};
use serde::Serialize;
use utoipa::{
    Modify, OpenApi, ToSchema,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};
use utoipa_actix_web::{AppExt, scope, service_config::ServiceConfig};
use utoipa_swagger_ui::SwaggerUi;

/// Modules compiled into this binary, in start-up order.
pub const MODULES: &[&str] = &[
    #[cfg(feature = "product")]
    "product",
];

/// The kernel's and the built-in modules' migrations, kernel first.
fn migrations() -> Vec<Migrations> {
    vec![
        bus::MIGRATIONS,
        #[cfg(feature = "product")]
        product::MIGRATIONS,
    ]
}

/// The event types the built-in modules publish.
fn events() -> Vec<EventDoc> {
    let mut events = Vec::new();
    #[cfg(feature = "product")]
    events.extend(product::events());
    events
}

/// The event catalog (AsyncAPI 3.0) of this build, as committed in `openapi/asyncapi.json`.
///
/// # Errors
/// Only if serialization fails.
pub fn asyncapi_json() -> anyhow::Result<String> {
    let doc = bus::catalog::asyncapi(&events(), &[], "tessera", env!("CARGO_PKG_VERSION"));
    let mut json = serde_json::to_string_pretty(&doc).context("serialize the catalog")?;
    json.push('\n');
    Ok(json)
}

/// Opens the database and applies the built-in modules' pending migrations.
///
/// # Errors
/// Connection or migration failures, naming the cause.
pub fn connect_and_migrate(settings: &Settings) -> anyhow::Result<(Db, Vec<String>)> {
    let db = Db::connect(&settings.database)?;
    let applied = db.migrate(&migrations())?;
    Ok((db, applied))
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Tessera",
        description = "One binary, five modules. Reads of the catalog are public; everything \
                       else needs a bearer token (`tessera token --sub NAME --role ROLE`).",
    ),
    modifiers(&BearerAuth),
    // Shared problem responses reference these; list them so every build has them.
    components(schemas(Problem, kernel::error::FieldError)),
    tags(
        (name = "product", description = "Catalog and inventory"),
        (name = "admin", description = "Operator endpoints: the event bus's deliveries and dead letters"),
        (name = "health", description = "Liveness and readiness probes"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// Everything mounted under `/api/v1`: the kernel's operator API and each built-in module.
fn api_v1(cfg: &mut ServiceConfig) {
    bus::admin::configure(cfg);
    #[cfg(feature = "product")]
    product::configure(cfg);
}

/// The OpenAPI document of this build (only the built-in modules' paths).
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, mut api) = App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .service(scope::scope("/api/v1").configure(api_v1))
        .service(live)
        .service(ready)
        .split_for_parts();
    api.info.version = env!("CARGO_PKG_VERSION").to_owned();
    api
}

/// The spec as committed in `openapi/openapi.json`.
///
/// # Errors
/// Only if serialization fails.
pub fn openapi_json() -> anyhow::Result<String> {
    let mut json = serde_json::to_string_pretty(&openapi()).context("serialize the spec")?;
    json.push('\n');
    Ok(json)
}

/// Shared state of the running app.
#[derive(Clone)]
struct AppState {
    db: Db,
    bus: Bus,
}

#[derive(Serialize, ToSchema)]
struct Health {
    /// `ok` when the check passed.
    status: &'static str,
}

/// Liveness: the process is up and serving HTTP.
#[utoipa::path(tag = "health", operation_id = "health_live",
    responses((status = 200, description = "Alive", body = Health)))]
#[get("/health/live")]
async fn live() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok" })
}

/// Readiness: the database answers and the event relay is running.
#[utoipa::path(tag = "health", operation_id = "health_ready",
    responses(
        (status = 200, description = "Ready", body = Health),
        (status = 503, description = "The database does not answer, or the event relay is not running", body = Problem, content_type = "application/problem+json"),
    ))]
#[get("/health/ready")]
async fn ready(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state.db.ping().await.map_err(|e| {
        tracing::warn!(error = ?e, "readiness check failed");
        ApiError::new(
            ErrorKind::ServiceUnavailable,
            "The database does not answer.",
        )
    })?;
    if !state.bus.relay_alive() {
        return Err(ApiError::new(
            ErrorKind::ServiceUnavailable,
            "The event relay is not running.",
        ));
    }
    Ok(HttpResponse::Ok().json(Health { status: "ok" }))
}

/// A bound, not yet running server. `build` connects, migrates and binds; `run` serves.
pub struct Application {
    port: u16,
    server: Server,
    bus: Bus,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl Application {
    /// # Errors
    /// Database, migration or bind failures, naming the cause.
    pub fn build(settings: &Settings) -> anyhow::Result<Self> {
        Self::build_with(settings, Vec::new())
    }

    /// [`Application::build`] with extra bus subscribers (plug-ins, tests).
    ///
    /// # Errors
    /// As [`Application::build`], or a subscriber name used twice.
    pub fn build_with(
        settings: &Settings,
        subscribers: Vec<Arc<dyn Subscriber>>,
    ) -> anyhow::Result<Self> {
        let (db, applied) = connect_and_migrate(settings)?;
        if !applied.is_empty() {
            tracing::info!(count = applied.len(), "applied migrations");
        }
        let bus = Bus::new(db.clone(), settings.bus.clone());
        for subscriber in subscribers {
            bus.subscribe(subscriber)?;
        }
        let listener = TcpListener::bind((settings.server.host.as_str(), settings.server.port))
            .with_context(|| {
                format!(
                    "cannot listen on {}:{}",
                    settings.server.host, settings.server.port
                )
            })?;
        let port = listener.local_addr()?.port();
        let server = Self::server(settings, db, &bus, listener)?;
        Ok(Self { port, server, bus })
    }

    fn server(
        settings: &Settings,
        db: Db,
        bus: &Bus,
        listener: TcpListener,
    ) -> anyhow::Result<Server> {
        let spec = openapi();
        let keys = web::Data::new(JwtKeys::new(&settings.auth));
        let json_limit = web::Data::new(JsonLimit(settings.http.json_limit_bytes));
        let state = web::Data::new(AppState {
            db,
            bus: bus.clone(),
        });
        let bus_data = web::Data::new(bus.clone());
        #[cfg(feature = "product")]
        let products = web::Data::from(product::service(
            bus.clone(),
            &settings.module::<product::ProductSettings>("product")?,
        ));

        let mut server = HttpServer::new(move || {
            let (app, _) = App::new()
                .into_utoipa_app()
                .app_data(keys.clone())
                .app_data(json_limit.clone())
                .app_data(state.clone())
                .app_data(bus_data.clone())
                .app_data(
                    web::PathConfig::default().error_handler(kernel::http::path_error_handler),
                )
                .service(scope::scope("/api/v1").configure(api_v1))
                .service(live)
                .service(ready)
                .split_for_parts();
            #[cfg(feature = "product")]
            let app = app.app_data(products.clone());
            app.service(
                SwaggerUi::new("/swagger-ui/{_:.*}").url("/api-docs/openapi.json", spec.clone()),
            )
            .service(web::resource("/swagger-ui").to(|| async {
                HttpResponse::PermanentRedirect()
                    .insert_header(("Location", "/swagger-ui/"))
                    .finish()
            }))
            .default_service(web::to(middleware::not_found))
            .wrap(
                DefaultHeaders::new()
                    .add(("X-Content-Type-Options", "nosniff"))
                    .add(("Referrer-Policy", "no-referrer")),
            )
            .wrap(from_fn(middleware::request_context))
        })
        .shutdown_timeout(settings.server.shutdown_timeout_secs)
        .listen(listener)?;
        if settings.server.workers > 0 {
            server = server.workers(settings.server.workers);
        }
        Ok(server.run())
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves and relays events until SIGINT/SIGTERM, then drains in-flight requests and
    /// lets the relay finish its batch.
    ///
    /// # Errors
    /// I/O errors of the server.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let relay: Relay = self.bus.start_relay();
        let served = self.server.await;
        relay.stop().await;
        served
    }
}
