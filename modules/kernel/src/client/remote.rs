//! [`Remote`]: one neighbour's API behind auth, tracing headers, timeouts, retries (`backon`)
//! and the circuit breaker (`failsafe`, in `breaker`). One attempt is in `attempt`.

use std::{
    fmt,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::Context;
use backon::{ExponentialBuilder, Retryable};
use tracing::Instrument;

use super::{
    Auth, BreakerState, CallContext, Method, RemoteConfig, RemoteError, Request, Response,
    attempt::AttemptError, breaker::CircuitBreaker,
};
use crate::{
    auth::{JwtKeys, Role},
    error::Problem,
};

/// The backoff before retry `n` (0-based) of an idempotent call: a random wait in
/// `[d, 2d]` where `d = min(MAX, MIN · 2ⁿ)` (backon's jitter adds up to `d`), so 25–50 ms,
/// 50–100 ms, … up to 0.5–1 s.
const RETRY_MIN_DELAY: Duration = Duration::from_millis(25);
const RETRY_MAX_DELAY: Duration = Duration::from_millis(500);

/// Lifetime of the cached service token, and how long before its expiry it is replaced.
const SERVICE_TOKEN_TTL: u64 = 300;
const SERVICE_TOKEN_MARGIN: Duration = Duration::from_secs(60);
const ON_BEHALF_TTL: u64 = 60;

/// One neighbour's API, with auth, tracing headers, timeouts, retries and a circuit breaker.
/// Cheap to clone: clones share the connection pool, the token and the breaker.
#[derive(Clone)]
pub struct Remote {
    pub(super) inner: Arc<RemoteInner>,
}

pub(super) struct RemoteInner {
    /// The neighbour's name, for errors and logs (`product`).
    pub(super) service: String,
    /// The calling module, subject of the service token (`order`).
    pub(super) caller: String,
    pub(super) base_url: String,
    pub(super) http: reqwest::Client,
    pub(super) keys: JwtKeys,
    pub(super) token: Mutex<Option<(String, Instant)>>,
    /// Extra attempts of an idempotent call.
    pub(super) retries: u32,
    pub(super) breaker: CircuitBreaker,
}

impl fmt::Debug for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Remote")
            .field("service", &self.inner.service)
            .field("caller", &self.inner.caller)
            .field("base_url", &self.inner.base_url)
            .field("breaker", &self.inner.breaker.state())
            .finish_non_exhaustive()
    }
}

