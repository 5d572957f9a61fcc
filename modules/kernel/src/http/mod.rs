//! HTTP helpers shared by every module: body and query extractors with problem+json errors,
//! cursor pagination, ETag / If-Match, and the request-context middleware.

pub mod docs;
pub mod idempotency;
mod json;
pub mod limits;
pub mod middleware;
mod query;
mod report;
mod schema;
mod strict;
pub mod wire;
mod words;

use actix_web::{FromRequest, HttpRequest, dev::Payload, http::header};
pub use kernel_api::{
    page::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, cursor, page_limit, page_params},
    version::ExpectedVersion,
};
use serde::Serialize;

pub use json::{Body, Json, JsonLimit, MAX_DEPTH, from_value, parse_body};
pub use query::{Query, QueryString, parse_query};
pub use report::Checked;

use crate::error::{ApiError, ErrorKind, FieldError};

/// The ETag of a resource revision.
pub fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

/// A JSON response carrying the resource's ETag.
pub fn json_with_etag<T: Serialize>(
    status: actix_web::http::StatusCode,
    body: &T,
    version: i64,
) -> actix_web::HttpResponse {
    actix_web::HttpResponse::build(status)
        .insert_header((header::ETAG, etag(version)))
        .json(body)
}

/// `response` with a `Location` header (for 201 Created).
pub fn with_location(
    mut response: actix_web::HttpResponse,
    location: impl AsRef<str>,
) -> actix_web::HttpResponse {
    if let Ok(value) = header::HeaderValue::from_str(location.as_ref()) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// The `If-Match` request header: absent, `*`, or a list of ETags. Handlers hand a module
/// the [`ExpectedVersion`] it names (`if_match.into()`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum IfMatch {
    #[default]
    Absent,
    Any,
    Tags(Vec<String>),
}

impl IfMatch {
    /// Whether a resource at `version` satisfies the precondition.
    pub fn allows(&self, version: i64) -> bool {
        match self {
            Self::Absent | Self::Any => true,
            Self::Tags(tags) => tags.iter().any(|t| *t == etag(version)),
        }
    }

    /// 412 unless the precondition holds.
    ///
    /// # Errors
    /// 412 when the version does not match.
    pub fn check(&self, version: i64) -> Result<(), ApiError> {
        if self.allows(version) {
            Ok(())
        } else {
            Err(ApiError::new(
                ErrorKind::PreconditionFailed,
                "If-Match does not match the current ETag: the resource has changed.",
            ))
        }
    }

    fn parse(value: &str) -> Self {
        let value = value.trim();
        if value == "*" {
            return Self::Any;
        }
        Self::Tags(
            value
                .split(',')
                .map(|t| t.trim().trim_start_matches("W/").to_owned())
                .filter(|t| !t.is_empty())
                .collect(),
        )
    }
}

/// The revisions the header names: ETags are [`etag`]s of versions; any other tag names no
/// revision (so a list of only such tags matches none, as the header would).
impl From<IfMatch> for ExpectedVersion {
    fn from(if_match: IfMatch) -> Self {
        match if_match {
            IfMatch::Absent | IfMatch::Any => Self::Any,
            IfMatch::Tags(tags) => Self::OneOf(
                tags.iter()
                    .filter_map(|tag| {
                        let version = tag.strip_prefix('"')?.strip_suffix('"')?.parse().ok()?;
                        (etag(version) == *tag).then_some(version)
                    })
                    .collect(),
            ),
        }
    }
}

/// The `If-Match` value that states `expected` (the inverse of the conversion above), for
/// clients; `None` when no header is needed. An empty list becomes `""`, an ETag no version
/// has.
pub fn if_match_value(expected: &ExpectedVersion) -> Option<String> {
    match expected {
        ExpectedVersion::Any => None,
        ExpectedVersion::OneOf(versions) if versions.is_empty() => Some("\"\"".to_owned()),
        ExpectedVersion::OneOf(versions) => Some(
            versions
                .iter()
                .map(|v| etag(*v))
                .collect::<Vec<_>>()
                .join(", "),
        ),
    }
}

impl FromRequest for IfMatch {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let value = match req.headers().get(header::IF_MATCH) {
            None => Ok(Self::Absent),
            Some(v) => v
                .to_str()
                .map(Self::parse)
                .map_err(|_| ApiError::new(ErrorKind::BadRequest, "If-Match must be ASCII ETags.")),
        };
        std::future::ready(value)
    }
}

/// The problem for a path segment that cannot name a resource (`/products/not-a-uuid`), or
/// a 422 naming a path parameter the database could not store (NUL, sent as `%00`).
pub fn path_error_handler(
    _err: actix_web::error::PathError,
    req: &HttpRequest,
) -> actix_web::Error {
    let unstorable: Vec<FieldError> = req
        .match_info()
        .iter()
        .filter(|(_, value)| value.contains('\0') || value.to_ascii_lowercase().contains("%00"))
        .map(|(name, _)| FieldError::new(name, strict::NUL_MESSAGE))
        .collect();
    if !unstorable.is_empty() {
        return ApiError::validation(unstorable).into();
    }
    ApiError::new(
        ErrorKind::NotFound,
        format!("Nothing exists at {}.", req.path()),
    )
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn if_match_compares_etags() {
        assert!(IfMatch::parse("\"3\"").allows(3));
        assert!(!IfMatch::parse("\"3\"").allows(4));
        assert!(IfMatch::parse("\"2\", W/\"4\"").allows(4));
        assert!(IfMatch::parse("*").allows(9));
    }

    #[test]
    fn if_match_names_the_versions_its_etags_are_of() {
        let expected = |header: &str| ExpectedVersion::from(IfMatch::parse(header));
        assert_eq!(expected("*"), ExpectedVersion::Any);
        assert_eq!(ExpectedVersion::from(IfMatch::Absent), ExpectedVersion::Any);
        assert_eq!(
            expected("\"2\", W/\"4\""),
            ExpectedVersion::OneOf(vec![2, 4])
        );
        // Not the ETag of any version: matches none, as before.
        for never in ["\"03\"", "\"+3\"", "3", "\"x\""] {
            let version = expected(never);
            assert!(!version.allows(3), "{never}");
            assert_eq!(version.allows(3), IfMatch::parse(never).allows(3));
        }
    }

    #[test]
    fn a_client_states_an_expected_version_as_the_header_the_server_reads_back() {
        for expected in [
            ExpectedVersion::Any,
            ExpectedVersion::exactly(7),
            ExpectedVersion::OneOf(vec![2, 4]),
        ] {
            let header = if_match_value(&expected).map_or(IfMatch::Absent, |v| IfMatch::parse(&v));
            assert_eq!(ExpectedVersion::from(header), expected);
        }
        let none = if_match_value(&ExpectedVersion::OneOf(Vec::new())).unwrap();
        assert!((0..10).all(|v| !IfMatch::parse(&none).allows(v)));
    }
}
