//! The request-context middleware: a request id on every request and response, one span
//! and one log line per request, panics turned into 500 problems instead of dropped
//! connections, 500 bodies replaced by an opaque problem carrying the request id (the cause
//! goes to the log, never to the client), and every other error response that is not a
//! problem document yet (a CORS refusal, a middleware's plain-text error) made one: whichever
//! layer answered, a 4xx or 5xx is `application/problem+json` with a `code` and carries the
//! request id — also when a middleware refused with an error instead of a response (the
//! idempotency check, the request timeout), through the error's response mapper.

use std::{collections::HashMap, future::Future, panic::AssertUnwindSafe, pin::Pin, time::Instant};

use actix_web::{
    Error, FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError,
    body::{BoxBody, MessageBody},
    dev::{Payload, ServiceRequest, ServiceResponse},
    http::{
        StatusCode,
        header::{self, HeaderValue},
    },
    middleware::Next,
    web,
};
use futures_util::FutureExt;
use tracing::Instrument;

use crate::error::{ApiError, ErrorKind, PROBLEM_CONTENT_TYPE, problem_response};

pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The id of the current request: the client's `x-request-id` when it is sane, else a new
/// UUID v7.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

impl RequestId {
    fn from_header(req: &ServiceRequest) -> Self {
        req.headers()
            .get(REQUEST_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|v| {
                !v.is_empty()
                    && v.len() <= 128
                    && v.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
            })
            .map_or_else(Self::fresh, |v| Self(v.to_owned()))
    }
}

impl RequestId {
    /// A new UUIDv7, formatted without going through `Display`.
    fn fresh() -> Self {
        let mut buffer = uuid::Uuid::encode_buffer();
        Self(
            uuid::Uuid::now_v7()
                .hyphenated()
                .encode_lower(&mut buffer)
                .to_owned(),
        )
    }
}

impl FromRequest for RequestId {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let id = req.extensions().get::<RequestId>().cloned();
        Box::pin(async move {
            id.ok_or_else(|| {
                ApiError::internal(anyhow::anyhow!(
                    "request-context middleware is not installed"
                ))
            })
        })
    }
}

/// Install with `App::wrap(actix_web::middleware::from_fn(request_context))`, outermost but
/// for [`super::limits::security_headers`].
///
/// # Errors
/// Never: every failure becomes a response.
pub async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let request_id = RequestId::from_header(&req);
    req.extensions_mut().insert(request_id.clone());
    let method = req.method().clone();
    // The route template (`/api/v1/products/{id}`) names the span and labels the metrics:
    // raw paths would grow both without bound. Unmatched paths share one label value.
    let route = req.match_pattern();
    let span = tracing::info_span!(
        "http.request",
        otel.name = %route.as_deref().map_or_else(|| method.to_string(), |r| format!("{method} {r}")),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = %method,
        http.route = route.as_deref(),
        http.response.status_code = tracing::field::Empty,
        url.path = %req.path(),
        request_id = %request_id.0,
        trace_id = tracing::field::Empty,
    );
    // An incoming W3C `traceparent` makes this span a child of the caller's; the trace id
    // goes into every log line of the request.
    let trace = crate::telemetry::continue_trace(&span, req.headers());
    if let Some(trace) = trace {
        span.record("trace_id", tracing::field::display(trace.id));
    }
    // No clone of the request may be held here: routing needs it unshared.
    let started = Instant::now();

    // Calls this request makes to other services carry its id and its trace.
    #[cfg(feature = "client")]
    let context = crate::client::CallContext {
        request_id: Some(request_id.0.clone()),
        trace,
    };
    let call = AssertUnwindSafe(next.call(req)).catch_unwind();
    #[cfg(feature = "client")]
    let call = context.scope(call);
    let outcome = call.instrument(span.clone()).await;
    let route = route.as_deref().unwrap_or("unmatched");
    let mut res = match outcome {
        Ok(Ok(res)) => res.map_into_boxed_body(),
        Ok(Err(mut err)) => {
            // A middleware's refusal (e.g. the request timeout): the server renders it, as
            // every other response is finished.
            let status = err.as_response_error().status_code();
            crate::metrics::http_request(
                method.as_str(),
                route,
                status.as_u16(),
                started.elapsed(),
            );
            record_status(&span, status);
            tracing::warn!(parent: &span, status = status.as_u16(), error = %err, "request failed");
            let id = request_id.0.clone();
            err.add_response_mapper(move |response| finish(response, &id));
            return Err(err);
        }
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic payload".to_owned());
            record_status(&span, StatusCode::INTERNAL_SERVER_ERROR);
            tracing::error!(parent: &span, panic = %message, "handler panicked");
            // The request went down with the handler; the server renders this error itself.
            return Err(ApiError::new(ErrorKind::Internal, INTERNAL_DETAIL)
                .with_request_id(request_id.0)
                .into());
        }
    };

    let status = res.status();
    if status == StatusCode::INTERNAL_SERVER_ERROR
        && let Some(err) = res.response().error()
    {
        tracing::error!(parent: &span, error = ?err, "request failed");
    }
    let (http_req, response) = res.into_parts();
    res = ServiceResponse::new(http_req, finish(response, &request_id.0));
    let latency = started.elapsed();
    crate::metrics::http_request(method.as_str(), route, status.as_u16(), latency);
    record_status(&span, status);
    tracing::info!(
        parent: &span,
        status = status.as_u16(),
        route = %route,
        latency_ms = latency.as_secs_f64() * 1000.0,
        "request completed"
    );
    Ok(res)
}

