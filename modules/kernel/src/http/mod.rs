//! HTTP helpers shared by every module: body and query extractors with problem+json errors,
//! cursor pagination, ETag / If-Match, and the request-context middleware.

pub mod docs;
pub mod idempotency;
mod json;
pub mod limits;
pub mod middleware;
mod strict;

use std::{future::Future, pin::Pin};

use actix_web::{FromRequest, HttpRequest, dev::Payload, http::header};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Serialize, de::DeserializeOwned};

pub use json::{Json, JsonLimit, from_value, parse_body};

use crate::error::{ApiError, ErrorKind, FieldError};

/// Query-string extractor: a parameter of the wrong type, an unknown parameter or one the
/// database could not store (NUL) is a 422 naming it.
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<T> Query<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for Query<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let result = parse_query(req.query_string()).map(Query);
        Box::pin(async move { result })
    }
}

/// # Errors
/// 422 naming the offending parameter.
pub fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    let unstorable: Vec<FieldError> = form_urlencoded::parse(query.as_bytes())
        .filter(|(name, value)| name.contains('\0') || value.contains('\0'))
        .map(|(name, _)| FieldError::new(strict::printable(&name), strict::NUL_MESSAGE))
        .collect();
    if !unstorable.is_empty() {
        return Err(ApiError::validation(unstorable));
    }
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let message = e.inner().to_string();
        let (field, message) = match message
            .strip_prefix("unknown field `")
            .and_then(|rest| rest.split('`').next())
        {
            Some(name) => (name.to_owned(), "unknown query parameter".to_owned()),
            None => (path, message),
        };
        ApiError::validation(vec![FieldError::new(field, message)])
    })
}

/// Requested page size, clamped to the documented bounds.
pub const DEFAULT_PAGE_SIZE: u32 = 20;
pub const MAX_PAGE_SIZE: u32 = 100;

/// Checks a `limit` parameter: absent → 20; outside 1..=100 → an error for field `limit`.
///
/// # Errors
/// A field error for `limit`.
pub fn page_limit(limit: Option<u32>) -> Result<u32, FieldError> {
    match limit {
        None => Ok(DEFAULT_PAGE_SIZE),
        Some(n) if (1..=MAX_PAGE_SIZE).contains(&n) => Ok(n),
        Some(_) => Err(FieldError::new(
            "limit",
            format!("must be between 1 and {MAX_PAGE_SIZE}"),
        )),
    }
}

/// A checked `limit` and `cursor` pair: the page size and the decoded position the page starts
/// after. Both are checked, so one 422 names both when both are wrong.
///
/// # Errors
/// Field errors for `limit` and/or `cursor`.
pub fn page_params<C: DeserializeOwned>(
    limit: Option<u32>,
    cursor: Option<&str>,
) -> Result<(u32, Option<C>), Vec<FieldError>> {
    let limit = page_limit(limit);
    let position = cursor.map(cursor::decode::<C>).transpose();
    match (limit, position) {
        (Ok(limit), Ok(position)) => Ok((limit, position)),
        (limit, position) => Err(limit.err().into_iter().chain(position.err()).collect()),
    }
}

/// Opaque cursors: URL-safe base64 of a small JSON value (the position after the last item).
pub mod cursor {
    use super::*;

    pub fn encode<T: Serialize>(position: &T) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(position).unwrap_or_default())
    }

    /// # Errors
    /// A field error for `cursor` when it was not produced by [`encode`] for this listing.
    pub fn decode<T: DeserializeOwned>(cursor: &str) -> Result<T, FieldError> {
        URL_SAFE_NO_PAD
            .decode(cursor)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or_else(|| FieldError::new("cursor", "is not a cursor returned by this listing"))
    }
}

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

/// The `If-Match` request header: absent, `*`, or a list of ETags.
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
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Q {
        limit: Option<u32>,
        q: Option<String>,
    }

    #[test]
    fn query_errors_name_the_parameter() {
        let err = parse_query::<Q>("limit=ten").unwrap_err();
        assert_eq!(err.errors()[0].field, "limit");
        let err = parse_query::<Q>("lmit=1").unwrap_err();
        assert_eq!(err.errors()[0].field, "lmit");
        assert!(parse_query::<Q>("limit=5&q=a%20b").is_ok());
    }

    #[test]
    fn a_nul_in_a_query_parameter_is_named() {
        let err = parse_query::<Q>("limit=5&q=a%00b").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Validation);
        assert_eq!(err.errors()[0].field, "q");
        let err = parse_query::<Q>("q%00=1").unwrap_err();
        assert_eq!(err.errors()[0].field, "q\\u0000");
    }

    #[test]
    fn page_params_report_both_fields() {
        assert_eq!(page_params::<i64>(None, None).unwrap(), (20, None));
        let c = cursor::encode(&7_i64);
        assert_eq!(page_params::<i64>(Some(5), Some(&c)).unwrap(), (5, Some(7)));
        let errors = page_params::<i64>(Some(0), Some("%%")).unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["limit", "cursor"]);
    }

    #[test]
    fn limits_are_bounded() {
        assert_eq!(page_limit(None).unwrap(), 20);
        assert_eq!(page_limit(Some(100)).unwrap(), 100);
        assert!(page_limit(Some(0)).is_err());
        assert!(page_limit(Some(101)).is_err());
    }

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let c = cursor::encode(&("name", 3));
        assert_eq!(
            cursor::decode::<(String, i32)>(&c).unwrap(),
            ("name".into(), 3)
        );
        assert!(cursor::decode::<(String, i32)>("%%%").is_err());
    }

    #[test]
    fn if_match_compares_etags() {
        assert!(IfMatch::parse("\"3\"").allows(3));
        assert!(!IfMatch::parse("\"3\"").allows(4));
        assert!(IfMatch::parse("\"2\", W/\"4\"").allows(4));
        assert!(IfMatch::parse("*").allows(9));
    }
}
