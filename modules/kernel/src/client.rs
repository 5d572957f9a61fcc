//! Plumbing for the HTTP clients of module traits (feature `client`): in a split deployment
//! each `-api` crate's `client` module implements its trait against the neighbour's public
//! REST API through a [`Remote`].
//!
//! A [`Remote`] wraps one `reqwest::Client` for one neighbour and adds:
//!
//! - **auth**: a bearer token of role `service` (subject: the calling module) signed with the
//!   shared JWT secret, cached and re-minted a minute before it expires; or, for operations
//!   that must act as the end user ([`Auth::OnBehalfOf`]), a one-minute token carrying that
//!   user's subject and role;
//! - **tracing**: `x-request-id` and a W3C `traceparent` on every call. Both come from the
//!   [`CallContext`] of the current task (see [`CallContext::scope`]); without one, each call
//!   gets a fresh request id and starts a fresh trace (a new trace id, sampled flag set);
//!   with a parent `traceparent`, the call keeps its trace id under a new span id;
//! - **timeouts**: one per attempt ([`RemoteConfig::timeout`]);
//! - **retries** with exponential backoff and jitter ([`RetryPolicy`]), only for idempotent
//!   calls — `GET`, and `POST`s carrying an `Idempotency-Key` — and only after a connect error,
//!   a timeout, a `502`/`503`/`504`, or a `409` saying that the same key is still in flight;
//! - a **circuit breaker** ([`CircuitBreaker`]): after `breaker_failures` consecutive
//!   failures (connect errors, timeouts, 502/503/504) it opens and calls fail at once with
//!   [`RemoteError::Unavailable`]; after `breaker_cooldown` one probe call goes through
//!   (half-open); its success closes the breaker, its failure opens it again.
//!
//! Error responses come back as [`RemoteError::Problem`] carrying the parsed RFC 9457
//! [`Problem`] (a body that is not a problem document is wrapped into one), so each client
//! maps them onto its trait's error enum.

use std::{
    fmt,
    future::Future,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use anyhow::Context;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use tracing::Instrument;

use crate::{
    auth::{JwtKeys, Principal, Role},
    error::Problem,
    http::middleware::REQUEST_ID_HEADER,
};

// ---------------------------------------------------------------------------------------
// Configuration.

/// How to reach one neighbour. In TOML, durations are seconds (`timeout = 2.5`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteConfig {
    /// Where the neighbour's API lives, without `/api/v1`: `http://product:8080`.
    pub base_url: String,
    /// Per attempt, connecting included (default 2 s).
    #[serde(default = "defaults::timeout", with = "secs")]
    pub timeout: Duration,
    /// Extra attempts of an idempotent call (default 2).
    #[serde(default = "defaults::retries")]
    pub retries: u32,
    /// Consecutive failures that open the circuit breaker (default 5).
    #[serde(default = "defaults::breaker_failures")]
    pub breaker_failures: u32,
    /// How long the breaker stays open before a probe call (default 5 s).
    #[serde(default = "defaults::breaker_cooldown", with = "secs")]
    pub breaker_cooldown: Duration,
}

impl RemoteConfig {
    /// The defaults, for `base_url`.
    pub fn new(base_url: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            timeout: defaults::timeout(),
            retries: defaults::retries(),
            breaker_failures: defaults::breaker_failures(),
            breaker_cooldown: defaults::breaker_cooldown(),
        }
    }
}

mod defaults {
    use std::time::Duration;

    pub fn timeout() -> Duration {
        Duration::from_secs(2)
    }
    pub fn retries() -> u32 {
        2
    }
    pub fn breaker_failures() -> u32 {
        5
    }
    pub fn breaker_cooldown() -> Duration {
        Duration::from_secs(5)
    }
}

/// Durations as (fractional) seconds.
mod secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs).map_err(D::Error::custom)
    }
}

// ---------------------------------------------------------------------------------------
// Call context: request id and trace propagation.

tokio::task_local! {
    static CURRENT: CallContext;
}

/// The request id and W3C trace context of the work in progress, propagated to outgoing
/// calls. Set it around a handler (or any task) with [`CallContext::scope`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallContext {
    /// The incoming `x-request-id`.
    pub request_id: Option<String>,
    /// The incoming `traceparent` (`00-<trace id>-<parent id>-<flags>`).
    pub traceparent: Option<String>,
}

