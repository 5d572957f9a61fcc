//! What keeps one client or one slow request from taking the server down: a per-client rate
//! limit (actix-governor; `429` problem with `Retry-After`), a request timeout (`503` problem),
//! and the security headers every response carries.

use std::{
    future::{Ready, ready},
    net::IpAddr,
    rc::Rc,
    sync::Arc,
    time::Duration,
};

use actix_governor::{
    Governor, GovernorConfig, GovernorConfigBuilder, KeyExtractor, SimpleKeyExtractionError,
    governor::{
        NotUntil,
        clock::{Clock, DefaultClock, QuantaInstant},
        middleware::NoOpMiddleware,
    },
};
use actix_web::{
    Error, HttpResponse, HttpResponseBuilder,
    body::{BoxBody, MessageBody},
    dev::{Service, ServiceRequest, ServiceResponse, Transform},
    http::header::{self, HeaderName, HeaderValue},
    middleware::{Condition, Next},
};
use futures_util::future::LocalBoxFuture;

use crate::{
    auth::{JwtKeys, Role, bearer_token},
    config::HttpSettings,
    error::{ApiError, ErrorKind, problem_response},
    http::middleware::RequestId,
};

/// Who a request is counted against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Client {
    /// A caller with a valid token of role `service`: another Tessera module in a split
    /// deployment, whose calls carry its users' traffic. Never limited.
    Service,
    /// A caller with a valid token: its own budget wherever it connects from.
    Subject(String),
    /// Anyone else, by peer address. Behind a reverse proxy every anonymous client shares the
    /// proxy's address: limit there, or turn this limit off.
    Address(IpAddr),
    /// A liveness or readiness probe. Never limited: a probe that shares its address with
    /// busy clients (behind a proxy) would otherwise see 429 and have the pod restarted.
    Probe,
}

/// The paths of the health probes, which the rate limit never counts.
pub const PROBE_PATHS: [&str; 2] = ["/health/live", "/health/ready"];

/// Tells [`Client`]s apart: a valid bearer token names the client, else the peer address.
/// An invalid token counts against the address (so random tokens do not buy fresh budgets).
#[derive(Clone)]
pub struct ClientKey {
    keys: Arc<JwtKeys>,
}

impl std::fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientKey").finish_non_exhaustive()
    }
}

impl KeyExtractor for ClientKey {
    type Key = Client;
    type KeyExtractionError = SimpleKeyExtractionError<&'static str>;

    fn extract(&self, req: &ServiceRequest) -> Result<Client, Self::KeyExtractionError> {
        if PROBE_PATHS.contains(&req.path()) {
            return Ok(Client::Probe);
        }
        let claims = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(bearer_token)
            .and_then(|token| self.keys.verify(token).ok());
        if let Some(claims) = claims {
            return Ok(if claims.role == Role::Service {
                Client::Service
            } else {
                Client::Subject(claims.sub)
            });
        }
        req.peer_addr()
            .map(|addr| Client::Address(addr.ip()))
            .ok_or_else(|| {
                SimpleKeyExtractionError::new(
                    "Could not extract the peer IP address of the request",
                )
            })
    }

    fn whitelisted_keys(&self) -> Vec<Client> {
        vec![Client::Service, Client::Probe]
    }

    fn exceed_rate_limit_response(
        &self,
        negative: &NotUntil<QuantaInstant>,
        _: HttpResponseBuilder,
    ) -> HttpResponse {
        let wait = negative.wait_time_from(DefaultClock::default().now());
        // Whole seconds, rounded up, and at least 1: by the time this runs the wait may have
        // elapsed already, and "0" would invite an immediate retry.
        let seconds = (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1);
        let mut response = problem_response(
            &ApiError::new(
                ErrorKind::TooManyRequests,
                format!("Too many requests from this address; retry in {seconds} s."),
            )
            .problem(),
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        response
    }
}

/// The shared state of the per-client rate limit (one per server, shared by all workers).
#[derive(Clone)]
pub struct RateLimit {
    enabled: bool,
    config: Arc<GovernorConfig<ClientKey, NoOpMiddleware<QuantaInstant>>>,
}

impl std::fmt::Debug for RateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimit").finish_non_exhaustive()
    }
}

