//! Failures that pass: a transaction that lost a conflict may succeed when run again, and a
//! shortage (no database connection free in time) is worth a retry from the client. Only the
//! kernel knows the database driver's errors; these types let it say so without the crates
//! that describe a module's contract depending on the driver.

use std::{error::Error, fmt};

/// An error whose failures may be transient database conflicts, which the kernel's
/// `retry_on_conflict` runs again. The error only points at its unexpected cause; the
/// database layer, which knows its driver's errors, decides whether that cause is a conflict.
pub trait Retryable {
    /// The unexpected cause to examine; `None` for an outcome of the domain (those are final).
    fn unexpected(&self) -> Option<&anyhow::Error>;
}

impl Retryable for anyhow::Error {
    fn unexpected(&self) -> Option<&anyhow::Error> {
        Some(self)
    }
}

/// Marks an unexpected error as a shortage that passes, such as no database connection free
/// or openable within the pool's timeout: [`ApiError::internal`](super::ApiError::internal)
/// answers it with 503 and `Retry-After` instead of 500.
#[derive(Debug)]
pub struct Shortage {
    what: &'static str,
    source: Box<dyn Error + Send + Sync + 'static>,
}

impl Shortage {
    /// `what` ran short (a clause, e.g. "no database connection available"), because of
    /// `source`.
    pub fn new(what: &'static str, source: impl Error + Send + Sync + 'static) -> Self {
        Self {
            what,
            source: Box::new(source),
        }
    }
}

impl fmt::Display for Shortage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.what)
    }
}

impl Error for Shortage {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(self.source.as_ref())
    }
}

/// A module this request needs cannot be reached now: in a split deployment its service is
/// down, or the caller's circuit breaker for it is open. The answer is a 503 with
/// `Retry-After` and the module's name (the problem's `module` member); where the module
/// lives and why the connection failed are for the log, never for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unavailable {
    /// The module (`product`).
    pub module: String,
    /// Whole seconds before a retry may succeed, at least 1.
    pub retry_after: u64,
}

impl Unavailable {
    /// `module` is unavailable for about `wait` (rounded up to whole seconds, at least 1).
    pub fn new(module: impl Into<String>, wait: std::time::Duration) -> Self {
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        Self {
            module: module.into(),
            retry_after: seconds.max(1),
        }
    }
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the {} module is unavailable; retry in {} s",
            self.module, self.retry_after
        )
    }
}

impl Error for Unavailable {}
