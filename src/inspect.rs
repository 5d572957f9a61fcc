//! An optional look at every finished response, exactly as the client receives it: the test
//! suite checks each one against the OpenAPI document (`tests/api/spec.rs`). A server built
//! without an [`Inspector`] (`tessera serve`) does not install the middleware at all.

use std::sync::Arc;

use actix_web::{
    Error,
    body::{BoxBody, MessageBody, to_bytes},
    dev::{ServiceRequest, ServiceResponse},
    http::{Method, StatusCode, header::HeaderMap},
    middleware::Next,
};

/// One request as it was answered.
#[derive(Debug)]
pub struct Exchange<'a> {
    pub method: &'a Method,
    /// The request path, without the query.
    pub path: &'a str,
    pub status: StatusCode,
    pub headers: &'a HeaderMap,
    /// The body of a JSON response (`application/json`, `application/problem+json`);
    /// empty for every other kind, which is not buffered.
    pub body: &'a [u8],
}

/// Sees every response of the server it is installed in.
pub trait Inspector: Send + Sync + 'static {
    fn inspect(&self, exchange: &Exchange<'_>);
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"))
}

/// The middleware: outermost, so it sees the request id, the security headers and the
/// rendering of errors that inner middleware return (a timeout, a panic) as the server
/// renders them.
pub(crate) async fn inspect(
    inspector: Arc<dyn Inspector>,
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let (method, path) = (req.method().clone(), req.path().to_owned());
    let res = match next.call(req).await {
        Ok(res) => res.map_into_boxed_body(),
        Err(err) => {
            let rendered = err.error_response();
            let (status, headers) = (rendered.status(), rendered.headers().clone());
            let body = to_bytes(rendered.into_body()).await.unwrap_or_default();
            inspector.inspect(&Exchange {
                method: &method,
                path: &path,
                status,
                headers: &headers,
                body: &body,
            });
            return Err(err);
        }
    };
    if !is_json(res.headers()) {
        inspector.inspect(&Exchange {
            method: &method,
            path: &path,
            status: res.status(),
            headers: res.headers(),
            body: &[],
        });
        return Ok(res);
    }
    let (http_req, response) = res.into_parts();
    let (response, body) = response.into_parts();
    let body = to_bytes(body)
        .await
        .map_err(|e| actix_web::error::ErrorInternalServerError(e.to_string()))?;
    inspector.inspect(&Exchange {
        method: &method,
        path: &path,
        status: response.status(),
        headers: response.headers(),
        body: &body,
    });
    Ok(ServiceResponse::new(
        http_req,
        response.set_body(BoxBody::new(body)),
    ))
}
