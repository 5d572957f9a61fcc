//! Composition of the Tessera binary: which modules are built in (cargo features), how they
//! are wired to the database and to each other, and the HTTP application around them.
//!
//! Tests start the same [`Application`] on port 0 with a fresh database each.

use std::{net::TcpListener, sync::Arc};

use actix_web::{
    App, HttpResponse, HttpServer,
    dev::Server,
    get,
    middleware::{Condition, from_fn},
    web,
};
use anyhow::Context;
use kernel::{
    auth::JwtKeys,
    bus::{self, Bus, Subscriber, nats::Nats, relay::Relay},
    config::Settings,
    db::Db,
    error::{ApiError, ErrorKind, Problem},
    http::{
        JsonLimit,
        idempotency::{self, IdempotencyStore},
        limits::{self, RateLimit},
        middleware,
    },
};
use serde::Serialize;
use utoipa::{
    Modify, OpenApi, ToSchema,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};
use utoipa_actix_web::{AppExt, scope, service_config::ServiceConfig};
use utoipa_swagger_ui::SwaggerUi;

mod module_map;
mod wiring;

/// The module map of this build (Markdown with a Mermaid flowchart: trait calls and event
/// flows between the built-in modules), as committed in `docs/modules.md`.
pub fn module_map_markdown() -> String {
    module_map::module_map()
}

pub use wiring::MODULES;

/// The event catalog (AsyncAPI 3.0) of this build, as committed in `openapi/asyncapi.json`.
///
/// # Errors
/// Only if serialization fails.
pub fn asyncapi_json() -> anyhow::Result<String> {
    let (events, consumers) = wiring::catalog();
    let doc = bus::catalog::asyncapi(&events, &consumers, "tessera", env!("CARGO_PKG_VERSION"));
    let mut json = serde_json::to_string_pretty(&doc).context("serialize the catalog")?;
    json.push('\n');
    Ok(json)
}

/// `tessera doctor`: checks what the server needs (changing nothing but creating an empty
/// SQLite file where none exists yet) and says
/// what is wrong in plain words. Returns the report and whether everything is fine.
pub async fn doctor(settings: &Settings) -> (String, bool) {
    let mut report = String::new();
    let mut healthy = true;
    let mut line = |ok: bool, text: String| {
        healthy &= ok;
        report.push_str(if ok { "ok    " } else { "FAIL  " });
        report.push_str(&text);
        report.push('\n');
    };
    line(
        true,
        format!("configuration loads (TESSERA_ENV={})", settings.env),
    );
    line(true, format!("modules built in: {}", MODULES.join(", ")));
    match Db::connect(&settings.database) {
        Ok(db) => {
            line(
                true,
                format!(
                    "database reachable: {}",
                    kernel::db::redact_url(&settings.database.url)
                ),
            );
            match db.pending_migrations(&wiring::migrations()) {
                Ok(pending) if pending.is_empty() => line(true, "migrations: all applied".into()),
                Ok(pending) => line(
                    false,
                    format!(
                        "migrations: {} pending ({}); run `tessera migrate` (the server also applies them at start)",
                        pending.len(),
                        pending.join(", ")
                    ),
                ),
                Err(e) => line(false, format!("migrations: {e:#}")),
            }
        }
        Err(e) => line(false, format!("database: {e:#}")),
    }
    match &settings.bus.nats_url {
        None => line(
            true,
            "events: in-process (no TESSERA__BUS__NATS_URL)".into(),
        ),
        Some(url) => {
            let timeout =
                std::time::Duration::from_secs(settings.database.connect_timeout_secs.max(1));
            match Nats::connect(url, &settings.bus.subject_prefix, timeout).await {
                Ok(_) => line(true, format!("NATS JetStream reachable at {url}")),
                Err(e) => line(false, format!("NATS: {e:#}")),
            }
        }
    }
    (report, healthy)
}