impl CallContext {
    /// Runs `fut` with `self` as the context of its outgoing calls.
    pub async fn scope<F: Future>(self, fut: F) -> F::Output {
        CURRENT.scope(self, fut).await
    }

    /// The context of the current task, if one was set.
    pub fn current() -> Option<Self> {
        CURRENT.try_with(Clone::clone).ok()
    }

    /// The `traceparent` of an outgoing call: the same trace with a new span id when the
    /// context carries a valid one, else a new sampled trace.
    pub fn child_traceparent(&self) -> String {
        let random = uuid::Uuid::new_v4().as_u128();
        let span_id = format!("{:016x}", (random as u64) | 1);
        let parent = self.traceparent.as_deref().and_then(parse_traceparent);
        match parent {
            Some((trace_id, flags)) => format!("00-{trace_id}-{span_id}-{flags}"),
            None => {
                let trace_id = uuid::Uuid::new_v4().simple().to_string();
                format!("00-{trace_id}-{span_id}-01")
            }
        }
    }
}

/// `(trace id, flags)` of a version-00 `traceparent`.
fn parse_traceparent(value: &str) -> Option<(&str, &str)> {
    let mut parts = value.trim().split('-');
    let (version, trace_id, parent_id, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, len: usize| {
        s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    let all_zero = |s: &str| s.bytes().all(|b| b == b'0');
    (parts.next().is_none()
        && version == "00"
        && hex(trace_id, 32)
        && !all_zero(trace_id)
        && hex(parent_id, 16)
        && !all_zero(parent_id)
        && hex(flags, 2))
    .then_some((trace_id, flags))
}

// ---------------------------------------------------------------------------------------
// Circuit breaker.

/// Where a [`CircuitBreaker`] stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through; failures are counted.
    Closed,
    /// Calls fail at once until the cooldown has passed.
    Open,
    /// One probe call is in flight; the others fail at once.
    HalfOpen,
}

#[derive(Debug)]
enum Inner {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probe_started: Instant },
}

/// Closed → open after `threshold` consecutive failures → half-open after `cooldown` (one
/// probe call admitted) → closed when the probe succeeds, open again when it fails. A probe
/// that never reports (its caller gave up) is replaced by another after `cooldown`.
#[derive(Debug)]
pub struct CircuitBreaker {
    threshold: u32,
    cooldown: Duration,
    inner: Mutex<Inner>,
}

/// The breaker's answer to "may I call?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Go ahead.
    Allowed,
    /// Go ahead: this call is the half-open probe.
    Probe,
    /// Fail fast; the breaker is open (or a probe is in flight) for this much longer.
    Rejected { retry_after: Duration },
}