impl Remote {
    /// A client of `service` (the neighbour's module name, for messages) at
    /// `config.base_url`, calling as module `caller` with tokens signed by `keys`.
    ///
    /// # Errors
    /// When the HTTP client cannot be built or the base URL is not `http(s)://…`.
    pub fn new(
        service: &str,
        caller: &str,
        keys: JwtKeys,
        config: &RemoteConfig,
    ) -> anyhow::Result<Self> {
        let base_url = config.base_url.trim_end_matches('/').to_owned();
        anyhow::ensure!(
            base_url.starts_with("http://") || base_url.starts_with("https://"),
            "the base URL of {service} must start with http:// or https://, not {base_url:?}"
        );
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Self {
            inner: Arc::new(RemoteInner {
                service: service.to_owned(),
                caller: caller.to_owned(),
                base_url,
                http,
                keys,
                token: Mutex::new(None),
                retries: config.retries,
                breaker: CircuitBreaker::new(config.breaker_failures, config.breaker_cooldown),
            }),
        })
    }

    /// The neighbour's name.
    pub fn service(&self) -> &str {
        &self.inner.service
    }

    /// Where this client's circuit breaker stands (its clones share it), so that a caller can
    /// tell "the breaker refused the call" from "the neighbour failed it".
    pub fn breaker_state(&self) -> BreakerState {
        self.inner.breaker.state()
    }

    /// A call of `method` on `path` (from the API root: `/api/v1/products`).
    pub fn request(&self, method: Method, path: impl Into<String>) -> Request {
        Request {
            method,
            path: path.into(),
            query: Vec::new(),
            headers: Vec::new(),
            body: None,
            idempotency_key: None,
            auth: Auth::Service,
        }
    }

    /// The neighbour is unavailable: when to retry is the breaker's remaining cooldown or the
    /// neighbour's own `Retry-After`, whichever is later.
    fn unavailable(
        &self,
        reason: impl Into<String>,
        neighbour_retry_after: Option<Duration>,
        problem: Option<Box<Problem>>,
    ) -> RemoteError {
        let retry_after = self
            .inner
            .breaker
            .retry_after()
            .max(neighbour_retry_after.unwrap_or_default());
        RemoteError::Unavailable {
            service: self.inner.service.clone(),
            reason: reason.into(),
            retry_after,
            problem,
        }
    }

    pub(super) fn token(&self, auth: &Auth) -> Result<String, RemoteError> {
        let inner = &self.inner;
        match auth {
            Auth::OnBehalfOf(p) => inner
                .keys
                .issue(&p.sub, p.role, Some(ON_BEHALF_TTL))
                .map_err(RemoteError::Unexpected),
            Auth::Service => {
                let mut cached = inner.token.lock().unwrap_or_else(|e| e.into_inner());
                let now = Instant::now();
                if let Some((token, renew_at)) = cached.as_ref()
                    && now < *renew_at
                {
                    return Ok(token.clone());
                }
                let token = inner
                    .keys
                    .issue(&inner.caller, Role::Service, Some(SERVICE_TOKEN_TTL))
                    .map_err(RemoteError::Unexpected)?;
                let renew_at = now + Duration::from_secs(SERVICE_TOKEN_TTL) - SERVICE_TOKEN_MARGIN;
                *cached = Some((token.clone(), renew_at));
                Ok(token)
            }
        }
    }

    /// Sends `request`: 2xx → [`Response`]; otherwise the error, after the retries an
    /// idempotent call gets.
    ///
    /// # Errors
    /// See [`RemoteError`].
    pub async fn send(&self, request: Request) -> Result<Response, RemoteError> {
        let request_id = CallContext::current()
            .and_then(|context| context.request_id)
            .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
        let method = request.method.to_reqwest();
        let span = tracing::info_span!(
            "remote.call",
            otel.name = %format_args!("{method} {}", self.inner.service),
            otel.kind = "client",
            otel.status_code = tracing::field::Empty,
            http.request.method = %method,
            http.response.status_code = tracing::field::Empty,
            peer.service = %self.inner.service,
            url.path = %request.path,
            request_id = %request_id,
        );
        self.send_with_retries(&request, &request_id)
            .instrument(span)
            .await
    }

    async fn send_with_retries(
        &self,
        request: &Request,
        request_id: &str,
    ) -> Result<Response, RemoteError> {
        let idempotent = request.is_idempotent();
        let backoff = ExponentialBuilder::default()
            .with_min_delay(RETRY_MIN_DELAY)
            .with_max_delay(RETRY_MAX_DELAY)
            .with_max_times(self.inner.retries as usize)
            .with_jitter();
        let result = (|| self.attempt(request, request_id))
            .retry(backoff)
            .when(|e: &AttemptError| idempotent && e.is_transient())
            .notify(|e, delay| tracing::debug!(error = ?e, ?delay, "retrying"))
            .await;
        let span = tracing::Span::current();
        let status = match &result {
            Ok(response) => Some(response.status),
            Err(AttemptError::Status { status, .. }) => Some(*status),
            Err(_) => None,
        };
        if let Some(status) = status {
            span.record("http.response.status_code", status);
        }
        if status.is_none_or(|s| s >= 500) {
            span.record("otel.status_code", "error");
        }
        result.map_err(|e| self.error(e))
    }

    /// What the caller gets for a failed call.
    fn error(&self, e: AttemptError) -> RemoteError {
        let service = self.inner.service.clone();
        match e {
            AttemptError::Refused(retry_after) => {
                tracing::warn!(?retry_after, "remote call refused: circuit breaker open");
                RemoteError::Unavailable {
                    service,
                    reason: format!(
                        "circuit breaker open (next try in {} ms)",
                        retry_after.as_millis()
                    ),
                    retry_after,
                    problem: None,
                }
            }
            // The reason names the neighbour's address and the OS error: the log keeps it
            // (with the request id of the span), the caller's answer does not.
            AttemptError::Transport { reason } => {
                tracing::warn!(%reason, "remote call failed");
                self.unavailable(reason, None, None)
            }
            AttemptError::Status {
                status: status @ 502..=504,
                retry_after,
                problem,
            } => {
                tracing::warn!(status, detail = %problem.detail, "remote call failed");
                let reason = format!("HTTP {status}: {}", problem.detail);
                self.unavailable(reason, retry_after, Some(problem))
            }
            AttemptError::Status { problem, .. } => RemoteError::Problem { service, problem },
            AttemptError::Other(e) => RemoteError::Unexpected(e),
        }
    }
}

#[cfg(test)]
#[path = "remote_tests.rs"]
mod tests;
