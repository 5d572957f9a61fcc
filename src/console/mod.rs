//! The operator console at `/console/`: one page, its scripts and stylesheet, embedded in the
//! binary (nothing is fetched from elsewhere), and the module map as JSON for its diagram.
//! The page asks for an admin token and reads the bus through the operator API
//! (`/api/v1/admin/…`); the assets themselves are public, like Swagger UI's. Served in every
//! build, under the same security headers (Content-Security-Policy included) as the API: the
//! page has no inline script or style.

use actix_web::{
    HttpResponse, ResponseError,
    http::header::{self, ContentType},
    web,
};
use kernel::error::{ApiError, ErrorKind};

use crate::module_map::ModuleMap;

/// The page and its assets: path under `/console/`, content type, body.
const ASSETS: [(&str, &str, &str); 6] = [
    ("", "text/html; charset=utf-8", include_str!("index.html")),
    (
        "console.js",
        "text/javascript; charset=utf-8",
        include_str!("console.js"),
    ),
    (
        "dom.js",
        "text/javascript; charset=utf-8",
        include_str!("dom.js"),
    ),
    (
        "map.js",
        "text/javascript; charset=utf-8",
        include_str!("map.js"),
    ),
    (
        "console.css",
        "text/css; charset=utf-8",
        include_str!("console.css"),
    ),
    ("favicon.svg", "image/svg+xml", include_str!("favicon.svg")),
];

/// Mounts the console (outside `/api/v1`: it is not part of the API document).
pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    for (name, content_type, body) in ASSETS {
        cfg.service(
            web::resource(format!("/console/{name}"))
                .get(move || async move {
                    HttpResponse::Ok()
                        .content_type(content_type)
                        // A new binary may bring new assets: revalidate, never guess.
                        .insert_header((header::CACHE_CONTROL, "no-cache"))
                        .body(body)
                })
                .default_service(web::to(method_not_allowed)),
        );
    }
    cfg.service(
        web::resource("/console/map.json")
            .get(|| async {
                HttpResponse::Ok()
                    .content_type(ContentType::json())
                    .insert_header((header::CACHE_CONTROL, "no-cache"))
                    .json(ModuleMap::of_this_build())
            })
            .default_service(web::to(method_not_allowed)),
    )
    .service(web::resource("/console").to(|| async {
        HttpResponse::PermanentRedirect()
            .insert_header((header::LOCATION, "/console/"))
            .finish()
    }));
}

/// The console's pages are read-only: any method but GET is a 405 problem naming GET.
async fn method_not_allowed(req: actix_web::HttpRequest) -> HttpResponse {
    let mut response = ApiError::new(
        ErrorKind::MethodNotAllowed,
        format!(
            "{} does not answer {}; it answers GET.",
            req.path(),
            req.method()
        ),
    )
    .error_response();
    response
        .headers_mut()
        .insert(header::ALLOW, header::HeaderValue::from_static("GET"));
    response
}