/// The response status on the request span; a 5xx marks the span as failed.
fn record_status(span: &tracing::Span, status: StatusCode) {
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "error");
    }
}

const INTERNAL_DETAIL: &str = "An unexpected error occurred.";

/// A response as it leaves: a 500 made opaque, any other error that is not a problem
/// document yet made one (keeping its headers), and the request id in `x-request-id`.
fn finish(response: HttpResponse, request_id: &str) -> HttpResponse {
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(PROBLEM_CONTENT_TYPE.as_bytes()));
    let mut response =
        if status.as_u16() >= 400 && (status == StatusCode::INTERNAL_SERVER_ERROR || !is_problem) {
            let (head, body) = response.into_parts();
            let mut problem = problem_for(status, body, request_id);
            for (name, value) in head.headers() {
                if !problem.headers().contains_key(name) && *name != header::CONTENT_LENGTH {
                    problem.headers_mut().append(name.clone(), value.clone());
                }
            }
            problem
        } else {
            response
        };
    if let Ok(value) = HeaderValue::from_str(request_id) {
        response
            .headers_mut()
            .insert(header::HeaderName::from_static(REQUEST_ID_HEADER), value);
    }
    response
}

/// The problem for an error response that was not one: its own short plain-text reason as
/// the detail for a 4xx (a CORS refusal says which rule), the status's name otherwise; a 5xx
/// never says more than that, and carries the request id.
fn problem_for(status: StatusCode, body: BoxBody, request_id: &str) -> HttpResponse {
    let server_error = status.is_server_error();
    let kind = ErrorKind::from_status(status.as_u16()).unwrap_or(if server_error {
        ErrorKind::Internal
    } else {
        ErrorKind::BadRequest
    });
    let text = body
        .try_into_bytes()
        .ok()
        .and_then(|bytes| String::from_utf8(bytes.to_vec()).ok())
        .map(|text| text.trim().to_owned())
        .filter(|text| !server_error && !text.is_empty() && text.len() <= 300);
    let detail = match (text, kind) {
        (_, ErrorKind::Internal) => INTERNAL_DETAIL.to_owned(),
        (Some(text), _) => format!("{}.", text.trim_end_matches('.')),
        (None, _) => format!("{}.", status.canonical_reason().unwrap_or("Error")),
    };
    let mut error = ApiError::new(kind, detail);
    if server_error {
        error = error.with_request_id(request_id);
    }
    let mut problem = error.problem();
    problem.status = status.as_u16();
    problem_response(&problem)
}

/// The methods each route answers, from the OpenAPI document (`paths` → operations),
/// registered as app data so that [`not_found`] can tell a known path asked with another
/// method (405 with `Allow`) from an unknown one (404).
#[derive(Debug, Clone, Default)]
pub struct RouteMethods(HashMap<String, Vec<String>>);

impl RouteMethods {
    pub fn from_openapi(spec: &serde_json::Value) -> Self {
        let methods = [
            "GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE",
        ];
        let paths = spec.get("paths").and_then(serde_json::Value::as_object);
        Self(
            paths
                .into_iter()
                .flatten()
                .map(|(path, operations)| {
                    let allowed = methods
                        .iter()
                        .filter(|m| operations.get(m.to_ascii_lowercase()).is_some())
                        .map(|m| (*m).to_owned())
                        .collect();
                    (path.clone(), allowed)
                })
                .collect(),
        )
    }
}

/// Unknown paths answer with a 404 problem; a known path asked with a method it does not
/// answer, with a 405 problem and `Allow`.
///
/// # Errors
/// Always the 404 or 405 problem.
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let allowed = req
        .app_data::<web::Data<RouteMethods>>()
        .and_then(|routes| {
            let pattern = req.resource_map().match_pattern(req.path())?;
            routes.0.get(&pattern).filter(|m| !m.is_empty()).cloned()
        });
    let Some(allowed) = allowed else {
        return Err(ApiError::new(
            ErrorKind::NotFound,
            format!("No route for {} {}.", req.method(), req.path()),
        ));
    };
    let allow = allowed.join(", ");
    let mut response = ApiError::new(
        ErrorKind::MethodNotAllowed,
        format!(
            "{} does not answer {}; it answers {allow}.",
            req.path(),
            req.method()
        ),
    )
    .error_response();
    if let Ok(value) = HeaderValue::from_str(&allow) {
        response.headers_mut().insert(header::ALLOW, value);
    }
    Ok(response)
}