impl RateLimit {
    /// Off when `rate_limit_per_second` is 0.
    ///
    /// # Errors
    /// A rate above one request per nanosecond.
    pub fn from_settings(http: &HttpSettings, keys: &JwtKeys) -> anyhow::Result<Self> {
        let replenish = Duration::from_secs(1) / http.rate_limit_per_second.max(1);
        let mut builder = GovernorConfigBuilder::default();
        builder.period(replenish);
        builder.burst_size(http.rate_limit_burst.max(1));
        let config = builder
            .key_extractor(ClientKey {
                keys: Arc::new(keys.clone()),
            })
            .finish()
            .ok_or_else(|| {
                anyhow::anyhow!("invalid configuration: http.rate_limit_per_second is too large")
            })?;
        Ok(Self {
            enabled: http.rate_limit_per_second > 0,
            config: Arc::new(config),
        })
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The middleware for one worker's app; every worker shares the same counters.
    pub fn middleware(&self) -> Condition<Governor<ClientKey, NoOpMiddleware<QuantaInstant>>> {
        Condition::new(self.enabled, Governor::new(&self.config))
    }

    /// Forgets clients that have not been seen for a while, so the table does not grow
    /// without bound. Run it periodically.
    pub fn forget_idle_clients(&self) {
        let limiter = self.config.limiter();
        limiter.retain_recent();
        limiter.shrink_to_fit();
    }
}

/// Answers a request that is still running after `timeout` with a 503 problem. The handler's
/// future is dropped; database work already handed to a blocking thread may still commit,
/// which is why the problem tells the client the outcome is unknown.
///
/// # Errors
/// The 503 problem (as an error: the request itself went down with the handler's future, and
/// no clone of it may be held while the router runs), or the inner service's errors.
pub async fn timeout(
    timeout: Duration,
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let id = actix_web::HttpMessage::extensions(&req)
        .get::<RequestId>()
        .map(|id| id.0.clone());
    match tokio::time::timeout(timeout, next.call(req)).await {
        Ok(response) => response.map(ServiceResponse::map_into_boxed_body),
        Err(_) => {
            tracing::warn!(timeout_secs = timeout.as_secs(), "request timed out");
            let mut error = ApiError::new(
                ErrorKind::ServiceUnavailable,
                format!(
                    "The request did not finish within {} s; its outcome is unknown. \
                     Retry writes with the same Idempotency-Key.",
                    timeout.as_secs()
                ),
            );
            if let Some(id) = id {
                error = error.with_request_id(id);
            }
            Err(error.into())
        }
    }
}

/// The Content-Security-Policy of HTML pages (Swagger UI, the console). Swagger UI needs
/// inline styles and `data:` images; it loads no script that is not served from here.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; \
     connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; \
     frame-ancestors 'none'";

/// The Content-Security-Policy of every other response (JSON, problems, scripts, styles):
/// nothing may load from it, nothing may frame it (OWASP's advice for API responses). A
/// browser applies a policy to the document it arrives with, so a script or a style keeps
/// running under its page's policy.
pub const API_CONTENT_SECURITY_POLICY: &str = "default-src 'none'; frame-ancestors 'none'";

/// Security headers for every response (`hsts`: add `Strict-Transport-Security`). Install
/// it outermost: it also reaches the responses the server renders from a middleware's error
/// (a timeout, a refused idempotency key, a panic). HTML gets [`CONTENT_SECURITY_POLICY`],
/// everything else the stricter and shorter [`API_CONTENT_SECURITY_POLICY`].
pub fn security_headers(hsts: bool) -> SecurityHeaders {
    let mut headers = vec![
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
    ];
    if hsts {
        headers.push((
            header::STRICT_TRANSPORT_SECURITY,
            "max-age=31536000; includeSubDomains",
        ));
    }
    SecurityHeaders(Rc::new(Headers {
        common: headers
            .into_iter()
            .map(|(name, value)| (name, HeaderValue::from_static(value)))
            .collect(),
        page: HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        api: HeaderValue::from_static(API_CONTENT_SECURITY_POLICY),
    }))
}

/// The middleware [`security_headers`] builds.
#[derive(Debug, Clone)]
pub struct SecurityHeaders(Rc<Headers>);

/// What [`SecurityHeaders`] adds: the same headers everywhere, and a policy by content type.
#[derive(Debug)]
pub struct Headers {
    common: Vec<(HeaderName, HeaderValue)>,
    page: HeaderValue,
    api: HeaderValue,
}

impl Headers {
    /// Adds what `target` does not set itself.
    fn add(&self, target: &mut header::HeaderMap) {
        for (name, value) in &self.common {
            if !target.contains_key(name) {
                target.insert(name.clone(), value.clone());
            }
        }
        if !target.contains_key(header::CONTENT_SECURITY_POLICY) {
            let html = target
                .get(header::CONTENT_TYPE)
                .is_some_and(|t| t.as_bytes().starts_with(b"text/html"));
            let policy = if html { &self.page } else { &self.api };
            target.insert(header::CONTENT_SECURITY_POLICY, policy.clone());
        }
    }
}

impl<S, B> Transform<S, ServiceRequest> for SecurityHeaders
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Transform = SecureService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(SecureService {
            service,
            headers: self.0.clone(),
        }))
    }
}

/// [`SecurityHeaders`] around a service.
#[derive(Debug)]
pub struct SecureService<S> {
    service: S,
    headers: Rc<Headers>,
}

impl<S, B> Service<ServiceRequest> for SecureService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Future = LocalBoxFuture<'static, Result<ServiceResponse<B>, Error>>;

    actix_web::dev::forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let headers = self.headers.clone();
        let call = self.service.call(req);
        Box::pin(async move {
            match call.await {
                Ok(mut response) => {
                    headers.add(response.headers_mut());
                    Ok(response)
                }
                Err(mut error) => {
                    error.add_response_mapper(move |mut response| {
                        headers.add(response.headers_mut());
                        response
                    });
                    Err(error)
                }
            }
        })
    }
}

/// CORS from `http.cors_origins`: none listed allows no cross-origin browser calls; `*`
/// allows any origin (without credentials — the API uses bearer tokens, not cookies).
pub fn cors(origins: &[String]) -> actix_cors::Cors {
    let mut cors = actix_cors::Cors::default()
        .allowed_methods(["GET", "POST", "PUT", "PATCH", "DELETE"])
        .allowed_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_MATCH,
            HeaderName::from_static("idempotency-key"),
            HeaderName::from_static("x-request-id"),
            HeaderName::from_static("traceparent"),
        ])
        .expose_headers([
            header::ETAG,
            header::LOCATION,
            header::RETRY_AFTER,
            HeaderName::from_static("x-request-id"),
            HeaderName::from_static("idempotent-replayed"),
        ])
        .max_age(3600)
        // Browsers send `Origin` on same-origin POSTs too (Swagger UI); those stay allowed.
        .allowed_origin_fn(|origin, head| {
            let host = head
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok());
            let origin = origin.to_str().ok().and_then(|o| o.split_once("://"));
            matches!((origin, host), (Some((_, origin_host)), Some(host)) if origin_host == host)
        });
    for origin in origins {
        cors = if origin == "*" {
            cors.allow_any_origin()
        } else {
            cors.allowed_origin(origin)
        };
    }
    cors
}