/// Opens the database and applies the built-in modules' pending migrations.
///
/// # Errors
/// Connection or migration failures, naming the cause.
pub fn connect_and_migrate(settings: &Settings) -> anyhow::Result<(Db, Vec<String>)> {
    let db = Db::connect(&settings.database)?;
    let applied = db.migrate(&wiring::migrations())?;
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
        (name = "order", description = "Orders: place, pay (see payment), ship, deliver, cancel"),
        (name = "payment", description = "Card payments and refunds"),
        (name = "patient", description = "Clinical records (clinician and admin only; every access audited)"),
        (name = "fhir", description = "FHIR R4 views of clinical records"),
        (name = "contract", description = "Deterministic contracts in CEL with a hash-chained ledger"),
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
    #[cfg(feature = "order")]
    order::configure(cfg);
    #[cfg(feature = "payment")]
    payment::configure(cfg);
    #[cfg(feature = "patient")]
    patient::configure(cfg);
    #[cfg(feature = "contract")]
    contract::configure(cfg);
}

/// The OpenAPI document of this build (only the built-in modules' paths).
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, mut api) = App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .service(scope::scope("/api/v1").configure(api_v1))
        .service(live)
        .service(ready)
        .service(kernel::metrics::scrape)
        .split_for_parts();
    api.info.version = env!("CARGO_PKG_VERSION").to_owned();
    edge_responses(&mut api);
    api
}

/// Responses any operation can give because of what sits in front of every handler: the rate
/// limit (429) and the request timeout (503).
fn edge_responses(api: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{
        ContentBuilder, Ref, ResponseBuilder, Type, header::HeaderBuilder, schema::ObjectBuilder,
    };
    let problem = || {
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("Problem")))
            .build()
    };
    let too_many = ResponseBuilder::new()
        .description("Too many requests from this client (see `http.rate_limit_*`)")
        .header(
            "Retry-After",
            HeaderBuilder::new()
                .schema(Some(ObjectBuilder::new().schema_type(Type::Integer)))
                .description(Some("Seconds to wait before retrying"))
                .build(),
        )
        .content("application/problem+json", problem())
        .build();
    let timeout = ResponseBuilder::new()
        .description("The request did not finish within `http.request_timeout_secs`")
        .content("application/problem+json", problem())
        .build();
    for item in api.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            let responses = &mut operation.responses.responses;
            responses
                .entry("429".into())
                .or_insert_with(|| too_many.clone().into());
            responses
                .entry("503".into())
                .or_insert_with(|| timeout.clone().into());
        }
    }
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
    /// In a split deployment, the broker: `degraded` while events wait in the outbox for it
    /// (the service still takes writes, so it stays ready).
    #[serde(skip_serializing_if = "Option::is_none")]
    broker: Option<kernel::bus::BrokerHealth>,
}

/// Liveness: the process is up and serving HTTP.
#[utoipa::path(tag = "health", operation_id = "health_live", security(()),
    responses((status = 200, description = "Alive", body = Health)))]
#[get("/health/live")]
async fn live() -> HttpResponse {
    HttpResponse::Ok().json(Health {
        status: "ok",
        broker: None,
    })
}

/// Readiness: the database answers and the event relay is running.
#[utoipa::path(tag = "health", operation_id = "health_ready", security(()),
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
    Ok(HttpResponse::Ok().json(Health {
        status: "ok",
        broker: state.bus.broker_health(),
    }))
}

/// Registers a module's service as app data when it is wired.
fn with_data<T, S>(app: App<T>, data: &Option<web::Data<S>>) -> App<T>
where
    T: actix_web::dev::ServiceFactory<
            actix_web::dev::ServiceRequest,
            Config = (),
            Error = actix_web::Error,
            InitError = (),
        >,
    S: ?Sized + 'static,
{
    match data {
        Some(data) => app.app_data(data.clone()),
        None => app,
    }
}

/// Resolves at the first SIGINT or SIGTERM. Replaces actix's own handling, which stops
/// without draining on SIGINT (Ctrl-C) and so drops the requests in flight; both drain now.
fn stop_requested() -> anyhow::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    Ok(async move {
        let name = tokio::select! {
            _ = interrupt.recv() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
        };
        tracing::info!("{name} received; starting graceful shutdown (draining in-flight requests)");
    })
}

