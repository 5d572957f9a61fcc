//! The HTTP application: [`Application::build`] connects, migrates, wires the built-in
//! modules and binds; [`Application::run_until_stopped`] serves, relays events and runs the
//! background jobs until SIGINT/SIGTERM.

use std::{net::TcpListener, sync::Arc, time::Duration};

use actix_http::{HttpService, Protocol};
use actix_server::ServerBuilder;
use actix_service::{ServiceFactoryExt, fn_service, map_config};
use actix_web::{
    App, HttpResponse,
    dev::{AppConfig, Server},
    middleware::{Condition, from_fn},
    web,
};
use anyhow::Context;
use kernel::{
    auth::JwtKeys,
    bus::{self, Bus, Subscriber, nats::Nats, relay::Relay},
    config::Settings,
    http::{
        JsonLimit,
        idempotency::{self, IdempotencyStore},
        limits::{self, RateLimit},
        middleware,
        wire::Lenient,
    },
    module::{Job, Live},
};
use tokio::net::TcpStream;
use utoipa_actix_web::{AppExt, scope, service_config::ServiceConfig};
use utoipa_swagger_ui::SwaggerUi;

use crate::{
    connect_and_migrate, console,
    docs::openapi_json,
    health,
    inspect::{self, Inspector},
    wiring,
};

/// What a caller adds to the application: plug-ins' (or tests') bus subscribers, and an
/// inspector of every response (the test suite's spec check).
#[derive(Default)]
pub struct Extras {
    pub subscribers: Vec<Arc<dyn Subscriber>>,
    pub inspector: Option<Arc<dyn Inspector>>,
}

impl std::fmt::Debug for Extras {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Extras")
            .field("subscribers", &self.subscribers.len())
            .field("inspector", &self.inspector.is_some())
            .finish()
    }
}

/// Everything mounted under `/api/v1`: the kernel's operator API and each built-in module,
/// with the app data its handlers read.
fn api_v1(modules: &[Arc<dyn Live>], cfg: &mut ServiceConfig<'_>) {
    bus::admin::configure(cfg);
    for module in modules {
        module.routes(cfg);
    }
}

/// Stands in when nobody inspects (its middleware is then not installed).
struct NoInspector;

