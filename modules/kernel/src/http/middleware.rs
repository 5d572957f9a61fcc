//! The request-context middleware: a request id on every request and response, one span
//! and one log line per request, panics turned into 500 problems instead of dropped
//! connections, and 500 bodies replaced by an opaque problem carrying the request id (the
//! cause goes to the log, never to the client).

use std::{future::Future, panic::AssertUnwindSafe, pin::Pin, time::Instant};

use actix_web::{
    Error, FromRequest, HttpMessage, HttpRequest,
    body::{BoxBody, MessageBody},
    dev::{Payload, ServiceRequest, ServiceResponse},
    http::{StatusCode, header::HeaderValue},
    middleware::Next,
};
use futures_util::FutureExt;
use tracing::Instrument;

use crate::error::{ApiError, ErrorKind, problem_response};

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
            .map_or_else(
                || Self(uuid::Uuid::now_v7().to_string()),
                |v| Self(v.to_owned()),
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

/// Install with `App::wrap(actix_web::middleware::from_fn(request_context))`, outermost.
///
/// # Errors
/// Never: every failure becomes a response.
pub async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let request_id = RequestId::from_header(&req);
    req.extensions_mut().insert(request_id.clone());
    let span = tracing::info_span!(
        "http.request",
        method = %req.method(),
        path = %req.path(),
        request_id = %request_id.0,
        traceparent = req.headers().get("traceparent").and_then(|v| v.to_str().ok()).unwrap_or(""),
    );
    // No clone of the request may be held here: routing needs it unshared.
    let started = Instant::now();
    let method = req.method().clone();

    // Calls this request makes to other services carry its id and trace.
    #[cfg(feature = "client")]
    let context = crate::client::CallContext {
        request_id: Some(request_id.0.clone()),
        traceparent: req
            .headers()
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    };
    let call = AssertUnwindSafe(next.call(req)).catch_unwind();
    #[cfg(feature = "client")]
    let call = context.scope(call);
    let outcome = call.instrument(span.clone()).await;
    let mut res = match outcome {
        Ok(Ok(res)) => res.map_into_boxed_body(),
        Ok(Err(err)) => {
            // A middleware's refusal (e.g. the request timeout): the server renders it.
            let status = err.as_response_error().status_code();
            crate::metrics::http_request(
                method.as_str(),
                "unmatched",
                status.as_u16(),
                started.elapsed(),
            );
            tracing::warn!(parent: &span, status = status.as_u16(), error = %err, "request failed");
            return Err(err);
        }
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic payload".to_owned());
            tracing::error!(parent: &span, panic = %message, "handler panicked");
            // The request went down with the handler; the server renders this error itself.
            return Err(ApiError::new(ErrorKind::Internal, INTERNAL_DETAIL)
                .with_request_id(request_id.0)
                .into());
        }
    };

    let status = res.status();
    if status == StatusCode::INTERNAL_SERVER_ERROR {
        if let Some(err) = res.response().error() {
            tracing::error!(parent: &span, error = ?err, "request failed");
        }
        let problem = ApiError::new(ErrorKind::Internal, INTERNAL_DETAIL)
            .with_request_id(request_id.0.clone())
            .problem();
        let (http_req, _) = res.into_parts();
        res = ServiceResponse::new(http_req, problem_response(&problem));
    }
    if let Ok(value) = HeaderValue::from_str(&request_id.0) {
        res.headers_mut().insert(
            actix_web::http::header::HeaderName::from_static(REQUEST_ID_HEADER),
            value,
        );
    }
    let route = res.request().match_pattern();
    let latency = started.elapsed();
    // Unmatched paths share one label value: raw paths would grow the series without bound.
    let route = route.as_deref().unwrap_or("unmatched");
    crate::metrics::http_request(method.as_str(), route, status.as_u16(), latency);
    tracing::info!(
        parent: &span,
        status = status.as_u16(),
        route = %route,
        latency_ms = latency.as_secs_f64() * 1000.0,
        "request completed"
    );
    Ok(res)
}

const INTERNAL_DETAIL: &str = "An unexpected error occurred.";

/// Unknown paths answer with a 404 problem.
///
/// # Errors
/// Always the 404 problem.
pub async fn not_found(req: HttpRequest) -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::new(
        ErrorKind::NotFound,
        format!("No route for {} {}.", req.method(), req.path()),
    ))
}
