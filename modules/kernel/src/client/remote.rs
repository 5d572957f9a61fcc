//! [`Remote`]: one neighbour's API behind auth, tracing headers, timeouts, retries and the
//! circuit breaker. This file sends; the policies live in the sibling files.

use std::{
    fmt,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::Context;
use tracing::Instrument;

use super::{
    Admission, Auth, BreakerState, CallContext, CircuitBreaker, Method, Outcome, RemoteConfig,
    RemoteError, Request, Response, RetryPolicy, error::KEY_IN_FLIGHT, parse_problem,
    retry::jitter_unit,
};
use crate::{
    auth::{JwtKeys, Role},
    error::Problem,
    http::middleware::REQUEST_ID_HEADER,
};

/// Lifetime of the cached service token, and how long before its expiry it is replaced.
const SERVICE_TOKEN_TTL: u64 = 300;
const SERVICE_TOKEN_MARGIN: Duration = Duration::from_secs(60);
const ON_BEHALF_TTL: u64 = 60;

/// One neighbour's API, with auth, tracing headers, timeouts, retries and a circuit breaker.
/// Cheap to clone: clones share the connection pool, the token and the breaker.
#[derive(Clone)]
pub struct Remote {
    inner: Arc<RemoteInner>,
}

struct RemoteInner {
    /// The neighbour's name, for errors and logs (`product`).
    service: String,
    /// The calling module, subject of the service token (`order`).
    caller: String,
    base_url: String,
    http: reqwest::Client,
    keys: JwtKeys,
    token: Mutex<Option<(String, Instant)>>,
    retry: RetryPolicy,
    breaker: CircuitBreaker,
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
                retry: RetryPolicy::new(config.retries),
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

    fn token(&self, auth: &Auth) -> Result<String, RemoteError> {
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
        let context = CallContext::current().unwrap_or_default();
        let request_id = context
            .request_id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
        let span = tracing::info_span!(
            "remote.call",
            service = %self.inner.service,
            method = ?request.method,
            path = %request.path,
            request_id = %request_id,
        );
        self.send_with_retries(&request, &context, &request_id)
            .instrument(span)
            .await
    }

    async fn send_with_retries(
        &self,
        request: &Request,
        context: &CallContext,
        request_id: &str,
    ) -> Result<Response, RemoteError> {
        let idempotent = request.is_idempotent();
        let mut attempt = 0;
        loop {
            if let Admission::Rejected { retry_after } = self.inner.breaker.admit() {
                tracing::warn!(?retry_after, "remote call refused: circuit breaker open");
                return Err(RemoteError::Unavailable {
                    service: self.inner.service.clone(),
                    reason: format!(
                        "circuit breaker open (next try in {} ms)",
                        retry_after.as_millis()
                    ),
                    retry_after,
                    problem: None,
                });
            }
            let traceparent = context.child_traceparent();
            let result = self.attempt(request, request_id, &traceparent).await;
            let outcome = match &result {
                Ok(response) => Some(Outcome::Status(response.status)),
                Err(AttemptError::Transport { outcome, .. }) => Some(*outcome),
                Err(AttemptError::Status {
                    status, problem, ..
                }) => Some(if *status == 409 && problem.code == KEY_IN_FLIGHT {
                    Outcome::KeyInFlight
                } else {
                    Outcome::Status(*status)
                }),
                Err(AttemptError::Other(_)) => None,
            };
            match outcome {
                Some(o) if o.is_unavailable() => self.inner.breaker.record_failure(),
                Some(_) => self.inner.breaker.record_success(),
                None => {}
            }
            if let Some(outcome) = outcome
                && self.inner.retry.should_retry(idempotent, attempt, outcome)
            {
                let delay = self.inner.retry.delay(attempt, jitter_unit());
                tracing::debug!(?outcome, attempt, ?delay, "retrying");
                tokio::time::sleep(delay).await;
                attempt += 1;
                continue;
            }
            return match result {
                Ok(response) => Ok(response),
                // The reason names the neighbour's address and the OS error: the log keeps
                // it (with the request id of the span), the caller's answer does not.
                Err(AttemptError::Transport { reason, .. }) => {
                    tracing::warn!(%reason, "remote call failed");
                    Err(self.unavailable(reason, None, None))
                }
                Err(AttemptError::Status {
                    status,
                    retry_after,
                    problem,
                }) if outcome.is_some_and(Outcome::is_unavailable) => {
                    tracing::warn!(status, detail = %problem.detail, "remote call failed");
                    let reason = format!("HTTP {status}: {}", problem.detail);
                    Err(self.unavailable(reason, retry_after, Some(problem)))
                }
                Err(AttemptError::Status { problem, .. }) => Err(RemoteError::Problem {
                    service: self.inner.service.clone(),
                    problem,
                }),
                Err(AttemptError::Other(e)) => Err(RemoteError::Unexpected(e)),
            };
        }
    }

    async fn attempt(
        &self,
        request: &Request,
        request_id: &str,
        traceparent: &str,
    ) -> Result<Response, AttemptError> {
        let inner = &self.inner;
        let mut url = format!("{}{}", inner.base_url, request.path);
        if !request.query.is_empty() {
            let query = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(request.query.iter())
                .finish();
            url.push('?');
            url.push_str(&query);
        }
        let token = self.token(&request.auth).map_err(|e| {
            AttemptError::Other(anyhow::anyhow!("cannot sign a service token: {e}"))
        })?;
        let mut builder = inner
            .http
            .request(request.method.to_reqwest(), url)
            .bearer_auth(token)
            .header(REQUEST_ID_HEADER, request_id)
            .header("traceparent", traceparent)
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(key) = &request.idempotency_key {
            builder = builder.header("idempotency-key", key.as_str());
        }
        for (name, value) in &request.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        if let Some(body) = &request.body {
            builder = builder
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone());
        }
        let response = builder.send().await.map_err(AttemptError::transport)?;
        let status = response.status().as_u16();
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let etag = header(reqwest::header::ETAG);
        let retry_after = header(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.trim().parse().ok())
            .map(Duration::from_secs);
        let body = response.bytes().await.map_err(AttemptError::transport)?;
        if (200..300).contains(&status) {
            Ok(Response {
                status,
                etag,
                body: body.to_vec(),
            })
        } else {
            Err(AttemptError::Status {
                status,
                retry_after,
                problem: Box::new(parse_problem(status, &body)),
            })
        }
    }
}

enum AttemptError {
    Transport {
        outcome: Outcome,
        reason: String,
    },
    Status {
        status: u16,
        /// The neighbour's `Retry-After` (seconds), if it sent one.
        retry_after: Option<Duration>,
        problem: Box<Problem>,
    },
    Other(anyhow::Error),
}

impl AttemptError {
    fn transport(e: reqwest::Error) -> Self {
        let outcome = if e.is_timeout() {
            Outcome::Timeout
        } else {
            Outcome::ConnectError
        };
        // The chain names the real cause ("Connection refused") below reqwest's summary.
        let mut reason = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(cause) = source {
            reason.push_str(": ");
            reason.push_str(&cause.to_string());
            source = cause.source();
        }
        Self::Transport { outcome, reason }
    }
}

#[cfg(test)]
#[path = "remote_tests.rs"]
mod tests;