impl CircuitBreaker {
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            cooldown,
            inner: Mutex::new(Inner::Closed { failures: 0 }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The state is a few plain values, always consistent: a poisoned lock is still good.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn state(&self) -> BreakerState {
        match *self.lock() {
            Inner::Closed { .. } => BreakerState::Closed,
            Inner::Open { .. } => BreakerState::Open,
            Inner::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    pub fn admit(&self) -> Admission {
        self.admit_at(Instant::now())
    }

    pub fn admit_at(&self, now: Instant) -> Admission {
        let mut inner = self.lock();
        match *inner {
            Inner::Closed { .. } => Admission::Allowed,
            Inner::Open { until } if now < until => Admission::Rejected {
                retry_after: until - now,
            },
            Inner::HalfOpen { probe_started } if now < probe_started + self.cooldown => {
                Admission::Rejected {
                    retry_after: probe_started + self.cooldown - now,
                }
            }
            Inner::Open { .. } | Inner::HalfOpen { .. } => {
                *inner = Inner::HalfOpen { probe_started: now };
                Admission::Probe
            }
        }
    }

    pub fn record_success(&self) {
        *self.lock() = Inner::Closed { failures: 0 };
    }

    pub fn record_failure(&self) {
        self.record_failure_at(Instant::now());
    }

    pub fn record_failure_at(&self, now: Instant) {
        let mut inner = self.lock();
        let open = Inner::Open {
            until: now + self.cooldown,
        };
        *inner = match *inner {
            Inner::Closed { failures } if failures + 1 < self.threshold => Inner::Closed {
                failures: failures + 1,
            },
            // A late failure of a call admitted before the breaker opened changes nothing.
            Inner::Open { until } => Inner::Open { until },
            _ => open,
        };
    }
}

// ---------------------------------------------------------------------------------------
// Retry policy.

/// Exponential backoff with jitter: before retry `n` (0-based) wait a random time in
/// `[cap/2, cap]` where `cap = min(max_delay, base_delay · 2ⁿ)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub retries: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

/// How one attempt ended, as far as retrying is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Connection refused, reset, DNS failure: the request was (probably) not processed.
    ConnectError,
    /// No answer in time: the request may or may not have been processed.
    Timeout,
    /// An HTTP status.
    Status(u16),
    /// A `409` saying a request with the same `Idempotency-Key` is still being processed.
    KeyInFlight,
}

impl Outcome {
    /// Whether this outcome says the neighbour is unavailable (what the breaker counts).
    pub fn is_unavailable(self) -> bool {
        matches!(
            self,
            Self::ConnectError | Self::Timeout | Self::Status(502..=504)
        )
    }
}

impl RetryPolicy {
    pub fn new(retries: u32) -> Self {
        Self {
            retries,
            base_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(1),
        }
    }

    /// Whether attempt `attempt` (0-based; 0 is the first call) of a call may be retried after
    /// `outcome`.
    pub fn should_retry(&self, idempotent: bool, attempt: u32, outcome: Outcome) -> bool {
        idempotent
            && attempt < self.retries
            && (outcome.is_unavailable() || outcome == Outcome::KeyInFlight)
    }

    /// The wait before retry `retry` (0-based), for a random `unit` in `[0, 1)`.
    pub fn delay(&self, retry: u32, unit: f64) -> Duration {
        let factor = 2u32.saturating_pow(retry.min(16));
        let cap = self.base_delay.saturating_mul(factor).min(self.max_delay);
        let half = cap / 2;
        half + half.mul_f64(unit.clamp(0.0, 1.0))
    }
}

/// A random number in `[0, 1)` from the OS generator uuid v4 already uses.
fn jitter_unit() -> f64 {
    (uuid::Uuid::new_v4().as_u128() as u64 >> 11) as f64 / (1u64 << 53) as f64
}

// ---------------------------------------------------------------------------------------
// Requests, responses, errors.

/// The methods the clients use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    fn to_reqwest(self) -> reqwest::Method {
        match self {
            Self::Get => reqwest::Method::GET,
            Self::Post => reqwest::Method::POST,
            Self::Put => reqwest::Method::PUT,
            Self::Patch => reqwest::Method::PATCH,
            Self::Delete => reqwest::Method::DELETE,
        }
    }
}

/// Whose token a call carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Auth {
    /// The calling module's `service` token (the default).
    #[default]
    Service,
    /// A one-minute token with this principal's subject and role, for operations whose
    /// rules depend on the end user (a customer placing an order). The neighbour's own
    /// access rules then apply exactly as if the user had called it.
    OnBehalfOf(Principal),
}

/// One call to the neighbour, built with [`Remote::request`].
#[derive(Debug, Clone)]
pub struct Request {
    method: Method,
    path: String,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    idempotency_key: Option<String>,
    auth: Auth,
}

impl Request {
    /// A query parameter (appended; URL-encoded).
    pub fn query(mut self, name: &str, value: impl ToString) -> Self {
        self.query.push((name.to_owned(), value.to_string()));
        self
    }

    /// A header.
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    /// A JSON body.
    ///
    /// # Errors
    /// When `body` cannot be serialized.
    pub fn json<T: Serialize + ?Sized>(mut self, body: &T) -> Result<Self, RemoteError> {
        let bytes = serde_json::to_vec(body)
            .context("cannot serialize the request body")
            .map_err(RemoteError::Unexpected)?;
        self.body = Some(bytes);
        Ok(self)
    }

    /// Sends `Idempotency-Key: key`, which also makes a `POST` safe to retry.
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    pub fn auth(mut self, auth: Auth) -> Self {
        self.auth = auth;
        self
    }

    /// Whether the call may be retried: `GET`, or a call with an `Idempotency-Key`.
    pub fn is_idempotent(&self) -> bool {
        self.method == Method::Get || self.idempotency_key.is_some()
    }
}

/// A successful (2xx) response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub etag: Option<String>,
    pub body: Vec<u8>,
}