/// A bound, not yet running server. `build` connects, migrates and binds; `run` serves.
pub struct Application {
    port: u16,
    server: Server,
    bus: Bus,
    jobs: Vec<wiring::Job>,
    /// Stops jobs and NATS consumers when the server has stopped.
    stop: tokio::sync::watch::Sender<bool>,
    background: Vec<tokio::task::JoinHandle<()>>,
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
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        Self::build_with(settings, Vec::new()).await
    }

    /// [`Application::build`] with extra bus subscribers (plug-ins, tests).
    ///
    /// # Errors
    /// As [`Application::build`], or a subscriber name used twice.
    pub async fn build_with(
        settings: &Settings,
        subscribers: Vec<Arc<dyn Subscriber>>,
    ) -> anyhow::Result<Self> {
        let (db, applied) = connect_and_migrate(settings)?;
        if !applied.is_empty() {
            tracing::info!(count = applied.len(), "applied migrations");
        }
        let bus = Bus::new(db.clone(), settings.bus.clone());
        let mut modules = wiring::wire(&bus, settings)?;
        let (stop, _) = tokio::sync::watch::channel(false);
        let mut background = Vec::new();
        let subscribers: Vec<_> = modules.subscribers.drain(..).chain(subscribers).collect();
        match &settings.bus.nats_url {
            // One process: the outbox delivers to every subscriber.
            None => {
                for subscriber in subscribers {
                    bus.subscribe(subscriber)?;
                }
            }
            // Split: the outbox hands events to JetStream, and subscribers consume from it.
            Some(url) => {
                let timeout =
                    std::time::Duration::from_secs(settings.database.connect_timeout_secs.max(1));
                let nats = Nats::connect(url, &settings.bus.subject_prefix, timeout).await?;
                bus.subscribe(nats.publisher())?;
                for subscriber in subscribers {
                    background.extend(nats.consume(&bus, subscriber, stop.subscribe()).await?);
                }
            }
        }
        // A record still `running` after the request timeout (plus a margin for the answer
        // to be written) belongs to a process that died: the client's retry may take it over.
        let abandoned_after =
            std::time::Duration::from_secs(settings.http.request_timeout_secs.max(1) + 5);
        let idempotency = IdempotencyStore::new(db.clone(), settings.auth.jwt_secret.as_bytes())
            .excluding(modules.private_paths.clone())
            .abandoned_after(abandoned_after);
        kernel::metrics::install();
        modules.jobs.push(Box::new(|stop| {
            kernel::jobs::every(std::time::Duration::from_secs(5), stop, || async {
                kernel::metrics::run_upkeep();
            })
        }));
        let rate_limit = RateLimit::from_settings(&settings.http, &JwtKeys::new(&settings.auth))?;
        if rate_limit.enabled() {
            let rate_limit = rate_limit.clone();
            modules.jobs.push(Box::new(move |stop| {
                kernel::jobs::every(std::time::Duration::from_secs(60), stop, move || {
                    rate_limit.forget_idle_clients();
                    async {}
                })
            }));
        }
        let purge = idempotency.clone();
        modules.jobs.push(Box::new(move |stop| {
            kernel::jobs::every(std::time::Duration::from_secs(3600), stop, move || {
                let purge = purge.clone();
                async move {
                    if let Err(e) = purge.purge_expired().await {
                        tracing::warn!(error = ?e, "purging idempotency keys failed");
                    }
                }
            })
        }));
        let listener = TcpListener::bind((settings.server.host.as_str(), settings.server.port))
            .with_context(|| {
                format!(
                    "cannot listen on {}:{}",
                    settings.server.host, settings.server.port
                )
            })?;
        let port = listener.local_addr()?.port();
        let jobs = std::mem::take(&mut modules.jobs);
        let server = Self::server(
            settings,
            db,
            &bus,
            idempotency,
            rate_limit,
            modules,
            listener,
        )?;
        Ok(Self {
            port,
            server,
            bus,
            jobs,
            stop,
            background,
        })
    }

    fn server(
        settings: &Settings,
        db: Db,
        bus: &Bus,
        idempotency: IdempotencyStore,
        rate_limit: RateLimit,
        modules: wiring::Wiring,
        listener: TcpListener,
    ) -> anyhow::Result<Server> {
        let http = settings.http.clone();
        let request_timeout = std::time::Duration::from_secs(http.request_timeout_secs.max(1));

        // Serialized once and shared by every worker (each would otherwise keep its own copy
        // of the document and serialize it on every request).
        let spec = web::Bytes::from(openapi_json()?);
        let keys = JwtKeys::new(&settings.auth).authenticator();
        let json_limit = web::Data::new(JsonLimit(settings.http.json_limit_bytes));
        let state = web::Data::new(AppState {
            db,
            bus: bus.clone(),
        });
        let bus_data = web::Data::new(bus.clone());
        let idempotency = web::Data::new(idempotency);
        #[cfg(feature = "product")]
        let products = modules.products.map(web::Data::from);
        #[cfg(feature = "order")]
        let orders = modules.orders.map(web::Data::from);
        #[cfg(feature = "payment")]
        let payments = modules.payments.map(web::Data::from);
        #[cfg(feature = "patient")]
        let patients = modules.patients.map(web::Data::from);
        #[cfg(feature = "contract")]
        let contracts = modules.contracts.map(web::Data::from);

        let stop_requested = stop_requested()?;
        let mut server = HttpServer::new(move || {
            let (app, _) = App::new()
                .into_utoipa_app()
                .app_data(keys.clone())
                .app_data(json_limit.clone())
                .app_data(state.clone())
                .app_data(bus_data.clone())
                .app_data(idempotency.clone())
                .app_data(
                    web::PathConfig::default().error_handler(kernel::http::path_error_handler),
                )
                .service(
                    scope::scope("/api/v1")
                        .wrap(from_fn(idempotency::idempotency))
                        .configure(api_v1),
                )
                .service(live)
                .service(ready)
                .service(kernel::metrics::scrape)
                .split_for_parts();
            #[cfg(feature = "product")]
            let app = with_data(app, &products);
            #[cfg(feature = "order")]
            let app = with_data(app, &orders);
            #[cfg(feature = "payment")]
            let app = with_data(app, &payments);
            #[cfg(feature = "patient")]
            let app = with_data(app, &patients);
            #[cfg(feature = "contract")]
            let app = with_data(app, &contracts);
            let spec = spec.clone();
            app.service(
                SwaggerUi::new("/swagger-ui/{_:.*}")
                    .config(utoipa_swagger_ui::Config::from("/api-docs/openapi.json")),
            )
            .service(web::resource("/api-docs/openapi.json").to(move || {
                let spec = spec.clone();
                async move {
                    HttpResponse::Ok()
                        .content_type("application/json")
                        .body(spec)
                }
            }))
            .service(web::resource("/swagger-ui").to(|| async {
                HttpResponse::PermanentRedirect()
                    .insert_header(("Location", "/swagger-ui/"))
                    .finish()
            }))
            .default_service(web::to(middleware::not_found))
            // Outermost last: every response, a 429 or a timeout included, gets the request
            // id, the metrics, the security headers and CORS.
            .wrap(from_fn(move |req, next| {
                limits::timeout(request_timeout, req, next)
            }))
            .wrap(rate_limit.middleware())
            .wrap(Condition::new(
                !http.cors_origins.is_empty(),
                limits::cors(&http.cors_origins),
            ))
            .wrap(limits::security_headers(http.hsts))
            .wrap(from_fn(middleware::request_context))
        })
        .shutdown_timeout(settings.server.shutdown_timeout_secs)
        .shutdown_signal(stop_requested)
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
        let mut tasks: Vec<_> = self
            .jobs
            .into_iter()
            .map(|start| start(self.stop.subscribe()))
            .collect();
        tasks.extend(self.background);
        let served = self.server.await;
        let _ = self.stop.send(true);
        for task in tasks {
            let _ = task.await;
        }
        relay.stop().await;
        served
    }
}
