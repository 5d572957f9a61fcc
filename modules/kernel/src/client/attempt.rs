//! One attempt of a call: the HTTP request as it goes out (token, request id, W3C trace
//! context, idempotency key) and how it ended, as far as retries and the breaker care.

use std::time::Duration;

use super::{Remote, Request, Response, error::KEY_IN_FLIGHT, parse_problem};
use crate::{error::Problem, http::middleware::REQUEST_ID_HEADER};

/// How an attempt failed.
#[derive(Debug)]
pub(super) enum AttemptError {
    /// The circuit breaker refused the call; it stays open this much longer.
    Refused(Duration),
    /// No answer: connection refused or reset, DNS failure, timeout. `reason` names the
    /// neighbour's address and the OS error, for the log only.
    Transport { reason: String },
    /// An error status.
    Status {
        status: u16,
        /// The neighbour's `Retry-After` (seconds), if it sent one.
        retry_after: Option<Duration>,
        problem: Box<Problem>,
    },
    /// The request could not be built.
    Other(anyhow::Error),
}

impl AttemptError {
    fn transport(e: &reqwest::Error) -> Self {
        // The chain names the real cause ("Connection refused") below reqwest's summary.
        let mut reason = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(cause) = source {
            reason.push_str(": ");
            reason.push_str(&cause.to_string());
            source = cause.source();
        }
        Self::Transport { reason }
    }

    /// Whether the neighbour is unavailable (what the breaker counts as a failure): it could
    /// not be reached in time, or it answered 502, 503 or 504.
    pub(super) fn is_unavailable(&self) -> bool {
        matches!(
            self,
            Self::Transport { .. }
                | Self::Status {
                    status: 502..=504,
                    ..
                }
        )
    }

    /// Whether an idempotent call may try again: after an unavailable neighbour, or a `409`
    /// saying that a request with the same `Idempotency-Key` is still in flight.
    pub(super) fn is_transient(&self) -> bool {
        self.is_unavailable()
            || matches!(self, Self::Status { status: 409, problem, .. } if problem.code == KEY_IN_FLIGHT)
    }
}

impl Remote {
    /// One attempt, through the breaker, which hears how it went.
    pub(super) async fn attempt(
        &self,
        request: &Request,
        request_id: &str,
    ) -> Result<Response, AttemptError> {
        let breaker = &self.inner.breaker;
        breaker.admit().map_err(AttemptError::Refused)?;
        let result = self.exchange(request, request_id).await;
        match &result {
            Err(e) if e.is_unavailable() => breaker.record_failure(),
            Err(AttemptError::Other(_)) => {}
            _ => breaker.record_success(),
        }
        result
    }

    async fn exchange(
        &self,
        request: &Request,
        request_id: &str,
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
        // `traceparent`: this call's span (`remote.call`) is the neighbour's parent.
        let mut trace = reqwest::header::HeaderMap::new();
        crate::telemetry::inject(&tracing::Span::current(), &mut trace);
        let mut builder = inner
            .http
            .request(request.method.to_reqwest(), url)
            .bearer_auth(token)
            .header(REQUEST_ID_HEADER, request_id)
            .headers(trace)
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
        let response = builder
            .send()
            .await
            .map_err(|e| AttemptError::transport(&e))?;
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
        let body = response
            .bytes()
            .await
            .map_err(|e| AttemptError::transport(&e))?;
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