impl Response {
    /// The body as JSON.
    ///
    /// # Errors
    /// [`RemoteError::Unexpected`] when it is not a `T`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, RemoteError> {
        serde_json::from_slice(&self.body)
            .context("the response body is not what the API documents")
            .map_err(RemoteError::Unexpected)
    }
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// The neighbour could not be reached, timed out, answered 502/503/504 (after the
    /// retries an idempotent call gets), or its circuit breaker is open. Maps onto the
    /// trait's `Unavailable` variant; the HTTP layer answers 503.
    #[error("{service} is unavailable: {reason}")]
    Unavailable {
        service: String,
        reason: String,
        /// The neighbour's problem document, when it sent one (a 503 of its own).
        problem: Option<Box<Problem>>,
    },
    /// The neighbour answered with an error status other than 502/503/504.
    #[error("{service} answered {}: {}", problem.status, problem.detail)]
    Problem {
        service: String,
        problem: Box<Problem>,
    },
    /// The request could not be built or the response not read.
    #[error(transparent)]
    Unexpected(anyhow::Error),
}

impl RemoteError {
    /// The problem document of an error response.
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            Self::Problem { problem, .. } => Some(problem),
            Self::Unavailable { problem, .. } => problem.as_deref(),
            Self::Unexpected(_) => None,
        }
    }
}

/// A problem document from an error body; bodies that are not problems become one with the
/// status and (the start of) the body as detail.
pub fn parse_problem(status: u16, body: &[u8]) -> Problem {
    serde_json::from_slice::<Problem>(body)
        .ok()
        .filter(|p| p.status == status)
        .unwrap_or_else(|| {
            let text = String::from_utf8_lossy(body);
            let detail: String = text.chars().take(500).collect();
            Problem {
                kind: "about:blank".to_owned(),
                title: format!("HTTP {status}"),
                status,
                detail: if detail.trim().is_empty() {
                    format!("The service answered HTTP {status}.")
                } else {
                    detail
                },
                code: String::new(),
                errors: Vec::new(),
                request_id: None,
                members: serde_json::Map::new(),
            }
        })
}

/// The idempotency layer's code for a key still in flight (same crate, same constant).
const KEY_IN_FLIGHT: &str = crate::http::idempotency::IDEMPOTENCY_KEY_IN_FLIGHT;

// ---------------------------------------------------------------------------------------
// The remote.

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

    fn unavailable(&self, reason: impl Into<String>, problem: Option<Box<Problem>>) -> RemoteError {
        RemoteError::Unavailable {
            service: self.inner.service.clone(),
            reason: reason.into(),
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
                return Err(self.unavailable(
                    format!(
                        "circuit breaker open (next try in {} ms)",
                        retry_after.as_millis()
                    ),
                    None,
                ));
            }
            let traceparent = context.child_traceparent();
            let result = self.attempt(request, request_id, &traceparent).await;
            let outcome = match &result {
                Ok(response) => Some(Outcome::Status(response.status)),
                Err(AttemptError::Transport { outcome, .. }) => Some(*outcome),
                Err(AttemptError::Status { status, problem }) => {
                    Some(if *status == 409 && problem.code == KEY_IN_FLIGHT {
                        Outcome::KeyInFlight
                    } else {
                        Outcome::Status(*status)
                    })
                }
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
                Err(AttemptError::Transport { reason, .. }) => {
                    tracing::warn!(%reason, "remote call failed");
                    Err(self.unavailable(reason, None))
                }
                Err(AttemptError::Status { status, problem })
                    if outcome.is_some_and(Outcome::is_unavailable) =>
                {
                    tracing::warn!(status, "remote call failed");
                    Err(self
                        .unavailable(format!("HTTP {status}: {}", problem.detail), Some(problem)))
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
        let etag = response
            .headers()
            .get(reqwest::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
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
                problem: Box::new(parse_problem(status, &body)),
            })
        }
    }
}

enum AttemptError {
    Transport { outcome: Outcome, reason: String },
    Status { status: u16, problem: Box<Problem> },
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
mod tests {
    use super::*;

    fn at(base: Instant, ms: u64) -> Instant {
        base + Duration::from_millis(ms)
    }

    #[test]
    fn the_breaker_opens_after_n_consecutive_failures_only() {
        let b = CircuitBreaker::new(3, Duration::from_secs(5));
        let t = Instant::now();
        b.record_failure_at(t);
        b.record_failure_at(t);
        b.record_success();
        b.record_failure_at(t);
        b.record_failure_at(t);
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.admit_at(t), Admission::Allowed);
        b.record_failure_at(t);
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(
            b.admit_at(at(t, 1000)),
            Admission::Rejected {
                retry_after: Duration::from_secs(4)
            }
        );
    }

