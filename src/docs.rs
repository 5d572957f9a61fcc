//! The documents this build generates: the OpenAPI document (`tessera openapi`, committed as
//! `openapi/openapi.json`) and the event catalog (`tessera events`, committed as
//! `openapi/asyncapi.json`). Both come from the module list alone: no database, no running
//! module.

use actix_web::App;
use anyhow::Context;
use kernel::{bus, error::Problem, module::Plug};
use utoipa::{
    Modify, OpenApi,
    openapi::{
        security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
        tag::TagBuilder,
    },
};
use utoipa_actix_web::{AppExt, scope, service_config::ServiceConfig};

use crate::{health, modules};

/// The document's frame. The modules' tags come first, from the modules (in list order); the
/// tags of the kernel's and the binary's own operations follow.
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

/// The handlers under `/api/v1` (without app data): the kernel's operator API and each
/// built-in module's.
fn api_v1(plugs: &[Plug], cfg: &mut ServiceConfig<'_>) {
    bus::admin::configure(cfg);
    for plug in plugs {
        plug.mount(cfg);
    }
}

/// The OpenAPI document of this build (only the built-in modules' paths and tags).
pub fn openapi() -> utoipa::openapi::OpenApi {
    let plugs = modules::plugs();
    let (_, mut api) = App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .service(scope::scope("/api/v1").configure(|cfg| api_v1(&plugs, cfg)))
        .service(health::live)
        .service(health::ready)
        .service(kernel::metrics::scrape)
        .split_for_parts();
    api.info.version = env!("CARGO_PKG_VERSION").to_owned();
    let own = api.tags.take().unwrap_or_default();
    let tags = plugs.iter().flat_map(Plug::tags).map(|tag| {
        TagBuilder::new()
            .name(tag.name)
            .description(Some(tag.description))
            .build()
    });
    api.tags = Some(tags.chain(own).collect());
    servers(&mut api);
    security(&mut api);
    edge_responses(&mut api);
    api
}

/// Where the API is: the host that serves the document (at `/api-docs/openapi.json`), whose
/// root the paths (`/api/v1/…`) start from. A deployment's address is not known when the
/// document is generated; a client generated from it takes its base URL from there, or from
/// its caller.
fn servers(api: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::server::ServerBuilder;
    api.servers = Some(vec![
        ServerBuilder::new()
            .url("/")
            .description(Some(
                "This server: the host that serves this document at /api-docs/openapi.json",
            ))
            .build(),
    ]);
}

/// A bearer token is required unless an operation says otherwise: each secured operation
/// names its roles, and a public one overrides the requirement with an empty list
/// (`security: []`), which generators read as "no authentication". (`[{}]` would mean
/// "authentication optional", and generators then type the call as authenticated.)
fn security(api: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::security::SecurityRequirement;
    api.security = Some(vec![SecurityRequirement::new(
        "bearer",
        Vec::<String>::new(),
    )]);
    for item in api.paths.paths.values_mut() {
        for operation in operations(item) {
            if let Some(requirements) = &mut operation.security {
                requirements.retain(|r| *r != SecurityRequirement::default());
            }
        }
    }
}

fn operations(
    item: &mut utoipa::openapi::path::PathItem,
) -> impl Iterator<Item = &mut utoipa::openapi::path::Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.patch,
    ]
    .into_iter()
    .flatten()
}

/// Responses any operation can give because of what sits in front of every handler: the rate
/// limit (429, which never counts the health probes), the request timeout or a shortage (503,
/// with `Retry-After` when the wait is known), an unexpected failure (500), and a path
/// parameter the database cannot store (422).
fn edge_responses(api: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{
        ContentBuilder, Ref, RefOr, ResponseBuilder, Type, header::HeaderBuilder,
        schema::ObjectBuilder,
    };
    let problem = || {
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("Problem")))
            .build()
    };
    let retry_after = |description: &str| {
        HeaderBuilder::new()
            .schema(Some(ObjectBuilder::new().schema_type(Type::Integer)))
            .description(Some(description))
            .build()
    };
    let too_many = ResponseBuilder::new()
        .description("Too many requests from this client (see `http.rate_limit_*`)")
        .header(
            "Retry-After",
            retry_after("Seconds to wait before retrying"),
        )
        .content("application/problem+json", problem())
        .build();
    let unavailable = ResponseBuilder::new()
        .description(
            "Unavailable for now: a module this needs is down (split deployment), the server \
             is short of database connections, or the request did not finish within \
             `http.request_timeout_secs` (its outcome is unknown)",
        )
        .content("application/problem+json", problem())
        .build();
    let internal = ResponseBuilder::new()
        .description("An unexpected error; the problem's `request_id` identifies it in the logs")
        .content("application/problem+json", problem())
        .build();
    let unstorable = ResponseBuilder::new()
        .description("A path parameter holds a character that cannot be stored (NUL, `%00`)")
        .content("application/problem+json", problem())
        .build();
    for (path, item) in &mut api.paths.paths {
        let probe = kernel::http::limits::PROBE_PATHS.contains(&path.as_str());
        let templated = path.contains('{');
        for operation in operations(item) {
            let responses = &mut operation.responses.responses;
            if !probe {
                responses
                    .entry("429".into())
                    .or_insert_with(|| too_many.clone().into());
            }
            if templated {
                responses
                    .entry("422".into())
                    .or_insert_with(|| unstorable.clone().into());
            }
            responses
                .entry("500".into())
                .or_insert_with(|| internal.clone().into());
            let unavailable = responses
                .entry("503".into())
                .or_insert_with(|| unavailable.clone().into());
            if let RefOr::T(response) = unavailable {
                response
                    .headers
                    .entry("Retry-After".into())
                    .or_insert_with(|| {
                        RefOr::T(retry_after(
                            "Seconds to wait before retrying, when the wait is known",
                        ))
                    });
            }
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

/// The event catalog (AsyncAPI 3.0) of this build, as committed in `openapi/asyncapi.json`.
///
/// # Errors
/// Only if serialization fails.
pub fn asyncapi_json() -> anyhow::Result<String> {
    let (events, consumers) = modules::catalog();
    let doc = bus::catalog::asyncapi(&events, &consumers, "tessera", env!("CARGO_PKG_VERSION"));
    let mut json = serde_json::to_string_pretty(&doc).context("serialize the catalog")?;
    json.push('\n');
    Ok(json)
}
