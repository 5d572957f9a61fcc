//! How a call fails ([`RemoteError`]) and how an error body becomes a [`Problem`] even when
//! the neighbour (or a proxy in front of it) did not send a problem document.

use std::time::Duration;

use crate::error::Problem;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// The neighbour could not be reached, timed out, answered 502/503/504 (after the
    /// retries an idempotent call gets), or its circuit breaker is open. Maps onto the
    /// trait's `Unavailable` variant (a [`crate::error::Unavailable`] of `service` and
    /// `retry_after`); the HTTP layer answers 503 naming the module, with `Retry-After`.
    /// `reason` (which may hold the neighbour's address and the OS error) is for logs only.
    #[error("{service} is unavailable: {reason}")]
    Unavailable {
        service: String,
        reason: String,
        /// When a retry may succeed: the breaker's remaining cooldown, or the neighbour's
        /// own `Retry-After`, whichever is later (zero: at once).
        retry_after: Duration,
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
pub(super) const KEY_IN_FLIGHT: &str = crate::http::idempotency::IDEMPOTENCY_KEY_IN_FLIGHT;

#[cfg(test)]
mod tests {
    use super::*;

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
}
