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
//! - **tracing**: each call is a span of kind CLIENT (`remote.call`) whose W3C trace context
//!   goes out as `traceparent` (OpenTelemetry's propagator, see [`crate::telemetry`]), so the
//!   neighbour's server span continues the caller's trace; and `x-request-id` from the
//!   [`CallContext`] of the current task (a fresh one without);
//! - **timeouts**: one per attempt ([`RemoteConfig::timeout`]);
//! - **retries** with jittered exponential backoff (`backon`), only for idempotent calls —
//!   `GET`, and `POST`s carrying an `Idempotency-Key` — and only after a connect error, a
//!   timeout, a `502`/`503`/`504`, or a `409` saying that the same key is still in flight;
//! - a **circuit breaker** (`failsafe`): after `breaker_failures` consecutive failures
//!   (connect errors, timeouts, 502/503/504) it opens and calls fail at once with
//!   [`RemoteError::Unavailable`] naming the remaining cooldown; after `breaker_cooldown`
//!   calls go through again as probes (half-open): the first success closes the breaker, a
//!   failure opens it again.
//!
//! Why these crates: `backon` is a small, widely used retry crate (one dependency, fastrand)
//! that retries any async closure with a predicate, which is what "only idempotent calls,
//! only after these outcomes" needs; `failsafe` is a small circuit breaker (rand and
//! parking_lot, both already in the tree) whose state machine we drive per attempt. The
//! alternatives weighed: `reqwest-middleware` + `reqwest-retry` retry by request, not by our
//! idempotency rule, and bring their own middleware stack; tower has retries but no breaker.
//!
//! Error responses come back as [`RemoteError::Problem`] carrying the parsed RFC 9457
//! [`Problem`](crate::error::Problem) (a body that is not a problem document is wrapped into
//! one), so each client maps them onto its trait's error enum.
//!
//! One file per concern: `config` (where a neighbour is), `context` (the request id of the
//! work in progress), `breaker`, `request` (requests and responses), `attempt` (one HTTP
//! exchange), `error` (failures and problem documents), and `remote`, the [`Remote`] that
//! puts them together.

mod attempt;
mod breaker;
mod config;
mod context;
mod error;
mod remote;
mod request;

pub use breaker::BreakerState;
pub use config::RemoteConfig;
pub use context::CallContext;
pub use error::{RemoteError, parse_problem};
pub use remote::Remote;
pub use request::{Auth, Method, Request, Response};
