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
