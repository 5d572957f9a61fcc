//! The one HTTP error type. Every module converts its own error enum into [`ApiError`], and
//! [`ApiError`] is the only thing that turns into a response: RFC 9457
//! `application/problem+json` (feature `actix`). Unexpected errors keep their cause chain for
//! the log and reach the client as an opaque 500 (the request-context middleware adds the
//! request id).

use std::fmt;

use serde_json::{Map, Value};

mod problem;
mod transient;

pub use problem::{FieldError, Problem, ProblemCode, from_tagged, members, tagged_members};
pub use transient::{Retryable, Shortage, Unavailable};

pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

#[cfg(feature = "actix")]
mod response;
#[cfg(feature = "actix")]
pub use response::problem_response;

/// The kinds of failure the API reports, each with one status and problem type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    Conflict,
    PreconditionFailed,
    PayloadTooLarge,
    UnsupportedMediaType,
    Validation,
    TooManyRequests,
    Internal,
    ServiceUnavailable,
}

impl ErrorKind {
    /// Every kind, for looking one up by status.
    pub const ALL: [Self; 13] = [
        Self::BadRequest,
        Self::Unauthorized,
        Self::Forbidden,
        Self::NotFound,
        Self::MethodNotAllowed,
        Self::Conflict,
        Self::PreconditionFailed,
        Self::PayloadTooLarge,
        Self::UnsupportedMediaType,
        Self::Validation,
        Self::TooManyRequests,
        Self::Internal,
        Self::ServiceUnavailable,
    ];

    /// The kind answered with `status`, if one is.
    pub fn from_status(status: u16) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.status() == status)
    }

    /// The HTTP status code.
    pub fn status(self) -> u16 {
        match self {
            Self::BadRequest => 400,
            Self::Unauthorized => 401,
            Self::Forbidden => 403,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::Conflict => 409,
            Self::PreconditionFailed => 412,
            Self::PayloadTooLarge => 413,
            Self::UnsupportedMediaType => 415,
            Self::Validation => 422,
            Self::TooManyRequests => 429,
            Self::Internal => 500,
            Self::ServiceUnavailable => 503,
        }
    }

    /// The code of a problem of this kind that names nothing more specific.
    pub fn code(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Conflict => "conflict",
            Self::PreconditionFailed => "precondition_failed",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::Validation => "validation_failed",
            Self::TooManyRequests => "rate_limited",
            Self::Internal => "internal",
            Self::ServiceUnavailable => "unavailable",
        }
    }

    fn slug(self) -> &'static str {
        match self {
            Self::BadRequest => "bad-request",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not-found",
            Self::MethodNotAllowed => "method-not-allowed",
            Self::Conflict => "conflict",
            Self::PreconditionFailed => "precondition-failed",
            Self::PayloadTooLarge => "payload-too-large",
            Self::UnsupportedMediaType => "unsupported-media-type",
            Self::Validation => "validation",
            Self::TooManyRequests => "too-many-requests",
            Self::Internal => "internal",
            Self::ServiceUnavailable => "service-unavailable",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Self::BadRequest => "Malformed request",
            Self::Unauthorized => "Authentication required",
            Self::Forbidden => "Not allowed",
            Self::NotFound => "Not found",
            Self::MethodNotAllowed => "Method not allowed",
            Self::Conflict => "Conflict",
            Self::PreconditionFailed => "Precondition failed",
            Self::PayloadTooLarge => "Payload too large",
            Self::UnsupportedMediaType => "Unsupported media type",
            Self::Validation => "Validation failed",
            Self::TooManyRequests => "Too many requests",
            Self::Internal => "Internal server error",
            Self::ServiceUnavailable => "Service unavailable",
        }
    }
}

struct Coded {
    code: &'static str,
    members: Map<String, Value>,
}