impl Inspector for NoInspector {
    fn inspect(&self, _: &inspect::Exchange<'_>) {}
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

/// actix-web's `HttpServer::listen`, with each connection read through
/// [`Lenient`](kernel::http::wire::Lenient): a request line holding raw UTF-8 (as curl sends
/// a typed `café`) reaches the application percent-encoded, as a browser sends it, instead
/// of being refused by the parser with an empty 400.
fn serve_leniently<T, B>(
    server: ServerBuilder,
    listener: TcpListener,
    app: impl Fn() -> App<T> + Send + Clone + 'static,
) -> std::io::Result<ServerBuilder>
where
    B: actix_web::body::MessageBody + 'static,
    T: actix_service::ServiceFactory<
            actix_web::dev::ServiceRequest,
            Config = (),
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
            InitError = (),
        > + 'static,
{
    let addr = listener.local_addr()?;
    let graceful = server.graceful_shutdown_signal();
    server.listen("tessera", listener, move || {
        let graceful = graceful.clone();
        let config = actix_http::ServiceConfig::default();
        let http = HttpService::build()
            .graceful_shutdown_signal(move || {
                let graceful = graceful.clone();
                async move { graceful.notified().await }
            })
            .client_request_timeout(Duration::from_secs(5))
            .client_disconnect_timeout(Duration::from_secs(1))
            .local_addr(addr)
            .finish(map_config(app(), move |()| AppConfig::default()));
        fn_service(move |io: TcpStream| {
            let peer = io.peer_addr().ok();
            std::future::ready(Ok((Lenient::new(io, &config), Protocol::Http1, peer)))
        })
        .and_then(http)
    })
}

/// A bound, not yet running server. `build` connects, migrates and binds; `run` serves.
pub struct Application {
    port: u16,
    server: Server,
    bus: Bus,
    jobs: Vec<Job>,
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
        Self::build_with(settings, Extras::default()).await
    }

    /// [`Application::build`] with extra bus subscribers and a response inspector (plug-ins,
    /// tests).
    ///
    /// # Errors
    /// As [`Application::build`], or a subscriber name used twice.
    pub async fn build_with(settings: &Settings, extras: Extras) -> anyhow::Result<Self> {
        let Extras {
            subscribers,
            inspector,
        } = extras;
        // Settings first: a server that cannot start must not create or migrate a database.
        wiring::preflight(settings)?;
        let (db, applied) = connect_and_migrate(settings)?;
        if !applied.is_empty() {
            tracing::info!(count = applied.len(), "applied migrations");
        }
        let bus = Bus::new(db.clone(), settings.bus.clone());
        let mut wired = wiring::wire(&bus, settings)?;
        let (stop, _) = tokio::sync::watch::channel(false);
        let mut background = Vec::new();
        let subscribers: Vec<_> = wired.subscribers.drain(..).chain(subscribers).collect();
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
            .excluding(wired.private_paths.clone())
            .abandoned_after(abandoned_after);
        kernel::metrics::install();
        wired.jobs.push(Box::new(|stop| {
            kernel::jobs::every(std::time::Duration::from_secs(5), stop, || async {
                kernel::metrics::run_upkeep();
            })
        }));
        let rate_limit = RateLimit::from_settings(&settings.http, &JwtKeys::new(&settings.auth))?;
        if rate_limit.enabled() {
            let rate_limit = rate_limit.clone();
            wired.jobs.push(Box::new(move |stop| {
                kernel::jobs::every(std::time::Duration::from_secs(60), stop, move || {
                    rate_limit.forget_idle_clients();
                    async {}
                })
            }));
        }
        let purge = idempotency.clone();
        wired.jobs.push(Box::new(move |stop| {
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
        let jobs = std::mem::take(&mut wired.jobs);
        let state = health::AppState {
            db,
            bus: bus.clone(),
        };
        let server = Self::server(
            settings,
            state,
            idempotency,
            rate_limit,
            wired.modules,
            listener,
            inspector,
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
        state: health::AppState,
        idempotency: IdempotencyStore,
        rate_limit: RateLimit,
        modules: Vec<Arc<dyn Live>>,
        listener: TcpListener,
        inspector: Option<Arc<dyn Inspector>>,
    ) -> anyhow::Result<Server> {
        let http = settings.http.clone();
        let request_timeout = std::time::Duration::from_secs(http.request_timeout_secs.max(1));

        // Serialized once and shared by every worker (each would otherwise keep its own copy
        // of the document and serialize it on every request).
        let spec = web::Bytes::from(openapi_json()?);
        let route_methods = web::Data::new(middleware::RouteMethods::from_openapi(
            &serde_json::from_slice(&spec)?,
        ));
        let keys = JwtKeys::new(&settings.auth).authenticator();
        let json_limit = web::Data::new(JsonLimit(settings.http.json_limit_bytes));
        let bus_data = web::Data::new(state.bus.clone());
        let state = web::Data::new(state);
        let idempotency = web::Data::new(idempotency);
        let modules: Arc<[Arc<dyn Live>]> = modules.into();

        let inspecting = inspector.is_some();
        let inspector: Arc<dyn Inspector> = inspector.unwrap_or_else(|| Arc::new(NoInspector));

        let stop_requested = stop_requested()?;
        let app = move || {
            let modules = modules.clone();
            let (app, _) = App::new()
                .into_utoipa_app()
                .app_data(keys.clone())
                .app_data(json_limit.clone())
                .app_data(state.clone())
                .app_data(bus_data.clone())
                .app_data(idempotency.clone())
                .app_data(route_methods.clone())
                .app_data(
                    web::PathConfig::default().error_handler(kernel::http::path_error_handler),
                )
                .service(
                    scope::scope("/api/v1")
                        .wrap(from_fn(idempotency::idempotency))
                        .configure(|cfg| api_v1(&modules, cfg)),
                )
                .service(health::live)
                .service(health::ready)
                .service(kernel::metrics::scrape)
                .split_for_parts();
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
            .configure(console::configure)
            .default_service(web::to(middleware::not_found))
            // Outermost last: every response, a 429, a timeout or a middleware's refusal
            // included, is a problem if it is an error, and gets the request id, the metrics,
            // CORS and (outermost, so the server's own rendering of an error gets them too)
            // the security headers.
            .wrap(from_fn(move |req, next| {
                limits::timeout(request_timeout, req, next)
            }))
            .wrap(rate_limit.middleware())
            .wrap(Condition::new(
                !http.cors_origins.is_empty(),
                limits::cors(&http.cors_origins),
            ))
            .wrap(from_fn(middleware::request_context))
            .wrap(limits::security_headers(http.hsts))
            .wrap({
                let inspector = inspector.clone();
                Condition::new(
                    inspecting,
                    from_fn(move |req, next| inspect::inspect(inspector.clone(), req, next)),
                )
            })
        };
        let mut server = Server::build()
            .shutdown_timeout(settings.server.shutdown_timeout_secs)
            .shutdown_signal(stop_requested);
        if settings.server.workers > 0 {
            server = server.workers(settings.server.workers);
        }
        Ok(serve_leniently(server, listener, app)?.run())
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
        let trim = tokio::spawn(crate::memory::release_after_start());
        let mut tasks: Vec<_> = self
            .jobs
            .into_iter()
            .map(|start| start(self.stop.subscribe()))
            .collect();
        tasks.extend(self.background);
        let served = self.server.await;
        trim.abort();
        let _ = self.stop.send(true);
        for task in tasks {
            let _ = task.await;
        }
        relay.stop().await;
        served
    }
}
