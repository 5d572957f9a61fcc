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
//! [`Problem`](crate::error::Problem) (a body that is not a problem document is wrapped into
//! one), so each client maps them onto its trait's error enum.
//!
//! One file per concern: `config` (where a neighbour is), `trace` (the call context and
//! `traceparent`), `breaker`, `retry` (the policy and its jitter), `request` (requests and
//! responses), `error` (failures and problem documents), and `remote`, the [`Remote`] that
//! puts them together.

mod breaker;
mod config;
mod error;
mod remote;
mod request;
mod retry;
mod trace;

pub use breaker::{Admission, BreakerState, CircuitBreaker};
pub use config::RemoteConfig;
pub use error::{RemoteError, parse_problem};
pub use remote::Remote;
pub use request::{Auth, Method, Request, Response};
pub use retry::{Outcome, RetryPolicy};
pub use trace::CallContext;