/// An error on its way to becoming a problem response.
pub struct ApiError {
    kind: ErrorKind,
    /// A code more specific than the kind's, and its figures; boxed to keep `Result<_,
    /// ApiError>` small.
    coded: Option<Box<Coded>>,
    detail: String,
    errors: Vec<FieldError>,
    source: Option<anyhow::Error>,
    request_id: Option<String>,
    retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(kind: ErrorKind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            coded: None,
            detail: detail.into(),
            errors: Vec::new(),
            source: None,
            request_id: None,
            retry_after: None,
        }
    }

    /// A problem whose detail is a module error's message as a sentence ("order 1 not found"
    /// → "Order 1 not found."): module errors read as clauses, problem details as sentences.
    pub fn from_error(kind: ErrorKind, error: &impl fmt::Display) -> Self {
        let message = error.to_string();
        let mut chars = message.chars();
        let detail = chars
            .next()
            .map(|c| c.to_uppercase().chain(chars).collect::<String>())
            .unwrap_or_default();
        Self::new(kind, format!("{detail}."))
    }

    /// A problem carrying a module error's code and figures, with its message as detail.
    pub fn from_coded(kind: ErrorKind, error: &(impl fmt::Display + ProblemCode)) -> Self {
        Self::from_error(kind, error)
            .with_code(error.code())
            .with_members(error.members())
    }

    /// Replaces the code the kind gave.
    pub fn with_code(mut self, code: &'static str) -> Self {
        match &mut self.coded {
            Some(coded) => coded.code = code,
            None => {
                self.coded = Some(Box::new(Coded {
                    code,
                    members: Map::new(),
                }));
            }
        }
        self
    }

    /// Adds members to the problem document (the figures its code names).
    pub fn with_members(mut self, members: Map<String, Value>) -> Self {
        match &mut self.coded {
            Some(coded) => coded.members.extend(members),
            None => {
                self.coded = Some(Box::new(Coded {
                    code: self.kind.code(),
                    members,
                }));
            }
        }
        self
    }

    /// 422 listing every offending field.
    pub fn validation(errors: Vec<FieldError>) -> Self {
        let detail = match errors.as_slice() {
            [one] => format!("{}: {}", one.field, one.message),
            many => format!("{} fields are invalid", many.len()),
        };
        Self {
            errors,
            ..Self::new(ErrorKind::Validation, detail)
        }
    }

    /// 500 whose cause is logged, never shown; or 503 with `Retry-After` when the cause is
    /// a shortage that passes: no database connection free or openable in time (the pool's
    /// timeout, which the kernel marks as a [`Shortage`]), or no file descriptor left
    /// (EMFILE/ENFILE).
    pub fn internal(source: impl Into<anyhow::Error>) -> Self {
        let source = source.into();
        if is_shortage(&source) {
            return Self {
                source: Some(source),
                retry_after: Some(1),
                ..Self::new(
                    ErrorKind::ServiceUnavailable,
                    "The server is short of database connections or open files; retry shortly.",
                )
            };
        }
        Self {
            source: Some(source),
            ..Self::new(ErrorKind::Internal, "An unexpected error occurred.")
        }
    }

    /// Seconds the client should wait before retrying (`Retry-After`), if it should.
    pub fn retry_after(&self) -> Option<u64> {
        self.retry_after
    }

    /// Puts the request id into the problem and the `x-request-id` header; for errors
    /// rendered outside the request-context middleware's reach (a panic).
    pub fn with_request_id(mut self, request_id: impl Into<String>) -> Self {
        self.request_id = Some(request_id.into());
        self
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub fn detail(&self) -> &str {
        &self.detail
    }

    pub fn errors(&self) -> &[FieldError] {
        &self.errors
    }

    pub fn code(&self) -> &'static str {
        self.coded.as_ref().map_or(self.kind.code(), |c| c.code)
    }

    pub fn problem(&self) -> Problem {
        Problem {
            kind: format!("urn:tessera:problem:{}", self.kind.slug()),
            title: self.kind.title().to_owned(),
            status: self.kind.status(),
            detail: self.detail.clone(),
            code: self.code().to_owned(),
            errors: self.errors.clone(),
            request_id: self.request_id.clone(),
            members: self
                .coded
                .as_ref()
                .map(|c| c.members.clone())
                .unwrap_or_default(),
        }
    }
}

/// Linux's EMFILE (this process is out of file descriptors) and ENFILE (the system is).
const OUT_OF_FILES: [i32; 2] = [24, 23];

fn is_shortage(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause.is::<Shortage>()
            || cause
                .downcast_ref::<std::io::Error>()
                .and_then(std::io::Error::raw_os_error)
                .is_some_and(|code| OUT_OF_FILES.contains(&code))
    })
}

impl fmt::Debug for ApiError {
    // The whole cause chain, for logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.detail)?;
        if let Some(source) = &self.source {
            write!(f, ": {source:?}")?;
        }
        Ok(())
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail)
    }
}

/// 503 naming the module, with `Retry-After`.
impl From<Unavailable> for ApiError {
    fn from(unavailable: Unavailable) -> Self {
        let mut members = Map::new();
        members.insert("module".into(), Value::from(unavailable.module.clone()));
        Self {
            retry_after: Some(unavailable.retry_after),
            ..Self::from_error(ErrorKind::ServiceUnavailable, &unavailable).with_members(members)
        }
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(source: anyhow::Error) -> Self {
        Self::internal(source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shortage_is_a_503_with_retry_after() {
        let timeout = std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out");
        let shortage = Shortage::new("no database connection available", timeout);
        let api = ApiError::from(anyhow::Error::new(shortage).context("load the order"));
        assert_eq!(api.kind(), ErrorKind::ServiceUnavailable);
        assert_eq!(api.retry_after(), Some(1));
        // The log keeps the whole chain.
        let logged = format!("{api:?}");
        assert!(
            logged.contains("no database connection available") && logged.contains("timed out")
        );
    }

    #[test]
    fn an_unavailable_module_is_a_503_naming_it_with_retry_after() {
        let wait = std::time::Duration::from_millis(4919);
        let api = ApiError::from(Unavailable::new("product", wait));
        assert_eq!(api.retry_after(), Some(5));
        let problem = api.problem();
        assert_eq!(
            (problem.status, problem.code.as_str()),
            (503, "unavailable")
        );
        assert_eq!(problem.members["module"], "product");
        assert_eq!(
            problem.detail,
            "The product module is unavailable; retry in 5 s."
        );
        let soon = Unavailable::new("order", std::time::Duration::ZERO);
        assert_eq!(soon.retry_after, 1);
    }

    #[test]
    fn running_out_of_file_descriptors_is_a_503() {
        let emfile = std::io::Error::from_raw_os_error(24);
        let api = ApiError::internal(anyhow::Error::new(emfile).context("open the file"));
        assert_eq!(api.kind(), ErrorKind::ServiceUnavailable);
        assert_eq!(api.retry_after(), Some(1));
        let other = ApiError::internal(anyhow::anyhow!("a bug"));
        assert_eq!(other.kind(), ErrorKind::Internal);
        assert_eq!(other.retry_after(), None);
    }
}