    #[test]
    fn an_open_breaker_admits_one_probe_after_the_cooldown() {
        let b = CircuitBreaker::new(1, Duration::from_secs(5));
        let t = Instant::now();
        b.record_failure_at(t);
        assert!(matches!(
            b.admit_at(at(t, 4999)),
            Admission::Rejected { .. }
        ));
        assert_eq!(b.admit_at(at(t, 5000)), Admission::Probe);
        assert_eq!(b.state(), BreakerState::HalfOpen);
        // Only one probe at a time.
        assert!(matches!(
            b.admit_at(at(t, 5001)),
            Admission::Rejected { .. }
        ));
        b.record_success();
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.admit_at(at(t, 5002)), Admission::Allowed);
    }

    #[test]
    fn a_failed_probe_reopens_the_breaker_for_another_cooldown() {
        let b = CircuitBreaker::new(2, Duration::from_secs(5));
        let t = Instant::now();
        b.record_failure_at(t);
        b.record_failure_at(t);
        assert_eq!(b.admit_at(at(t, 5000)), Admission::Probe);
        b.record_failure_at(at(t, 5100));
        assert_eq!(b.state(), BreakerState::Open);
        assert!(matches!(
            b.admit_at(at(t, 10_000)),
            Admission::Rejected { .. }
        ));
        assert_eq!(b.admit_at(at(t, 10_100)), Admission::Probe);
    }

    #[test]
    fn a_probe_that_never_reports_is_replaced_after_the_cooldown() {
        let b = CircuitBreaker::new(1, Duration::from_secs(5));
        let t = Instant::now();
        b.record_failure_at(t);
        assert_eq!(b.admit_at(at(t, 5000)), Admission::Probe);
        assert_eq!(b.admit_at(at(t, 10_000)), Admission::Probe);
    }

    #[test]
    fn only_idempotent_calls_are_retried_and_only_after_unavailability() {
        let p = RetryPolicy::new(2);
        for outcome in [
            Outcome::ConnectError,
            Outcome::Timeout,
            Outcome::Status(502),
            Outcome::Status(503),
            Outcome::Status(504),
            Outcome::KeyInFlight,
        ] {
            assert!(p.should_retry(true, 0, outcome), "{outcome:?}");
            assert!(p.should_retry(true, 1, outcome), "{outcome:?}");
            assert!(!p.should_retry(true, 2, outcome), "{outcome:?}");
            assert!(!p.should_retry(false, 0, outcome), "{outcome:?}");
        }
        for status in [200, 201, 400, 404, 409, 412, 422, 500] {
            assert!(
                !p.should_retry(true, 0, Outcome::Status(status)),
                "{status}"
            );
        }
    }

    #[test]
    fn backoff_grows_exponentially_with_jitter_and_a_cap() {
        let p = RetryPolicy {
            retries: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
        };
        assert_eq!(p.delay(0, 0.0), Duration::from_millis(50));
        assert_eq!(p.delay(0, 1.0), Duration::from_millis(100));
        assert_eq!(p.delay(1, 0.0), Duration::from_millis(100));
        assert_eq!(p.delay(2, 0.5), Duration::from_millis(300));
        assert_eq!(p.delay(9, 1.0), Duration::from_millis(1000));
        assert_eq!(p.delay(40, 0.0), Duration::from_millis(500));
        for _ in 0..100 {
            let u = jitter_unit();
            assert!((0.0..1.0).contains(&u));
        }
    }

    #[test]
    fn a_request_is_idempotent_when_it_is_a_get_or_carries_a_key() {
        let keys = JwtKeys::new(&crate::config::AuthSettings {
            jwt_secret: "x".into(),
            issuer: "tessera".into(),
            token_ttl_secs: 60,
        });
        let r = Remote::new("p", "o", keys, &RemoteConfig::new("http://127.0.0.1:1")).unwrap();
        assert!(r.request(Method::Get, "/x").is_idempotent());
        assert!(!r.request(Method::Post, "/x").is_idempotent());
        assert!(
            r.request(Method::Post, "/x")
                .idempotency_key("k")
                .is_idempotent()
        );
        assert!(!r.request(Method::Put, "/x").is_idempotent());
    }

    #[test]
    fn traceparents_continue_a_known_trace_or_start_one() {
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let ctx = CallContext {
            request_id: None,
            traceparent: Some(parent.into()),
        };
        let child = ctx.child_traceparent();
        assert!(child.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert!(child.ends_with("-01"));
        assert_ne!(child, parent);
        let fresh = CallContext::default().child_traceparent();
        assert!(parse_traceparent(&fresh).is_some(), "{fresh}");
        let garbage = CallContext {
            request_id: None,
            traceparent: Some("00-zz-00f067aa0ba902b7-01".into()),
        };
        assert!(parse_traceparent(&garbage.child_traceparent()).is_some());
    }

    #[test]
    fn non_problem_bodies_become_problems() {
        let p = parse_problem(502, b"<html>bad gateway</html>");
        assert_eq!(p.status, 502);
        assert!(p.detail.contains("bad gateway"));
        let doc = br#"{"type":"urn:tessera:problem:conflict","title":"Conflict","status":409,"detail":"No.","errors":[{"field":"a","message":"b"}]}"#;
        let p = parse_problem(409, doc);
        assert_eq!(p.detail, "No.");
        assert_eq!(p.errors[0].field, "a");
    }

    #[test]
    fn config_durations_read_as_seconds_with_defaults() {
        let c: RemoteConfig =
            serde_json::from_str(r#"{"base_url":"http://p:8080","timeout":0.5}"#).unwrap();
        assert_eq!(c.timeout, Duration::from_millis(500));
        assert_eq!(c.retries, 2);
        assert_eq!(c.breaker_failures, 5);
        assert_eq!(c.breaker_cooldown, Duration::from_secs(5));
    }

    mod over_a_socket {
        use std::{
            net::TcpListener,
            sync::{
                Arc,
                atomic::{AtomicBool, AtomicUsize, Ordering},
            },
        };

        use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};

        use super::*;
        use crate::error::{ApiError, ErrorKind};

        #[derive(Default)]
        struct Neighbour {
            healthy: AtomicBool,
            hits: AtomicUsize,
        }

        fn keys() -> JwtKeys {
            JwtKeys::new(&crate::config::AuthSettings {
                jwt_secret: "client-tests".into(),
                issuer: "tessera".into(),
                token_ttl_secs: 60,
            })
        }

        /// Answers 503 while unhealthy; echoes the caller and the tracing headers otherwise.
        async fn handler(
            req: HttpRequest,
            state: web::Data<Neighbour>,
        ) -> Result<HttpResponse, ApiError> {
            state.hits.fetch_add(1, Ordering::SeqCst);
            if !state.healthy.load(Ordering::SeqCst) {
                return Err(ApiError::new(ErrorKind::ServiceUnavailable, "Down."));
            }
            let caller = Principal::from_http(&req)?;
            let header = |name: &str| {
                req.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned()
            };
            Ok(HttpResponse::Ok().json(serde_json::json!({
                "sub": caller.sub,
                "role": caller.role,
                "request_id": header("x-request-id"),
                "traceparent": header("traceparent"),
            })))
        }

        fn start(state: Arc<Neighbour>) -> u16 {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let port = listener.local_addr().unwrap().port();
            let data = web::Data::from(state);
            let server = HttpServer::new(move || {
                App::new()
                    .app_data(data.clone())
                    .app_data(keys().authenticator())
                    .route("/echo", web::get().to(handler))
                    .route("/echo", web::post().to(handler))
            })
            .workers(1)
            .disable_signals()
            .listen(listener)
            .unwrap()
            .run();
            tokio::spawn(server);
            port
        }

        fn remote(port: u16) -> Remote {
            let config = RemoteConfig {
                retries: 2,
                breaker_failures: 3,
                breaker_cooldown: Duration::from_millis(300),
                ..RemoteConfig::new(format!("http://127.0.0.1:{port}"))
            };
            Remote::new("neighbour", "caller", keys(), &config).unwrap()
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn calls_carry_a_service_token_and_the_context_headers() {
            let state = Arc::new(Neighbour::default());
            state.healthy.store(true, Ordering::SeqCst);
            let r = remote(start(state));
            let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
            let ctx = CallContext {
                request_id: Some("req-42".into()),
                traceparent: Some(parent.into()),
            };
            let echo: serde_json::Value = ctx
                .scope(r.send(r.request(Method::Get, "/echo")))
                .await
                .unwrap()
                .json()
                .unwrap();
            assert_eq!(echo["sub"], "caller");
            assert_eq!(echo["role"], "service");
            assert_eq!(echo["request_id"], "req-42");
            let tp = echo["traceparent"].as_str().unwrap();
            assert!(
                tp.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
                "{tp}"
            );
            // Without a context: a fresh request id and trace.
            let echo: serde_json::Value = r
                .send(r.request(Method::Get, "/echo"))
                .await
                .unwrap()
                .json()
                .unwrap();
            assert!(!echo["request_id"].as_str().unwrap().is_empty());
            assert!(parse_traceparent(echo["traceparent"].as_str().unwrap()).is_some());
            // On behalf of a user.
            let alice = Principal {
                sub: "alice".into(),
                role: Role::Customer,
            };
            let echo: serde_json::Value = r
                .send(
                    r.request(Method::Get, "/echo")
                        .auth(Auth::OnBehalfOf(alice)),
                )
                .await
                .unwrap()
                .json()
                .unwrap();
            assert_eq!(echo["sub"], "alice");
            assert_eq!(echo["role"], "customer");
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn the_breaker_opens_fails_fast_and_recovers_when_the_neighbour_is_back() {
            let state = Arc::new(Neighbour::default());
            let r = remote(start(state.clone()));

            // A POST without a key is tried once.
            let err = r.send(r.request(Method::Post, "/echo")).await.unwrap_err();
            assert!(matches!(err, RemoteError::Unavailable { .. }), "{err:?}");
            assert_eq!(err.problem().unwrap().detail, "Down.");
            assert_eq!(state.hits.swap(0, Ordering::SeqCst), 1);
            r.inner.breaker.record_success();

            // A GET is tried three times; three failures open the breaker.
            let err = r.send(r.request(Method::Get, "/echo")).await.unwrap_err();
            assert!(matches!(err, RemoteError::Unavailable { .. }), "{err:?}");
            assert_eq!(state.hits.swap(0, Ordering::SeqCst), 3);
            assert_eq!(r.breaker_state(), BreakerState::Open);

            // Open: the breaker refuses the calls itself; none reaches the neighbour, although
            // it is healthy again.
            state.healthy.store(true, Ordering::SeqCst);
            for _ in 0..3 {
                let err = r.send(r.request(Method::Get, "/echo")).await.unwrap_err();
                assert!(err.to_string().contains("circuit breaker open"), "{err}");
                assert_eq!(r.breaker_state(), BreakerState::Open);
            }
            assert_eq!(state.hits.load(Ordering::SeqCst), 0);

            // After the cooldown the probe goes through and closes the breaker.
            tokio::time::sleep(Duration::from_millis(350)).await;
            r.send(r.request(Method::Get, "/echo")).await.unwrap();
            assert_eq!(r.breaker_state(), BreakerState::Closed);
            assert_eq!(state.hits.load(Ordering::SeqCst), 1);
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_neighbour_that_is_not_listening_is_unavailable() {
            let port = {
                let l = TcpListener::bind("127.0.0.1:0").unwrap();
                l.local_addr().unwrap().port()
            };
            let r = remote(port);
            let err = r.send(r.request(Method::Get, "/echo")).await.unwrap_err();
            match err {
                RemoteError::Unavailable { reason, .. } => assert!(!reason.is_empty()),
                other => panic!("{other:?}"),
            }
            assert_eq!(r.breaker_state(), BreakerState::Open);
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn error_statuses_come_back_as_problems_without_retries() {
            async fn conflict(state: web::Data<Neighbour>) -> Result<HttpResponse, ApiError> {
                state.hits.fetch_add(1, Ordering::SeqCst);
                Err(ApiError::new(ErrorKind::Conflict, "Taken."))
            }
            let state = Arc::new(Neighbour::default());
            let data = web::Data::from(state.clone());
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let port = listener.local_addr().unwrap().port();
            let server = HttpServer::new(move || {
                App::new()
                    .app_data(data.clone())
                    .route("/c", web::get().to(conflict))
            })
            .workers(1)
            .disable_signals()
            .listen(listener)
            .unwrap()
            .run();
            tokio::spawn(server);
            let r = remote(port);
            let err = r.send(r.request(Method::Get, "/c")).await.unwrap_err();
            let problem = err.problem().unwrap();
            assert_eq!(problem.status, 409);
            assert_eq!(problem.detail, "Taken.");
            assert_eq!(state.hits.load(Ordering::SeqCst), 1);
            assert_eq!(r.breaker_state(), BreakerState::Closed);
        }
    }
}
