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
